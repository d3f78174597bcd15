"""What a schedule means, in words and in times: the "next runs" the dialog shows. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cron_descriptor import ExpressionDescriptor, Options
from croniter import croniter

from .validation import check_schedule

#: how many upcoming runs a preview lists
NEXT_RUNS = 3
#: the words for a job without a schedule
BY_HAND = "Only when run by hand"


def describe(schedule: str) -> str:
    """``0 6 * * 1-5`` -> ``At 06:00, Monday through Friday`` (24-hour clock)."""
    opts = Options()
    opts.use_24hour_time_format = True
    return str(ExpressionDescriptor(schedule, opts).get_description())


def next_runs(schedule: str, timezone: str, now: datetime, count: int = NEXT_RUNS) -> list[datetime]:
    """The next ``count`` times ``schedule`` fires after ``now``, in ``timezone``."""
    it = croniter(schedule, now.astimezone(ZoneInfo(timezone)))
    return [it.get_next(datetime) for _ in range(count)]


def preview(
    schedule: Any, timezone: Any, now: datetime | None = None, min_interval: timedelta = timedelta(minutes=1)
) -> dict[str, Any]:
    """The preview of a schedule as the dialog shows it; the same validation (and field
    errors) as creating a job. No schedule: the job runs only when asked."""
    sched, tz = check_schedule(schedule, timezone, min_interval)
    if sched is None:
        return {"schedule": None, "timezone": tz, "description": BY_HAND, "next": []}
    times = next_runs(sched, tz, now or datetime.now(UTC))
    return {
        "schedule": sched,
        "timezone": tz,
        "description": describe(sched),
        "next": [t.isoformat() for t in times],
    }
