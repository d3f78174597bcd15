"""The jobs service through the real hub: a job's life (create, run, history, edit, pause,
versions, cancel, logs, concurrency), its options and schedule preview, and its alerts."""

from __future__ import annotations

import json
import time
from typing import Any

import requests
from kubernetes_asyncio import client
from tornado import web

from moonhub_core import uids
from tests.conftest import Hub
from tests.helpers import NOTEBOOK, gone, read_from_pvc, wait_for
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
    printed = "".join("".join(o.get("text", [])) for c in out["cells"] for o in c.get("outputs", []))
    assert printed.strip() == f"rows: {typed}"
    print(f"run now -> succeeded in {time.monotonic() - t0:.1f}s")
    # the definition shows its newest run, and that nothing is scheduled
    shown = quinn.call("GET", f"/jobs/{job['id']}").json()
    assert shown["last_run"]["id"] == runs[0]["id"] and shown["last_run"]["status"] == "succeeded"
    assert (shown["next_run"], shown["schedule_description"]) == (None, "Only when run by hand")


def test_schedule_preview_and_entitled_options(hub: Hub, clients: dict[str, Jobs]) -> None:
    quinn, admin = clients["quinn"], clients["admin"]
    r = quinn.call("GET", "/schedule-preview?schedule=0+6+*+*+1-5&timezone=Asia/Tokyo")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["description"] == "At 06:00, Monday through Friday" and len(got["next"]) == 3
    assert all(t.endswith("+09:00") and "T06:00:00" in t for t in got["next"])
    bad = quinn.call("GET", "/schedule-preview?schedule=0+6+*&timezone=UTC")
    assert bad.status_code == 400 and bad.json()["field"] == "schedule"
    bad = quinn.call("GET", "/schedule-preview?schedule=0+6+*+*+*&timezone=Moon/Base")
    assert bad.status_code == 400 and bad.json()["field"] == "timezone"
    # what a job may use follows the caller's entitlements
    mine = quinn.call("GET", "/options").json()
    assert [(g["name"], g["counts"]) for g in mine["gpu_types"]] == [("t4", [1])]
    assert len(admin.call("GET", "/options").json()["gpu_types"]) == 3
    r = requests.get(f"{hub.url}/services/jobs/api/v1/options", allow_redirects=False, timeout=10)
    assert r.status_code in (302, 403), "no login, no catalog"
    # a scheduled job says when it runs next (in its zone)
    r = quinn.call("POST", "/jobs", job_body("daily", schedule="30 7 * * *", timezone="Asia/Tokyo"))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["next_run"].endswith("T07:30:00+09:00") and job["schedule_description"] == "At 07:30"
    paused = quinn.call("PATCH", f"/jobs/{job['id']}", {"active": False}).json()
    assert paused["next_run"] is None, "a paused job has no next run"
    assert quinn.call("DELETE", f"/jobs/{job['id']}").status_code == 204


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


async def test_skip_if_running_and_replace_previous(clients: dict[str, Jobs], timings: dict[str, float]) -> None:
    """Two every-minute jobs whose runs outlast a minute: one skips, one replaces."""
    quinn = clients["quinn"]
    slow = {**NOTEBOOK, "cells": [{**NOTEBOOK["cells"][1], "source": "import time\ntime.sleep(240)"}]}
    ids = {}
    for mode in ("skip", "replace"):
        body = {
            **job_body(f"every-minute-{mode}"),
            "notebook_content": slow,
            "schedule": "* * * * *",
            "concurrency": mode,
        }
        r = quinn.call("POST", "/jobs", body)
        assert r.status_code == 201, r.text
        ids[mode] = r.json()["id"]
    t0 = time.monotonic()
    for mode, job_id in ids.items():
        await wait_for(
            lambda j=job_id: _runs(quinn, j),
            lambda rs: rs and rs[0]["status"] == "running",
            timeout=150,
            what=f"the first scheduled run of the {mode} job",
        )
    # the next minute's tick: "replace" swaps the run, "skip" leaves the running one alone
    replaced = await wait_for(
        lambda: _runs(quinn, ids["replace"]),
        lambda rs: len(rs) >= 2 and rs[1]["status"] == "cancelled",
        timeout=150,
        what="the replace job's next run to replace the running one",
    )
    timings["two CronJob ticks (skip / replace check)"] = time.monotonic() - t0
    assert replaced[0]["trigger"] == "schedule" and "replaced" in replaced[1]["reason"]
    skipped = await _runs(quinn, ids["skip"])
    assert [r["status"] for r in skipped] == ["running"], "skip-if-running started no second run"
    for job_id in ids.values():
        assert quinn.call("DELETE", f"/jobs/{job_id}").status_code == 204


async def test_failure_mails_the_owner_and_calls_the_webhook(hub: Hub, clients: dict[str, Jobs]) -> None:
    received: list[dict[str, Any]] = []

    class Hook(web.RequestHandler):
        def post(self) -> None:
            received.append(json.loads(self.request.body))

    server = web.Application([("/hook", Hook)]).listen(18026, "127.0.0.1")
    try:
        failing = {**NOTEBOOK, "cells": [{**NOTEBOOK["cells"][1], "source": "1 / 0"}]}
        body = {
            **job_body("alerting"),
            "notebook_content": failing,
            "notify": {"emails": ["quinn@example.org"], "webhook": "http://127.0.0.1:18026/hook?token=s3cret"},
        }
        quinn = clients["quinn"]
        job = quinn.call("POST", "/jobs", body).json()
        run = quinn.call("POST", f"/jobs/{job['id']}/run").json()
        await wait_for(
            lambda: _runs(quinn, job["id"]), lambda rs: rs[0]["status"] == "failed", timeout=120, what="the failing run"
        )
        await wait_for(lambda: received, bool, timeout=30, what="the webhook call")
        assert received[0]["event"] == "run.failed" and received[0]["run"]["name"] == run["name"]
        mails = await wait_for(
            lambda: [m for m in hub.mailbox if "alerting" in m["Subject"]],
            bool,
            timeout=30,
            what="the failure e-mail",
        )
        assert mails[0]["To"] == "quinn@example.org"
        assert "failed" in mails[0]["Subject"] and run["name"] in mails[0].get_content()
        assert len(received) == 1, "told once"
    finally:
        server.stop()
