"""Service names for pods on the local node: no kube-proxy and no cluster DNS here, and the
pods' 127.x addresses may not appear in EndpointSlices (the API refuses loopback
endpoints). So the agent matches each Service's selector against the ready pods it runs and
writes one hosts file, bind-mounted read-only at /etc/hosts in every pod, mapping the
Service's names to a ready pod's address. A Service reached this way needs its port equal
to its target port (the pod's own port). Pure but for :class:`HostsFile`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

CLUSTER_DOMAIN = "cluster.local"


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return status.get("phase") == "Running" and conditions.get("Ready") == "True" and bool(status.get("podIP"))


def service_hosts(services: Iterable[dict[str, Any]], pods: Iterable[dict[str, Any]]) -> list[str]:
    """``address name name.ns name.ns.svc name.ns.svc.cluster.local`` lines, one per Service
    whose selector matches a ready pod (the lowest address, so the choice is stable)."""
    ready = [p for p in pods if _ready(p)]
    lines = []
    for svc in services:
        meta = svc.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not selector:
            continue  # a Service without a selector has no pods of ours
        addresses = sorted(
            p["status"]["podIP"]
            for p in ready
            if (p.get("metadata") or {}).get("namespace") == ns
            and all(((p.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items())
        )
        if addresses:
            names = [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"]
            lines.append(f"{addresses[0]} {' '.join(names)}")
    return sorted(lines)


class HostsFile:
    """The node's hosts file: the host's own entries, then the Services'. Rewritten in place
    (same inode) so the bind mounts in running pods see every change."""

    def __init__(self, path: Path, base: Path = Path("/etc/hosts")) -> None:
        self.path = path
        self.base = base.read_text() if base.exists() else "127.0.0.1 localhost\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._last: str | None = None
        self.write([])

    def write(self, service_lines: list[str]) -> bool:
        services = "".join(f"{line}\n" for line in service_lines)
        text = self.base.rstrip("\n") + "\n# Services (moonhub node agent)\n" + services
        if text == self._last:
            return False
        with self.path.open("r+" if self.path.exists() else "w") as f:
            f.seek(0)
            f.write(text)
            f.truncate()
        self.path.chmod(0o644)
        self._last = text
        return True
