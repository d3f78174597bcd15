"""Jobs a team owns (a hub group): whom they run as, and who may do what to them.

- **Runs as the team.** A team job runs as the team's principal, ``team/<group>`` (``/`` is
  never in a hub user's name, so no user's objects answer to it): the team's folder is its
  workspace (``storage.team_folders``; a team without one can not own jobs), the team's
  secrets are the only ones it may use, and its runs wait in the team's queue, counted
  against the team's quotas. No member's workspace, secrets or queue is ever part of it.
- **Roles.** Every member of the group may see the team's jobs, their runs, logs and outputs.
  Members are editors (run, pause, resume, cancel, edit, repair, delete, move back) unless
  the group's property ``moonhub.io/job-viewers`` (a list of names, set by a hub admin)
  names them: those only look. A non-member sees none of it (404, as for a job that does
  not exist). Roles are read from the hub at each change, not from a login that may be old.
- **Alerts** of a team job go to the addresses in the group's property
  ``moonhub.io/alert-emails`` as well as the job's own.
- The member who made the job, or moved it to the team, stays its ``owner`` on record; the
  audit trail names each member who acted. A team job does not leave with that member.
"""

from __future__ import annotations

from typing import Any

from hubclient.users import HubReadError
from moonhub_core.errors import FieldError, Forbidden, NotFound, Unavailable

from .context import Caller, Context
from .db import DefinitionRow
from .manifests import TEAM_PRINCIPAL

#: a team's principal is this followed by the group's name
PRINCIPAL = TEAM_PRINCIPAL
#: the group property naming members who may only look at the team's jobs
VIEWERS = "moonhub.io/job-viewers"
#: the group property naming where the team's jobs' alerts go
ALERTS = "moonhub.io/alert-emails"
EDITOR, VIEWER = "editor", "viewer"
#: what a viewer may do
LOOKS = ("view",)


def principal(team: str) -> str:
    return f"{PRINCIPAL}{team}"


def _names(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def role(group: dict[str, Any], user: str) -> str | None:
    """``user``'s role in the team ``group`` (the hub's group model), None for a non-member."""
    if user not in _names(group.get("users")):
        return None
    return VIEWER if user in _names((group.get("properties") or {}).get(VIEWERS)) else EDITOR


def alert_addresses(group: dict[str, Any]) -> list[str]:
    """The team's alert addresses (its group's property), those that look like addresses."""
    return [a for a in _names((group.get("properties") or {}).get(ALERTS)) if "@" in a and " " not in a]


async def group(ctx: Context, team: str, field: str = "team") -> dict[str, Any]:
    """The hub's model of ``team`` now: :class:`NotFound` when the hub has no such group,
    :class:`Unavailable` when it can not say. Without a hub, a group of nobody."""
    if ctx.hub is None:
        return {"name": team, "users": [], "properties": {}}
    try:
        model = await ctx.hub.group(team)
    except HubReadError as e:
        raise Unavailable(field, f"can not ask the hub about team {team} now ({e}); try again") from None
    if model is None:
        raise NotFound(field, f"there is no team {team!r} on the hub")
    return model


def as_team(team: str) -> Caller:
    """The principal a job of ``team`` runs as (pure: :func:`runner` checks the team first)."""
    return Caller(principal(team), (team,))


async def runner(ctx: Context, team: str) -> Caller:
    """The principal a job of ``team`` runs as (the team must still exist on the hub)."""
    try:
        await group(ctx, team)
    except NotFound:
        raise Forbidden("team", f"team {team} no longer exists on the hub") from None
    return as_team(team)


async def check(ctx: Context, caller: Caller, row: DefinitionRow, action: str) -> str | None:
    """That ``caller`` may do ``action`` to team job ``row``, by their role in the team now:
    their role (None for a job admin who is not a member). A former member gets 404, a
    viewer 403 for anything but a look."""
    assert row.team is not None
    model = await group(ctx, row.team, "id")
    mine = role(model, caller.name)
    if mine is None and not caller.admin:
        raise NotFound("id", f"no job {row.id}")
    if mine == VIEWER and action not in LOOKS:
        raise Forbidden("id", f"you may look at team {row.team}'s jobs, not {action} them (you are a viewer)")
    return mine


def checked_name(team: Any) -> str | None:
    """A request's ``team``: a group's name, or None (400 naming the field otherwise)."""
    if team is not None and (not isinstance(team, str) or not team):
        raise FieldError("team", "must be the name of a team (a hub group) of yours, or null")
    return team


async def may_join(ctx: Context, caller: Caller, team: str) -> None:
    """That ``caller`` may give a job to ``team``: an editor of it (job admins too)."""
    checked_name(team)
    model = await group(ctx, team)
    mine = role(model, caller.name)
    if mine is None and not caller.admin:
        raise Forbidden("team", f"you are not a member of team {team}")
    if mine == VIEWER:
        raise Forbidden("team", f"you are a viewer of team {team}: its editors may give it jobs")
