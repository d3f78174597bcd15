"""Security context of every MoonHub workload (user servers and job runs): passes the
``restricted`` Pod Security Standard. The one place it is decided: the workload builder
puts it on every pod, and nothing else sets it."""

from __future__ import annotations

from typing import Any

NB_UID = 1000
NB_GID = 100


def pod_security_context(uid: int = NB_UID, gid: int = NB_GID) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "fsGroup": gid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(uid: int = NB_UID, gid: int = NB_GID) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
    }
