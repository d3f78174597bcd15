"""The schedule preview the "Schedule" dialog shows: words and the next runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs_service.preview import describe, preview
from moonhub_core.errors import FieldError

NOW = datetime(2026, 3, 27, 22, 30, tzinfo=UTC)  # a Friday; Europe changes clocks on Sunday


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 6 * * 1-5", "At 06:00, Monday through Friday"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("0 * * * *", "Every hour"),
        ("30 8 * * 1,3", "At 08:30, only on Monday and Wednesday"),
    ],
)
def test_describe(cron: str, words: str) -> None:
    assert describe(cron) == words


def test_next_three_runs_in_the_zone_across_a_clock_change() -> None:
    got = preview("0 6 * * *", "Europe/Berlin", NOW)
    assert got["description"] == "At 06:00"
    assert got["next"] == [
        "2026-03-28T06:00:00+01:00",
        "2026-03-29T06:00:00+02:00",  # summer time from 29 March
        "2026-03-30T06:00:00+02:00",
    ]


def test_no_schedule_means_by_hand() -> None:
    assert preview(None, "UTC", NOW) == {
        "schedule": None,
        "timezone": "UTC",
        "description": "Only when run by hand",
        "next": [],
    }


@pytest.mark.parametrize(
    ("cron", "tz", "field"),
    [
        ("0 6 * *", "UTC", "schedule"),
        ("61 * * * *", "UTC", "schedule"),
        ("0 6 * * *", "Mars/Olympus", "timezone"),
    ],
)
def test_bad_input_names_the_field(cron: str, tz: str, field: str) -> None:
    with pytest.raises(FieldError) as e:
        preview(cron, tz, NOW)
    assert e.value.field == field
