"""Run-context parameters: ``{{run.date}}`` and the like in a job's parameter values, resolved
for each run from the time the run stands for (pure).

A scheduled run stands for its tick (Kubernetes records it on the Job), not for when it
started: a run that waited in a GPU queue, or started late, still stands for its day. A
back-filled run stands for the date it fills; a re-run for the time of the run it repeats;
a run started by hand for the moment it was asked for.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from moonhub_core.errors import FieldError

TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_.]+)\s*\}\}")

#: what a template may name, with what it becomes (shown in errors and the docs)
NAMES = {
    "run.date": "the date the run stands for, in the job's time zone (2026-12-03)",
    "run.scheduled_time": "the time the run stands for, ISO 8601 in the job's time zone",
    "run.name": "the run's name (its Kubernetes Job)",
    "run.trigger": "schedule, manual, rerun or backfill",
    "job.name": "the job's name",
    "job.owner": "the job's owner",
    "job.last_success_time": "the time the newest succeeded run stood for (empty before one succeeded)",
    "job.last_success_date": "the date of that time (empty before one succeeded)",
}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def check(parameters: dict[str, Any]) -> None:
    """Every template in the values names something known (400 naming the parameter)."""
    for key, value in parameters.items():
        for text in _strings(value):
            for name in TEMPLATE.findall(text):
                if name not in NAMES:
                    raise FieldError(
                        "parameters", f"{key}: unknown template {{{{{name}}}}} (known: {', '.join(sorted(NAMES))})"
                    )


@dataclass(frozen=True)
class RunFacts:
    """What a run's templates are resolved from."""

    job: str
    owner: str
    run: str
    trigger: str
    #: the time the run stands for (aware)
    scheduled: datetime.datetime
    timezone: str = "UTC"
    last_success: datetime.datetime | None = None

    def values(self) -> dict[str, str]:
        tz = ZoneInfo(self.timezone)
        at = self.scheduled.astimezone(tz)
        last = self.last_success.astimezone(tz) if self.last_success else None
        return {
            "run.date": at.date().isoformat(),
            "run.scheduled_time": at.isoformat(),
            "run.name": self.run,
            "run.trigger": self.trigger,
            "job.name": self.job,
            "job.owner": self.owner,
            "job.last_success_time": last.isoformat() if last else "",
            "job.last_success_date": last.date().isoformat() if last else "",
        }


def resolve(parameters: dict[str, Any], facts: RunFacts) -> dict[str, Any]:
    """The parameters with every template replaced (values that hold none stay as they are,
    with their types)."""
    values = facts.values()

    def one(value: Any) -> Any:
        if isinstance(value, str):
            return TEMPLATE.sub(lambda m: values.get(m.group(1), m.group(0)), value)
        if isinstance(value, list):
            return [one(v) for v in value]
        if isinstance(value, dict):
            return {k: one(v) for k, v in value.items()}
        return value

    return {k: one(v) for k, v in parameters.items()}


def scheduled_ticks(
    schedule: str, timezone: str, start: datetime.date, end: datetime.date, cap: int
) -> list[datetime.datetime]:
    """The schedule's ticks from ``start`` to ``end`` (both days included, in the job's time
    zone), for a back-fill; more than ``cap`` is refused, naming the count."""
    from croniter import croniter

    tz = ZoneInfo(timezone)
    first = datetime.datetime.combine(start, datetime.time(), tz)
    stop = datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time(), tz)
    it = croniter(schedule, first - datetime.timedelta(seconds=1))
    ticks: list[datetime.datetime] = []
    while True:
        t = it.get_next(datetime.datetime)
        if t >= stop:
            return ticks
        ticks.append(t)
        if len(ticks) > cap:
            raise FieldError("to", f"the schedule fires more than {cap} times in this range; back-fill fewer days")


def parse_day(field: str, value: Any) -> datetime.date:
    if not isinstance(value, str):
        raise FieldError(field, "must be a date such as 2026-11-30")
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise FieldError(field, f"{value!r} is not a date such as 2026-11-30") from None
