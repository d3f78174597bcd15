"""Fixtures of the tests through the real hub."""

from __future__ import annotations

import pytest

from tests.conftest import Hub
from tests.hub.jobs_client import Jobs


@pytest.fixture(scope="module")
def clients(hub: Hub) -> dict[str, Jobs]:
    out = {}
    for user in ("quinn", "rita", "admin"):
        s = hub.login(user)
        out[user] = Jobs(hub, hub.token(s, user, "access:services!service=jobs"))
    return out
