"""Jobs for production (middle tier): what a run's launch key opens, back-fill one run at a
time with each run's own date, and an overdue run's alert in a chat format, told once. The
hub tier keeps what needs real pods (a 50 MB notebook run from outside etcd, outputs,
re-runs, a slow receiver beside another user's tracking: tests/hub/test_production_jobs.py)."""

from __future__ import annotations

import datetime
import hashlib
import time
from typing import Any

import pytest
import requests

from jobs_service.db import RunRow
from tests.helpers import notebook
from tests.hub.jobs_client import Jobs
from tests.middle.conftest import Middle, receiver, wait_until

PRINTS = notebook(
    ("day = 'unset'\nsince = 'unset'", ["parameters"]),
    "print(f'day={day} since={since}')",
)


def _ago(seconds: float) -> str:
    return (datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _body(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "notebook": f"{name}.ipynb", "notebook_content": PRINTS, "schedule": None, **extra}


@pytest.fixture(scope="module")
def pia(middle: Middle) -> Jobs:
    return middle.user("pia")


def test_a_launch_key_opens_one_version_of_one_job(middle: Middle, pia: Jobs) -> None:
    """What a run's pod may fetch, asked as a pod would."""
    a, b = pia.call("POST", "/jobs", _body("one")).json(), pia.call("POST", "/jobs", _body("two")).json()
    run_a = pia.call("POST", f"/jobs/{a['id']}/run").json()
    run_b = pia.call("POST", f"/jobs/{b['id']}/run").json()
    ok = middle.launch(run_a["name"], "notebook")
    assert ok.status_code == 200 and ok.headers["X-MoonHub-SHA256"], ok.text
    env = middle.env(run_a["name"])
    url, key = env["MOONHUB_LAUNCH_URL"], env["MOONHUB_LAUNCH_KEY"]
    assert ok.headers["X-MoonHub-SHA256"] == env["MOONHUB_SNAPSHOT_SHA256"]

    def get(path: str, k: str | None) -> requests.Response:
        return requests.get(path, headers={"X-MoonHub-Launch-Key": k} if k else {}, timeout=30)

    assert get(f"{url}/notebook", None).status_code == 403
    assert get(f"{url}/notebook", "0" * 64).status_code == 403
    other = middle.env(run_b["name"])
    assert get(f"{other['MOONHUB_LAUNCH_URL']}/notebook", key).status_code == 403, "another job's version"
    assert get(f"{url.rsplit('/', 1)[0]}/2/notebook", key).status_code == 403, "another version"
    assert get(f"{other['MOONHUB_LAUNCH_URL']}/runs/{run_b['name']}", key).status_code == 403
    r = get(f"{url}/runs/{run_b['name']}", key)
    assert r.status_code == 403 and "not a run of this job" in r.json()["message"]
    assert get(f"{url}/runs/{a['cronjob'][:45]}-mffff", key).status_code == 404
    own = middle.launch(run_a["name"])
    assert own.status_code == 200 and own.json()["run"] == run_a["name"], own.text
    for j in (a, b):
        assert pia.call("DELETE", f"/jobs/{j['id']}").status_code == 204


def test_backfill_runs_each_day_one_at_a_time_with_its_own_date(middle: Middle) -> None:
    quill = middle.user("quill")
    body = _body(
        "daily",
        schedule="0 6 * * *",
        timezone="Asia/Shanghai",
        active=False,  # no tick of its own during the test
        concurrency="skip",
        parameters={"day": "{{run.date}}", "since": "{{job.last_success_date}}"},
    )
    job = quill.call("POST", "/jobs", body).json()
    today = datetime.datetime.now(datetime.UTC).date()
    days = [today - datetime.timedelta(days=n) for n in (4, 3, 2)]
    span = {"from": days[0].isoformat(), "to": days[-1].isoformat()}
    r = quill.call("POST", f"/jobs/{job['id']}/backfill", span)
    assert r.status_code == 201, r.text
    made = r.json()
    assert [x["status"] for x in made["runs"]] == ["waiting"] * 3 and made["skipped"] == []
    assert [x["scheduled_for"][:10] for x in made["runs"]] == [d.isoformat() for d in days]
    seen: list[tuple[str, dict[str, Any]]] = []
    for _ in range(3):
        middle.sync()  # starts the next waiting run when none of the job's runs goes on
        runs = quill.call("GET", f"/jobs/{job['id']}/runs").json()["runs"]
        going = [x for x in runs if x["status"] in ("queued", "running")]
        assert len(going) == 1, ("skip: one run of the job at a time", runs)
        asked = middle.launch(going[0]["name"])
        assert asked.status_code == 200, asked.text
        seen.append((going[0]["scheduled_for"][:10], asked.json()["parameters"]))
        middle.job_state(going[0]["name"], "succeeded")
        middle.sync()
    for n, (day, parameters) in enumerate(seen):
        since = days[n - 1].isoformat() if n else ""
        assert (day, parameters) == (days[n].isoformat(), {"day": days[n].isoformat(), "since": since})
    again = quill.call("POST", f"/jobs/{job['id']}/backfill", span)
    assert again.status_code == 201 and again.json()["runs"] == [] and len(again.json()["skipped"]) == 3

    def refused(b: Any, job_id: int = job["id"]) -> tuple[int, str]:
        r = quill.call("POST", f"/jobs/{job_id}/backfill", b)
        return r.status_code, r.json().get("field", "")

    assert refused({"from": "2026-12-02", "to": "2026-12-01"}) == (400, "to")
    assert refused({"from": "2025-01-01", "to": "2025-12-31"}) == (400, "to"), "more ticks than the limit"
    assert refused({"from": "last week", "to": "2026-12-01"}) == (400, "from")
    assert refused({"from": "2026-12-01", "to": "2026-12-01", "dry": True}) == (400, "dry")
    by_hand = quill.call("POST", "/jobs", {**body, "name": "by-hand", "schedule": None}).json()
    assert refused({"from": "2026-12-01", "to": "2026-12-01"}, by_hand["id"]) == (400, "id")
    assert len(quill.call("GET", f"/jobs/{job['id']}/runs").json()["runs"]) == 3, "refusals made no runs"


def test_an_overdue_run_alerts_once_in_the_chat_format(middle: Middle) -> None:
    with receiver(200) as (url, received):
        rosa = middle.user("rosa")
        notify = {
            "webhook": f"{url}/chat",
            "webhook_format": "slack",
            "overdue_after_seconds": 60,
        }
        job = rosa.call("POST", "/jobs", _body("slow", notify=notify)).json()
        run = rosa.call("POST", f"/jobs/{job['id']}/run").json()
        middle.job_state(run["name"], "running", started=_ago(50))
        middle.sync()
        time.sleep(0.5)
        assert received == [], "running for less than a minute: not overdue"
        with middle.service.ctx.db() as s:  # ten seconds later, as far as the run knows
            row = s.get(RunRow, run["id"])
            assert row is not None and row.started is not None
            row.started = row.started - datetime.timedelta(seconds=20)
            s.commit()
        middle.sync()
        wait_until(lambda: received)
        assert received and set(received[0]) == {"text"}, ("what chat tools accept", received)
        assert f"job slow is still running after 1 min (run {run['name']})" in received[0]["text"]
        for _ in range(2):
            middle.sync()
        assert rosa.call("DELETE", f"/jobs/{job['id']}/runs/{run['id']}").status_code == 200
        middle.sync()
        time.sleep(1)
        assert len(received) == 1, "told once per run (the cancel is not a failure to report)"


def test_each_users_stored_notebooks_are_capped(middle: Middle) -> None:
    """The tests allow 16 MiB of stored notebooks per user: code and attachments count,
    outputs do not."""
    sam = middle.user("sam-capped")
    heavy = {
        **PRINTS,
        "cells": [*PRINTS["cells"], {"cell_type": "markdown", "metadata": {}, "source": "x" * 6 * 2**20}],
    }
    for name in ("a", "b"):
        r = sam.call("POST", "/jobs", _body(name, notebook_content=heavy))
        assert r.status_code == 201, r.text
        heavy = {**heavy, "cells": [*heavy["cells"], {"cell_type": "markdown", "metadata": {}, "source": name}]}
    r = sam.call("POST", "/jobs", _body("c", notebook_content=heavy))
    assert r.status_code == 403 and r.json()["field"] == "notebook_content", r.text
    assert "limit of 16.0 MiB" in r.json()["message"]
    assert [j["name"] for j in sam.call("GET", "/jobs").json()["jobs"]] == ["a", "b"], "nothing half-made"
    folder = middle.folder / "snapshots" / hashlib.sha256(b"sam-capped").hexdigest()[:20]
    assert len(list(folder.iterdir())) == 2
    plot = {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo" * (20 * 10**6 // 11)}, "metadata": {}}
    outputs_only = {**PRINTS, "cells": [*PRINTS["cells"][:-1], {**PRINTS["cells"][-1], "outputs": [plot]}]}
    r = sam.call("POST", "/jobs", _body("d", notebook_content=outputs_only))
    assert r.status_code == 201, "20 MB of outputs take nothing"


def test_a_job_runs_after_another_succeeds_once(middle: Middle) -> None:
    zoe = middle.user("zoe")
    base = {"parameters": {"day": "{{run.date}}"}}
    prep = zoe.call("POST", "/jobs", _body("prepare", **base)).json()
    r = zoe.call("POST", "/jobs", _body("report", after=["prepare"], **base))
    assert r.status_code == 201, r.text
    report = r.json()
    loop = zoe.call("PATCH", f"/jobs/{prep['id']}", {"after": ["report"]})
    assert loop.status_code == 400 and loop.json()["field"] == "after" and "loop" in loop.json()["message"]
    theirs = middle.user("yuri").call("POST", "/jobs", _body("x", after=["prepare"], **base))
    assert theirs.status_code == 400 and theirs.json()["field"] == "after", "only one's own jobs"
    first = zoe.call("POST", f"/jobs/{prep['id']}/run").json()
    middle.job_state(first["name"], "succeeded")
    middle.sync()
    middle.sync()
    [after] = zoe.call("GET", f"/jobs/{report['id']}/runs").json()["runs"]
    [done] = zoe.call("GET", f"/jobs/{prep['id']}/runs").json()["runs"]
    assert (after["trigger"], after["upstream_run"]) == ("upstream", first["id"]), after
    assert after["scheduled_for"] == done["scheduled_for"], "it stands for the upstream run's time"
    middle.job_state(after["name"], "succeeded")
    for _ in range(3):
        middle.sync()
    assert len(zoe.call("GET", f"/jobs/{report['id']}/runs").json()["runs"]) == 1, "one success, one run after it"
    # a failed upstream run starts nothing after it
    second = zoe.call("POST", f"/jobs/{prep['id']}/run").json()
    middle.job_state(second["name"], "failed")
    for _ in range(2):
        middle.sync()
    assert len(zoe.call("GET", f"/jobs/{report['id']}/runs").json()["runs"]) == 1
