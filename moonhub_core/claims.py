"""Workspace and team-folder claims on the cluster: what the spawner and the jobs service
both do before a pod mounts them (builders in :mod:`.workspaces`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kubernetes_asyncio import client

from . import workspaces
from .catalog import Storage

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
            await grow(core, namespace, name, tf.capacity)


async def size_of(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    """The claim's requested size, or None when there is no such claim."""
    try:
        pvc = await core.read_namespaced_persistent_volume_claim(name, namespace)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise
    return str((pvc.spec.resources.requests or {}).get("storage") or "") or None


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
