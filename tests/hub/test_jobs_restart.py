"""The jobs service killed and started again under the real hub: nothing is lost, and its
reconcile puts Kubernetes back in step."""

from __future__ import annotations

import asyncio
import os
import signal

from kubernetes_asyncio import client

from tests.conftest import Hub
from tests.helpers import SHELL_IMAGE, gone, wait_for
from tests.hub.jobs_client import USER_NS, Jobs, _health, _runs, _service_pid, job_body


async def test_service_restart_loses_nothing_and_reconciles(
    hub: Hub, clients: dict[str, Jobs], api: client.ApiClient
) -> None:
    quinn = clients["quinn"]
    batch = client.BatchV1Api(api)
    job = quinn.call("POST", "/jobs", job_body("survivor", schedule="0 3 * * *")).json()
    quinn.call("POST", f"/jobs/{job['id']}/run")
    await wait_for(
        lambda: _runs(quinn, job["id"]),
        lambda rs: rs[0]["status"] == "succeeded",
        timeout=120,
        what="a finished run before the restart",
    )
    # a user who leaves: their job is held when the service next reconciles
    # (a name of its own: a name made again later is another account, which gets none of
    # what this one leaves, its workspace included)
    leaver = hub.login("sam-leaves")
    sams = Jobs(hub, hub.token(leaver, "sam-leaves", "access:services!service=jobs")).call(
        "POST", "/jobs", job_body("gone")
    )
    assert sams.status_code == 201, sams.text
    admin = hub.login("admin")
    assert hub.api(admin, "DELETE", "/users/sam-leaves").status_code == 204
    # the hub lists users 200 at a time: the 205th user's job must survive every reconcile
    many = [f"crowd{i:03d}" for i in range(205)]
    r = hub.api(admin, "POST", "/users", json={"usernames": many})
    assert r.status_code in (201, 409), r.text
    last = Jobs(hub, hub.token(admin, many[-1], "access:services!service=jobs"))
    r = last.call("POST", "/jobs", job_body("late-in-the-list"))
    assert r.status_code == 201, r.text
    late = r.json()

    before = {j["name"]: j for j in clients["admin"].call("GET", "/jobs").json()["jobs"] if j["owner"] != "sam-leaves"}
    runs_before = await _runs(quinn, job["id"])

    # behind the service's back: its CronJob disappears, and a stray one appears
    await batch.delete_namespaced_cron_job(job["cronjob"], USER_NS)
    stray = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nb-nobody-stray", "labels": {"moonhub.io/component": "notebook-job"}},
        "spec": {
            "schedule": "0 0 * * *",
            "suspend": True,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": SHELL_IMAGE}]}
                    }
                }
            },
        },
    }
    await batch.create_namespaced_cron_job(USER_NS, stray)

    pid = _service_pid(hub)
    os.kill(pid, signal.SIGKILL)  # the hub restarts its managed service
    await wait_for(lambda: _health(hub), bool, timeout=60, what="the jobs service back")
    await wait_for(
        lambda: quinn.call("GET", "/jobs").status_code == 200, bool, timeout=30, what="the API answering again"
    )

    after = {j["name"]: j for j in clients["admin"].call("GET", "/jobs").json()["jobs"] if j["owner"] != "sam-leaves"}
    assert after == before, "definitions survive"
    assert await _runs(quinn, job["id"]) == runs_before, "history survives, no duplicate run"
    cron = await batch.read_namespaced_cron_job(job["cronjob"], USER_NS)
    assert cron.spec.schedule == "0 3 * * *", "the missing CronJob was recreated"
    await wait_for(
        lambda: gone(lambda: batch.read_namespaced_cron_job("nb-nobody-stray", USER_NS)),
        bool,
        timeout=30,
        what="the orphan removed",
    )
    # the departed user's job is held, never deleted: suspended, kept with its history, for
    # a job admin to give to a team or remove (the hub answers 404 for them)
    sams_id, sams_cron = sams.json()["id"], sams.json()["cronjob"]
    held = await wait_for(
        lambda: asyncio.to_thread(clients["admin"].call, "GET", f"/jobs/{sams_id}"),
        lambda r: r.status_code == 200 and "left the hub" in (r.json()["suspended_reason"] or ""),
        timeout=30,
        what="the departed user's job held",
    )
    assert (await batch.read_namespaced_cron_job(sams_cron, USER_NS)).spec.suspend, held.json()
    assert clients["admin"].call("DELETE", f"/jobs/{sams_id}").status_code == 204, "a job admin removes it"
    await asyncio.sleep(6)  # one more reconcile
    assert last.call("GET", f"/jobs/{late['id']}").status_code == 200, "the 205th user's job is kept"
    assert (await batch.read_namespaced_cron_job(late["cronjob"], USER_NS)).metadata.name == late["cronjob"]
    assert last.call("DELETE", f"/jobs/{late['id']}").status_code == 204
    for name in many:
        hub.api(admin, "DELETE", f"/users/{name}")
