"""A run's log outlives its Job and pod (issue 33, item 5): kept when the run ends, read from
the pod while there is one and from the kept copy after, masked, its owner's only, within the
owner's budget, and gone with the run."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import NOTEBOOK
from tests.hub.jobs_client import Jobs, job_body
from tests.middle.conftest import BATCH, CORE, NAMESPACE, Middle

SECRET = "hush-hush-7c1d9a"


def _log(c: Jobs, job_id: int, run_id: int, task: str = "") -> Any:
    return c.call("GET", f"/jobs/{job_id}/runs/{run_id}/log" + (f"?task={task}" if task else ""))


def _gone(middle: Middle, job_name: str) -> None:
    """What the Job's TTL (or the CronJob's history limit) does: the Job and its pods go."""
    for pod in middle.kube.list(CORE, "pods", NAMESPACE, f"job-name={job_name}"):
        middle.kube.delete(CORE, "pods", NAMESPACE, pod["metadata"]["name"])
    middle.kube.delete(BATCH, "jobs", NAMESPACE, job_name)


@pytest.fixture
def small_budget(middle: Middle) -> Iterator[int]:
    """The owner's kept logs limited to 3.5 KiB for one test (three logs of 1 KiB and what describes them)."""
    ctx = middle.service.ctx
    before = ctx.settings
    budget = 3584
    ctx.settings = dataclasses.replace(
        before, limits=dataclasses.replace(before.limits, kept_log_bytes_per_user=budget)
    )
    yield budget
    ctx.settings = before


def test_a_runs_log_is_read_after_its_job_and_pod_are_gone(middle: Middle) -> None:
    lena = middle.user("lena")
    assert lena.call("PUT", "/secrets/token", {"value": SECRET}).status_code == 201
    body = {**job_body("nightly-log"), "secrets": [{"name": "token", "env": "TOKEN"}]}
    job = lena.call("POST", "/jobs", body).json()
    run = lena.call("POST", f"/jobs/{job['id']}/run").json()
    middle.job_state(run["name"], "running")
    middle.pod(run["name"], log=f"Executing Cell 1-----\nconnecting with {SECRET}\nrows: 42\n")
    middle.sync()
    live = _log(lena, job["id"], run["id"]).json()
    assert "rows: 42" in live["log"] and SECRET not in live["log"] and "kept_at" not in live, live
    middle.job_state(run["name"], "succeeded")
    middle.sync()
    assert middle.job(run["name"])["metadata"]["labels"].get("moonhub.io/run-recorded") == "ended"

    _gone(middle, run["name"])
    r = _log(lena, job["id"], run["id"])
    assert r.status_code == 200, r.text
    kept = r.json()
    assert "rows: 42" in kept["log"] and kept["pod"].startswith(run["name"]) and kept["kept_at"], kept
    assert SECRET not in kept["log"] and SECRET not in r.text, "the job's secret is masked in the kept copy"
    assert not kept["truncated"] and kept["progress"] is not None
    # nobody else reads it, not even by guessing the run
    assert _log(middle.user("rita"), job["id"], run["id"]).status_code == 404
    # the kept copy goes with the job
    folder = middle.service.ctx.outputs.root / run["name"]
    assert folder.exists()
    assert lena.call("DELETE", f"/jobs/{job['id']}").status_code == 204
    assert not folder.exists(), "the kept log went with its job"


def test_a_run_whose_pod_is_gone_before_it_ends_says_so(middle: Middle) -> None:
    lena = middle.user("lena")
    job = lena.call("POST", "/jobs", job_body("vanishing-pod")).json()
    run = lena.call("POST", f"/jobs/{job['id']}/run").json()
    middle.job_state(run["name"], "failed", reason="DeadlineExceeded", message="Job was active longer than specified")
    middle.sync()
    _gone(middle, run["name"])
    kept = _log(lena, job["id"], run["id"]).json()
    assert "no log kept" in kept["log"] and "pod was gone" in kept["log"], kept
    assert lena.call("DELETE", f"/jobs/{job['id']}").status_code == 204


def test_a_users_kept_logs_stay_within_their_budget_the_oldest_going_first(middle: Middle, small_budget: int) -> None:
    owen, other = middle.user("owen"), middle.user("olga")
    job = owen.call("POST", "/jobs", job_body("chatty")).json()
    theirs = other.call("POST", "/jobs", job_body("chatty")).json()
    line = "x" * 1000 + "\n"

    def ended(c: Jobs, job_id: int) -> dict[str, Any]:
        run = c.call("POST", f"/jobs/{job_id}/run").json()
        middle.pod(run["name"], log=line, phase="Succeeded")
        middle.job_state(run["name"], "succeeded")
        middle.sync()
        _gone(middle, run["name"])
        return dict(run)

    olgas = ended(other, theirs["id"])
    runs = [ended(owen, job["id"]) for _ in range(4)]  # 4 logs of 1 KiB against a 3.5 KiB budget
    texts = [_log(owen, job["id"], r["id"]).json()["log"] for r in runs]
    assert "x" * 1000 not in texts[0] and "no log" in texts[0], "the oldest kept log went"
    assert all("x" * 1000 in t for t in texts[1:]), "the newer ones are kept"
    assert "x" * 1000 in _log(other, theirs["id"], olgas["id"]).json()["log"], "another user's budget is their own"
    for c, j in ((owen, job), (other, theirs)):
        assert c.call("DELETE", f"/jobs/{j['id']}").status_code == 204


def test_each_pipeline_tasks_log_is_kept(middle: Middle) -> None:
    pia = middle.user("pia")
    tasks = [
        {"name": "prepare", "notebook": "prep.ipynb"},
        {"name": "train", "notebook": "train.ipynb", "depends_on": ["prepare"]},
    ]
    body = {
        "name": "two-steps",
        "schedule": None,
        "tasks": tasks,
        "notebook_contents": dict.fromkeys(["prepare", "train"], NOTEBOOK),
    }
    r = pia.call("POST", "/jobs", body)
    assert r.status_code == 201, r.text
    job = r.json()
    run = pia.call("POST", f"/jobs/{job['id']}/run").json()
    middle.sync()
    for task in ("prepare", "train"):
        [name] = [
            j["metadata"]["name"]
            for j in middle.kube.list(BATCH, "jobs", NAMESPACE, f"moonhub.io/pipeline-run={run['name']}")
            if j["metadata"]["labels"]["moonhub.io/task"] == task
        ]
        middle.pod(name, log=f"task {task} done\n", phase="Succeeded")
        middle.job_state(name, "succeeded")
        middle.sync()
        _gone(middle, name)
    [done] = pia.call("GET", f"/jobs/{job['id']}/runs").json()["runs"]
    assert done["status"] == "succeeded", done
    for task in ("prepare", "train"):
        kept = _log(pia, job["id"], run["id"], task).json()
        assert f"task {task} done" in kept["log"] and kept["kept_at"], kept
    assert pia.call("DELETE", f"/jobs/{job['id']}").status_code == 204


def test_a_log_the_node_does_not_give_is_asked_for_again_then_said_to_be_missing(middle: Middle) -> None:
    lena = middle.user("lena")
    job = lena.call("POST", "/jobs", job_body("far-node")).json()
    run = lena.call("POST", f"/jobs/{job['id']}/run").json()
    pod = middle.pod(run["name"], log="almost\n", phase="Succeeded")
    middle.kube.log_failures[(NAMESPACE, pod)] = 500
    middle.job_state(run["name"], "succeeded")
    middle.sync()
    labels = middle.job(run["name"])["metadata"].get("labels") or {}
    assert "moonhub.io/run-recorded" not in labels, "not recorded while its log may still come"
    middle.kube.log_failures.pop((NAMESPACE, pod))
    middle.sync()
    assert "almost" in _log(lena, job["id"], run["id"]).json()["log"]
    assert middle.job(run["name"])["metadata"]["labels"]["moonhub.io/run-recorded"] == "ended"

    # a node that never gives it: after a while the run keeps a line that says why
    again = lena.call("POST", f"/jobs/{job['id']}/run").json()
    pod = middle.pod(again["name"], phase="Succeeded")
    middle.kube.log_failures[(NAMESPACE, pod)] = 502
    middle.job_state(again["name"], "succeeded")
    ended = middle.job(again["name"])
    three_minutes_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=3)
    ended["status"]["completionTime"] = three_minutes_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    middle.kube.put(BATCH, "jobs", NAMESPACE, ended)
    middle.sync()
    assert middle.job(again["name"])["metadata"]["labels"]["moonhub.io/run-recorded"] == "ended"
    _gone(middle, again["name"])
    kept = _log(lena, job["id"], again["id"]).json()
    assert "no log kept: the node did not give it: 502" in kept["log"], kept
    assert lena.call("DELETE", f"/jobs/{job['id']}").status_code == 204
