"""Pipelines through the real hub, jobs service and cluster: three notebooks, one failing
then repaired, values published to the tasks after them, a clean-up that runs only on
failure, and a service killed mid-run that loses no transition and starts no task twice."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from kubernetes_asyncio import client

from tests.conftest import Hub
from tests.helpers import gone, jobs_api, notebook, printed, runs_ended, wait_for
from tests.hub.jobs_client import _health, _service_pid

USER_NS = "moonhub-users"

PREPARE = notebook(
    ("day = 'unset'", ["parameters"]),
    "import moonhub\nmoonhub.publish('model_path', f'models/{day}.pt')\n"
    "moonhub.publish('rows', 3)\nprint('prepared', day)",
)
# fails on its first attempt (it leaves a mark in the workspace), succeeds on the next
TRAIN = notebook(
    ("model_path = 'unset'\nrows = 0", ["parameters"]),
    "import os, pathlib\nmark = pathlib.Path(os.environ['HOME']) / 'train-tried'\n"
    "if not mark.exists():\n    mark.touch()\n    raise RuntimeError('first try fails')",
    "import moonhub\nmoonhub.publish('score', 0.93)\nprint(f'trained {model_path} on {rows} rows')",
)
REPORT = notebook(
    ("score = -1.0\nmodel_path = 'unset'", ["parameters"]), "print(f'report score={score} model={model_path}')"
)
CLEANUP = notebook("print('cleaning up after a failure')")

TASKS = [
    {"name": "prepare", "notebook": "prepare.ipynb"},
    {"name": "train", "notebook": "train.ipynb", "depends_on": ["prepare"]},
    {"name": "report", "notebook": "report.ipynb", "depends_on": ["train"]},
    {"name": "cleanup", "notebook": "cleanup.ipynb", "depends_on": ["train"], "run_if": "any_failed"},
]
CONTENTS = {"prepare": PREPARE, "train": TRAIN, "report": REPORT, "cleanup": CLEANUP}


def _tasks(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in run["tasks"] or []}  # none until the service's first pass


async def _task_jobs(batch: client.BatchV1Api, run_name: str) -> list[Any]:
    found = await batch.list_namespaced_job(USER_NS, label_selector=f"moonhub.io/pipeline-run={run_name}")
    return list(found.items)


async def test_three_notebooks_one_fails_then_is_repaired_and_values_reach_downstream(
    hub: Hub, api: client.ApiClient, timings: dict[str, float]
) -> None:
    rosa = jobs_api(hub, hub.login("rosa"), "rosa")
    batch = client.BatchV1Api(api)
    body = {
        "name": "nightly",
        "schedule": "0 4 * * *",
        "parameters": {"day": "{{run.date}}"},
        "tasks": TASKS,
        "notebook_contents": CONTENTS,
    }
    # refused before anything exists: a loop, a missing notebook, a single notebook's field
    loop = [{**t, "depends_on": ["report"]} if t["name"] == "prepare" else t for t in TASKS]
    r = rosa("POST", "/jobs", {**body, "tasks": loop})
    assert r.status_code == 400 and r.json()["field"] == "tasks" and "loop" in r.json()["message"], r.text
    r = rosa("POST", "/jobs", {**body, "notebook_contents": {"prepare": PREPARE}})
    assert r.status_code == 400 and r.json()["field"] == "notebook_contents", r.text
    assert "no notebook for train, report, cleanup" in r.json()["message"]
    r = rosa("POST", "/jobs", {**body, "notebook_content": PREPARE})
    assert r.status_code == 400 and r.json()["field"] == "notebook_content", r.text
    assert rosa("GET", "/jobs").json()["jobs"] == []

    r = rosa("POST", "/jobs", body)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["notebook"] == "prepare.ipynb" and [t["name"] for t in job["tasks"]] == list(CONTENTS)
    cron = await batch.read_namespaced_cron_job(job["cronjob"], USER_NS)
    assert cron.spec.job_template.spec.suspend is True, "a pipeline's run is a Job that never has a pod"

    t0 = time.monotonic()
    run = rosa("POST", f"/jobs/{job['id']}/run").json()
    [done] = await runs_ended(rosa, job["id"], timeout=420)
    timings["pipeline: run now -> ended (prepare, train fails, cleanup; 3 pods one after another)"] = (
        time.monotonic() - t0
    )
    assert done["status"] == "failed" and "task train failed" in done["reason"], done
    t = _tasks(done)
    assert t["prepare"]["status"] == "succeeded"
    assert t["prepare"]["published"]["model_path"].startswith("models/20") and t["prepare"]["published"]["rows"] == 3
    assert t["train"]["status"] == "failed" and t["train"]["attempt"] == 1
    # why, in words: the failing cell and its error (the runner's termination message)
    assert "failed: RuntimeError: first try fails" in (t["train"]["reason"] or ""), t["train"]
    assert t["report"]["status"] == "upstream_failed", "it needs train to succeed"
    assert t["cleanup"]["status"] == "succeeded", "run_if any_failed: it ran because train failed"
    log = rosa("GET", f"/jobs/{job['id']}/runs/{run['id']}/log?task=train").json()
    assert "first try fails" in log["log"]
    r = rosa("GET", f"/jobs/{job['id']}/runs/{run['id']}/log")
    assert r.status_code == 400 and r.json()["field"] == "task", "a pipeline run's log is a task's"
    assert rosa("GET", f"/jobs/{job['id']}/runs/{run['id']}/log?task=nope").status_code == 404
    await wait_for(
        lambda: gone(lambda: batch.read_namespaced_job(run["name"], USER_NS)),
        bool,
        timeout=60,
        what="the run's own (suspended) Job removed once it ended",
    )
    # another user can neither see nor repair it
    other = jobs_api(hub, hub.login("sven"), "sven")
    assert other("POST", f"/jobs/{job['id']}/runs/{run['id']}/repair").status_code == 404

    t0 = time.monotonic()
    r = rosa("POST", f"/jobs/{job['id']}/runs/{run['id']}/repair")
    assert r.status_code == 201, r.text
    assert r.json()["status"] in ("queued", "running") and r.json()["id"] == run["id"]
    repaired = await wait_for(
        lambda: rosa("GET", f"/jobs/{job['id']}/runs").json()["runs"][0],
        lambda x: x["status"] in ("succeeded", "failed", "cancelled"),
        timeout=420,
        what="the repaired run to end",
    )
    assert repaired["status"] == "succeeded", repaired
    timings["pipeline: repair -> ended (train, then report; 2 pods)"] = time.monotonic() - t0
    t = _tasks(repaired)
    assert t["prepare"]["attempt"] == 1, "what succeeded is not run again"
    assert t["train"]["attempt"] == 2 and t["train"]["status"] == "succeeded"
    assert t["report"]["attempt"] == 2 and t["report"]["status"] == "succeeded"
    assert t["cleanup"]["status"] == "skipped", "nothing failed this time"
    out = rosa("GET", f"/jobs/{job['id']}/runs/{run['id']}/output?task=report&format=ipynb")
    assert out.status_code == 200, out.text[:300]
    model = t["prepare"]["published"]["model_path"]
    assert f"report score=0.93 model={model}" in printed(out.json()), "published by train, and by prepare before it"
    train_out = printed(rosa("GET", f"/jobs/{job['id']}/runs/{run['id']}/output?task=train&format=ipynb").json())
    assert f"trained {model} on 3 rows" in train_out
    jobs = await _task_jobs(batch, run["name"])
    prepares = [j for j in jobs if j.metadata.labels["moonhub.io/task"] == "prepare"]
    assert len(prepares) == 1, "prepare ran once in all"
    r = rosa("POST", f"/jobs/{job['id']}/runs/{run['id']}/repair")
    assert r.status_code == 409, "nothing left to repair"
    assert rosa("DELETE", f"/jobs/{job['id']}").status_code == 204


#: the service is killed as task b starts; whether b ends before the hub has started the
#: service again or after, no transition may be lost and no task started twice. Short
#: steps keep the chain of three (a; b and c; d) from taking minutes
SLOW = notebook("import time\ntime.sleep(12)\nprint('slow step done')")


async def test_a_service_killed_mid_run_loses_no_transition_and_starts_no_task_twice(
    hub: Hub, api: client.ApiClient
) -> None:
    tomas = jobs_api(hub, hub.login("tomas"), "tomas")
    batch = client.BatchV1Api(api)
    tasks = [
        {"name": "a", "notebook": "a.ipynb"},
        {"name": "b", "notebook": "b.ipynb", "depends_on": ["a"]},
        {"name": "c", "notebook": "c.ipynb", "depends_on": ["a"]},
        {"name": "d", "notebook": "d.ipynb", "depends_on": ["b", "c"]},
    ]
    body = {"name": "chain", "schedule": None, "tasks": tasks, "notebook_contents": dict.fromkeys("abcd", SLOW)}
    job = tomas("POST", "/jobs", body).json()
    run = tomas("POST", f"/jobs/{job['id']}/run").json()
    await wait_for(
        lambda: _tasks(tomas("GET", f"/jobs/{job['id']}/runs").json()["runs"][0]),
        lambda t: t.get("b", {}).get("status") in ("queued", "running"),
        timeout=240,
        what="task b started",
    )
    os.kill(_service_pid(hub), signal.SIGKILL)  # the hub restarts its managed service
    await wait_for(lambda: _health(hub), bool, timeout=60, what="the jobs service back")
    [done] = await runs_ended(tomas, job["id"], timeout=420)
    assert done["status"] == "succeeded", done
    assert all(t["status"] == "succeeded" and t["attempt"] == 1 for t in done["tasks"]), done["tasks"]
    jobs = await _task_jobs(batch, run["name"])
    assert sorted(j.metadata.labels["moonhub.io/task"] for j in jobs) == ["a", "b", "c", "d"], "each task once"
    runs = tomas("GET", f"/jobs/{job['id']}/runs").json()["runs"]
    assert len(runs) == 1, "no duplicate run"
    assert tomas("DELETE", f"/jobs/{job['id']}").status_code == 204


async def test_a_scheduled_tick_runs_the_pipeline(hub: Hub) -> None:
    """The CronJob's own Job (made at the tick, never a pod) is taken up as the pipeline's run."""
    ugo = jobs_api(hub, hub.login("ugo"), "ugo")
    quick = notebook("import moonhub\nmoonhub.publish('at', 'tick')")
    show = notebook(("at = 'unset'", ["parameters"]), "print('got', at)")
    tasks = [
        {"name": "first", "notebook": "a.ipynb"},
        {"name": "second", "notebook": "b.ipynb", "depends_on": ["first"]},
    ]
    body = {
        "name": "ticking",
        "schedule": "* * * * *",
        "tasks": tasks,
        "notebook_contents": {"first": quick, "second": show},
    }
    job = ugo("POST", "/jobs", body).json()
    run = await wait_for(
        lambda: (ugo("GET", f"/jobs/{job['id']}/runs").json()["runs"] or [{}])[-1],
        lambda r: r.get("status") in ("succeeded", "failed", "cancelled"),
        timeout=240,
        what="the first scheduled run of the pipeline to end",
    )
    assert ugo("PATCH", f"/jobs/{job['id']}", {"active": False}).status_code == 200
    assert run["trigger"] == "schedule" and run["status"] == "succeeded", run
    assert [(t["name"], t["status"]) for t in run["tasks"]] == [("first", "succeeded"), ("second", "succeeded")]
    assert run["scheduled_for"] and run["scheduled_for"][17:19] == "00", "it stands for the tick"
    out = ugo("GET", f"/jobs/{job['id']}/runs/{run['id']}/output?task=second&format=ipynb").json()
    assert "got tick" in printed(out)
    assert ugo("DELETE", f"/jobs/{job['id']}").status_code == 204
