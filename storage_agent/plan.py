"""What the agent does in one pass, from the volumes, the claims and Gluster's quotas. Pure."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from moonhub_core import workspaces
from moonhub_core.numbers import is_whole

from .gluster import Quota

#: usage is written back when it moved by this share of the folder's size ...
USAGE_STEP = 0.01
#: ... or when it changed at all and the last report is this old
USAGE_MAX_AGE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class Grow:
    """Raise the folder's quota to ``size`` (bytes; ``quantity`` as the claim asked), then
    the volume's and the claim's capacity."""

    volume: str
    namespace: str
    claim: str
    path: str
    size: int
    quantity: str
    #: only the capacities are behind (the quota already is ``size``)
    quota_done: bool = False


@dataclass(frozen=True)
class Report:
    namespace: str
    claim: str
    used: int


@dataclass(frozen=True)
class Usage:
    """One workspace's use and its folder's quota (bytes), for the metrics."""

    namespace: str
    claim: str
    used: int
    limit: int


@dataclass
class Plan:
    grow: list[Grow] = field(default_factory=list)
    report: list[Report] = field(default_factory=list)
    #: every bound claim's use and quota, whether or not it is reported now
    usage: list[Usage] = field(default_factory=list)
    #: folders with no quota at all (made before quotas, or by hand): listed for the log
    unlimited: list[str] = field(default_factory=list)


def folder(pv: Mapping[str, Any], mount: str) -> str | None:
    """The volume's folder as a path inside the Gluster volume (``/ns/claim``), or None
    when it is not on ``mount``."""
    path = ((pv.get("spec") or {}).get("hostPath") or {}).get("path") or ""
    root = mount.rstrip("/")
    if not path.startswith(root + "/"):
        return None
    return path[len(root) :]


def plan(
    pvs: list[Mapping[str, Any]],
    pvcs: list[Mapping[str, Any]],
    quotas: Mapping[str, Quota],
    storage_class: str,
    mount: str,
    now: datetime.datetime,
) -> Plan:
    claims = {((c["metadata"].get("namespace") or ""), c["metadata"]["name"]): c for c in pvcs}
    p = Plan()
    for pv in pvs:
        spec = pv.get("spec") or {}
        ref = spec.get("claimRef") or {}
        if spec.get("storageClassName") != storage_class or (pv.get("status") or {}).get("phase") != "Bound":
            continue
        path = folder(pv, mount)
        pvc = claims.get((ref.get("namespace") or "", ref.get("name") or ""))
        if path is None or pvc is None:
            continue
        ns, name = pvc["metadata"].get("namespace") or "", pvc["metadata"]["name"]
        asked = ((pvc.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage") or ""
        want = workspaces.bytes_of(asked)
        have = workspaces.bytes_of((spec.get("capacity") or {}).get("storage"))
        claimed = workspaces.bytes_of(((pvc.get("status") or {}).get("capacity") or {}).get("storage"))
        quota = quotas.get(path)
        if quota is None:
            p.unlimited.append(path)
        elif want > quota.limit:
            p.grow.append(Grow(pv["metadata"]["name"], ns, name, path, want, asked))
        elif want > have or want > claimed:
            p.grow.append(Grow(pv["metadata"]["name"], ns, name, path, want, asked, quota_done=True))
        if quota is not None:
            p.usage.append(Usage(ns, name, quota.used, quota.limit))
        if quota is not None and _report_due(pvc, quota, now):
            p.report.append(Report(ns, name, quota.used))
    return p


def _report_due(pvc: Mapping[str, Any], quota: Quota, now: datetime.datetime) -> bool:
    ann = (pvc.get("metadata") or {}).get("annotations") or {}
    raw = ann.get(workspaces.USED_BYTES)
    if raw is None or not is_whole(raw):
        return True
    last = int(raw)
    if last == quota.used:
        return False
    if abs(last - quota.used) >= USAGE_STEP * max(quota.limit, 1):
        return True
    at = workspaces.parse_time(ann.get(workspaces.USAGE_AT, ""))
    return at is None or now - at >= USAGE_MAX_AGE
