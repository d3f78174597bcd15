"""The owner's workspace volume: a job mounts it as their servers do, so a user who never
started a server gets it made here (it is kept, as the spawner keeps it)."""

from __future__ import annotations

import logging

from kubernetes_asyncio import client

from moonhub_core import claims, identity

from . import manifests
from .context import Context

log = logging.getLogger("moonhub.jobs")


async def ensure(ctx: Context, owner: str, groups: tuple[str, ...] = (), created: str = "") -> None:
    """Create the owner's workspace PVC when it does not exist (stamped with the owner's
    account, ``created``), and their team folders. One made for another user, or for an
    earlier account of the name, is a 409 (:mod:`moonhub_core.identity`)."""
    n = manifests.Names(owner, "")
    st = ctx.catalog.get().storage
    sc = ctx.storage_class_override or st.storage_class
    await claims.ensure_team_folders(ctx.core, ctx.namespace, st, groups, sc)
    try:
        await ctx.core.read_namespaced_persistent_volume_claim(n.workspace_claim, ctx.namespace)
        await claims.check_workspace(ctx.core, ctx.namespace, n.workspace_claim, owner, created)
        return
    except client.ApiException as e:
        if e.status != 404:
            raise
    pvc = manifests.workspace_pvc(n, st, sc, ctx.namespace)
    if created:
        pvc.metadata.annotations = {**(pvc.metadata.annotations or {}), identity.CREATED: created}
    try:
        await ctx.core.create_namespaced_persistent_volume_claim(ctx.namespace, pvc)
        log.info("created workspace volume %s for %s", n.workspace_claim, owner)
    except client.ApiException as e:
        if e.status != 409:  # made by the spawner meanwhile
            raise
