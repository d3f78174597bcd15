"""Which account of a user name the jobs and secrets under it belong to (issue 32, item 5).

Jobs and secrets are found by the hub user name. When an admin deletes a user and the
name logs in again, the hub makes a new user (a new ``created``) under the old name; the
login binding (``hub_config.subjects``) keeps a provider from handing a name to someone
else while the hub has the user, and this module keeps the new account from what the
earlier one left:

- the first time the service sees a name's account, it records its stamp
  (:class:`~jobs_service.db.AccountRow`);
- a caller whose account is not the recorded one gets a 409 on every route (their server
  starts without secrets) while jobs or secrets of the earlier account are kept;
- reconcile holds the earlier account's jobs (nothing is deleted: a job admin removes them),
  and once none is left removes its secrets (audited) and records the new account.

Without a hub (tests of the service alone) nothing is checked.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hubclient.users import HubReadError
from moonhub_core import identity
from moonhub_core.errors import Conflict

from . import audit, secrets
from .context import Context
from .db import AccountRow, DefinitionRow, HoldRow

log = logging.getLogger("moonhub.jobs")

#: how long a user's account stamp read from the hub is used for the same credential (a
#: request each would cost a hub call each); a new account comes with a new token or
#: cookie, so it is always asked about afresh
FRESH_FOR = 30.0
_seen: dict[tuple[str, str], tuple[str, float]] = {}


async def present(ctx: Context, name: str, credential: str = "") -> str:
    """The stamp of the hub's user ``name`` now ("" when there is no hub, no such user, or
    the hub can not say: nothing is decided then). ``credential``: a digest of what the
    caller authenticated with (the cache's key, with the name)."""
    if ctx.hub is None:
        return ""
    got = _seen.get((name, credential))
    if got and time.monotonic() - got[1] < FRESH_FOR:
        return got[0]
    try:
        model = await ctx.hub.user(name)
    except HubReadError as e:
        log.warning("account of %s not checked (%s)", name, e)
        return ""
    stamp = identity.stamp((model or {}).get("created"))
    if len(_seen) > 10_000:
        _seen.clear()
    _seen[(name, credential)] = (stamp, time.monotonic())
    return stamp


def earlier(s: Session, name: str, stamp: str) -> str | None:
    """The recorded account of ``name`` when it is not ``stamp`` (None: the same, or none
    recorded yet: ``stamp`` is recorded then, in ``s``: the caller commits)."""
    if not stamp:
        return None
    row = s.get(AccountRow, name)
    if row is None:
        s.add(AccountRow(owner=name, created=stamp))
        return None
    return row.created if row.created != stamp else None


def fingerprint(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()[:32] if credential else ""


async def check(ctx: Context, name: str, credential: str = "") -> None:
    """409 when ``name`` is a new account and the jobs service keeps an earlier one's jobs
    or secrets under the name (``credential``: :func:`fingerprint` of the caller's token or
    cookie)."""
    stamp = await present(ctx, name, credential)
    if not stamp:
        return
    with ctx.db() as s:
        row = s.get(AccountRow, name)
        was = row.created if row is not None and row.created != stamp else None
        personal = (DefinitionRow.owner == name) & DefinitionRow.team.is_(None)  # a team's stay the team's
        kept = bool(was) and s.scalar(select(DefinitionRow.id).where(personal).limit(1))
    if row is None:  # first sight of the name: recorded (a write: under the writers' lock)
        async with ctx.writes:
            with ctx.db() as s:
                earlier(s, name, stamp)
                s.commit()
        return
    if was and not kept and not await secrets.owned(ctx, name):
        # the earlier account left nothing here (its jobs and secrets went when it departed)
        async with ctx.writes:
            with ctx.db() as s:
                hand_over(s, name, stamp)
                s.commit()
        log.info("the name %s is another account now (created %s, was %s): nothing kept, handed over", name, stamp, was)
        return
    if was:
        raise Conflict(
            "user",
            f"the jobs and secrets kept under the name {name!r} belong to an earlier account of that name "
            f"(created {was}); a job admin must remove that account's jobs first",
        )


def hand_over(s: Session, name: str, stamp: str) -> None:
    """Record ``stamp`` as the account of ``name`` (the earlier account's state is gone)."""
    row = s.get(AccountRow, name)
    if row is None:
        s.add(AccountRow(owner=name, created=stamp))
    else:
        row.created = stamp
    for key in [k for k in _seen if k[0] == name]:
        _seen.pop(key, None)


async def settle(
    ctx: Context, owners: set[str], secrets_of: dict[str, list[str]], present: dict[str, str]
) -> tuple[set[str], list[str]]:
    """At reconcile: record the account of every name with jobs or secrets that has none
    recorded; for a name the hub has again as another account, return it among the names
    whose jobs are to be held, or, with none of its jobs left, remove its secrets (audited)
    and record the new account. Returns (names held, secrets removed)."""
    held: set[str] = set()
    removed: list[str] = []
    with ctx.db() as s:
        recorded = {r.owner: r.created for r in s.query(AccountRow)}
        for name in sorted(owners | set(secrets_of) | set(recorded)):
            now = present.get(name, "")
            if not now:
                continue  # not in the hub now: departures decide
            was = recorded.get(name)
            if was is None:
                hand_over(s, name, now)
            elif was != now:
                if name in owners:
                    held.add(name)
                    continue
                for secret in secrets_of.get(name, []):
                    audit.note(s, "moonhub", "secret-delete", name, secret, f"an earlier account's (created {was})")
                    removed.append(secret)
                hand_over(s, name, now)
                log.warning("the name %s is another account now (created %s, was %s): handed over", name, now, was)
        s.commit()
    for secret in removed:
        await secrets.remove(ctx, secret)
    return held, removed


async def hold_job(ctx: Context, s: Session, row: DefinitionRow, was: str) -> bool:
    """Suspend a job of an earlier account of its owner's name (its owner is not told: the
    name is someone else's now). True when it was held now."""
    if row.hold is not None:
        return False
    await audit.suspend(ctx, row.cronjob)
    reason = f"made by an earlier account named {row.owner} (created {was}); a job admin may remove it"
    row.hold = HoldRow(reason=reason)
    audit.record(s, "moonhub", "hold", row, reason)
    log.warning("job %s of an earlier account of %s held", row.name, row.owner)
    return True


def note_groups(ctx: Context, owners: set[str], users: dict[str, dict[str, Any]]) -> None:
    """Record the groups each job owner the hub lists is in now (only where they changed):
    the teams their jobs are offered to if they leave."""
    with ctx.db() as s:
        rows = {r.owner: r for r in s.scalars(select(AccountRow).where(AccountRow.owner.in_(owners & set(users))))}
        for name, row in rows.items():
            groups = sorted(str(g) for g in users[name].get("groups") or ())
            if row.groups != groups:
                row.groups = groups
        s.commit()


#: how a departed owner's hold reason begins (a hold for another reason is replaced by it)
DEPARTED = "its owner"


async def hold_departed(ctx: Context, s: Session, row: DefinitionRow) -> bool:
    """Hold the personal job of an owner gone from the hub for the grace period: suspended,
    kept with its history, offered to the teams they were last seen in, until a job admin
    gives it to one (``PATCH {"team": ...}``) or deletes it. Never deleted here. True when
    it was held now."""
    if row.hold is not None and row.hold.reason.startswith(DEPARTED):
        return False
    account = s.get(AccountRow, row.owner)
    folders = {tf.group for tf in ctx.catalog.get().storage.team_folders}
    offered = [g for g in (account.groups or []) if g in folders] if account else []
    theirs = f" of theirs ({', '.join(offered)})" if offered else ""
    to = f"give it to a team{theirs} or delete it"
    reason = f"{DEPARTED} {row.owner} left the hub; held, not deleted: a job admin may {to}"
    await audit.suspend(ctx, row.cronjob)
    if row.hold is None:
        row.hold = HoldRow(reason=reason)
    else:
        row.hold.reason = reason
    audit.record(s, "moonhub", "hold", row, reason)
    log.warning("job %s of %s, who left the hub, held: %s", row.name, row.owner, reason)
    return True
