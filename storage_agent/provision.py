"""Volumes for claims of the Gluster class, and what to remove when a claim is gone. Pure.

The agent is the class's provisioner (``moonhub.io/gluster``): for each pending claim it
makes the claim's folder on the Gluster mount (owner, mode, directory quota of the claim's
size) and a ``hostPath`` volume bound to that claim; a released volume's folder and quota
go with the volume. Why not local-path-provisioner's shared-filesystem mode, which made
these folders before: each volume cost a helper pod, and its helper pod's life (start, the
kubelet's status, the provisioner's one-second polls, the pod's deletion) took 2-3 s of a
new user's first spawn where the work itself takes a tenth of that (docs/storage.md).

A folder is ``<namespace>/<claim>/<volume>``: names the API server checked (DNS labels and
subdomains) and the volume's name from the claim's uid, so a claim made again under a name
used before never finds the old folder's files. Nothing a user writes picks a path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moonhub_core import uids, workspaces

#: the StorageClass's ``provisioner``
PROVISIONER = "moonhub.io/gluster"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
#: earlier volumes of the class, made by local-path-provisioner: grown and reported, but
#: removed by that provisioner (its teardown), not here
EARLIER = "rancher.io/local-path"
#: a folder owned by neither a user nor a team (claims made before uids): the images' user
LEGACY_OWNER = (1000, 100)

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class Refused(ValueError):
    """A claim this provisioner will not make a volume for (said on the claim as an event)."""


@dataclass(frozen=True)
class Make:
    """A claim's folder and volume."""

    namespace: str
    claim: str
    claim_uid: str
    volume: str
    #: inside the Gluster volume: ``/<namespace>/<claim>/<volume>``
    folder: str
    size: int
    quantity: str
    access_modes: tuple[str, ...]
    #: the folder's owner and group, and its mode
    owner: int
    group: int
    mode: int
    reclaim_policy: str
    storage_class: str


@dataclass(frozen=True)
class Remove:
    volume: str
    folder: str


def volume_name(claim_uid: str) -> str:
    """As Kubernetes' own provisioners name them: ``pvc-<claim uid>``."""
    return f"pvc-{claim_uid}"


def pending(claim: Mapping[str, Any], storage_class: str) -> bool:
    """A claim of ``storage_class`` waiting for a volume (not being deleted)."""
    meta, spec = claim.get("metadata") or {}, claim.get("spec") or {}
    return (
        spec.get("storageClassName") == storage_class
        and not spec.get("volumeName")
        and (claim.get("status") or {}).get("phase", "Pending") == "Pending"
        and not meta.get("deletionTimestamp")
    )


def plan_make(claim: Mapping[str, Any], storage_class: Mapping[str, Any]) -> Make:
    """What to make for a pending ``claim``; :class:`Refused` names what is wrong with it."""
    meta, spec = claim.get("metadata") or {}, claim.get("spec") or {}
    ns, name, uid = meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or ""
    for what, value in (("namespace", ns), ("name", name)):
        if not _NAME.match(value) or ".." in value:
            raise Refused(f"claim {what} {value!r} is not a plain name")
    if not re.fullmatch(r"[0-9a-f-]{36}", uid):
        raise Refused(f"claim uid {uid!r} is not a Kubernetes uid")
    if spec.get("selector"):
        raise Refused("claims with a selector are not provisioned: a new folder matches no labels")
    if spec.get("dataSource") or spec.get("dataSourceRef"):
        raise Refused("claims from a data source (snapshot, clone) are not supported by this class")
    quantity = ((spec.get("resources") or {}).get("requests") or {}).get("storage") or ""
    try:
        size = workspaces.bytes_of(quantity)
    except ValueError:
        raise Refused(f"requested size {quantity!r} is not a quantity") from None
    if size <= 0:
        raise Refused("a claim of this class must request a size (resources.requests.storage)")
    owner, group, mode = _ownership(meta.get("annotations") or {})
    volume = volume_name(uid)
    return Make(
        namespace=ns,
        claim=name,
        claim_uid=uid,
        volume=volume,
        folder=f"/{ns}/{name}/{volume}",
        size=size,
        quantity=quantity,
        access_modes=tuple(spec.get("accessModes") or ["ReadWriteOnce"]),
        owner=owner,
        group=group,
        mode=mode,
        reclaim_policy=storage_class.get("reclaimPolicy") or "Delete",
        storage_class=(storage_class.get("metadata") or {}).get("name") or "",
    )


def _ownership(ann: Mapping[str, str]) -> tuple[int, int, int]:
    """A team folder belongs to root and the team's group, set-group-id so that new files
    stay the team's (2770); a workspace to its uid alone (0700: hostPath volumes get no
    fsGroup); a claim with neither (made before uids) to the images' user (0770)."""
    gid, uid = ann.get(workspaces.GID), ann.get(uids.UID)
    if gid is not None:
        if not gid.isdigit() or len(gid) > 10 or int(gid) == 0:
            raise Refused(f"{workspaces.GID} {gid!r} is not a group id")
        return 0, int(gid), 0o2770
    if uid is not None:
        if not uid.isdigit() or len(uid) > 10 or not uids.FIRST <= int(uid) <= uids.LAST:
            raise Refused(f"{uids.UID} {uid!r} is not a user id MoonHub hands out")
        return int(uid), int(uid), 0o700
    return (*LEGACY_OWNER, 0o770)


def volume(make: Make, mount: str) -> dict[str, Any]:
    """The volume bound to the claim: the folder as a ``hostPath`` that must exist, so a node
    without the Gluster mount fails the pod ("is not a directory") instead of writing to its
    own disk."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": make.volume,
            "annotations": {PROVISIONED_BY: PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": make.quantity},
            "accessModes": list(make.access_modes),
            "persistentVolumeReclaimPolicy": make.reclaim_policy,
            "storageClassName": make.storage_class,
            "volumeMode": "Filesystem",
            "hostPath": {"path": mount.rstrip("/") + make.folder, "type": "Directory"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": make.namespace,
                "name": make.claim,
                "uid": make.claim_uid,
            },
        },
    }


def released(pvs: list[Mapping[str, Any]], mount: str, storage_class: str) -> list[Remove]:
    """This provisioner's volumes of ``storage_class`` whose claim is gone and whose policy is
    Delete: their folders and quotas go, then the volumes (another class's agent, on another
    volume or the same one, removes its own). A volume whose path is not a folder of the
    mount in the form this provisioner makes is left alone."""
    out = []
    root = mount.rstrip("/")
    for pv in pvs:
        meta, spec = pv.get("metadata") or {}, pv.get("spec") or {}
        if (meta.get("annotations") or {}).get(PROVISIONED_BY) != PROVISIONER:
            continue
        if spec.get("storageClassName") != storage_class:
            continue
        if (pv.get("status") or {}).get("phase") not in ("Released", "Failed"):
            continue
        if spec.get("persistentVolumeReclaimPolicy") != "Delete" or meta.get("deletionTimestamp"):
            continue
        path = (spec.get("hostPath") or {}).get("path") or ""
        folder = path[len(root) :] if path.startswith(root + "/") else ""
        if safe_folder(folder, meta.get("name") or ""):
            out.append(Remove(meta["name"], folder))
    return out


def safe_folder(folder: str, volume: str) -> bool:
    """``/<namespace>/<claim>/<volume>`` of plain names, ending in the volume's own name."""
    parts = folder.split("/")
    return (
        len(parts) == 4
        and parts[0] == ""
        and parts[3] == volume
        and all(_NAME.match(p) and ".." not in p for p in parts[1:])
    )
