"""Reconciliation: make Kubernetes match the database, and jobs match what their owners may
do now. Run at start and every ``reconcile_interval`` seconds."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hubclient.users import HubReadError
from moonhub_core import claims, metadata, pods, uids
from moonhub_core.errors import ChoiceError, Conflict, FieldError, Forbidden, Unavailable

from . import (
    accounts,
    audit,
    definitions,
    departures,
    entitlements,
    gpu_queues,
    jobspec,
    manifests,
    reclaim,
    secrets,
    snapshots,
    teams,
)
from .context import Caller, Context, gone_ok, names
from .db import AccountRow, DefinitionRow, utcnow

log = logging.getLogger("moonhub.jobs")

REPORT_KEYS = ("recreated", "orphans_removed", "owner_gone", "suspended", "resumed")
#: jobs reconciled in one transaction (the writer lock is let go between two)
CHUNK = 200


async def _team_folders(ctx: Context) -> None:
    """Every team folder of the catalog exists (a job run of a member mounts it)."""
    st = ctx.catalog.get().storage
    if st.team_folders:
        sc = ctx.settings.storage_class_override or st.storage_class
        await claims.ensure_team_folders(ctx.core, ctx.settings.namespace, st, [tf.group for tf in st.team_folders], sc)


async def reconcile(ctx: Context) -> dict[str, list[str]]:
    """Recreate missing (or outdated) CronJobs, remove orphaned CronJobs, suspend jobs their
    owners may no longer run as defined (and resume them when they may again), and hold the
    personal jobs of users gone from the hub for the grace period (never deleted: a job admin
    gives them to a team or removes them). Nothing is decided from a hub answer that could
    not be read in full."""
    report: dict[str, list[str]] = {k: [] for k in REPORT_KEYS}
    selector = f"{pods.COMPONENT}={pods.NOTEBOOK_JOB}"
    # the jobs first, their CronJobs after: a job made in between has its CronJob listed
    # (one made later waits for the next pass, and is never taken for an orphan below)
    with ctx.db() as s:
        ids = list(s.scalars(select(DefinitionRow.id).order_by(DefinitionRow.id)))
    # their metadata only: 10,000 whole CronJobs decoded into client models took hundreds of
    # MiB and seconds of the pass, and as plain JSON still most of it
    crons = await metadata.list_metadata(ctx.api, "batch", "v1", "cronjobs", ctx.settings.namespace, selector)
    existing = {c["name"] for c in crons}
    run_as = {c["name"]: (c.get("labels") or {}).get(manifests.RUN_AS_LABEL, "") for c in crons}
    # CronJobs an older MoonHub made (their runs mount a ConfigMap) are replaced
    outdated = {
        c["name"] for c in crons if (c.get("labels") or {}).get(manifests.RUNNER_API_LABEL) != manifests.RUNNER_API
    }
    users = await _hub_users(ctx)
    claims = await reclaim.listed(ctx)
    uid_of = {u.claim: u.uid for u in claims}  # whom each owner's runs run as
    with ctx.db() as s:
        owners = set(s.scalars(select(DefinitionRow.owner)))
    gone: set[str] = set()
    earlier: set[str] = set()
    recorded: dict[str, str] = {}
    if ctx.hub is not None and users is not None:
        kept_secrets = await secrets.by_owner(ctx)
        present = reclaim.accounts(list(users.values()))
        async with ctx.writes:
            earlier, removed = await accounts.settle(ctx, owners, kept_secrets, present)
        if removed:
            report.setdefault("secrets_removed", []).extend(removed)
            kept_secrets = await secrets.by_owner(ctx)
        async with ctx.writes:
            accounts.note_groups(ctx, owners, users)
        with ctx.db() as s:
            recorded = {r.owner: r.created for r in s.scalars(select(AccountRow))}
        everyone = owners | {c.user for c in claims} | set(kept_secrets)
        async with ctx.writes:
            gone = await departures.departed(ctx.hub, ctx.db, everyone, set(users), ctx.settings.departed_grace)
        for owner in sorted(gone & set(kept_secrets)):
            async with ctx.writes:
                await secrets.remove_departed(ctx, owner, kept_secrets[owner])
            report.setdefault("secrets_removed", []).extend(kept_secrets[owner])
        st = ctx.catalog.get().storage
        in_use = await reclaim.mounted(ctx)
        steps = reclaim.plan(claims, gone, set(users), utcnow(), st.reclaim_delete_after_days, in_use, present)
        async with ctx.writes:
            await reclaim.apply(ctx, steps)
        for key, done in (("workspaces_archived", steps.archive), ("workspaces_deleted", steps.delete)):
            report[key] = [u.claim for u in done]
    await _team_folders(ctx)
    known: set[str] = set()
    #: each team's principal, or why it has none (gone from the hub), asked once a pass
    team_runners: dict[str, Caller | FieldError] = {}
    # the jobs in chunks, each a transaction of its own under the writer lock: the API's
    # changes and the sync loop go on between two (a pass over 10,000 jobs takes a while)
    for k in range(0, len(ids), CHUNK):
        async with ctx.writes:
            with ctx.db() as s:
                chunk = select(DefinitionRow).where(DefinitionRow.id.in_(ids[k : k + CHUNK]))
                # what each job's check reads, in a few queries a chunk (not four a job)
                chunk = chunk.options(selectinload(DefinitionRow.versions), selectinload(DefinitionRow.hold))
                rows = list(s.scalars(chunk))
                for row in rows:
                    known.add(row.cronjob)
                    if row.team is None and row.owner in gone:  # a team's job stays the team's
                        if await accounts.hold_departed(ctx, s, row):
                            report["owner_gone"].append(row.cronjob)
                        continue
                    if row.team is None and row.owner in earlier:  # another account's name now: held
                        if await accounts.hold_job(ctx, s, row, recorded.get(row.owner, "")):
                            report.setdefault("earlier_account_held", []).append(row.cronjob)
                        continue
                    if await _reconcile_one(
                        ctx, s, row, users, existing, outdated, report, uid_of, run_as, team_runners
                    ):
                        snapshots.prune(ctx, s, row)
                s.commit()
        await asyncio.sleep(0)
    with ctx.db() as s:  # made while the pass went on: theirs are not orphans
        known |= set(s.scalars(select(DefinitionRow.cronjob)))
    for name in sorted(existing - known):
        with gone_ok():  # a job deleted meanwhile took its CronJob with it
            await ctx.batch.delete_namespaced_cron_job(name, ctx.settings.namespace, propagation_policy="Background")
        report["orphans_removed"].append(name)
    async with ctx.writes:
        report["old_snapshot_configmaps_removed"] = await snapshots.drop_old_configmaps(ctx)
    for what, objects in report.items():
        if objects:
            log.warning("reconcile: %s: %s", what.replace("_", " "), ", ".join(objects))
    return report


async def _hub_users(ctx: Context) -> dict[str, dict[str, Any]] | None:
    """Every hub user's model by name; None without a hub or when it could not be read in full."""
    if ctx.hub is None:
        return None
    try:
        return {u["name"]: u for u in await ctx.hub.all_users()}
    except HubReadError as e:
        log.warning("reconcile: %s; entitlements and departures wait for the next pass", e)
        return None


async def _reconcile_one(
    ctx: Context,
    s: Session,
    row: DefinitionRow,
    users: dict[str, dict[str, Any]] | None,
    existing: set[str],
    outdated: set[str],
    report: dict[str, list[str]],
    uid_of: Mapping[str, str],
    run_as: Mapping[str, str],
    team_runners: dict[str, Caller | FieldError],
) -> bool:
    """One job: its owner's entitlements, its CronJob. False when its owner is unknown now
    or it is held (nothing more is done to it in this pass). ``uid_of``: the uid each
    workspace claim names; ``run_as``: the uid each CronJob's runs run as."""
    n = names(row)
    owner: Caller | None
    if row.team is not None:  # runs as the team (``teams``), whoever made it
        if users is None:
            return False
        if row.team not in team_runners:
            try:
                team_runners[row.team] = await teams.runner(ctx, row.team)
            except (Unavailable, Forbidden) as e:
                team_runners[row.team] = e
        found = team_runners[row.team]
        if isinstance(found, Forbidden):  # the team is gone from the hub: held until an admin decides
            if row.hold is None:
                await audit.hold(ctx, s, row, found.message)
                report["suspended"].append(row.cronjob)
            return False
        owner = found if isinstance(found, Caller) else None
    elif ctx.hub is None:
        owner = Caller(row.owner)
    elif users is None or row.owner not in users:
        owner = None  # unknown now: leave the job as it is
    else:
        owner = Caller.from_model(users[row.owner], ctx.settings.admin_groups)
    if owner is None:
        return False
    if row.team is None:
        try:
            owner = dataclasses.replace(owner, uid=uids.parse(uid_of.get(n.workspace_claim), n.workspace_claim))
        except Conflict as e:
            log.warning("reconcile: job %s of %s left as it is: %s", row.name, row.owner, e)
            return False
    try:
        sha = snapshots.sha_of(row, row.version) or ""
        defn = jobspec.stored(row)
        cron = entitlements.cronjob(ctx, defn, owner, row.version, n, sha)
        await secrets.check(ctx, owner, defn.secret_uses())
    except ChoiceError as e:
        if row.hold is None:
            await audit.hold(ctx, s, row, str(e))
            report["suspended"].append(row.cronjob)
        return False
    if row.hold is not None:
        row.hold = None
        audit.record(s, "moonhub", "release", row, "the owner may run it again")
        await definitions.put_cronjob(ctx, row.cronjob, cron, row.cronjob in existing, owner)
        report["resumed"].append(row.cronjob)
    elif (
        row.cronjob not in existing
        or row.cronjob in outdated
        # its owner's workspace has another uid now (or the CronJob predates the label)
        or run_as.get(row.cronjob) != cron["metadata"]["labels"][manifests.RUN_AS_LABEL]
    ):
        await definitions.put_cronjob(ctx, row.cronjob, cron, row.cronjob in existing, owner)
        report["recreated"].append(row.cronjob)
    else:
        await gpu_queues.ensure_for(ctx, owner, cron)  # their groups now: the right team's budget
    return True
