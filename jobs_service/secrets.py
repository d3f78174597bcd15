"""Secrets users keep for their jobs and servers, and team secrets admins grant to groups.

Values are write-only: they go into Kubernetes Secrets in the users' namespace (what the
service answers never holds one), pods receive them by reference (``moonhub_core.secrets``),
a notebook version that contains one is refused, and a run's log is shown with them masked.
Each change is in the audit trail, without the value.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from kubernetes_asyncio import client
from kubespawner.slugs import safe_slug

from moonhub_core import pods
from moonhub_core import secrets as sec
from moonhub_core.errors import FieldError, Forbidden, NotEntitled, NotFound, UnknownChoice

from . import audit
from .context import MOONHUB, Caller, Context, gone_ok
from .db import utcnow
from .limits import check_count
from .manifests import team_of

GROUP = "moonhub.io/group"
TO_SERVER = "moonhub.io/to-server"
UPDATED_AT = "moonhub.io/updated-at"
UPDATED_BY = "moonhub.io/updated-by"
FIELDS = {"value", "to_server"}


def _view(s: Any) -> dict[str, Any]:
    notes = s.metadata.annotations or {}
    team = notes.get(GROUP, "")
    to_server = json.loads(notes[TO_SERVER]) if notes.get(TO_SERVER) else None
    name = s.metadata.name.split("-", 3)[3]
    return {
        "name": name,
        "team": team or None,
        "updated": notes.get(UPDATED_AT),
        "updated_by": notes.get(UPDATED_BY),
        "to_server": to_server,
        "value": "••••••",
    }


async def _mine_and_teams(ctx: Context, owner: str, teams: bool = True) -> list[Any]:
    """``owner``'s own secrets and (``teams``) every team's, each read by its labels: the
    namespace holds every user's secrets, and a list of them all on each spawn (the hub reads
    a starting server's secrets) grew with the number of users, not with this user's secrets.
    A caller that can see no team's secrets does not ask for them (a starting server's list
    is its user's own: half the reads of a spawn)."""
    mine = f"{pods.COMPONENT}={sec.USER_COMPONENT},{pods.OWNER}={safe_slug(owner, max_length=16)}"
    reads = [ctx.core.list_namespaced_secret(ctx.settings.namespace, label_selector=mine)]
    if teams:
        team = f"{pods.COMPONENT}={sec.TEAM_COMPONENT}"
        reads.append(ctx.core.list_namespaced_secret(ctx.settings.namespace, label_selector=team))
    own, *of_teams = await asyncio.gather(*reads)
    return [s for s in own.items if _is_users(s, owner)] + [s for t in of_teams for s in t.items]


async def _owned(ctx: Context, owner: str) -> list[Any]:
    """``owner``'s own secrets, from the API server's watch cache: a list of every user's
    secrets (or a quorum read) on each notebook version saved cost 70 ms a create."""
    selector = f"{pods.COMPONENT}={sec.USER_COMPONENT},{pods.OWNER}={safe_slug(owner, max_length=16)}"
    found = await ctx.core.list_namespaced_secret(ctx.settings.namespace, label_selector=selector, resource_version="0")
    return [s for s in found.items if _is_users(s, owner)]


async def owned(ctx: Context, owner: str) -> list[str]:
    """The Kubernetes names of ``owner``'s own secrets."""
    return [s.metadata.name for s in await _owned(ctx, owner)]


def _owner(s: Any) -> str:
    return str((s.metadata.annotations or {}).get(pods.HUB_USER, ""))


def _is_users(s: Any, owner: str) -> bool:
    labels = s.metadata.labels or {}
    return labels.get(pods.COMPONENT) == sec.USER_COMPONENT and _owner(s) == owner


def _team(s: Any) -> str:
    labels = s.metadata.labels or {}
    return (
        str((s.metadata.annotations or {}).get(GROUP, "")) if labels.get(pods.COMPONENT) == sec.TEAM_COMPONENT else ""
    )


async def listed(ctx: Context, caller: Caller) -> list[dict[str, Any]]:
    """The caller's secrets and their groups' team secrets (job admins: every team's)."""
    mine = []
    for s in await _mine_and_teams(ctx, caller.name, teams=bool(caller.groups) or caller.admin):
        team = _team(s)
        if _is_users(s, caller.name) or (team and (team in caller.groups or caller.admin)):
            mine.append(_view(s))
    return sorted(mine, key=lambda v: (v["team"] or "", v["name"]))


def _value(body: dict[str, Any], required: bool) -> str | None:
    value = body.get("value")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise FieldError("value", "must be the secret's value (a non-empty string)")
    if len(value.encode()) > sec.MAX_VALUE:
        raise FieldError("value", f"is larger than {sec.MAX_VALUE // 1024} KiB")
    return value


def _body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object with value (and to_server)")
    for key in body:
        if key not in FIELDS:
            raise FieldError(key, f"unknown field (accepted: {', '.join(sorted(FIELDS))})")
    return body


async def put(ctx: Context, caller: Caller, name: str, body: Any, team: str = "") -> tuple[dict[str, Any], bool]:
    """Create or change a secret (a team's: job admins only); the value may be left out of a
    change. Returns the secret as shown, and whether it was made."""
    sec.check_name("name", name)
    body = _body(body)
    if team and not caller.admin:
        raise Forbidden("team", "team secrets are managed by job admins")
    to_server = body.get("to_server")
    if to_server is not None:
        if team:
            raise FieldError("to_server", "a team secret is given to jobs that ask for it, not to servers")
        to_server = sec.check_delivery("to_server", to_server).as_json()
    k8s = sec.team_secret(team, name) if team else sec.user_secret(caller.name, name)
    try:
        current = await ctx.core.read_namespaced_secret(k8s, ctx.settings.namespace)
    except client.ApiException as e:
        if e.status != 404:
            raise
        current = None
    value = _value(body, required=current is None)
    if current is None and not team:
        have = sum(1 for s in await _mine_and_teams(ctx, caller.name, teams=False) if _is_users(s, caller.name))
        check_count("name", "secrets", have, ctx.settings.limits.secrets_per_user)
    notes = {
        UPDATED_AT: utcnow().isoformat(timespec="seconds"),
        UPDATED_BY: caller.name,
        TO_SERVER: json.dumps(to_server) if to_server else "",
    }
    if team:
        labels = {pods.COMPONENT: sec.TEAM_COMPONENT}
        notes[GROUP] = team
    else:
        labels = {pods.COMPONENT: sec.USER_COMPONENT, pods.OWNER: safe_slug(caller.name, max_length=16)}
        notes[pods.HUB_USER] = caller.name
    data = {sec.KEY: base64.b64encode(value.encode()).decode()} if value is not None else None
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": k8s, "namespace": ctx.settings.namespace, "labels": labels, "annotations": notes},
    }
    if current is None:
        obj["data"] = data
        made = await ctx.core.create_namespaced_secret(ctx.settings.namespace, obj)  # type: ignore[arg-type]
    else:
        if data is not None:
            obj["data"] = data
        if "to_server" not in body:  # unchanged
            notes[TO_SERVER] = (current.metadata.annotations or {}).get(TO_SERVER, "")
        made = await ctx.core.patch_namespaced_secret(k8s, ctx.settings.namespace, obj)
    what = "set" if value is not None else "change"
    with ctx.db() as s:
        owner = f"team {team}" if team else caller.name
        audit.note(s, caller.name, f"secret-{what}", owner, name, "value changed" if value else "delivery changed")
        s.commit()
    return _view(made), current is None


async def delete(ctx: Context, caller: Caller, name: str, team: str = "") -> None:
    sec.check_name("name", name)
    if team and not caller.admin:
        raise Forbidden("team", "team secrets are managed by job admins")
    k8s = sec.team_secret(team, name) if team else sec.user_secret(caller.name, name)
    try:
        await ctx.core.delete_namespaced_secret(k8s, ctx.settings.namespace)
    except client.ApiException as e:
        if e.status == 404:
            raise NotFound("name", f"no secret {name}" + (f" of team {team}" if team else "")) from None
        raise
    with ctx.db() as s:
        audit.note(s, caller.name, "secret-delete", f"team {team}" if team else caller.name, name)
        s.commit()


async def by_owner(ctx: Context) -> dict[str, list[str]]:
    """Every user's own secrets (their Kubernetes names), by the hub user they belong to."""
    found = await ctx.core.list_namespaced_secret(
        ctx.settings.namespace, label_selector=f"{pods.COMPONENT}={sec.USER_COMPONENT}", resource_version="0"
    )
    out: dict[str, list[str]] = {}
    for s in found.items:
        if _owner(s):
            out.setdefault(_owner(s), []).append(s.metadata.name)
    return out


async def remove_departed(ctx: Context, owner: str, names: list[str]) -> None:
    """A departed user's secrets go with them (a login given to someone new later must not
    find them), each audited first."""
    for name in names:
        with ctx.db() as s:
            audit.note(s, MOONHUB.name, "secret-delete", owner, name, "the owner left the hub")
            s.commit()
        with gone_ok():
            await ctx.core.delete_namespaced_secret(name, ctx.settings.namespace)


async def remove(ctx: Context, name: str) -> None:
    """Delete one user secret (its Kubernetes name); gone already is fine."""
    with gone_ok():
        await ctx.core.delete_namespaced_secret(name, ctx.settings.namespace)


async def check(ctx: Context, owner: Caller, uses: list[sec.Use]) -> None:
    """``owner`` may use every secret in ``uses``: their own that exist, and those of teams
    they are in. A refusal is a choice error (a scheduled run is held on it)."""
    if not uses:
        return
    team = team_of(owner.name)
    existing = {s.metadata.name for s in await _mine_and_teams(ctx, owner.name, teams=any(u.team for u in uses))}
    for u in uses:
        if team is not None and not u.team:  # a team's job runs as the team: no member's own
            raise NotEntitled(
                "secrets", f"a job of team {team} may use the team's secrets only, not {u.name} (a person's own)"
            )
        if u.team and u.team not in owner.groups:
            raise NotEntitled("secrets", f"{owner.name} is not in group {u.team}, whose secret {u.name} this is")
        if u.secret(owner.name) not in existing:
            where = f"team {u.team} has" if u.team else f"{owner.name} has"
            raise UnknownChoice("secrets", f"no secret {u.label()} ({where} none by that name)")


async def values(ctx: Context, owner: str, uses: list[sec.Use]) -> list[str]:
    """The values of ``uses`` (for masking); those that can not be read are left out."""
    found = []
    for u in uses:
        with gone_ok():
            s = await ctx.core.read_namespaced_secret(u.secret(owner), ctx.settings.namespace)
            raw = (s.data or {}).get(sec.KEY)
            if raw:
                found.append(base64.b64decode(raw).decode("utf-8", "replace"))
    return found


async def refuse_in_notebook(ctx: Context, owner: Caller, uses: list[sec.Use], data: bytes) -> None:
    """A notebook version may not hold the value of one of ``owner``'s secrets (or of a
    team secret the job uses): 400 naming it."""
    named = {s.metadata.name.split("-", 3)[3]: s for s in await _owned(ctx, owner.name)}
    for u in uses:
        if u.team:
            with gone_ok():
                named[u.label()] = await ctx.core.read_namespaced_secret(u.secret(owner.name), ctx.settings.namespace)
    for label, s in named.items():
        raw = (s.data or {}).get(sec.KEY)
        value = base64.b64decode(raw).decode("utf-8", "replace") if raw else ""
        if len(value) >= 8 and json.dumps(value, ensure_ascii=False)[1:-1].encode() in data:
            raise FieldError(
                "notebook_content",
                f"contains the value of your secret {label}; read it from the environment or its file instead",
            )
