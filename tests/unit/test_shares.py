"""Sharing a server, the jobs service's pure parts (jobs_service/shares.py): a request's
fields, and who should hold what at the hub from MoonHub's rows."""

from __future__ import annotations

from typing import Any

import pytest

from jobs_service import shares
from jobs_service.db import ShareRow
from moonhub_core.errors import FieldError


def row(kind: str, name: str, access: str, members: list[str] | None = None) -> ShareRow:
    return ShareRow(owner="ola", server="", kind=kind, name=name, access=access, members=members or [])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({}, "user"),
        ({"user": "a", "group": "b"}, "user"),
        ({"user": " a"}, "user"),
        ({"user": 3}, "user"),
        ({"group": "x" * 256}, "group"),
        ({"user": "a", "access": "write"}, "access"),
        ({"user": "a", "expires_in_hours": 0}, "expires_in_hours"),
        ({"user": "a", "expires_in_hours": 2161}, "expires_in_hours"),
        ({"user": "a", "expires_in_hours": True}, "expires_in_hours"),
        ({"user": "a", "expires_in_hours": 1.5}, "expires_in_hours"),
        ({"user": "a", "until": "never"}, "until"),
    ],
)
def test_a_bad_request_names_its_field(body: Any, field: str) -> None:
    with pytest.raises(FieldError) as e:
        shares.parse(body)
    assert e.value.field == field


def test_a_request_defaults_to_read_only_for_a_day() -> None:
    assert shares.parse({"user": "rudi"}) == ("user", "rudi", "read", 24)
    assert shares.parse({"group": "crew", "access": "full", "expires_in_hours": 2160}) == (
        "group",
        "crew",
        "full",
        2160,
    )


def test_each_user_holds_the_most_of_their_own_share_and_their_teams() -> None:
    rows = [
        row("user", "rudi", "read"),
        row("group", "crew", "full", ["rudi", "wren"]),
        row("group", "readers", "read", ["wren", "ola", "kim"]),
        row("user", "kim", "full"),
    ]
    # the owner is never granted their own server; full wins over read, whichever comes first
    assert shares._want(rows, "ola") == {"rudi": "full", "wren": "full", "kim": "full"}
    assert shares._want([row("group", "readers", "read", ["wren", "ola"])], "ola") == {"wren": "read"}
    assert shares._want([], "ola") == {}
