"""The jobs service through the real hub, on the real node: a job's life (create, run,
history, edit, pause, versions, live log and progress, cancel). What needs no
node (every route's answers, options, schedule preview, how tracking follows Jobs that end,
vanish or are replaced, the alerts a failure sends) is the middle tier's (tests/middle)."""

from __future__ import annotations

import json
import time

from kubernetes_asyncio import client

from moonhub_core import uids
from tests.conftest import Hub
from tests.helpers import NOTEBOOK, gone, printed, read_from_pvc, wait_for
from tests.hub.jobs_client import USER_NS, Jobs, _log, _runs, job_body


async def test_create_run_and_history(
    hub: Hub, clients: dict[str, Jobs], core: client.CoreV1Api, api: client.ApiClient
) -> None:
    quinn = clients["quinn"]
    # a value Kubernetes would expand in an environment variable arrives as typed
    typed = "$(HOME) $$ ${USER} é"
    r = quinn.call("POST", "/jobs", job_body("report", parameters={"rows": typed}))
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["owner"], job["version"], job["schedule"]) == ("quinn", 1, None)
    cron = await client.BatchV1Api(api).read_namespaced_cron_job(job["cronjob"], USER_NS)
    assert cron.spec.suspend is True, "a job without a schedule only runs when asked"
    pvc = await core.read_namespaced_persistent_volume_claim("claim-quinn", USER_NS)
    assert pvc.spec.storage_class_name == "glusterfs", "quinn never spawned: the service made the workspace"
    # with a uid of quinn's own, which the runs run as (issue 32, item 6)
    uid = uids.of_claim(pvc)
    assert uid is not None and uid >= uids.FIRST
    pod = cron.spec.job_template.spec.template.spec
    assert (pod.security_context.run_as_user, pod.security_context.fs_group) == (uid, uid)
    assert pod.containers[0].security_context.run_as_user == uid

    r = quinn.call("POST", f"/jobs/{job['id']}/run")
    assert r.status_code == 201, r.text
    run = r.json()
    t0 = time.monotonic()
    runs = await wait_for(
        lambda: _runs(quinn, job["id"]),
        lambda rs: rs and rs[0]["status"] in ("succeeded", "failed"),
        timeout=120,
        what="the run to finish",
    )
    assert runs[0]["status"] == "succeeded", runs[0]
    assert runs[0]["name"] == run["name"] and runs[0]["duration_seconds"] is not None
    out = json.loads(await read_from_pvc(core, USER_NS, "claim-quinn", runs[0]["output"]))
    said = printed(out)
    assert said.strip() == f"rows: {typed}"
    print(f"run now -> succeeded in {time.monotonic() - t0:.1f}s")

    # its log outlives its Job: kept when the run ended (then the Job is marked), read after
    # the Job and its pod are gone as its TTL would leave it (issue 33, item 5)
    batch = client.BatchV1Api(api)
    await wait_for(
        lambda: batch.read_namespaced_job(run["name"], USER_NS),
        lambda j: (j.metadata.labels or {}).get("moonhub.io/run-recorded") == "ended",
        timeout=60,
        what="the ended run's Job marked as recorded",
    )
    await batch.delete_namespaced_job(run["name"], USER_NS, propagation_policy="Foreground")
    await wait_for(
        lambda: core.list_namespaced_pod(USER_NS, label_selector=f"job-name={run['name']}"),
        lambda pods: not pods.items,
        timeout=60,
        what="the run's pod gone with its Job",
    )
    kept = quinn.call("GET", f"/jobs/{job['id']}/runs/{run['id']}/log").json()
    assert "moonhub-run-notebook" in kept["log"] and kept["kept_at"] and kept["pod"], kept
    # the definition shows its newest run, and that nothing is scheduled
    shown = quinn.call("GET", f"/jobs/{job['id']}").json()
    assert shown["last_run"]["id"] == runs[0]["id"] and shown["last_run"]["status"] == "succeeded"
    assert (shown["next_run"], shown["schedule_description"]) == (None, "Only when run by hand")


async def test_edit_pause_versions_cancel_and_logs(
    clients: dict[str, Jobs], core: client.CoreV1Api, api: client.ApiClient
) -> None:
    quinn = clients["quinn"]
    batch = client.BatchV1Api(api)
    r = quinn.call("POST", "/jobs", job_body("nightly", schedule="30 2 * * *", timezone="Europe/Paris"))
    assert r.status_code == 201, r.text
    job = r.json()
    cron = await batch.read_namespaced_cron_job(job["cronjob"], USER_NS)
    assert (cron.spec.suspend, cron.spec.time_zone, cron.spec.concurrency_policy) == (False, "Europe/Paris", "Forbid")

    # pause, and switch to "replace the previous run"
    r = quinn.call("PATCH", f"/jobs/{job['id']}", {"active": False, "concurrency": "replace"})
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    cron = await batch.read_namespaced_cron_job(job["cronjob"], USER_NS)
    assert (cron.spec.suspend, cron.spec.concurrency_policy) == (True, "Replace")
    assert quinn.call("PATCH", f"/jobs/{job['id']}", {"name": "other"}).json()["field"] == "name"
    assert quinn.call("PATCH", f"/jobs/{job['id']}", {"schedule": "* * *"}).status_code == 400

    # a new notebook freezes a new version; runs use it
    slow = {
        **NOTEBOOK,
        "cells": [{**NOTEBOOK["cells"][1], "source": "import time\nprint('sleeping', flush=True)\ntime.sleep(300)"}],
    }
    r = quinn.call("PATCH", f"/jobs/{job['id']}", {"notebook_content": slow})
    assert r.json()["version"] == 2
    assert [v["number"] for v in quinn.call("GET", f"/jobs/{job['id']}/versions").json()["versions"]] == [1, 2]

    run = quinn.call("POST", f"/jobs/{job['id']}/run").json()
    assert run["version"] == 2
    await wait_for(
        lambda: _runs(quinn, job["id"]), lambda rs: rs[0]["status"] == "running", timeout=60, what="the run to start"
    )
    log = await wait_for(
        lambda: _log(quinn, job["id"], run["id"]), lambda t: "sleeping" in t, timeout=60, what="the run's live log"
    )
    assert "moonhub-run-notebook" in log
    # progress is recorded on the run while it runs (the Jobs panel reads it from the list):
    # the injected parameters are cell 1, the sleeping cell is 2 of 2
    await wait_for(
        lambda: _runs(quinn, job["id"]),
        lambda rs: rs[0]["progress"] == {"cell": 2, "of": 2},
        timeout=30,
        what="the run's progress recorded",
    )
    live = quinn.call("GET", f"/jobs/{job['id']}/runs/{run['id']}/log").json()
    assert live["progress"] == {"cell": 2, "of": 2}, live["progress"]
    r = quinn.call("DELETE", f"/jobs/{job['id']}/runs/{run['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    await wait_for(
        lambda: gone(lambda: batch.read_namespaced_job(run["name"], USER_NS)),
        bool,
        timeout=30,
        what="the cancelled Job deleted",
    )
    assert (await _runs(quinn, job["id"]))[0]["status"] == "cancelled"
    assert clients["rita"].call("DELETE", f"/jobs/{job['id']}/runs/{run['id']}").status_code == 404
