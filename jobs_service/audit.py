"""The audit trail (who did what to whose job; kept after the job is deleted), telling an
owner what someone else did to their job, and holds: jobs MoonHub suspended because their
owner may no longer run them as defined."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moonhub_core.errors import FieldError

from . import notify, views
from .context import Caller, Context, gone_ok
from .db import AuditRow, DefinitionRow, HoldRow

log = logging.getLogger("moonhub.jobs")


def record(s: Session, actor: str, action: str, row: DefinitionRow, detail: str = "") -> AuditRow:
    entry = AuditRow(
        actor=actor, action=action, owner=row.owner, job_id=row.id, job_name=row.name, detail=detail[:1024]
    )
    s.add(entry)
    return entry


def note(s: Session, actor: str, action: str, owner: str, subject: str, detail: str = "") -> AuditRow:
    """An audit line about something of ``owner``'s that is not a job (e.g. their workspace
    ``subject``)."""
    entry = AuditRow(actor=actor, action=action, owner=owner, job_id=None, job_name=subject[:64], detail=detail[:1024])
    s.add(entry)
    return entry


def entries(ctx: Context, caller: Caller, owner: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Who did what to whose jobs, newest first: a job admin's view of everyone's (or
    ``owner``'s), a user's of their own and of their teams' jobs."""
    with ctx.db() as s:
        q = select(AuditRow).order_by(AuditRow.id.desc()).limit(max(1, min(limit, 1000)))
        if not caller.admin:
            # a team job's lines go with the team: to its members, not to who made it once
            others = select(DefinitionRow.id).where(DefinitionRow.team.is_not(None))
            ours = select(DefinitionRow.id).where(DefinitionRow.team.in_(caller.groups))
            mine = (AuditRow.owner == caller.name) & (AuditRow.job_id.is_(None) | AuditRow.job_id.not_in(others))
            q = q.where(mine | AuditRow.job_id.in_(ours))
        elif owner:
            q = q.where(AuditRow.owner == owner)
        return [views.audit(a) for a in s.scalars(q)]


async def tell_owner(ctx: Context, row: DefinitionRow, subject: str, text: str) -> None:
    """Tell a job's owner about something done to their job by someone else (an admin,
    or MoonHub itself) at the addresses the job notifies."""
    emails = (row.spec.get("notify") or {}).get("emails") or []
    if not emails or not ctx.settings.smtp.host:
        return
    try:
        ctx.settings.emails.check(row.owner, emails)
    except FieldError:
        return
    if not ctx.settings.emails.take(row.owner, 1, time.time()):
        return
    try:
        await notify.plain(ctx.settings.smtp, emails, f"[MoonHub] job {row.name}: {subject}", text)
    except Exception as e:
        log.warning("job %s of %s: could not tell the owner: %s", row.name, row.owner, type(e).__name__)


async def suspend(ctx: Context, cronjob: str) -> None:
    with gone_ok():
        await ctx.batch.patch_namespaced_cron_job(cronjob, ctx.settings.namespace, {"spec": {"suspend": True}})


async def hold(ctx: Context, s: Session, row: DefinitionRow, reason: str) -> None:
    """Suspend ``row`` because its owner may no longer run it as defined; tell them."""
    if row.hold is not None:
        return
    await suspend(ctx, row.cronjob)
    row.hold = HoldRow(reason=reason[:1024])
    record(s, "moonhub", "hold", row, reason)
    log.warning("job %s of %s suspended: %s", row.name, row.owner, reason)
    await tell_owner(
        ctx,
        row,
        "suspended",
        f"Your job {row.name} was suspended: {reason}.\nEdit it with choices you may use (or ask an admin) "
        "to resume it.\n",
    )
