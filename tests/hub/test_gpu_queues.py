"""GPU budgets enforced by Kueue: servers through a real hub, on the real control plane with
Kueue's manager running on the node and kwok GPU nodes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
import yaml
from kubernetes_asyncio import client

from moonhub_core import admissions
from moonhub_core import queue_objects as q
from moonhub_core.admissions import holds
from tests.conftest import Hub
from tests.helpers import NOTEBOOK, gpu_job, jobs_api, wait_for

USER_NS = "moonhub-users"
T4 = {"environment": "pytorch", "gpu_type": "t4", "gpu_count": 1}


def _start(hub: Hub, s: requests.Session, path: str, options: dict[str, Any]) -> tuple[int, str]:
    r = hub.api(s, "POST", path, json=options, timeout=120)
    return r.status_code, (r.json().get("message", "") if r.status_code >= 400 else "")


async def _held(custom: Any, user: str) -> int:
    """GPUs Kueue has admitted for ``user``'s queue now (each workload here asks for one)."""
    got = await custom.list_namespaced_custom_object(q.GROUP, q.VERSION, USER_NS, "workloads")
    return sum(1 for w in got["items"] if w["spec"].get("queueName") == q.user_local_queue(user) and holds(w))


async def _peak_while(custom: Any, user: str, running: Callable[[], bool]) -> int:
    peak = 0
    while running():
        peak = max(peak, await _held(custom, user))
        await asyncio.sleep(0.1)
    return peak


async def test_a_user_at_their_maximum_can_not_exceed_it_with_ten_spawns_at_once(
    hub: Hub, api: client.ApiClient, core: client.CoreV1Api, timings: dict[str, float]
) -> None:
    """Everyone may hold one T4: ten servers asked for at once, one is admitted, nine are
    refused with the numbers, and at no instant does Kueue hold two GPUs for the user."""
    user = "quota-kim"
    s = hub.login(user)
    admin = hub.login("admin")
    custom = client.CustomObjectsApi(api)
    names = [f"g{i}" for i in range(10)]
    loop = asyncio.get_running_loop()
    done = False
    peak = asyncio.ensure_future(_peak_while(custom, user, lambda: not done))
    t0 = time.monotonic()
    try:
        with ThreadPoolExecutor(len(names)) as pool:
            results = await asyncio.gather(
                *[loop.run_in_executor(pool, _start, hub, s, f"/users/{user}/servers/{n}", T4) for n in names]
            )
        timings["ten GPU spawns at once: all answered"] = time.monotonic() - t0
        done = True
        assert await peak <= 1, "Kueue never admitted more than the user's maximum"
        # a refusal within the hub's slow-spawn wait is the API's answer; a later one ends
        # the spawn in the background: one server is left running either way
        refused = [message for status, message in results if status == 403]
        assert all(status in (201, 202, 403) for status, _ in results), results
        for message in refused:
            assert message.startswith("not enough GPUs for this server now: you use 1 of your 1"), message
        await wait_for(
            lambda: hub.api(s, "GET", f"/users/{user}").json()["servers"],
            lambda servers: len(servers) == 1,
            timeout=60,
            what="one of the ten servers left; the others refused",
        )
        assert len(refused) >= 5, f"most refusals come at once, with the numbers: {results}"
        # the refused servers left no pod behind
        await wait_for(
            lambda: core.list_namespaced_pod(USER_NS, label_selector=f"hub.jupyter.org/username={user}"),
            lambda pods: len([p for p in pods.items if not p.metadata.deletion_timestamp]) == 1,
            timeout=60,
            what="only the admitted server's pod left",
        )
    finally:
        done = True
        for n in names:
            hub.api(admin, "DELETE", f"/users/{user}/servers/{n}", json={"remove": True})
    await wait_for(
        lambda: core.list_namespaced_pod(USER_NS, label_selector=f"hub.jupyter.org/username={user}"),
        lambda pods: not pods.items,
        timeout=90,
        what=f"{user}'s pods removed",
    )


async def test_a_waiting_server_shows_its_place_and_starts_when_gpus_free_up(
    hub: Hub, api: client.ApiClient, core: client.CoreV1Api
) -> None:
    user = "quota-lee"
    s = hub.login(user)
    admin = hub.login("admin")
    try:
        assert _start(hub, s, f"/users/{user}/servers/first", T4)[0] in (201, 202)
        custom = client.CustomObjectsApi(api)
        await wait_for(lambda: _held(custom, user), lambda n: n == 1, timeout=30, what="the first admitted")
        status, _ = _start(hub, s, f"/users/{user}/servers/second", {**T4, "wait_for_gpus": True})
        assert status in (201, 202), "a spawn that may wait is not refused"
        events = _progress_messages(hub, s, f"/users/{user}/servers/second", until="place 1 in the queue")
        assert any("waiting for GPUs, place 1 in the queue: you use 1 of your 1" in e for e in events), events
        hub.api(s, "DELETE", f"/users/{user}/servers/first")
        pod = f"jupyter-{user}--second"
        await wait_for(
            lambda: core.read_namespaced_pod(pod, USER_NS),
            lambda p: bool(p.spec.node_name),
            timeout=60,
            what="the waiting server admitted and scheduled once the first stopped",
        )
    finally:
        for n in ("first", "second"):
            hub.api(admin, "DELETE", f"/users/{user}/servers/{n}", json={"remove": True})


def _progress_messages(hub: Hub, s: requests.Session, server_path: str, until: str, timeout: float = 60) -> list[str]:
    """The spawn page's progress messages until one contains ``until``."""
    seen: list[str] = []
    headers = {"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/") or ""}
    with s.get(f"{hub.url}/hub/api{server_path}/progress", headers=headers, stream=True, timeout=timeout) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                seen.append(str(event.get("message", "")))
                if until in seen[-1] or event.get("failed") or event.get("ready"):
                    break
    return seen


async def test_a_catalog_edit_changes_the_queues_without_restart(hub: Hub, api: client.ApiClient) -> None:
    """The jobs service re-applies the catalog: a team's quota and borrowing limit follow."""
    custom = client.CustomObjectsApi(api)
    original = hub.catalog.read_text()
    doc = yaml.safe_load(original)
    doc["group_gpu_quotas"]["ml-research"] = 5
    doc["group_gpu_borrowing_limits"] = {"ml-research": 2}
    try:
        hub.catalog.write_text(yaml.safe_dump(doc))

        async def team() -> dict[str, Any]:
            return dict(
                await custom.get_cluster_custom_object(q.GROUP, q.VERSION, "cohorts", q.team_cohort("ml-research"))
            )

        cohort = await wait_for(
            team,
            lambda c: (
                c["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]
                == {"name": q.BUDGET_RESOURCE, "nominalQuota": "5", "borrowingLimit": "2"}
            ),
            timeout=60,
            what="the team's cohort to follow the catalog",
        )
        assert cohort["spec"]["parentName"] == q.root_cohort_name()
    finally:
        hub.catalog.write_text(original)


def _research(hub: Hub, admin: requests.Session, *users: str, group: str = "ml-research") -> None:
    r = hub.api(admin, "POST", f"/groups/{group}")
    assert r.status_code in (201, 409), r.text
    r = hub.api(admin, "POST", f"/groups/{group}/users", json={"users": list(users)})
    assert r.status_code == 200, r.text


async def test_a_team_at_quota_queues_its_runs_which_start_in_order_as_gpus_free_up(
    hub: Hub, api: client.ApiClient, core: client.CoreV1Api, timings: dict[str, float]
) -> None:
    """q-team owns 2 GPUs: one member's server holds both; another member's two runs
    (run now) wait in the queue with the reason and their place, and run, oldest first, once
    the server stops. Kueue's admission is what holds them: their Jobs stay suspended."""
    original = hub.catalog.read_text()
    doc = yaml.safe_load(original)
    # a team of its own: what other tests' researchers hold does not count here
    doc["group_gpu_quotas"]["q-team"] = 2
    doc["entitlements"].append({"groups": ["q-team"], "gpu_types": ["a100"], "max_gpus_per_user": 8})
    admin = hub.login("admin")
    holder, runner = "team-ann", "team-bob"
    s_holder, s_runner = hub.login(holder), hub.login(runner)
    _research(hub, admin, holder, runner, group="q-team")
    batch = client.BatchV1Api(api)
    try:
        hub.catalog.write_text(yaml.safe_dump(doc))
        custom = client.CustomObjectsApi(api)
        await wait_for(
            lambda: custom.get_cluster_custom_object(q.GROUP, q.VERSION, "cohorts", q.team_cohort("q-team")),
            lambda c: c["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["nominalQuota"] == "2",
            timeout=60,
            what="the team's quota of 2",
        )
        a100 = {"environment": "pytorch", "gpu_type": "a100", "gpu_count": 2}
        assert _start(hub, s_holder, f"/users/{holder}/server", a100)[0] in (201, 202)
        await wait_for(lambda: _held(custom, holder), lambda n: n == 1, timeout=30, what="the server admitted")
        jobs = jobs_api(hub, s_runner, runner)
        body = gpu_job("train", "a100", 1)
        r = jobs("POST", "/jobs", body)
        assert r.status_code == 201, r.text
        job = r.json()
        first = jobs("POST", f"/jobs/{job['id']}/run")
        second = jobs("POST", f"/jobs/{job['id']}/run")
        assert first.status_code == 201 and second.status_code == 201, (first.text, second.text)
        runs = await wait_for(
            lambda: jobs("GET", f"/jobs/{job['id']}/runs").json()["runs"],
            lambda rs: (
                len(rs) == 2 and all((r["reason"] or "").startswith("queued: waiting for 1 GPU, place") for r in rs)
            ),
            timeout=60,
            what="both runs queued with their reason",
        )
        places = sorted(r["reason"].split("place ")[1].split(" ")[0] for r in runs)
        assert places == ["1", "2"], runs
        assert all("q-team uses 2 of its 2; you use 0 of your 8" in r["reason"] for r in runs), runs
        for r in runs:
            assert (await batch.read_namespaced_job(r["name"], USER_NS)).spec.suspend, "Kueue holds the Job"
        # the admin console shows the team's queue: its quota, what it holds, who waits
        headers = {"X-XSRFToken": admin.cookies.get("_xsrf", path="/hub/") or ""}
        usage = admin.get(f"{hub.url}/hub/moonhub-admin/api/usage", headers=headers, timeout=30).json()
        team = next(t for t in usage["queues"] if t["team"] == "q-team")
        assert (team["quota"], team["used"], team["borrowed"]) == (2, 2, 0), team
        assert [(w["owner"], w["kind"], w["gpus"]) for w in team["waiting"]] == [(runner, "job run", 1)] * 2
        page = admin.get(f"{hub.url}/hub/moonhub-admin", timeout=30).text
        assert 'id="gpu-queues"' in page and f"{runner}: job run, 1 GPU" in page
        # GPU-hours, sampled from Kueue's admissions: the server's GPUs count while it runs
        as_admin = jobs_api(hub, admin, "admin")
        usage = await wait_for(
            lambda: as_admin("GET", "/gpu-usage?days=1").json(),
            lambda u: any(x["user"] == holder and x["gpu_hours"] > 0 for x in u["users"]),
            timeout=60,
            what="the holder's GPU-hours",
        )
        teams = {t["team"]: t["gpu_hours"] for t in usage["teams"]}
        assert teams.get("q-team", 0) > 0, usage
        assert jobs("GET", "/gpu-usage").status_code == 403, "everyone's usage is for job admins"
        token = hub.token(admin, "admin", "access:services!service=jobs")
        metrics = await asyncio.to_thread(
            requests.get, f"{hub.url}/services/jobs/metrics", headers={"Authorization": f"token {token}"}, timeout=30
        )
        assert f'moonhub_gpu_seconds_total{{team="q-team",user="{holder}"}}' in metrics.text, metrics.text[-500:]
        t0 = time.monotonic()
        hub.api(s_holder, "DELETE", f"/users/{holder}/server")
        done = await wait_for(
            lambda: jobs("GET", f"/jobs/{job['id']}/runs").json()["runs"],
            lambda rs: all(r["status"] == "succeeded" for r in rs),
            timeout=120,
            what="both runs to run once the GPUs were free",
        )
        timings["queued GPU runs: server stopped -> both runs done"] = time.monotonic() - t0
        by_id = sorted(done, key=lambda r: r["id"])
        assert by_id[0]["started"] <= by_id[1]["started"], "the older run started first"
        assert not any(r["reason"] for r in done), "the reason it waited is gone once it ran"
    finally:
        hub.catalog.write_text(original)
        hub.api(admin, "DELETE", f"/users/{holder}/server")


async def test_borrowing_up_to_the_limit_and_giving_back(
    hub: Hub, api: client.ApiClient, core: client.CoreV1Api, timings: dict[str, float]
) -> None:
    """q-borrow owns 4 GPUs and may borrow 4; q-owner owns 16, among them the 8 V100s. A
    q-borrow server of 8 V100s borrows q-owner's idle ones; one more GPU is past the limit.
    When q-owner wants its V100s, a borrowed server is not preempted by default (q-owner's spawn
    is refused), and is once the admin allows preempting servers: it stops, and q-owner's
    server is admitted."""
    original = hub.catalog.read_text()
    doc = yaml.safe_load(original)
    doc["group_gpu_quotas"] |= {"q-borrow": 4, "q-owner": 16}
    doc["group_gpu_borrowing_limits"] = {"q-borrow": 4}
    # q-owner owns the cluster's 8 V100s: what another team borrows of them, it can take back
    doc["group_gpu_type_quotas"] = {"q-owner": {"v100": 8}}
    next(g for g in doc["gpu_types"] if g["name"] == "v100")["counts"] = [1, 2, 4, 8]
    for team in ("q-borrow", "q-owner"):
        doc["entitlements"].append({"groups": [team], "gpu_types": ["v100"], "max_gpus_per_user": 8})
    admin = hub.login("admin")
    borrower, extra, owner = "bor-ann", "bor-abe", "vis-val"
    sessions = {u: hub.login(u) for u in (borrower, extra, owner)}
    for group, users in (("q-borrow", [borrower, extra]), ("q-owner", [owner])):
        r = hub.api(admin, "POST", f"/groups/{group}")
        assert r.status_code in (201, 409), r.text
        assert hub.api(admin, "POST", f"/groups/{group}/users", json={"users": users}).status_code == 200
    custom = client.CustomObjectsApi(api)

    async def quota(group: str) -> tuple[int, int | None]:
        c = await custom.get_cluster_custom_object(q.GROUP, q.VERSION, "cohorts", q.team_cohort(group))
        return admissions.budget(c["spec"])

    def v100(n: int, **more: Any) -> dict[str, Any]:
        return {"environment": "pytorch", "gpu_type": "v100", "gpu_count": n, **more}

    try:
        hub.catalog.write_text(yaml.safe_dump(doc))
        await wait_for(lambda: quota("q-owner"), lambda got: got == (16, 0), timeout=60, what="q-owner's cohort")
        assert await quota("q-borrow") == (4, 4)
        status, message = _start(hub, sessions[borrower], f"/users/{borrower}/server", v100(8))
        assert status in (201, 202), message
        await wait_for(lambda: _held(custom, borrower), lambda n: n == 1, timeout=30, what="8 GPUs, 4 borrowed")
        status, message = _start(hub, sessions[extra], f"/users/{extra}/server", v100(1))
        assert status == 403 and "q-borrow uses 8 of its 4 (4 borrowed, at most 4)" in message, (status, message)

        status, message = _start(hub, sessions[owner], f"/users/{owner}/server", v100(4))
        assert status == 403, "servers on borrowed GPUs are not preempted unless the admin allows it"
        assert (await core.read_namespaced_pod(f"jupyter-{borrower}", USER_NS)).metadata.deletion_timestamp is None

        doc["preempt_borrowed_servers"] = True
        hub.catalog.write_text(yaml.safe_dump(doc))
        await wait_for(
            lambda: custom.get_cluster_custom_object(q.GROUP, q.VERSION, "clusterqueues", q.user_cluster_queue(owner)),
            lambda cq: cq["spec"]["preemption"]["reclaimWithinCohort"] == "Any",
            timeout=60,
            what="the queues to follow the catalog",
        )
        t0 = time.monotonic()
        status, message = _start(hub, sessions[owner], f"/users/{owner}/server", v100(4, wait_for_gpus=True))
        assert status in (201, 202), message
        await wait_for(
            lambda: core.read_namespaced_pod(f"jupyter-{owner}", USER_NS),
            lambda p: bool(p.spec.node_name),
            timeout=90,
            what="q-owner's server admitted and scheduled once the borrowed GPUs came back",
        )
        timings["borrowed GPUs given back: owner's spawn -> scheduled"] = time.monotonic() - t0
        await wait_for(
            lambda: core.list_namespaced_pod(USER_NS, label_selector=f"hub.jupyter.org/username={borrower}"),
            lambda pods: not [p for p in pods.items if not p.metadata.deletion_timestamp],
            timeout=60,
            what="the borrowing server preempted",
        )
    finally:
        hub.catalog.write_text(original)
        for u in (borrower, extra, owner):
            hub.api(admin, "DELETE", f"/users/{u}/server")
        for group, users in (("q-borrow", [borrower, extra]), ("q-owner", [owner])):
            hub.api(admin, "DELETE", f"/groups/{group}/users", json={"users": users})


async def test_servers_and_run_now_at_once_never_pass_the_users_maximum(
    hub: Hub, api: client.ApiClient, core: client.CoreV1Api
) -> None:
    """One T4 at most: five servers and five runs of a T4 job asked for at once. Kueue never
    holds two for the user; the servers that do not fit are refused, the runs wait and run
    one after another once the server that got the GPU stops."""
    user = "mix-max"
    s = hub.login(user)
    admin = hub.login("admin")
    jobs = jobs_api(hub, s, user)
    body = {"name": "t4", "notebook": "t4.ipynb", "notebook_content": NOTEBOOK, "schedule": None, **T4}
    r = jobs("POST", "/jobs", body)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    custom = client.CustomObjectsApi(api)
    done = False
    peak = asyncio.ensure_future(_peak_while(custom, user, lambda: not done))
    loop = asyncio.get_running_loop()
    try:
        with ThreadPoolExecutor(10) as pool:
            servers = [loop.run_in_executor(pool, _start, hub, s, f"/users/{user}/servers/m{i}", T4) for i in range(5)]
            runs = [loop.run_in_executor(pool, jobs, "POST", f"/jobs/{job_id}/run") for _ in range(5)]
            results = await asyncio.gather(*servers)
            assert all(r.status_code == 201 for r in await asyncio.gather(*runs)), "runs are queued, not refused"
        for status, message in results:
            assert status in (201, 202) or message.startswith("not enough GPUs for this server now"), message
        await wait_for(
            lambda: hub.api(s, "GET", f"/users/{user}").json()["servers"],
            lambda servers: len(servers) <= 1,
            timeout=60,
            what="at most one server left",
        )
        for name in hub.api(s, "GET", f"/users/{user}").json()["servers"]:
            hub.api(s, "DELETE", f"/users/{user}/servers/{name}")
        await wait_for(
            lambda: jobs("GET", f"/jobs/{job_id}/runs").json()["runs"],
            lambda rs: len(rs) == 5 and all(r["status"] == "succeeded" for r in rs),
            timeout=180,
            what="the five runs done, one GPU at a time",
        )
        done = True
        assert await peak <= 1, "never two GPUs for a user whose maximum is one"
    finally:
        done = True
        for i in range(5):
            hub.api(admin, "DELETE", f"/users/{user}/servers/m{i}", json={"remove": True})


async def test_leaving_a_team_moves_the_users_next_run_to_their_new_team(hub: Hub, api: client.ApiClient) -> None:
    original = hub.catalog.read_text()
    doc = yaml.safe_load(original)
    doc["group_gpu_quotas"]["vision"] = 4
    doc["entitlements"].append({"groups": ["vision"], "gpu_types": ["a100"], "max_gpus_per_user": 2})
    user = "mover"
    s, admin = hub.login(user), hub.login("admin")
    custom = client.CustomObjectsApi(api)
    _research(hub, admin, user)
    try:
        hub.catalog.write_text(yaml.safe_dump(doc))
        await wait_for(
            lambda: custom.list_cluster_custom_object(q.GROUP, q.VERSION, "cohorts"),
            lambda got: q.team_cohort("vision") in [c["metadata"]["name"] for c in got["items"]],
            timeout=60,
            what="vision's cohort",
        )
        jobs = jobs_api(hub, s, user)
        a100 = {"environment": "pytorch", "gpu_type": "a100", "gpu_count": 1}
        r = jobs("POST", "/jobs", {"name": "move", "notebook": "m.ipynb", "notebook_content": NOTEBOOK, **a100})
        assert r.status_code == 201, r.text

        async def cohort() -> str:
            cq = await custom.get_cluster_custom_object(q.GROUP, q.VERSION, "clusterqueues", q.user_cluster_queue(user))
            return str(cq["spec"]["cohortName"])

        assert await cohort() == q.team_cohort("ml-research")
        assert hub.api(admin, "DELETE", "/groups/ml-research/users", json={"users": [user]}).status_code == 200
        assert hub.api(admin, "POST", "/groups/vision", json={}).status_code in (201, 409)
        assert hub.api(admin, "POST", "/groups/vision/users", json={"users": [user]}).status_code == 200
        assert jobs("POST", f"/jobs/{r.json()['id']}/run").status_code == 201
        assert await cohort() == q.team_cohort("vision"), "the run counts against the team the user is in now"
    finally:
        hub.catalog.write_text(original)
        hub.api(admin, "DELETE", "/groups/vision/users", json={"users": [user]})
