"""Workspaces and shared folders as claims: names, the annotations MoonHub's parts exchange
on them, the size a user may choose, and the admins' view of usage. Pure.

- A user's workspace is the claim KubeSpawner names (``claim-<user>``); its size is the
  claim's request, enforced by the storage (a Gluster directory quota on the local cluster).
  It grows by raising the request: the storage agent (``storage_agent``) grows the quota and
  then the volume's and claim's capacity. Claims never shrink.
- The storage agent writes each claim's use on it (:data:`USED_BYTES`, :data:`USAGE_AT`).
- A team folder is a ReadWriteMany claim ``team-<group>`` annotated with its Unix group id
  (:data:`GID`): the provisioner makes its folder with that group and mode 2770.
- Reclaim marks a departed user's workspace :data:`ARCHIVED_AT` before it is deleted.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from .catalog import Storage, TeamFolder, team_claim
from .errors import NotEntitled, UnknownChoice
from .identity import CREATED
from .pods import HUB_USER, OWNER, PREFIX
from .uids import UID

#: bytes in use in the claim's folder, and when the storage agent read it (ISO 8601)
USED_BYTES = f"{PREFIX}used-bytes"
USAGE_AT = f"{PREFIX}usage-at"
#: the numeric group that owns a team folder
GID = f"{PREFIX}gid"
#: when reclaim archived a departed user's workspace (ISO 8601); deleted after the grace
ARCHIVED_AT = f"{PREFIX}archived-at"
#: on a team folder's claim: the group it was made for, as the catalog spells it
GROUP = f"{PREFIX}group"
#: what a claim is, for selectors: ``workspace`` or ``team-folder``
KIND = f"{PREFIX}storage"
WORKSPACE = "workspace"
TEAM_FOLDER = "team-folder"
#: the spawn option naming the workspace size (beside the workload's choices)
SIZE_OPTION = "workspace_size"


def team_folders(storage: Storage, groups: Iterable[str]) -> list[TeamFolder]:
    """The team folders of ``groups``."""
    mine = set(groups)
    return [tf for tf in storage.team_folders if tf.group in mine]


def team_folder_claim(storage: Storage, tf: TeamFolder, storage_class: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": team_claim(tf.group),
            "namespace": namespace,
            "labels": {KIND: TEAM_FOLDER},
            "annotations": {GID: str(tf.gid), GROUP: tf.group},
        },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": tf.capacity}},
        },
    }


def bytes_of(quantity: str | None) -> int:
    return int(parse_quantity(quantity)) if quantity else 0


def parse_size(raw: Any, allowed: list[str], current: str | None) -> str | None:
    """The workspace size a spawn asks for (``None``: keep what there is, or the default).

    Refused: a size that is not a quantity (400), one smaller than the workspace already is
    (400: workspaces grow, never shrink), and one the user's groups may not choose (403)."""
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise UnknownChoice(SIZE_OPTION, f"must be a size such as 10Gi, not {raw!r}")
    try:
        want = bytes_of(raw)
    except ValueError:
        raise UnknownChoice(SIZE_OPTION, f"{raw!r} is not a size (e.g. 10Gi)") from None
    if current and want < bytes_of(current):
        raise UnknownChoice(
            SIZE_OPTION, f"your workspace is {current}: a workspace can grow but not shrink (choose {current} or more)"
        )
    match = next((s for s in allowed if bytes_of(s) == want), None)
    if match is None:
        raise NotEntitled(SIZE_OPTION, f"your groups may choose workspaces of {', '.join(allowed)}, not {raw}")
    return match


def grow_patch(size: str) -> dict[str, Any]:
    return {"spec": {"resources": {"requests": {"storage": size}}}}


@dataclass(frozen=True)
class Usage:
    """One claim as admins see it."""

    claim: str
    user: str
    kind: str
    requested: str
    capacity: str
    used_bytes: int | None
    usage_at: str
    archived_at: str
    phase: str
    #: which account of the user name it was made for (:mod:`.identity`; "" before stamps)
    created: str = ""
    #: the uid its folder belongs to, as the claim says it (:mod:`.uids`; "" before uids)
    uid: str = ""

    @property
    def total_bytes(self) -> int:
        return bytes_of(self.capacity or self.requested)

    def as_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "user": self.user,
            "kind": self.kind,
            "requested": self.requested,
            "capacity": self.capacity,
            "total_bytes": self.total_bytes,
            "used_bytes": self.used_bytes,
            "used": human(self.used_bytes),
            "total": human(self.total_bytes),
            "usage_at": self.usage_at,
            "archived_at": self.archived_at,
            "phase": self.phase,
        }


def usage(pvc: Mapping[str, Any]) -> Usage:
    """The admins' view of one claim (a Kubernetes object as a dict)."""
    meta = pvc.get("metadata") or {}
    ann = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    used = ann.get(USED_BYTES)
    kind = labels.get(KIND) or (TEAM_FOLDER if GID in ann else WORKSPACE)
    return Usage(
        claim=meta.get("name", ""),
        user=ann.get(HUB_USER) or ann.get(f"{PREFIX}group") or labels.get(OWNER, ""),
        kind=kind,
        requested=((spec.get("resources") or {}).get("requests") or {}).get("storage", ""),
        capacity=(status.get("capacity") or {}).get("storage", ""),
        used_bytes=int(used) if used and used.isdigit() else None,
        usage_at=ann.get(USAGE_AT, ""),
        archived_at=ann.get(ARCHIVED_AT, ""),
        phase=status.get("phase", ""),
        created=ann.get(CREATED, ""),
        uid=str(ann.get(UID, "")),
    )


def summary(items: list[Usage]) -> dict[str, Any]:
    """Totals over ``items``: what is promised (capacity) and what is used."""
    known = [u.used_bytes for u in items if u.used_bytes is not None]
    total, used = sum(u.total_bytes for u in items), sum(known)
    return {
        "claims": len(items),
        "total_bytes": total,
        "used_bytes": used,
        "total": human(total),
        "used": human(used),
        "unknown_usage": len(items) - len(known),
        "archived": sum(1 for u in items if u.archived_at),
    }


def human(n: int | None) -> str:
    """``n`` bytes as people read them (binary units)."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def parse_time(value: str) -> datetime.datetime | None:
    try:
        at = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=datetime.UTC)
