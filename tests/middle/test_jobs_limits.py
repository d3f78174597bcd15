"""What the jobs service refuses (middle tier): per-user caps (and pruned snapshots), bad
input named by its field with nothing created, malformed and oversized bodies."""

from __future__ import annotations

import hashlib

import pytest

from tests.helpers import NOTEBOOK
from tests.hub.jobs_client import Jobs, job_body
from tests.middle.conftest import CORE, NAMESPACE, Middle


@pytest.fixture(scope="module")
def clients(middle: Middle) -> dict[str, Jobs]:
    return {name: middle.user(name) for name in ("quinn", "rita")}


def test_per_user_caps_and_pruned_snapshots(middle: Middle) -> None:
    """The tests allow 12 jobs and keep 3 versions per job; older versions' files leave the
    snapshot store (one file per distinct notebook and owner), and nothing is in etcd."""
    capped = middle.user("capped")
    made = []
    for i in range(12):
        r = capped.call("POST", "/jobs", job_body(f"j{i}"))
        assert r.status_code == 201, r.text
        made.append(r.json())
    r = capped.call("POST", "/jobs", job_body("one-too-many"))
    assert r.status_code == 403 and r.json()["field"] == "name" and "limit is 12" in r.json()["message"], r.text
    first = made[0]
    for n in range(5):
        nb = {**NOTEBOOK, "cells": [*NOTEBOOK["cells"], {**NOTEBOOK["cells"][1], "id": f"c{n}"}]}
        r = capped.call("PATCH", f"/jobs/{first['id']}", {"notebook_content": nb})
        assert r.status_code == 200, r.text
    versions = capped.call("GET", f"/jobs/{first['id']}/versions").json()["versions"]
    assert [v["number"] for v in versions] == [4, 5, 6]
    maps = middle.kube.list(CORE, "configmaps", NAMESPACE, "moonhub.io/owner=capped")
    assert maps == [], "notebook versions are not kept in etcd"
    folder = middle.folder / "snapshots" / hashlib.sha256(b"capped").hexdigest()[:20]
    files = {p.name.removesuffix(".ipynb.gz") for p in folder.iterdir()}
    # the 11 other jobs share version 1's notebook; versions 4 to 6 have one file each
    shared = capped.call("GET", f"/jobs/{made[1]['id']}/versions").json()["versions"][0]["sha256"]
    assert files == {shared} | {v["sha256"] for v in versions}, "versions 2 and 3 went with their files"
    for j in made:
        assert capped.call("DELETE", f"/jobs/{j['id']}").status_code == 204
    assert list(folder.iterdir()) == [], "a deleted job's files go with it"


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"schedule": "0 0 6 * * *"}, 400, "schedule"),
        ({"schedule": "0 6 * * *", "timezone": "Nowhere/City"}, 400, "timezone"),
        ({"notebook": "../../etc/x.ipynb"}, 400, "notebook"),
        ({"notebook": "/abs/x.ipynb"}, 400, "notebook"),
        ({"name": "n" * 40}, 400, "name"),
        ({"environment": "cobol"}, 400, "environment"),
        ({"environment": "pytorch", "gpu_type": "a100", "gpu_count": 1}, 403, "gpu_type"),
        ({"image": "evil/miner"}, 400, "image"),
        ({"notebook_content": {"cells": "nope"}}, 400, "notebook_content"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(
    clients: dict[str, Jobs], change: dict, status: int, field: str
) -> None:
    rita = clients["rita"]
    r = rita.call("POST", "/jobs", {**job_body("bad"), **change})
    assert r.status_code == status, r.text
    assert r.json()["field"] == field, r.json()
    assert rita.call("GET", "/jobs").json()["jobs"] == []


def test_malformed_json_and_oversized_bodies(clients: dict[str, Jobs]) -> None:
    rita = clients["rita"]
    r = rita.call("POST", "/jobs", raw=b"{not json")
    assert r.status_code == 400 and r.json()["field"] == "body"
    # routes without a notebook keep 1 MiB
    r = rita.call("POST", "/jobs/1/backfill", raw=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert r.status_code == 413
    r = rita.call("POST", "/jobs/1/backfill", raw=b" " * (12 * 1024 * 1024))
    assert r.status_code == 413, r.status_code
    # a notebook may be up to jobs.limits.notebook_bytes (64 MiB in the tests), not more;
    # a body past it is refused from its declared length, not kept
    r = rita.call("POST", "/jobs", raw=b"{" + b" " * (65 * 1024 * 1024) + b"}")
    assert r.status_code == 413 and "64 MiB" in r.text, r.status_code


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json_and_nothing_is_made(clients: dict[str, Jobs], constant: bytes) -> None:
    """Python's parser takes them; a job holding one came back in answers browsers can not
    parse (every job admin's list with it)."""
    rita = clients["rita"]
    body = b'{"name": "consts", "notebook": "c.ipynb", "schedule": null, "parameters": {"rows": ' + constant + b"}}"
    r = rita.call("POST", "/jobs", raw=body)
    assert r.status_code == 400 and r.json()["field"] == "body" and constant.lstrip(b"-").decode() in r.text, r.text
    assert rita.call("GET", "/jobs").json()["jobs"] == []
