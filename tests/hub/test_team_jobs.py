"""A job a team owns (issue 37, item 1) through the real hub, jobs service and node: one
member makes it, another edits and runs it; both runs run as the team (the team's folder
as their workspace, the team's group id, the team's secret), a non-member sees nothing of
it, and the audit trail names each member. The middle tier covers roles, moves and
departures in detail (tests/middle/test_team_jobs.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.conftest import Hub
from tests.helpers import jobs_api, notebook, printed, runs_ended, team_folder_bound, team_folder_in_catalog

USER_NS = "moonhub-users"
TEAM, GID = "tj-team", 2107
#: names no other test uses (a name is one account across the test hubs and the cluster)
TINA, THEO, OSCAR = "tjob-tina", "tjob-theo", "tjob-oscar"
SECRET = "team-key-0123456789"
#: each run adds a line to a file in its workspace (the team's folder) and prints them all
MARKS = notebook(
    "import os, pathlib\n"
    "print('groups', sorted(os.getgroups()))\n"
    "print('key', os.environ['KEY'][::-1])\n"
    "mark = pathlib.Path(os.environ['HOME']) / 'team-marks.txt'\n"
    "mark.write_text((mark.read_text() if mark.exists() else '') + 'run\\n')\n"
    "print('marks', len(mark.read_text().split()))"
)


@pytest.fixture
def team_catalog(hub: Hub) -> Iterator[None]:
    with team_folder_in_catalog(hub, TEAM, GID):
        yield


def _output(call: Any, job_id: int, run_id: int) -> str:
    r = call("GET", f"/jobs/{job_id}/runs/{run_id}/output?format=ipynb")
    assert r.status_code == 200, r.text[:300]
    return printed(json.loads(r.text))


async def test_a_team_job_made_by_one_member_is_edited_and_run_by_another_as_the_team(
    hub: Hub, core: client.CoreV1Api, team_catalog: None
) -> None:
    admin = hub.login("admin")
    for user in (TINA, THEO, OSCAR):
        hub.login(user)
    assert hub.api(admin, "POST", f"/groups/{TEAM}").status_code in (201, 409)
    assert hub.api(admin, "POST", f"/groups/{TEAM}/users", json={"users": [TINA, THEO]}).status_code == 200
    tina, theo = jobs_api(hub, hub.login(TINA), TINA), jobs_api(hub, hub.login(THEO), THEO)
    oscar, boss = jobs_api(hub, hub.login(OSCAR), OSCAR), jobs_api(hub, admin, "admin")
    assert boss("PUT", f"/team-secrets/{TEAM}/api-key", {"value": SECRET}).status_code in (200, 201)
    # the team's folder exists once the service has seen the catalog (its reconcile)
    await team_folder_bound(core, USER_NS, TEAM)
    body = {
        "name": "team-marks",
        "notebook": "marks.ipynb",
        "notebook_content": MARKS,
        "schedule": None,
        "team": TEAM,
        "secrets": [{"name": "api-key", "team": TEAM, "env": "KEY"}],
    }
    r = tina("POST", "/jobs", body)
    assert r.status_code == 201, r.text
    job = r.json()
    try:
        assert (job["team"], job["owner"]) == (TEAM, TINA)
        assert [j["name"] for j in theo("GET", "/jobs").json()["jobs"]] == ["team-marks"], "a member sees it"
        assert oscar("GET", "/jobs").json()["jobs"] == []
        assert tina("POST", f"/jobs/{job['id']}/run").status_code == 201
        first = (await runs_ended(tina, job["id"], timeout=240))[0]
        assert first["status"] == "succeeded", first
        said = _output(tina, job["id"], first["id"])
        assert f"key {SECRET[::-1]}" in said and str(GID) in said and "marks 1" in said, said

        # another member changes it and runs it: the same team folder, as the team
        r = theo("PATCH", f"/jobs/{job['id']}", {"retries": 1})
        assert r.status_code == 200 and r.json()["retries"] == 1, r.text
        assert theo("POST", f"/jobs/{job['id']}/run").status_code == 201
        runs = await runs_ended(theo, job["id"], count=2, timeout=240)
        second = runs[0]
        assert second["status"] == "succeeded", second
        assert "marks 2" in _output(theo, job["id"], second["id"]), "the second run found the first's mark"

        # a non-member sees nothing of it
        for path in (f"/jobs/{job['id']}", f"/jobs/{job['id']}/runs", f"/jobs/{job['id']}/runs/{second['id']}/log"):
            assert oscar("GET", path).status_code == 404, path
        assert oscar("POST", f"/jobs/{job['id']}/run").status_code == 404
        lines = [(e["actor"], e["action"]) for e in theo("GET", "/audit").json()["entries"] if e["job_id"] == job["id"]]
        assert (TINA, "create") in lines and (THEO, "edit") in lines and (THEO, "run") in lines, lines
    finally:
        assert tina("DELETE", f"/jobs/{job['id']}").status_code == 204
        boss("DELETE", f"/team-secrets/{TEAM}/api-key")
