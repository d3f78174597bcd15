"""Whole numbers from text that anyone may have written (a query argument, a path, a header,
an annotation): ASCII digits only and a bounded count of them. ``str.isdigit`` also takes
'²' and other Unicode digits, which ``int`` then refuses, and ``int`` refuses more than 4,300
digits: either ended in a 500 (issue 32, item 10)."""

from __future__ import annotations

import re

from .errors import FieldError

#: 64-bit signed: what the databases and Kubernetes store
MOST = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")
#: the route pattern of a number in a URL (the handler still bounds it)
ROUTE = "([0-9]+)"


def is_whole(text: str | None) -> bool:
    """Whether ``text`` is a whole number of at most 19 ASCII digits, at most :data:`MOST`."""
    return bool(text) and _DIGITS.fullmatch(text or "") is not None and int(text or "0") <= MOST


def whole(field: str, text: str, low: int = 0, high: int = MOST) -> int:
    """``text`` as a whole number from ``low`` to ``high``, else a 400 naming ``field``."""
    if not is_whole(text) or not low <= int(text) <= high:
        raise FieldError(field, f"must be a whole number from {low} to {high}")
    return int(text)
