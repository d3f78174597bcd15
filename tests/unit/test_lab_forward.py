"""The lab server extension forwards to the jobs API only (pure: the path it sends on)."""

from __future__ import annotations

import pytest
from moonhub_lab.server import upstream_path
from tornado import web


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("jobs", "jobs"),
        ("jobs/12/runs/3/output", "jobs/12/runs/3/output"),
        ("team-secrets/acme:ml/db", "team-secrets/acme%3Aml/db"),
        ("secrets/a?b", "secrets/a%3Fb"),  # a decoded %3F stays part of the path, not a query
        ("jobs/1#x", "jobs/1%23x"),
        ("jobs/%2e%2e", "jobs/%252e%252e"),  # (decoded once already: sent as the name it is)
    ],
)
def test_a_forwarded_path_stays_what_it_names(path: str, sent: str) -> None:
    assert upstream_path(path) == sent


@pytest.mark.parametrize(
    "path",
    ["../../hub/api/users", "jobs/../../../hub/api/user", "jobs/./1", "..", "jobs\\..\\x", "jobs/1\r\nX-A: b", "a\x00"],
)
def test_a_path_that_leaves_the_jobs_api_is_refused(path: str) -> None:
    with pytest.raises(web.HTTPError) as err:
        upstream_path(path)
    assert err.value.status_code == 400 and "path" in str(err.value.log_message)
