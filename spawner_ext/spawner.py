"""``MoonSpawner``: registered as the ``moon`` entry point of ``jupyterhub.spawners``."""

from __future__ import annotations

from typing import Any

from kubespawner import KubeSpawner
from traitlets import Bool, default

from .security import NB_GID, NB_UID, container_security_context, pod_security_context

POD_IP_ENV = "MOONHUB_POD_IP"


class MoonSpawner(KubeSpawner):
    """KubeSpawner with MoonHub's defaults: restricted pods, no API credentials, a
    per-user workspace volume kept across restarts."""

    bind_pod_ip = Bool(
        False,
        config=True,
        help="""
        Make the single-user server listen on its pod's IP instead of 0.0.0.0.

        Needed on the local cluster, where every pod is a host process sharing the host's
        network and owns one address on 127.0.0.0/8. Harmless on a real cluster.
        """,
    )

    @default("uid")
    def _default_uid(self) -> int:
        return NB_UID

    @default("gid")
    def _default_gid(self) -> int:
        return NB_GID

    @default("fs_gid")
    def _default_fs_gid(self) -> int:
        return NB_GID

    @default("automount_service_account_token")
    def _default_automount(self) -> bool:
        return False

    @default("allow_privilege_escalation")
    def _default_ape(self) -> bool:
        return False

    @default("pod_security_context")
    def _default_pod_sc(self) -> dict[str, Any]:
        return pod_security_context(NB_UID, NB_GID)

    @default("container_security_context")
    def _default_container_sc(self) -> dict[str, Any]:
        return container_security_context()

    @default("storage_pvc_ensure")
    def _default_pvc_ensure(self) -> bool:
        return True

    @default("volumes")
    def _default_volumes(self) -> list[dict[str, Any]]:
        return [{"name": "workspace", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]

    @default("volume_mounts")
    def _default_volume_mounts(self) -> list[dict[str, Any]]:
        return [{"name": "workspace", "mountPath": "/home/jovyan"}]

    def get_env(self) -> dict[str, Any]:
        env: dict[str, Any] = super().get_env()
        if self.bind_pod_ip:
            # JUPYTERHUB_SERVICE_URL names $(MOONHUB_POD_IP); Kubernetes expands it in the pod
            env[POD_IP_ENV] = {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        return env

    @default("ip")
    def _default_ip(self) -> str:
        return f"$({POD_IP_ENV})" if self.bind_pod_ip else "0.0.0.0"
