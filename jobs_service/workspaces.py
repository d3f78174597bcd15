"""The owner's workspace volume: a job mounts it as their servers do, so a user who never
started a server gets it made here (it is kept, as the spawner keeps it)."""

from __future__ import annotations

import logging

from kubernetes_asyncio import client

from moonhub_core import claims, identity, uids

from . import manifests
from .context import Context

log = logging.getLogger("moonhub.jobs")


async def ensure(ctx: Context, owner: str, groups: tuple[str, ...] = (), created: str = "") -> int | None:
    """Create the owner's workspace PVC when it does not exist (stamped with the owner's
    account, ``created``, with a uid of its own: :mod:`moonhub_core.uids`), and their team
    folders. One made for another user, or for an earlier account of the name, is a 409
    (:mod:`moonhub_core.identity`). The uid the workspace belongs to (None: made before
    uids)."""
    n = manifests.Names(owner, "")
    st = ctx.catalog.get().storage
    sc = ctx.settings.storage_class_override or st.storage_class
    await claims.ensure_team_folders(ctx.core, ctx.settings.namespace, st, groups, sc)
    found = await claims.check_workspace(ctx.core, ctx.settings.namespace, n.workspace_claim, owner, created)
    if found is not None:
        return uids.of_claim(found)
    uid = await uids.allocate(ctx.core, ctx.settings.namespace)
    pvc = manifests.workspace_pvc(n, st, sc, ctx.settings.namespace)
    pvc.metadata.annotations = {
        **(pvc.metadata.annotations or {}),
        uids.UID: str(uid),
        **({identity.CREATED: created} if created else {}),
    }
    try:
        await ctx.core.create_namespaced_persistent_volume_claim(ctx.settings.namespace, pvc)
        log.info("created workspace volume %s for %s (uid %d)", n.workspace_claim, owner, uid)
    except client.ApiException as e:
        if e.status != 409:
            raise
        # made by the spawner meanwhile: its uid is the one
        found = await claims.check_workspace(ctx.core, ctx.settings.namespace, n.workspace_claim, owner, created)
        return uids.of_claim(found) if found is not None else None
    return uid
