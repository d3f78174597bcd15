"""Which account of a user name the jobs service's state belongs to (pure: SQLite in memory)."""

from __future__ import annotations

from jobs_service import accounts
from jobs_service.db import AccountRow, open_db


def test_the_first_account_seen_is_recorded_and_another_is_told_apart() -> None:
    db = open_db("sqlite://")
    first, second = "2026-01-01T00:00:00.000001Z", "2026-12-05T10:00:00.000002Z"
    with db() as s:
        assert accounts.earlier(s, "jo", first) is None, "recorded"
        s.commit()
        assert accounts.earlier(s, "jo", first) is None, "the same account"
        assert accounts.earlier(s, "jo", second) == first, "another account of the name"
        assert accounts.earlier(s, "jo", "") is None, "unknown (no hub, or it could not say): nothing decided"
        accounts.hand_over(s, "jo", second)
        s.commit()
        assert accounts.earlier(s, "jo", second) is None
        assert s.get(AccountRow, "jo").created == second
