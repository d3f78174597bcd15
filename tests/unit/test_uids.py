"""What a workspace claim's uid may be (issue 32, item 6): only what MoonHub hands out."""

from __future__ import annotations

import pytest

from moonhub_core import uids
from moonhub_core.errors import Conflict


def test_a_claim_without_a_uid_was_made_before_uids() -> None:
    assert uids.parse(None) is None and uids.parse("") is None
    assert uids.of_claim({"metadata": {"name": "claim-a", "annotations": {}}}) is None


def test_a_uid_in_the_range_is_taken() -> None:
    assert uids.parse(str(uids.FIRST)) == uids.FIRST
    assert uids.of_claim({"metadata": {"name": "claim-a", "annotations": {uids.UID: "1000123"}}}) == 1000123
    assert uids.parse(str(uids.LAST)) == uids.LAST


@pytest.mark.parametrize(
    "bad",
    ["0", "1000", "999999", "2147483648", "-5", "1e6", "\uff11\uff10\uff10\uff10\uff10\uff10\uff11", " 1000001", "x"],
)
def test_anything_else_is_not_run_as(bad: str) -> None:
    with pytest.raises(Conflict) as e:
        uids.of_claim({"metadata": {"name": "claim-a", "annotations": {uids.UID: bad}}})
    assert e.value.field == "workspace" and "claim-a" in e.value.message
