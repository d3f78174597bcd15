"""Whole numbers from anyone's text: ASCII digits, bounded (issue 32, item 10)."""

from __future__ import annotations

import pytest

from moonhub_core import numbers
from moonhub_core.errors import FieldError

NOT_WHOLE = ["²", "١٢", "٣", "1²", "", " 1", "1 ", "+1", "-1", "1.0", "0x10", "9" * 20, "9" * 5000]


@pytest.mark.parametrize("text", NOT_WHOLE)
def test_what_is_not_a_whole_number_is_named_never_a_crash(text: str) -> None:
    assert not numbers.is_whole(text)
    with pytest.raises(FieldError) as e:
        numbers.whole("limit", text)
    assert e.value.field == "limit" and e.value.status == 400


def test_whole_numbers_within_their_range() -> None:
    assert numbers.whole("days", "7", 1, 366) == 7
    assert numbers.whole("id", str(numbers.MOST)) == numbers.MOST
    assert not numbers.is_whole(str(numbers.MOST + 1))
    with pytest.raises(FieldError, match="from 1 to 366"):
        numbers.whole("days", "0", 1, 366)
