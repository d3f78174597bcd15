"""Reclaiming departed users' workspaces: archive, then delete after the catalog's grace.

Who departed is decided as for their jobs (:mod:`.departures`): absent from the hub's full
user list *and* answered 404 by name at every reconcile for ``departed_grace``. A failed or
partial read of the hub decides nothing. Then:

1. the workspace claim is *archived*: marked ``moonhub.io/archived-at`` (nothing is removed;
   the admin console lists it), with an audit line;
2. ``storage.reclaim_delete_after_days`` after that it is deleted (the provisioner removes
   the folder), with an audit line first;
3. a user the hub knows again gets their workspace back (the mark is removed, audited).

:func:`plan` is pure; the dry run (``GET /api/v1/workspace-reclaim``) shows the plan
without recording or changing anything.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client

from hubclient.users import HubReadError
from moonhub_core import identity, workspaces
from moonhub_core.pods import HUB_USER

from . import audit, departures
from .context import MOONHUB, Context, gone_ok
from .db import utcnow

log = logging.getLogger("moonhub.jobs")


@dataclass
class Plan:
    archive: list[workspaces.Usage] = field(default_factory=list)
    delete: list[workspaces.Usage] = field(default_factory=list)
    restore: list[workspaces.Usage] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: [u.as_dict() for u in getattr(self, k)] for k in ("archive", "delete", "restore")}


def user_workspaces(claims: list[dict[str, Any]]) -> list[workspaces.Usage]:
    """The users' workspace claims among ``claims`` (not team folders or datasets)."""
    out = []
    for c in claims:
        ann = (c.get("metadata") or {}).get("annotations") or {}
        u = workspaces.usage(c)
        if ann.get(HUB_USER) and u.kind == workspaces.WORKSPACE:
            out.append(u)
    return out


def plan(
    claims: list[workspaces.Usage],
    gone: set[str],
    known: set[str],
    now: datetime.datetime,
    delete_after_days: int,
    mounted: frozenset[str] | set[str] = frozenset(),
    present: Mapping[str, str] | None = None,
) -> Plan:
    """What reclaim does now. ``gone``: users departed for the grace period; ``known``: users
    the hub lists now (their archived workspaces come back); ``mounted``: claims a pod that
    has not ended mounts, never archived or deleted whoever their name says they belong to
    (a renamed user's running server, say); ``present``: the account stamp of every user
    the hub lists (:mod:`moonhub_core.identity`). A claim stamped for an earlier account of
    a name the hub has again is that earlier account's: it is archived (and deleted when
    its time comes), never restored. A claim of a departed name whose stamp is a present
    user's (renamed) is left alone. Everyone else: nothing."""
    present = present or {}
    p = Plan()
    for u in claims:
        earlier = bool(u.created and present.get(u.user) and present[u.user] != u.created)
        back = u.user in known and not earlier
        if u.claim in mounted and not (u.archived_at and back):
            continue
        departed = u.user in gone or earlier
        if departed and identity.renamed(u.created, present):
            continue  # the person is still here under another name
        if u.archived_at:
            if back:
                p.restore.append(u)
                continue
            at = workspaces.parse_time(u.archived_at)
            if departed and at and delete_after_days and now - at >= datetime.timedelta(days=delete_after_days):
                p.delete.append(u)
        elif departed:
            p.archive.append(u)
    return p


async def listed(ctx: Context) -> list[workspaces.Usage]:
    pvcs = await ctx.core.list_namespaced_persistent_volume_claim(ctx.settings.namespace)
    raw = [ctx.api.sanitize_for_serialization(p) for p in pvcs.items]
    return user_workspaces(raw)


async def mounted(ctx: Context) -> set[str]:
    """Claims that pods which have not ended mount (servers, runs)."""
    pods = await ctx.core.list_namespaced_pod(ctx.settings.namespace)
    return {
        v.persistent_volume_claim.claim_name
        for p in pods.items
        if (p.status.phase if p.status else "") not in ("Succeeded", "Failed")
        for v in (p.spec.volumes or [])
        if v.persistent_volume_claim is not None
    }


def accounts(models: list[dict[str, Any]]) -> dict[str, str]:
    """Each hub user's account stamp, by name (from the hub's user models)."""
    return {str(u["name"]): identity.stamp(u.get("created")) for u in models}


async def owners(ctx: Context) -> set[str]:
    return {u.user for u in await listed(ctx)}


async def dry_run(ctx: Context) -> dict[str, Any]:
    """What the next reconcile would archive, delete and restore now, found as it finds them
    but without recording or changing anything. Without a complete read of the hub: nothing
    (and why)."""
    claims = await listed(ctx)
    st = ctx.catalog.get().storage
    if ctx.hub is None:
        return {**Plan().as_dict(), "decided": False, "why": "no hub to ask: reclaim is off"}
    try:
        models = await ctx.hub.all_users()
        users = {u["name"] for u in models}
    except HubReadError as e:
        return {**Plan().as_dict(), "decided": False, "why": f"the hub's users could not be read in full: {e}"}
    gone = await departures.departed(
        ctx.hub, ctx.db, {c.user for c in claims}, users, ctx.settings.departed_grace, record=False
    )
    steps = plan(claims, gone, users, utcnow(), st.reclaim_delete_after_days, await mounted(ctx), accounts(models))
    return {
        **steps.as_dict(),
        "decided": True,
        "grace_seconds": int(ctx.settings.departed_grace.total_seconds()),
        "delete_after_days": st.reclaim_delete_after_days,
    }


async def apply(ctx: Context, p: Plan) -> None:
    """Carry out ``p``: each step audited before it is done."""
    now = utcnow().isoformat()
    for u, action in [(u, "archive") for u in p.archive] + [(u, "restore") for u in p.restore]:
        value = now if action == "archive" else None
        _audit(ctx, action, u, "workspace kept, marked archived" if value else "the user is back: mark removed")
        with gone_ok():
            await ctx.core.patch_namespaced_persistent_volume_claim(
                u.claim, ctx.settings.namespace, {"metadata": {"annotations": {workspaces.ARCHIVED_AT: value}}}
            )
        log.info("workspace %s of %s: %s", u.claim, u.user, action)
    for u in p.delete:
        _audit(ctx, "delete-workspace", u, f"archived {u.archived_at}; {workspaces.human(u.used_bytes)} used")
        try:
            await ctx.core.delete_namespaced_persistent_volume_claim(u.claim, ctx.settings.namespace)
        except client.ApiException as e:
            if e.status != 404:
                raise
        log.info("workspace %s of departed user %s deleted (archived %s)", u.claim, u.user, u.archived_at)


def _audit(ctx: Context, action: str, u: workspaces.Usage, detail: str) -> None:
    with ctx.db() as s:
        audit.note(s, MOONHUB.name, action, u.user, u.claim, detail)
        s.commit()
