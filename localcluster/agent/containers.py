"""Pure builders: a pod's container spec -> the process to run (argv, env, user, cwd).

Follows Kubernetes semantics: ``command`` replaces the image's ENTRYPOINT and ``args`` its
CMD; ``$(VAR)`` in env values, command and args expands to earlier variables (``$$`` escapes);
``valueFrom`` reads pod fields, ConfigMaps and Secrets.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from .images import LocalImage, local_value, search_path

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: unknown references stay as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _REF.sub(sub, text)


class ConfigError(ValueError):
    """The pod refers to something that does not exist (CreateContainerConfigError)."""


def field_value(pod: dict[str, Any], path: str) -> str:
    """A downward-API ``fieldRef.fieldPath`` of ``pod``."""
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    if path not in simple:
        raise ConfigError(f"unsupported fieldPath {path!r}")
    return str(simple[path] or "")


def _from_object(kind: str, ref: dict[str, Any], objects: dict[str, dict[str, Any]]) -> str | None:
    obj = objects.get(ref["name"])
    if obj is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f"{kind} {ref['name']!r} not found")
    if kind == "secret":
        raw = (obj.get("data") or {}).get(ref["key"])
        value = base64.b64decode(raw).decode() if raw is not None else None
    else:
        value = (obj.get("data") or {}).get(ref["key"])
    if value is None and not ref.get("optional"):
        raise ConfigError(f"key {ref['key']!r} not in {kind} {ref['name']!r}")
    return value


def container_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    image: LocalImage,
    configmaps: dict[str, dict[str, Any]],
    secrets: dict[str, dict[str, Any]],
    api_server: tuple[str, int] | None = None,
) -> dict[str, str]:
    """The process environment of ``container``, in Kubernetes' order of precedence.

    ``api_server`` (host, port) becomes ``KUBERNETES_SERVICE_HOST`` / ``_PORT``, as the
    kubelet sets them, so in-cluster clients find the API server.
    """
    env: dict[str, str] = {"PATH": search_path(image), **{k: local_value(v) for k, v in image.env.items()}}
    if image.home:
        env["HOME"] = image.home
    env["HOSTNAME"] = pod["metadata"]["name"]
    if api_server:
        env["KUBERNETES_SERVICE_HOST"], port = api_server[0], str(api_server[1])
        env["KUBERNETES_SERVICE_PORT"] = env["KUBERNETES_SERVICE_PORT_HTTPS"] = port
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, store in (("configMapRef", configmaps), ("secretRef", secrets)):
            ref = source.get(kind)
            if not ref:
                continue
            obj = store.get(ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f"{kind} {ref['name']!r} not found")
            for k, v in (obj.get("data") or {}).items():
                env[prefix + k] = base64.b64decode(v).decode() if kind == "secretRef" else v
    for var in container.get("env") or []:
        name, value_from = var["name"], var.get("valueFrom")
        if value_from is None:
            env[name] = expand(var.get("value") or "", env)
            continue
        if "fieldRef" in value_from:
            env[name] = field_value(pod, value_from["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in value_from:
            v = _from_object("configmap", value_from["configMapKeyRef"], configmaps)
            if v is not None:
                env[name] = v
        elif "secretKeyRef" in value_from:
            v = _from_object("secret", value_from["secretKeyRef"], secrets)
            if v is not None:
                env[name] = v
        elif "resourceFieldRef" in value_from:
            res = value_from["resourceFieldRef"]["resource"]
            kind, _, what = res.partition(".")
            env[name] = str(((container.get("resources") or {}).get(kind) or {}).get(what, "0"))
    return env


def container_argv(container: dict[str, Any], image: LocalImage, env: dict[str, str]) -> list[str]:
    """ENTRYPOINT/CMD resolution with ``command`` and ``args`` overrides."""
    if container.get("command"):
        argv = list(container["command"]) + list(container.get("args") or [])
    elif container.get("args"):
        argv = list(image.entrypoint) + list(container["args"])
    else:
        argv = list(image.entrypoint) + list(image.cmd)
    argv = [expand(a, env) for a in argv]
    if not argv:
        raise ConfigError("no command: the container sets none and its image has no default")
    return argv


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: tuple[int, ...]


def identity(pod: dict[str, Any], container: dict[str, Any], image: LocalImage) -> Identity:
    """runAsUser / runAsGroup / fsGroup / supplementalGroups, container over pod over image."""
    pod_sc = pod["spec"].get("securityContext") or {}
    sc = container.get("securityContext") or {}
    uid = sc.get("runAsUser", pod_sc.get("runAsUser", image.user))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", 100 if uid else 0))
    if (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True) and uid == 0:
        raise ConfigError("container has runAsNonRoot and image will run as root")
    groups = list(pod_sc.get("supplementalGroups") or [])
    if pod_sc.get("fsGroup") is not None:
        groups.append(pod_sc["fsGroup"])
    return Identity(int(uid), int(gid), tuple(int(g) for g in groups))


def probe_port(port: int | str, container: dict[str, Any]) -> int:
    """A probe's ``port``: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ConfigError(f"probe port {port!r} is not a port of container {container.get('name')!r}")
