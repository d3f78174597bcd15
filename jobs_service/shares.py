"""Sharing a user's server (issue 37, item 2): with named users or a team, to read or to work
in, until it expires. JupyterHub holds the grants (its sharing API; ``moonhub_core.sharing``
says what scopes); MoonHub adds what the hub's sharing lacks: the expiry (a share ends by
itself: :func:`expire`, every pass of the service's loop), access named in words, the check
that a team shared with is one of the owner's, teams that work, and the audit trail.

A team's share is granted to its members one by one, as user shares at the hub: JupyterHub
6.1 lets a team's member through its consent page but drops a team share's access from the
login it then issues (it adds only a user's own shares to a token's owner), so the member
would be refused by the server. The members are read again every pass: who joins the team
is granted, who leaves is revoked. What each user holds at the hub is what MoonHub's rows
want for them (the most of their own share and their teams'); :func:`_apply` makes it so.

Every grant, revocation and expiry is audited (``audit``, subject "server"). A share is
written here only after the hub granted it, and removed only after the hub revoked it: a
hub that does not answer leaves both as they were, and the next pass tries again."""

from __future__ import annotations

import datetime
import logging
import os
from typing import Any
from urllib.parse import quote

from sqlalchemy import or_, select

from hubclient.users import HubReadError, HubRefused, HubUsers
from moonhub_core import sharing
from moonhub_core.errors import Conflict, FieldError, Forbidden, NotFound, Unavailable

from . import audit
from .context import MOONHUB, Caller, Context
from .db import RunRow, RunShareRow, ShareRow, utcnow
from .settings import DEFAULT_PREFIX, PREFIX_ENV

log = logging.getLogger("moonhub.jobs")

#: seconds between expiry passes
EVERY = 15.0
DEFAULT_HOURS = 24
MAX_HOURS = 24 * 90
KINDS = ("user", "group")
FIELDS = {"user", "group", "access", "expires_in_hours"}
#: the subject of a share's audit lines
SUBJECT = "server"


def parse(body: Any) -> tuple[str, str, str, int]:
    """``(kind, name, access, hours)`` from a share request, or the field that is wrong."""
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object with user or group, access and expires_in_hours")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise FieldError(unknown[0], f"unknown field; a share has {', '.join(sorted(FIELDS))}")
    named = [k for k in KINDS if body.get(k) not in (None, "")]
    if len(named) != 1:
        raise FieldError("user", "name exactly one user or one group to share with")
    kind = named[0]
    name = body[kind]
    if not isinstance(name, str) or len(name) > 255 or not name.strip() or name != name.strip():
        raise FieldError(kind, "must be a user's or group's name")
    access = body.get("access", "read")
    if access not in sharing.ACCESS:
        raise FieldError("access", f"must be one of {', '.join(sharing.ACCESS)}")
    return kind, name, access, _hours(body)


def _hours(body: dict[str, Any]) -> int:
    """A share's ``expires_in_hours`` (a day when not given), or the field's error."""
    hours = body.get("expires_in_hours", DEFAULT_HOURS)
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_HOURS:
        raise FieldError("expires_in_hours", f"must be a whole number of hours from 1 to {MAX_HOURS}")
    return hours


def _hub(ctx: Context) -> HubUsers:
    if ctx.hub is None:
        raise Unavailable("server", "sharing needs the hub, and this service has none")
    return ctx.hub


def server_url(owner: str) -> str:
    """Where a grantee opens ``owner``'s server (under the hub's base URL)."""
    base = os.environ.get("JUPYTERHUB_BASE_URL", "/")
    return f"{base.rstrip('/')}/user/{quote(owner, safe='')}/lab"


def view(row: ShareRow) -> dict[str, Any]:
    expires = _aware(row.expires_at)
    created = _aware(row.created_at)
    return {
        "owner": row.owner,
        "kind": row.kind,
        "name": row.name,
        "access": row.access,
        "created_at": created.isoformat(),
        "created_by": row.created_by,
        "expires_at": expires.isoformat(),
        "url": server_url(row.owner),
    }


def _aware(t: datetime.datetime) -> datetime.datetime:
    return t if t.tzinfo else t.replace(tzinfo=datetime.UTC)


def _owner_for(caller: Caller, owner: str | None) -> str:
    if owner and owner != caller.name:
        if not caller.admin:
            raise NotFound("owner", f"no server of {owner!r} you may share")
        return owner
    return caller.name


async def _check_grantee(hub: HubUsers, caller: Caller, owner: str, kind: str, name: str) -> list[str]:
    """That ``name`` may be shared with; for a team, its members but the owner."""
    try:
        if kind == "user":
            if name == owner:
                raise FieldError("user", f"{name} owns the server already")
            if await hub.user(name) is None:
                raise FieldError("user", f"no user {name!r} on this hub")
            return []
        members = await _members(hub, name)
    except HubReadError as e:
        raise Unavailable(kind, f"can not check {name!r} with the hub now ({e}); try again") from None
    if members is None:
        raise FieldError("group", f"no team {name!r} on this hub")
    if owner not in members:
        raise Forbidden("group", f"you can share only with teams you are in, and you are not in {name!r}")
    return [m for m in members if m != owner]


def _want(rows: list[ShareRow], owner: str) -> dict[str, str]:
    """Who should hold what at the hub, from ``rows``: each user the most (full over read)
    of their own share and their teams' shares."""
    want: dict[str, str] = {}
    for r in rows:
        for user in [r.name] if r.kind == "user" else list(r.members or []):
            if user != owner and (want.get(user) != "full"):
                want[user] = r.access if want.get(user) is None else max(want[user], r.access, key=sharing.ACCESS.index)
    return want


async def _apply(
    hub: HubUsers, owner: str, rows: list[ShareRow], also: set[str], held: list[dict[str, Any]] | None = None
) -> None:
    """Make the hub's user shares of ``owner``'s server what ``rows`` want; a user of
    ``also`` (named by a row that is going, or a member who left) who is wanted no more is
    revoked. Shares of users MoonHub never named (an admin's, made with the hub's API) are
    left alone. ``held``: the hub's list of the server's shares, when the caller just read
    it. :class:`HubReadError` when the hub does not do it all."""
    want = _want(rows, owner)
    if held is None:
        held = await hub.shares(owner, "")
    have = {_grantee(h): sharing.access_of(list(h.get("scopes") or [])) for h in held if h.get("kind") == "user"}
    for user, access in want.items():
        if have.get(user) != access:
            await hub.share(owner, "", "user", user, sharing.scopes(owner, access))
    for user in sorted(also - set(want)):
        if user in have:
            await hub.unshare(owner, "", "user", user)


def _rows(s: Any, owner: str) -> list[ShareRow]:
    return list(s.scalars(select(ShareRow).where(ShareRow.owner == owner, ShareRow.server == "").order_by(ShareRow.id)))


async def _members(hub: HubUsers, name: str) -> list[str] | None:
    group = await hub.group(name)
    return None if group is None else sorted(str(u) for u in group.get("users") or [])


async def grant(ctx: Context, caller: Caller, body: Any, owner: str | None = None) -> dict[str, Any]:
    """Share ``owner``'s (the caller's) server; a share with the same user or team is
    replaced (its access and expiry)."""
    kind, name, access, hours = parse(body)
    if owner and owner != caller.name:
        # sharing in full is running code as the owner: an admin may list and revoke others'
        # shares, never grant them (as admins may not run others' jobs, docs/security.md)
        if caller.admin:
            raise Forbidden("owner", "only a server's owner may share it; admins may list and revoke its shares")
        raise NotFound("owner", f"no server of {owner!r} you may share")
    owner = caller.name
    hub = _hub(ctx)
    members = await _check_grantee(hub, caller, owner, kind, name)
    now = utcnow()
    expires = now + datetime.timedelta(hours=hours)
    with ctx.db() as s:
        rows = _rows(s, owner)
        row = next((r for r in rows if r.kind == kind and r.name == name), None)
        before = set(row.members or []) if row is not None and kind == "group" else set()
        if row is None:
            row = ShareRow(owner=owner, server="", kind=kind, name=name, members=[])
            s.add(row)
            rows.append(row)
        row.access, row.created_at, row.created_by, row.expires_at = access, now, caller.name, expires
        row.members = members
        try:
            await _apply(hub, owner, rows, before)
        except HubRefused as e:
            if e.code == 404:
                raise Conflict("server", "the hub has no server of yours yet: start it once, then share it") from None
            raise Unavailable("server", f"the hub did not grant the share ({e}); nothing more was shared") from None
        except HubReadError as e:
            raise Unavailable("server", f"the hub did not grant the share ({e}); nothing more was shared") from None
        detail = f"{access} access for {kind} {name} until {expires:%Y-%m-%d %H:%M} UTC"
        if kind == "group":
            detail += f" (members: {', '.join(row.members) or 'none yet'})"
        audit.note(s, caller.name, "share", owner, SUBJECT, detail)
        s.commit()
        return view(row)


async def revoke(ctx: Context, caller: Caller, kind: str, name: str, owner: str | None = None) -> None:
    """End a share of ``owner``'s (the caller's) server at once."""
    if kind not in KINDS:
        raise NotFound("kind", "a share is with a user or a group")
    owner = _owner_for(caller, owner)
    hub = _hub(ctx)
    with ctx.db() as s:
        rows = _rows(s, owner)
        row = next((r for r in rows if r.kind == kind and r.name == name), None)
        held = await _hub_shares(hub, owner)
        if row is None and not (kind == "user" and name in {_grantee(h) for h in held if h.get("kind") == "user"}):
            raise NotFound(kind, f"your server is not shared with {kind} {name!r}")
        going = {name} if kind == "user" else set(row.members or []) if row else set()
        rest = [r for r in rows if r is not row]
        try:
            await _apply(hub, owner, rest, going, held)
        except HubReadError as e:
            raise Unavailable("server", f"the hub did not revoke the share ({e}); it still stands") from None
        if row is not None:
            s.delete(row)
        audit.note(s, caller.name, "share-revoke", owner, SUBJECT, f"{kind} {name}")
        s.commit()


def _grantee(model: dict[str, Any]) -> str:
    who = model.get("user") or model.get("group") or {}
    return str(who.get("name", ""))


async def _hub_shares(hub: HubUsers, owner: str) -> list[dict[str, Any]]:
    try:
        return await hub.shares(owner, "")
    except HubReadError as e:
        raise Unavailable("server", f"can not read the server's shares from the hub now ({e}); try again") from None


async def listing(ctx: Context, caller: Caller, owner: str | None = None) -> dict[str, Any]:
    """What the caller's (or, for admins, ``owner``'s) server is shared with, and the servers
    shared with the caller (themselves or a team of theirs). A share the hub holds that MoonHub
    did not make (one an admin made with JupyterHub's API) is listed too, without expiry."""
    owner = _owner_for(caller, owner)
    hub = _hub(ctx)
    held = await _hub_shares(hub, owner)
    now = utcnow()
    with ctx.db() as s:
        rows = _rows(s, owner)
        mine = [view(r) for r in rows]
        explained = set(_want(rows, owner))
        for h in held:
            if h.get("kind") != "user" or _grantee(h) not in explained:
                mine.append(
                    {
                        "owner": owner,
                        "kind": h.get("kind"),
                        "name": _grantee(h),
                        "access": sharing.access_of(list(h.get("scopes") or [])),
                        "created_at": h.get("created_at"),
                        "created_by": None,
                        "expires_at": None,
                        "url": server_url(owner),
                    }
                )
        to_me = s.scalars(
            select(ShareRow)
            .where(
                ShareRow.expires_at > now,
                or_(
                    (ShareRow.kind == "user") & (ShareRow.name == caller.name),
                    (ShareRow.kind == "group") & ShareRow.name.in_(list(caller.groups) or [""]),
                ),
            )
            .order_by(ShareRow.owner)
        ).all()
        return {"shares": mine, "shared_with_me": [view(r) for r in to_me if r.owner != caller.name]}


async def expire(ctx: Context) -> int:
    """One pass: revoke every share whose time is up, and follow the teams shared with (who
    joined is granted, who left is revoked). The hub first; rows and audit lines after. How
    many shares ended. An owner whose changes the hub does not make now waits for the next
    pass, as it was."""
    expire_outputs(ctx)
    if ctx.hub is None:
        return 0
    hub = ctx.hub
    now = utcnow()
    with ctx.db() as s:
        owners = sorted(
            set(s.scalars(select(ShareRow.owner).where(or_(ShareRow.expires_at <= now, ShareRow.kind == "group"))))
        )
    ended = 0
    for owner in owners:
        with ctx.db() as s:
            rows = _rows(s, owner)
            due = [r for r in rows if _aware(r.expires_at) <= now]
            rest = [r for r in rows if r not in due]
            also = {u for r in due for u in ([r.name] if r.kind == "user" else r.members or [])}
            changed: list[tuple[ShareRow, list[str]]] = []
            try:
                for r in rest:
                    if r.kind != "group":
                        continue
                    members = await _members(hub, r.name)
                    now_members = [m for m in members or [] if m != owner]
                    if now_members != list(r.members or []):
                        also |= set(r.members or []) - set(now_members)
                        changed.append((r, now_members))
                        r.members = now_members
                if not due and not changed:
                    continue
                await _apply(hub, owner, rest, also)
            except HubReadError as e:
                log.warning("the shares of %s's server were not brought up to date: %s", owner, e)
                continue
            for r in due:
                s.delete(r)
                audit.note(s, MOONHUB.name, "share-expire", owner, SUBJECT, f"{r.kind} {r.name}")
                ended += 1
            for r, members in changed:
                audit.note(
                    s,
                    MOONHUB.name,
                    "share-members",
                    owner,
                    SUBJECT,
                    f"team {r.name}: {', '.join(members) or 'no members'}",
                )
            s.commit()
    return ended


# ---- a run's output page, shared with a team --------------------------------------------
RUN_FIELDS = {"group", "expires_in_hours"}


def _output_url(job_id: int, run_id: int) -> str:
    prefix = os.environ.get(PREFIX_ENV, DEFAULT_PREFIX)
    return f"{prefix.rstrip('/')}/api/v1/jobs/{job_id}/runs/{run_id}/output"


def _run_view(r: RunShareRow, job_id: int) -> dict[str, Any]:
    return {
        "team": r.team,
        "created_at": _aware(r.created_at).isoformat(),
        "created_by": r.created_by,
        "expires_at": _aware(r.expires_at).isoformat(),
        "url": _output_url(job_id, r.run_id),
    }


def _owned_run(s: Any, caller: Caller, job_id: int, run_id: int) -> RunRow:
    """The run, for its job's owner only: sharing a run's output is the owner's call."""
    run = s.get(RunRow, run_id)
    if run is None or run.definition_id != job_id or run.definition.owner != caller.name:
        if run is not None and run.definition_id == job_id and caller.admin:
            raise Forbidden("id", "only the job's owner may share its runs' output")
        raise NotFound("id", f"no run {run_id} of a job {job_id} of yours")
    return run


async def share_output(ctx: Context, caller: Caller, job_id: int, run_id: int, body: Any) -> dict[str, Any]:
    """Share a run's output page with a team of the owner's (a share with the same team is
    renewed); its members open the page at the answer's ``url``. Whose run it is is checked
    before the body: another user's run looks missing, whatever was sent."""
    with ctx.db() as s:
        _owned_run(s, caller, job_id, run_id)
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object with group and expires_in_hours")
    unknown = sorted(set(body) - RUN_FIELDS)
    if unknown:
        raise FieldError(unknown[0], f"unknown field; a run's share has {', '.join(sorted(RUN_FIELDS))}")
    team = body.get("group")
    if not isinstance(team, str) or not team.strip() or team != team.strip() or len(team) > 255:
        raise FieldError("group", "name a team (hub group) of yours")
    hours = _hours(body)
    await _check_grantee(_hub(ctx), caller, caller.name, "group", team)
    now = utcnow()
    with ctx.db() as s:
        run = _owned_run(s, caller, job_id, run_id)
        row = s.scalars(select(RunShareRow).where(RunShareRow.run_id == run_id, RunShareRow.team == team)).first()
        if row is None:
            row = RunShareRow(run_id=run_id, team=team)
            s.add(row)
        row.created_at, row.created_by = now, caller.name
        row.expires_at = now + datetime.timedelta(hours=hours)
        audit.record(
            s,
            caller.name,
            "run-share",
            run.definition,
            f"run {run_id}'s output with team {team} until {row.expires_at:%Y-%m-%d %H:%M} UTC",
        )
        s.commit()
        return _run_view(row, job_id)


def output_shares(ctx: Context, caller: Caller, job_id: int, run_id: int) -> list[dict[str, Any]]:
    with ctx.db() as s:
        _owned_run(s, caller, job_id, run_id)
        rows = s.scalars(
            select(RunShareRow)
            .where(RunShareRow.run_id == run_id, RunShareRow.expires_at > utcnow())
            .order_by(RunShareRow.team)
        ).all()
        return [_run_view(r, job_id) for r in rows]


def unshare_output(ctx: Context, caller: Caller, job_id: int, run_id: int, team: str) -> None:
    with ctx.db() as s:
        run = _owned_run(s, caller, job_id, run_id)
        gone = s.query(RunShareRow).filter(RunShareRow.run_id == run_id, RunShareRow.team == team).delete()
        if not gone:
            raise NotFound("group", f"run {run_id}'s output is not shared with team {team!r}")
        audit.record(s, caller.name, "run-unshare", run.definition, f"run {run_id}'s output, team {team}")
        s.commit()


def shared_output_run(s: Any, caller: Caller, job_id: int, run_id: int) -> RunRow | None:
    """The run when its output is shared, unexpired, with a team of ``caller``'s; else None."""
    if not caller.groups:
        return None
    row = s.scalars(
        select(RunShareRow).where(
            RunShareRow.run_id == run_id, RunShareRow.team.in_(list(caller.groups)), RunShareRow.expires_at > utcnow()
        )
    ).first()
    run = s.get(RunRow, run_id) if row is not None else None
    return run if run is not None and run.definition_id == job_id else None


def expire_outputs(ctx: Context) -> int:
    """Forget the run shares whose time is up (each audited); how many."""
    with ctx.db() as s:
        due = s.scalars(select(RunShareRow).where(RunShareRow.expires_at <= utcnow())).all()
        for r in due:
            run = s.get(RunRow, r.run_id)
            if run is not None:
                audit.record(
                    s, MOONHUB.name, "run-share-expire", run.definition, f"run {r.run_id}'s output, team {r.team}"
                )
            s.delete(r)
        s.commit()
        return len(due)
