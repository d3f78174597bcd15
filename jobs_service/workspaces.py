"""The owner's workspace volume: a job mounts it as their servers do, so a user who never
started a server gets it made here (it is kept, as the spawner keeps it)."""

from __future__ import annotations

import logging

from kubernetes_asyncio import client

from moonhub_core import claims

from . import manifests
from .context import Context

log = logging.getLogger("moonhub.jobs")


async def ensure(ctx: Context, owner: str, groups: tuple[str, ...] = ()) -> None:
    """Create the owner's workspace PVC when it does not exist, and their team folders."""
    n = manifests.Names(owner, "")
    st = ctx.catalog.get().storage
    sc = ctx.storage_class_override or st.storage_class
    await claims.ensure_team_folders(ctx.core, ctx.namespace, st, groups, sc)
    try:
        found = await ctx.core.read_namespaced_persistent_volume_claim(n.workspace_claim, ctx.namespace)
        claims.check_owner(found, user=owner)  # the name is derived: the owner it was made for must match
        return
    except client.ApiException as e:
        if e.status != 404:
            raise
    pvc = manifests.workspace_pvc(n, st, sc, ctx.namespace)
    try:
        await ctx.core.create_namespaced_persistent_volume_claim(ctx.namespace, pvc)
        log.info("created workspace volume %s for %s", n.workspace_claim, owner)
    except client.ApiException as e:
        if e.status != 409:  # made by the spawner meanwhile
            raise
