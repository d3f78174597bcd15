"""The jobs service through the real hub: authentication, ownership, validation, runs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes_asyncio import client
from tornado import web

from moonhub_core import uids
from tests.conftest import HUB_STATE, Hub
from tests.helpers import NOTEBOOK, SHELL_IMAGE, gone, read_from_pvc, wait_for

USER_NS = "moonhub-users"


class Jobs:
    """A client of the jobs service holding one user's token."""

    def __init__(self, hub: Hub, token: str) -> None:
        self.base = f"{hub.url}/services/jobs/api/v1"
        self.headers = {"Authorization": f"token {token}"}

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> requests.Response:
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return requests.request(method, f"{self.base}{path}", headers=self.headers, data=data, timeout=30)


@pytest.fixture(scope="module")
def clients(hub: Hub) -> dict[str, Jobs]:
    out = {}
    for user in ("quinn", "rita", "admin"):
        s = hub.login(user)
        out[user] = Jobs(hub, hub.token(s, user, "access:services!service=jobs"))
    return out


def job_body(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "notebook": "analysis/report.ipynb",
        "notebook_content": NOTEBOOK,
        "schedule": None,
        "parameters": {"rows": 42},
        **extra,
    }


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


async def _runs(c: Jobs, job_id: int) -> list[dict[str, Any]]:
    r = c.call("GET", f"/jobs/{job_id}/runs")
    assert r.status_code == 200, r.text
    return list(r.json()["runs"])


def test_owners_only_and_admins_see_all(hub: Hub, clients: dict[str, Jobs]) -> None:
    quinn, rita, admin = clients["quinn"], clients["rita"], clients["admin"]
    r = quinn.call("POST", "/jobs", job_body("private"))
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert [j["name"] for j in rita.call("GET", "/jobs").json()["jobs"]] == []
    assert "private" in [j["name"] for j in admin.call("GET", "/jobs").json()["jobs"]]
    for method, path in (
        ("GET", f"/jobs/{job_id}"),
        ("DELETE", f"/jobs/{job_id}"),
        ("POST", f"/jobs/{job_id}/run"),
        ("GET", f"/jobs/{job_id}/runs"),
    ):
        r = rita.call(method, path)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
    # the admin sees it and may pause and resume it; a member of the job-admin group too
    for method, path, body in (
        ("GET", f"/jobs/{job_id}", None),
        ("GET", f"/jobs/{job_id}/runs", None),
        ("GET", f"/jobs/{job_id}/versions", None),
        ("PATCH", f"/jobs/{job_id}", {"active": False}),
        ("PATCH", f"/jobs/{job_id}", {"active": True}),
    ):
        r = admin.call(method, path, body)
        assert r.status_code == 200, (method, path, r.text)
    # changing someone's notebook or running it is code execution as them: refused
    # (the operator may allow it: jobs.admins_may_edit), and nothing changed
    for method, path, body in (
        ("PATCH", f"/jobs/{job_id}", {"retries": 1}),
        ("PATCH", f"/jobs/{job_id}", {"notebook_content": NOTEBOOK}),
        ("POST", f"/jobs/{job_id}/run", None),
    ):
        r = admin.call(method, path, body)
        assert r.status_code == 403 and "admins_may_edit" in r.json()["message"], (method, path, r.text)
    shown = quinn.call("GET", f"/jobs/{job_id}").json()
    assert (shown["retries"], shown["version"], shown["last_run"]) == (0, 1, None)
    # the owner reads what the admin did to their job; the admin reads everyone's trail
    mine = quinn.call("GET", "/audit").json()["entries"]
    assert [(e["actor"], e["action"]) for e in mine if e["job_id"] == job_id][:2] == [
        ("admin", "resume"),
        ("admin", "pause"),
    ]
    assert {e["owner"] for e in rita.call("GET", "/audit").json()["entries"]} <= {"rita"}
    assert any(e["owner"] == "quinn" for e in admin.call("GET", "/audit?owner=quinn").json()["entries"])
    victor_session = hub.login("victor")
    admin_session = hub.login("admin")
    assert hub.api(admin_session, "POST", "/groups/job-admins").status_code in (201, 409)
    assert hub.api(admin_session, "POST", "/groups/job-admins/users", json={"users": ["victor"]}).status_code == 200
    victor = Jobs(hub, hub.token(victor_session, "victor", "access:services!service=jobs"))
    assert "private" in [j["name"] for j in victor.call("GET", "/jobs").json()["jobs"]], "job admins see all"
    # what the Schedule dialog offers a job admin is what saving accepts: their own groups'
    # entitlements (a job admin manages others' jobs; only hub admins use the whole catalog)
    offered = victor.call("GET", "/options").json()
    everything = admin.call("GET", "/options").json()
    mine = {g["name"] for g in offered["gpu_types"]}
    beyond = [g for g in everything["gpu_types"] if g["name"] not in mine]
    assert beyond, "the example catalog keeps some GPU types to a group"
    gpu = beyond[0]
    r = victor.call("POST", "/jobs", job_body("beyond", gpu_type=gpu["name"], gpu_count=gpu["counts"][0]))
    assert r.status_code == 403 and r.json()["field"] in ("gpu_type", "gpu_count"), r.text
    env = next(e for e in offered["environments"] if e["default"])["name"]
    size = next(z for z in offered["sizes"] if z["default"])["name"]
    r = victor.call("POST", "/jobs", job_body("offered", environment=env, size=size))
    assert r.status_code == 201, r.text
    assert victor.call("DELETE", f"/jobs/{r.json()['id']}").status_code == 204
    assert quinn.call("DELETE", f"/jobs/{job_id}").status_code == 204
    assert quinn.call("GET", f"/jobs/{job_id}").status_code == 404


def test_cookie_requests_need_xsrf_even_with_an_authorization_header(hub: Hub) -> None:
    """A page elsewhere that makes the browser post to the service with its cookie (and
    any ``Authorization`` header it likes) is refused; a real token needs no XSRF."""
    s = hub.login("xena")
    r = s.get(f"{hub.url}/services/jobs/api/v1/jobs", timeout=30)  # the OAuth dance sets the cookie
    assert r.status_code == 200 and r.json() == {"jobs": []}, r.text
    for headers in ({}, {"Authorization": "token not-a-token"}, {"Authorization": "Bearer x"}):
        r = s.post(f"{hub.url}/services/jobs/api/v1/jobs", data=json.dumps(job_body("forged")), headers=headers)
        assert r.status_code == 403, (headers, r.status_code, r.text)
    assert s.get(f"{hub.url}/services/jobs/api/v1/jobs", timeout=30).json() == {"jobs": []}, "nothing was created"
    token = hub.token(s, "xena", "access:services!service=jobs")
    r = requests.post(
        f"{hub.url}/services/jobs/api/v1/jobs",
        data=json.dumps(job_body("real")),
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    assert Jobs(hub, token).call("DELETE", f"/jobs/{r.json()['id']}").status_code == 204


async def test_entitlements_are_checked_again_at_every_run_and_reconcile(hub: Hub, api: client.ApiClient) -> None:
    """A job keeps what its owner may use today: after the owner leaves the group that
    allowed its size, it is suspended (and "run now" refused) until they may again."""
    s = hub.login("lena")
    admin = hub.login("admin")
    assert hub.api(admin, "POST", "/groups/ml-research").status_code in (201, 409)
    assert hub.api(admin, "POST", "/groups/ml-research/users", json={"users": ["lena"]}).status_code == 200
    lena = Jobs(hub, hub.token(s, "lena", "access:services!service=jobs"))
    r = lena.call("POST", "/jobs", job_body("big", size="large", schedule="0 3 * * *"))
    assert r.status_code == 201, r.text
    job = r.json()
    batch = client.BatchV1Api(api)

    assert hub.api(admin, "DELETE", "/groups/ml-research/users", json={"users": ["lena"]}).status_code == 200
    shown = await wait_for(
        lambda: asyncio.to_thread(lambda: lena.call("GET", f"/jobs/{job['id']}").json()),
        lambda j: j["suspended_reason"],
        timeout=60,
        what="the job suspended at the next reconcile",
    )
    assert "size" in shown["suspended_reason"] and shown["next_run"] is None
    assert (await batch.read_namespaced_cron_job(job["cronjob"], USER_NS)).spec.suspend is True
    r = lena.call("POST", f"/jobs/{job['id']}/run")
    assert r.status_code == 409 and "suspended" in r.json()["message"], r.text
    # pausing needs no entitlement; saving with a size she may use resumes it
    assert lena.call("PATCH", f"/jobs/{job['id']}", {"active": False}).status_code == 200
    r = lena.call("PATCH", f"/jobs/{job['id']}", {"size": "medium", "active": True})
    assert r.status_code == 200 and r.json()["suspended_reason"] is None, r.text
    assert (await batch.read_namespaced_cron_job(job["cronjob"], USER_NS)).spec.suspend is False

    # back in the group: a job suspended meanwhile is resumed by the reconcile
    assert lena.call("PATCH", f"/jobs/{job['id']}", {"size": "large"}).status_code == 403, "not entitled now"
    hub.api(admin, "POST", "/groups/ml-research/users", json={"users": ["lena"]})
    assert lena.call("PATCH", f"/jobs/{job['id']}", {"size": "large"}).status_code == 200
    hub.api(admin, "DELETE", "/groups/ml-research/users", json={"users": ["lena"]})
    await wait_for(
        lambda: asyncio.to_thread(lambda: lena.call("GET", f"/jobs/{job['id']}").json()),
        lambda j: j["suspended_reason"],
        timeout=60,
        what="suspended again",
    )
    hub.api(admin, "POST", "/groups/ml-research/users", json={"users": ["lena"]})
    await wait_for(
        lambda: asyncio.to_thread(lambda: lena.call("GET", f"/jobs/{job['id']}").json()),
        lambda j: j["suspended_reason"] is None,
        timeout=60,
        what="resumed by the reconcile",
    )
    assert (await batch.read_namespaced_cron_job(job["cronjob"], USER_NS)).spec.suspend is False
    actions = [e["action"] for e in lena.call("GET", "/audit").json()["entries"] if e["job_id"] == job["id"]]
    assert "hold" in actions and "release" in actions
    assert lena.call("DELETE", f"/jobs/{job['id']}").status_code == 204


async def test_per_user_caps_and_pruned_snapshots(hub: Hub, core: client.CoreV1Api) -> None:
    """The test hub allows 12 jobs and keeps 3 versions per job; older versions' files leave
    the snapshot store (one file per distinct notebook and owner), and nothing is in etcd."""
    s = hub.login("capped")
    capped = Jobs(hub, hub.token(s, "capped", "access:services!service=jobs"))
    made = []
    for i in range(12):
        r = capped.call("POST", "/jobs", job_body(f"j{i}"))
        assert r.status_code == 201, r.text
        made.append(r.json())
    r = capped.call("POST", "/jobs", job_body("one-too-many"))
    assert r.status_code == 403 and r.json()["field"] == "name" and "limit is 12" in r.json()["message"], r.text
    first = made[0]
    for n in range(5):
        nb = {**NOTEBOOK, "cells": [*NOTEBOOK["cells"], {**NOTEBOOK["cells"][1], "id": f"c{n}"}]}
        r = capped.call("PATCH", f"/jobs/{first['id']}", {"notebook_content": nb})
        assert r.status_code == 200, r.text
    versions = capped.call("GET", f"/jobs/{first['id']}/versions").json()["versions"]
    assert [v["number"] for v in versions] == [4, 5, 6]
    maps = await core.list_namespaced_config_map(USER_NS, label_selector="moonhub.io/owner=capped")
    assert maps.items == [], "notebook versions are not kept in etcd"
    folder = snapshot_folder("capped")
    files = {p.name.removesuffix(".ipynb.gz") for p in folder.iterdir()}
    # the 11 other jobs share version 1's notebook; versions 4 to 6 have one file each
    shared = capped.call("GET", f"/jobs/{made[1]['id']}/versions").json()["versions"][0]["sha256"]
    assert files == {shared} | {v["sha256"] for v in versions}, "versions 2 and 3 went with their files"
    for j in made:
        assert capped.call("DELETE", f"/jobs/{j['id']}").status_code == 204
    assert list(folder.iterdir()) == [], "a deleted job's files go with it"


def snapshot_folder(owner: str) -> Path:
    return HUB_STATE / "job-snapshots" / hashlib.sha256(owner.encode()).hexdigest()[:20]


def test_unauthenticated_requests_are_refused(hub: Hub) -> None:
    r = requests.get(f"{hub.url}/services/jobs/api/v1/jobs", allow_redirects=False, timeout=10)
    assert r.status_code in (302, 403)
    r = requests.post(f"{hub.url}/services/jobs/api/v1/jobs", data="{}", allow_redirects=False, timeout=10)
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"schedule": "0 0 6 * * *"}, 400, "schedule"),
        ({"schedule": "0 6 * * *", "timezone": "Nowhere/City"}, 400, "timezone"),
        ({"notebook": "../../etc/x.ipynb"}, 400, "notebook"),
        ({"notebook": "/abs/x.ipynb"}, 400, "notebook"),
        ({"name": "n" * 40}, 400, "name"),
        ({"environment": "cobol"}, 400, "environment"),
        ({"environment": "pytorch", "gpu_type": "a100", "gpu_count": 1}, 403, "gpu_type"),
        ({"image": "evil/miner"}, 400, "image"),
        ({"notebook_content": {"cells": "nope"}}, 400, "notebook_content"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(
    clients: dict[str, Jobs], change: dict, status: int, field: str
) -> None:
    rita = clients["rita"]
    r = rita.call("POST", "/jobs", {**job_body("bad"), **change})
    assert r.status_code == status, r.text
    assert r.json()["field"] == field, r.json()
    assert rita.call("GET", "/jobs").json()["jobs"] == []


def test_malformed_json_and_oversized_bodies(clients: dict[str, Jobs]) -> None:
    rita = clients["rita"]
    r = rita.call("POST", "/jobs", raw=b"{not json")
    assert r.status_code == 400 and r.json()["field"] == "body"
    # routes without a notebook keep 1 MiB
    r = rita.call("POST", "/jobs/1/backfill", raw=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert r.status_code == 413
    r = rita.call("POST", "/jobs/1/backfill", raw=b" " * (12 * 1024 * 1024))
    assert r.status_code == 413, r.status_code
    # a notebook may be up to jobs.limits.notebook_bytes (64 MiB on the test hub), not more;
    # a body past it is refused from its declared length, not kept
    r = rita.call("POST", "/jobs", raw=b"{" + b" " * (65 * 1024 * 1024) + b"}")
    assert r.status_code == 413 and "64 MiB" in r.text, r.status_code


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


async def _log(c: Jobs, job_id: int, run_id: int) -> str:
    r = c.call("GET", f"/jobs/{job_id}/runs/{run_id}/log")
    return str(r.json().get("log", "")) if r.status_code == 200 else ""


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
    # a user who leaves: their job goes when the service next reconciles
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

    after = {j["name"]: j for j in clients["admin"].call("GET", "/jobs").json()["jobs"]}
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
    sams_cron = sams.json()["cronjob"]
    await wait_for(
        lambda: gone(lambda: batch.read_namespaced_cron_job(sams_cron, USER_NS)),
        bool,
        timeout=30,
        what="the departed user's job removed (the hub answers 404 for them)",
    )
    await asyncio.sleep(6)  # one more reconcile
    assert last.call("GET", f"/jobs/{late['id']}").status_code == 200, "the 205th user's job is kept"
    assert (await batch.read_namespaced_cron_job(late["cronjob"], USER_NS)).metadata.name == late["cronjob"]
    assert last.call("DELETE", f"/jobs/{late['id']}").status_code == 204
    for name in many:
        hub.api(admin, "DELETE", f"/users/{name}")


def _service_pid(hub: Hub) -> int:
    """The jobs service process the test hub started: its child (found in /proc), not another
    hub's (a developer's cluster may run one too)."""
    hub_pid = (hub.config.parent / "jupyterhub.pid").read_text().strip()
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if proc.name.isdigit() and b"jobs_service" in cmd and b"-m" in cmd and parent == hub_pid:
            return int(proc.name)
    raise AssertionError("no jobs service process found")


def _health(hub: Hub) -> bool:
    try:
        return requests.get(f"{hub.url}/services/jobs/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


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


async def test_lab_server_forwards_to_the_jobs_service_with_its_own_token(
    hub: Hub, core: client.CoreV1Api, api: client.ApiClient
) -> None:
    """The browser talks only to its own server; the server extension calls the service.
    The job runs in the same image as the server it was scheduled from."""
    user = "uma"
    s = hub.login(user)
    hub.spawn_form(s, user, environment="python", size="small")
    hub.open_lab(s, user)
    headers = {"X-XSRFToken": s.cookies.get("_xsrf", path=f"/user/{user}/") or ""}
    base = f"{hub.url}/user/{user}/moonhub/api/v1"
    r = s.post(f"{base}/jobs", data=json.dumps(job_body("from-lab")), headers=headers)
    assert r.status_code == 201, r.text
    made = r.json()
    assert r.json()["owner"] == user, "the service saw the server's user"
    assert [j["name"] for j in s.get(f"{base}/jobs").json()["jobs"]] == ["from-lab"]
    # what this server runs: a new job's defaults
    info = s.get(f"{hub.url}/user/{user}/moonhub/server").json()
    assert info.pop("image")["python"], "the image's Python"
    assert info == {"environment": "python", "size": "small", "gpu_type": None, "gpu_count": 0, "jobs_service": True}
    server = await core.read_namespaced_pod(f"jupyter-{user}", "moonhub-users")
    crons = (await client.BatchV1Api(api).list_namespaced_cron_job("moonhub-users")).items
    (cron,) = [c for c in crons if c.metadata.name == made["cronjob"]]
    assert cron.spec.job_template.spec.template.spec.containers[0].image == server.spec.containers[0].image
    bad = s.post(f"{base}/jobs", data=json.dumps({**job_body("x"), "schedule": "* * *"}), headers=headers)
    assert bad.status_code == 400 and bad.json()["field"] == "schedule", "field errors come through unchanged"

    # hostile callers of the server extension's routes (issue 32: route x caller x answer)
    lab = f"{hub.url}/user/{user}"
    routes = ["moonhub/server", "moonhub/notices", "moonhub/workspace", "moonhub/api/v1/jobs"]
    other = hub.login("uma-other")
    for route in routes:
        assert s.get(f"{lab}/{route}").status_code == 200, route
        anonymous = requests.Session().get(f"{lab}/{route}", allow_redirects=False, timeout=30)
        assert anonymous.status_code in (302, 401, 403), (route, anonymous.status_code)
        stranger = other.get(f"{lab}/{route}", allow_redirects=False, timeout=30)
        assert stranger.status_code in (302, 403, 404), ("another user reaches uma's server", route)
        assert "from-lab" not in stranger.text
    no_xsrf = s.post(f"{base}/jobs", data=json.dumps(job_body("no-xsrf")))
    assert no_xsrf.status_code == 403, "a cookie without the XSRF header changes nothing"
    for climb in ("..%2F..%2F..%2Fhub%2Fapi%2Fuser", "jobs%2F..%2F..%2F..%2Fhub%2Fapi%2Fusers", "jobs/%2e%2e/x"):
        r = s.get(f"{base}/{climb}")
        assert r.status_code in (400, 404), (climb, r.status_code, r.text[:200])
        assert "admin" not in r.text and '"kind": "user"' not in r.text, "the forward reaches the jobs API only"
    assert s.get(f"{base}/..%2F..%2F..%2Fhub%2Fapi%2Fuser").status_code == 400
    assert [j["name"] for j in s.get(f"{base}/jobs").json()["jobs"]] == ["from-lab"], "nothing made by the above"
    hub.api(s, "DELETE", f"/users/{user}/server")
