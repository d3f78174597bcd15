"""Workspace and team-folder claims on the cluster: what the spawner and the jobs service
both do before a pod mounts them (builders in :mod:`.workspaces`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from kubernetes_asyncio import client

from . import identity, pods, uids, workspaces
from .catalog import Storage
from .errors import Conflict

log = logging.getLogger("moonhub.storage")


async def ensure_team_folders(
    core: client.CoreV1Api, namespace: str, storage: Storage, groups: Iterable[str], storage_class: str
) -> None:
    """Make the team folders of ``groups`` that do not exist yet, and grow those whose size
    the catalog raised (never shrunk)."""
    for tf in workspaces.team_folders(storage, groups):
        body = workspaces.team_folder_claim(storage, tf, storage_class, namespace)
        name = body["metadata"]["name"]
        try:
            await core.create_namespaced_persistent_volume_claim(namespace, body)  # type: ignore[arg-type]
            log.info("created team folder %s (group %s, gid %d, %s)", name, tf.group, tf.gid, tf.capacity)
        except client.ApiException as e:
            if e.status != 409:
                raise
            found = await core.read_namespaced_persistent_volume_claim(name, namespace)
            check_owner(found, group=tf.group)
            current = str((found.spec.resources.requests or {}).get("storage") or "") or None
            await grow(core, namespace, name, tf.capacity, current)


def stored_owner(pvc: Any) -> tuple[str, str]:
    """Whose a claim says it is: (user, team group); empty where it says nothing."""
    notes = (pvc.metadata.annotations if hasattr(pvc, "metadata") else pvc.get("metadata", {}).get("annotations")) or {}
    return str(notes.get(pods.HUB_USER, "")), str(notes.get(workspaces.GROUP, ""))


def check_owner(pvc: Any, user: str = "", group: str = "") -> None:
    """A claim's name is derived (a slug, a short hash): before a pod mounts it, the owner it
    was made for must be the one asking. 409 otherwise (issue 32, item 6). A claim that
    names no owner (made before MoonHub recorded one) passes."""
    have_user, have_group = stored_owner(pvc)
    name = pvc.metadata.name if hasattr(pvc, "metadata") else pvc["metadata"]["name"]
    if user and have_user and have_user != user:
        raise Conflict("workspace", f"volume {name} was made for user {have_user!r}, not {user!r}: not mounted")
    if group and have_group and have_group != group:
        raise Conflict("team_folders", f"volume {name} is team {have_group!r}'s folder, not {group!r}'s: not mounted")


async def read(core: client.CoreV1Api, namespace: str, name: str) -> Any | None:
    """The claim ``name``; None when there is none."""
    try:
        return await core.read_namespaced_persistent_volume_claim(name, namespace)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


async def check_workspace(
    core: client.CoreV1Api, namespace: str, name: str, user: str, created: str = ""
) -> Any | None:
    """:func:`check_owner` of the claim ``name`` (a missing one is made for ``user`` later),
    that it is this account's (``created``: the hub's stamp of the user, :mod:`.identity`;
    a claim without a stamp gets this account's), and that the uid it names is one MoonHub
    hands out (:mod:`.uids`). The claim, or None when there is none."""
    pvc = await read(core, namespace, name)
    if pvc is None:
        return None
    check_owner(pvc, user=user)
    uids.of_claim(pvc)
    if identity.check_claim(pvc, user, created):
        await core.patch_namespaced_persistent_volume_claim(name, namespace, identity.patch(created))
    return pvc


async def size_of(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    """The claim's requested size, or None when there is no such claim."""
    pvc = await read(core, namespace, name)
    if pvc is None:
        return None
    return str((pvc.spec.resources.requests or {}).get("storage") or "") or None


async def uid_of(core: client.CoreV1Api, namespace: str, name: str) -> int | None:
    """The uid of the workspace claim ``name`` (:mod:`.uids`); None when it has none or does
    not exist yet."""
    pvc = await read(core, namespace, name)
    return uids.of_claim(pvc) if pvc is not None else None


async def grow(core: client.CoreV1Api, namespace: str, name: str, size: str, current: str | None = None) -> bool:
    """Raise the claim's request to ``size`` when it asks for less (the storage agent then
    grows the folder's quota); True when it did. ``current``: its request, when the caller
    just read it. A missing claim is not an error."""
    if current is None:
        current = await size_of(core, namespace, name)
    if current is None or workspaces.bytes_of(current) >= workspaces.bytes_of(size):
        return False
    await core.patch_namespaced_persistent_volume_claim(name, namespace, workspaces.grow_patch(size))
    log.info("claim %s grows from %s to %s", name, current, size)
    return True
