"""A pipeline's run as the service drives it (middle tier): tasks started in the order their
dependencies allow, values a task publishes handed to those after it, a failure's downstream
marked, a clean-up that runs only on failure, and a repair that runs again only what did not
succeed. The test plays each task's pod (publishing through the launch route with the task's
own key) and the Job controller. The hub tier runs the same shape on the real node
(tests/hub/test_pipelines.py)."""

from __future__ import annotations

from typing import Any

import requests

from tests.helpers import notebook
from tests.middle.conftest import BATCH, NAMESPACE, Middle

TASKS = [
    {"name": "prepare", "notebook": "prepare.ipynb"},
    {"name": "train", "notebook": "train.ipynb", "depends_on": ["prepare"]},
    {"name": "report", "notebook": "report.ipynb", "depends_on": ["train"]},
    {"name": "cleanup", "notebook": "cleanup.ipynb", "depends_on": ["train"], "run_if": "any_failed"},
]
NB = notebook(("rows = 0\nmodel_path = 'unset'", ["parameters"]), "print(rows, model_path)")


def _task_jobs(middle: Middle, run_name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for j in middle.kube.list(BATCH, "jobs", NAMESPACE, f"moonhub.io/pipeline-run={run_name}"):
        out.setdefault(j["metadata"]["labels"]["moonhub.io/task"], []).append(j["metadata"]["name"])
    return out


def _publish(middle: Middle, job_name: str, values: bytes, key: str = "") -> requests.Response:
    """What the task's pod sends when its notebook publishes (with its own key)."""
    env = middle.env(job_name)
    return requests.post(
        f"{env['MOONHUB_LAUNCH_URL']}/runs/{job_name}/published",
        data=values,
        headers={"X-MoonHub-Launch-Key": key or env["MOONHUB_LAUNCH_KEY"], "Content-Type": "application/json"},
        timeout=30,
    )


def _tasks(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in run["tasks"] or []}


def test_a_pipeline_runs_in_order_hands_values_down_and_is_repaired(middle: Middle) -> None:
    rosa = middle.user("rosa-p")
    body = {
        "name": "nightly",
        "schedule": None,
        "tasks": TASKS,
        "notebook_contents": dict.fromkeys(["prepare", "train", "report", "cleanup"], NB),
    }
    r = rosa.call("POST", "/jobs", body)
    assert r.status_code == 201, r.text
    job = r.json()
    run = rosa.call("POST", f"/jobs/{job['id']}/run").json()
    own = middle.job(run["name"])
    assert own is not None and own["spec"]["suspend"] is True, "a pipeline's run is a Job that never has a pod"
    middle.sync()
    started = _task_jobs(middle, run["name"])
    assert list(started) == ["prepare"], "only what depends on nothing starts"
    # prepare publishes, succeeds: train starts and is handed the values
    [prepare] = started["prepare"]
    assert _publish(middle, prepare, b'{"rows": 3, "model_path": "models/m1"}').status_code == 201
    assert _publish(middle, prepare, b'{"rows": NaN}').status_code == 400, "JSON values only"
    assert _publish(middle, prepare, b"[1, 2]").status_code == 400, "an object of values"
    middle.job_state(prepare, "succeeded")
    middle.sync()
    started = _task_jobs(middle, run["name"])
    assert sorted(started) == ["prepare", "train"]
    [train] = started["train"]
    given = middle.launch(train).json()["parameters"]
    assert (given["rows"], given["model_path"]) == (3, "models/m1"), given
    # prepare's key does not publish for train
    r = _publish(middle, train, b'{"x": 1}', key=middle.env(prepare)["MOONHUB_LAUNCH_KEY"])
    assert r.status_code == 403, r.text
    # train fails: report can not run, cleanup (run_if any_failed) does
    middle.job_state(train, "failed", message="first try fails")
    middle.sync()
    started = _task_jobs(middle, run["name"])
    assert "report" not in started and len(started.get("cleanup", [])) == 1, started
    middle.job_state(started["cleanup"][0], "succeeded")
    middle.sync()
    [done] = rosa.call("GET", f"/jobs/{job['id']}/runs").json()["runs"]
    assert done["status"] == "failed" and "task train failed" in done["reason"], done
    t = _tasks(done)
    assert (t["prepare"]["status"], t["train"]["status"], t["report"]["status"], t["cleanup"]["status"]) == (
        "succeeded",
        "failed",
        "upstream_failed",
        "succeeded",
    )
    assert t["prepare"]["published"] == {"rows": 3, "model_path": "models/m1"}
    r = rosa.call("GET", f"/jobs/{job['id']}/runs/{run['id']}/log")
    assert r.status_code == 400 and r.json()["field"] == "task", "a pipeline run's log is a task's"
    assert middle.user("sven-p").call("POST", f"/jobs/{job['id']}/runs/{run['id']}/repair").status_code == 404
    # repair: what failed runs again, what succeeded does not
    r = rosa.call("POST", f"/jobs/{job['id']}/runs/{run['id']}/repair")
    assert r.status_code == 201 and r.json()["id"] == run["id"], r.text
    middle.sync()
    started = _task_jobs(middle, run["name"])
    assert started["prepare"] == [prepare], "what succeeded is not run again"
    [train2] = [n for n in started["train"] if n != train]
    assert middle.launch(train2).json()["parameters"]["model_path"] == "models/m1", "prepare's values kept"
    middle.job_state(train2, "succeeded")
    middle.sync()
    [report] = _task_jobs(middle, run["name"])["report"]
    middle.job_state(report, "succeeded")
    middle.sync()
    [repaired] = rosa.call("GET", f"/jobs/{job['id']}/runs").json()["runs"]
    t = _tasks(repaired)
    assert repaired["status"] == "succeeded", repaired
    assert (t["prepare"]["attempt"], t["train"]["attempt"], t["report"]["attempt"]) == (1, 2, 2)
    assert t["cleanup"]["status"] == "skipped", "nothing failed this time"
    assert rosa.call("POST", f"/jobs/{job['id']}/runs/{run['id']}/repair").status_code == 409, "nothing to repair"
    assert rosa.call("DELETE", f"/jobs/{job['id']}").status_code == 204
