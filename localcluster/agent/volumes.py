"""Materialise a pod's volumes as host folders, ready to bind-mount into its namespace.

PVC -> the bound PV's host path; emptyDir -> a fresh folder in the pod's state folder;
configMap / secret / downwardAPI / projected (service-account tokens included) -> files
written with their modes. ``fsGroup`` is applied like the kubelet does (group ownership and
group write), only when the volume's root does not already carry it.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from .containers import ConfigError, field_value


class VolumeNotReady(RuntimeError):
    """A volume can not be set up yet (unbound PVC); the pod waits and retries."""


def _write_items(folder: Path, data: dict[str, bytes], items: list[dict] | None, mode: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chosen = [(i["key"], i["path"], i.get("mode", mode)) for i in items] if items else [(k, k, mode) for k in data]
    for key, rel, m in chosen:
        if key not in data:
            raise ConfigError(f"key {key!r} not found")
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[key])
        target.chmod(m)


def _cm_bytes(cm: dict[str, Any]) -> dict[str, bytes]:
    out = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return out


def _secret_bytes(secret: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def apply_fs_group(path: Path, gid: int) -> None:
    """Group-own ``path`` by ``gid`` with group rw (setgid on folders), on root mismatch."""
    if path.stat().st_gid == gid:
        return
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files, ""]:
            p = Path(root, name) if name else Path(root)
            try:
                os.lchown(p, -1, gid)
                st = p.stat()
                extra = 0o2070 if p.is_dir() else 0o060
                p.chmod((st.st_mode & 0o7777) | extra)
            except OSError:
                continue


class VolumeBuilder:
    """Fetches what a pod's volumes refer to and lays them out under ``pod_dir``."""

    def __init__(self, core: client.CoreV1Api, api: client.ApiClient) -> None:
        self.core, self.api = core, api

    def _dict(self, obj: Any) -> dict[str, Any]:
        return self.api.sanitize_for_serialization(obj)

    async def configmap(self, ns: str, name: str, optional: bool = False) -> dict[str, Any] | None:
        try:
            return self._dict(await self.core.read_namespaced_config_map(name, ns))
        except client.ApiException as e:
            if e.status == 404 and optional:
                return None
            if e.status == 404:
                raise ConfigError(f"configmap {name!r} not found") from e
            raise

    async def secret(self, ns: str, name: str, optional: bool = False) -> dict[str, Any] | None:
        try:
            return self._dict(await self.core.read_namespaced_secret(name, ns))
        except client.ApiException as e:
            if e.status == 404 and optional:
                return None
            if e.status == 404:
                raise ConfigError(f"secret {name!r} not found") from e
            raise

    async def token(self, pod: dict[str, Any], audience: str | None, seconds: int) -> bytes:
        meta = pod["metadata"]
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [audience] if audience else None,
                "expirationSeconds": seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
            },
        }
        sa = pod["spec"].get("serviceAccountName") or "default"
        result = await self.core.create_namespaced_service_account_token(
            sa,
            meta["namespace"],
            body,  # type: ignore[arg-type]  # dict bodies serialise as-is
        )
        return str(result.status.token).encode()

    async def host_path(self, pod: dict[str, Any], volume: dict[str, Any], pod_dir: Path) -> Path:
        """Where ``volume``'s content lives on the host (created when it is the pod's own)."""
        ns, name = pod["metadata"]["namespace"], volume["name"]
        own = pod_dir / "volumes" / name
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            pvc = await self.core.read_namespaced_persistent_volume_claim(claim, ns)
            if pvc.status.phase != "Bound" or not pvc.spec.volume_name:
                raise VolumeNotReady(f"persistentvolumeclaim {claim!r} is not bound")
            pv = await self.core.read_persistent_volume(pvc.spec.volume_name)
            src = pv.spec.host_path.path if pv.spec.host_path else (pv.spec.local.path if pv.spec.local else None)
            if not src:
                raise ConfigError(f"persistentvolume {pv.metadata.name!r} is not a host path volume")
            Path(src).mkdir(parents=True, exist_ok=True)
            return Path(src)
        if "hostPath" in volume:
            path = Path(volume["hostPath"]["path"])
            if volume["hostPath"].get("type") in ("DirectoryOrCreate", None, ""):
                path.mkdir(parents=True, exist_ok=True)
            return path
        if own.exists() and "emptyDir" in volume:
            return own  # a restarted container keeps its emptyDir
        if own.exists():
            shutil.rmtree(own)
        own.mkdir(parents=True)
        if "emptyDir" in volume:
            return own
        if "configMap" in volume:
            ref = volume["configMap"]
            cm = await self.configmap(ns, ref["name"], ref.get("optional", False))
            _write_items(own, _cm_bytes(cm or {}), ref.get("items"), ref.get("defaultMode", 0o644))
        elif "secret" in volume:
            ref = volume["secret"]
            sec = await self.secret(ns, ref["secretName"], ref.get("optional", False))
            _write_items(own, _secret_bytes(sec or {}), ref.get("items"), ref.get("defaultMode", 0o644))
        elif "downwardAPI" in volume:
            await self._downward(pod, volume["downwardAPI"], own, volume["downwardAPI"].get("defaultMode", 0o644))
        elif "projected" in volume:
            mode = volume["projected"].get("defaultMode", 0o644)
            for src in volume["projected"].get("sources") or []:
                await self._projected_source(pod, src, own, mode)
        else:
            kinds = sorted(set(volume) - {"name"})
            raise ConfigError(f"volume {name!r}: type {kinds} is not supported by the local node agent")
        return own

    async def _downward(self, pod: dict[str, Any], spec: dict[str, Any], folder: Path, mode: int) -> None:
        data = {
            i["path"]: field_value(pod, i["fieldRef"]["fieldPath"]).encode()
            for i in spec.get("items") or []
            if "fieldRef" in i
        }
        _write_items(folder, data, None, mode)

    async def _projected_source(self, pod: dict[str, Any], src: dict[str, Any], folder: Path, mode: int) -> None:
        ns = pod["metadata"]["namespace"]
        if "serviceAccountToken" in src:
            t = src["serviceAccountToken"]
            token = await self.token(pod, t.get("audience"), t.get("expirationSeconds", 3607))
            _write_items(folder, {t["path"]: token}, None, mode)
        elif "configMap" in src:
            ref = src["configMap"]
            cm = await self.configmap(ns, ref["name"], ref.get("optional", False))
            _write_items(folder, _cm_bytes(cm or {}), ref.get("items"), mode)
        elif "secret" in src:
            ref = src["secret"]
            sec = await self.secret(ns, ref["name"], ref.get("optional", False))
            _write_items(folder, _secret_bytes(sec or {}), ref.get("items"), mode)
        elif "downwardAPI" in src:
            await self._downward(pod, src["downwardAPI"], folder, mode)
