"""CPU, memory and pods per user, counted by Kueue for every server and every kind of run:
a real hub and jobs service, the real control plane with Kueue's manager on the node."""

from __future__ import annotations

from typing import Any

import yaml
from kubernetes_asyncio import client

from moonhub_core import admissions
from moonhub_core import queue_objects as q
from tests.conftest import Hub
from tests.helpers import NOTEBOOK, jobs_api, wait_for

USER_NS = "moonhub-users"


def _bounded(original: str, **bound: Any) -> str:
    """The catalog with everyone's ``max_per_user`` set to ``bound`` (the test users are in
    no other entitlement, so it is theirs)."""
    doc = yaml.safe_load(original)
    for ent in doc["entitlements"]:
        if "*" in ent["groups"]:
            ent["max_per_user"] = bound
    return yaml.safe_dump(doc)


async def _tick(batch: client.BatchV1Api, cronjob: str, n: int = 0) -> str:
    """What the CronJob controller does at a tick: a Job from its template, owned by it."""
    cron = await batch.read_namespaced_cron_job(cronjob, USER_NS)
    tmpl = cron.spec.job_template
    name = f"{cronjob[:40]}-t{n}"
    owner = client.V1OwnerReference(
        api_version="batch/v1", kind="CronJob", name=cronjob, uid=cron.metadata.uid, controller=True
    )
    meta = client.V1ObjectMeta(
        name=name,
        labels=dict(tmpl.metadata.labels or {}),
        annotations=tmpl.metadata.annotations,
        owner_references=[owner],
    )
    await batch.create_namespaced_job(USER_NS, client.V1Job(metadata=meta, spec=tmpl.spec))
    return name


async def test_a_users_pods_bound_holds_for_servers_run_now_and_scheduled_runs(
    hub: Hub, api: client.ApiClient, core: client.CoreV1Api
) -> None:
    """Bound to one pod: the first server starts; a second server is a 403 naming the bound;
    "Run now" is a 403 naming it; a run its schedule starts waits suspended in the queue
    with the reason, and runs once the server stops. Kueue holds it, not MoonHub's count."""
    user = "bound-una"
    original = hub.catalog.read_text()
    s = hub.login(user)
    admin = hub.login("admin")
    batch = client.BatchV1Api(api)
    jobs = jobs_api(hub, s, user)
    try:
        hub.catalog.write_text(_bounded(original, pods=1))
        r = hub.api(s, "POST", f"/users/{user}/server", json={}, timeout=120)
        assert r.status_code in (201, 202), r.text
        custom = client.CustomObjectsApi(api)
        cq = await wait_for(
            lambda: custom.get_cluster_custom_object(q.GROUP, q.VERSION, "clusterqueues", q.user_cluster_queue(user)),
            lambda c: admissions.compute_bounds(c["spec"]).get("pods") == 1,
            timeout=30,
            what="the user's queue bounds pods at 1",
        )
        assert "cpu" not in admissions.compute_bounds(cq["spec"]), "unset: CPU is not bounded"
        await wait_for(
            lambda: hub.api(s, "GET", f"/users/{user}").json()["servers"],
            lambda servers: (servers.get("") or {}).get("ready"),
            timeout=120,
            what="the first server ready (a CPU server, admitted by Kueue)",
        )
        r = hub.api(s, "POST", f"/users/{user}/servers/second", json={}, timeout=120)
        assert r.status_code == 403, r.text
        message = r.json()["message"]
        assert message.startswith("this server would pass your limits: you hold 1 pod of your 1 pod"), message
        assert "max_per_user.pods" in message
        await wait_for(
            lambda: core.list_namespaced_pod(USER_NS, label_selector=f"hub.jupyter.org/username={user}"),
            lambda pods: len([p for p in pods.items if not p.metadata.deletion_timestamp]) == 1,
            timeout=60,
            what="the refused server left no pod",
        )

        body = {"name": "bounded", "notebook": "b.ipynb", "notebook_content": NOTEBOOK, "schedule": "0 3 * * *"}
        r = jobs("POST", "/jobs", body)
        assert r.status_code == 201, r.text
        job = r.json()
        now = jobs("POST", f"/jobs/{job['id']}/run")
        assert now.status_code == 403, now.text
        assert "max_per_user.pods" in now.text and "you hold 1 pod of your 1 pod" in now.text, now.text
        assert jobs("GET", f"/jobs/{job['id']}/runs").json()["runs"] == [], "nothing half-created"

        ticked = await _tick(batch, job["cronjob"])
        assert (await batch.read_namespaced_job(ticked, USER_NS)).spec.suspend, "Kueue suspends it at creation"
        runs = await wait_for(
            lambda: jobs("GET", f"/jobs/{job['id']}/runs").json()["runs"],
            lambda rs: len(rs) == 1 and (rs[0]["reason"] or "").startswith("queued: waiting for its owner's other"),
            timeout=90,
            what="the scheduled run queued with the reason",
        )
        assert "you hold 1 pod of your 1 pod (max_per_user.pods)" in runs[0]["reason"], runs
        assert runs[0]["status"] == "queued" and runs[0]["trigger"] == "schedule", runs
        pods = await core.list_namespaced_pod(USER_NS, label_selector=f"job-name={ticked}")
        assert not pods.items, "no pod while it waits"

        # scheduled runs that wait count against the runs one may have queued or running
        # (jobs.limits.active_runs_per_user, 10): ticks past it are not started, so a
        # `* * * * *` schedule does not pile up Jobs
        for n in range(1, 11):
            await _tick(batch, job["cronjob"], n)
        runs = await wait_for(
            lambda: jobs("GET", f"/jobs/{job['id']}/runs").json()["runs"],
            lambda rs: len(rs) == 11 and sum(r["status"] == "cancelled" for r in rs) == 1,
            timeout=90,
            what="ten runs queued, the eleventh not started",
        )
        (over,) = [r for r in runs if r["status"] == "cancelled"]
        assert "the limit is 10 (jobs.limits.active_runs_per_user)" in over["reason"], over
        first = min((r for r in runs if r["status"] == "queued"), key=lambda r: r["id"])
        for r in runs:
            if r["status"] == "queued" and r["id"] != first["id"]:
                assert jobs("DELETE", f"/jobs/{job['id']}/runs/{r['id']}").status_code == 200

        hub.api(s, "DELETE", f"/users/{user}/server")
        done = await wait_for(
            lambda: [r for r in jobs("GET", f"/jobs/{job['id']}/runs").json()["runs"] if r["id"] == first["id"]],
            lambda rs: rs[0]["status"] in ("succeeded", "failed"),
            timeout=180,
            what="the scheduled run to run once the server stopped",
        )
        assert done[0]["status"] == "succeeded", done
        assert not done[0]["reason"], "the reason it waited is gone once it ran"
    finally:
        hub.catalog.write_text(original)
        for name in ("", "second"):
            path = f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"
            hub.api(admin, "DELETE", path, **({"json": {"remove": True}} if name else {}))


async def test_a_size_larger_than_the_users_cpu_bound_is_refused_naming_size(hub: Hub) -> None:
    user = "bound-vic"
    original = hub.catalog.read_text()
    s = hub.login(user)
    jobs = jobs_api(hub, s, user)
    try:
        hub.catalog.write_text(_bounded(original, cpu=0.2, pods=5))
        r = hub.api(s, "POST", f"/users/{user}/server", json={"size": "medium"}, timeout=60)
        assert r.status_code == 403, r.text
        assert "size 'Medium" in r.json()["message"] and "at most 0.2 at once" in r.json()["message"]
        body = {"name": "big", "notebook": "b.ipynb", "notebook_content": NOTEBOOK, "schedule": None, "size": "medium"}
        r = jobs("POST", "/jobs", body)
        assert r.status_code == 403, r.text
        assert r.json()["field"] == "size", r.text
    finally:
        hub.catalog.write_text(original)
