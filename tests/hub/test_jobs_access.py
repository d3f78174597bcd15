"""Who may do what in the jobs service, through the real hub: owners, other users, job
admins and the hub's groups, callers without a token or without XSRF, and the lab server
extension's forward. Entitlements checked again at every run and reconcile are the middle
tier's (tests/middle/test_entitlements_and_secrets.py)."""

from __future__ import annotations

import json

import requests
from kubernetes_asyncio import client

from tests.conftest import Hub
from tests.helpers import NOTEBOOK
from tests.hub.jobs_client import Jobs, job_body


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


def test_unauthenticated_requests_are_refused(hub: Hub) -> None:
    r = requests.get(f"{hub.url}/services/jobs/api/v1/jobs", allow_redirects=False, timeout=10)
    assert r.status_code in (302, 403)
    r = requests.post(f"{hub.url}/services/jobs/api/v1/jobs", data="{}", allow_redirects=False, timeout=10)
    assert r.status_code == 403


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
