"""Secrets through the real hub, jobs service and cluster: values are write-only, reach only
their owner's runs and server (and team members'), never show in an answer, a manifest, a
notebook version or a log MoonHub renders."""

from __future__ import annotations

import hashlib
import json
import time

import requests
from kubernetes_asyncio import client

from hub_config import services
from moonhub_core import secrets as sec
from moonhub_core import server_claim
from tests.conftest import HUB_STATE, TEST_CLUSTER, Hub
from tests.helpers import jobs_api, kubectl, notebook, printed, read_from_pvc, runs_ended, wait_for

USER_NS = "moonhub-users"
DB = "pa55-word-for-the-db"
KEY = '{"type": "service_account", "key": "k3y-material"}'
# the notebook holds no value: it compares the file with the key's digest
READS = notebook(
    "import hashlib, os, pathlib\n"
    "print('db:', os.environ['DB_PASSWORD'])\n"
    "got = hashlib.sha256(pathlib.Path('/var/run/secrets/moonhub/key.json').read_bytes()).hexdigest()\n"
    f"print('key ok:', got == {hashlib.sha256(KEY.encode()).hexdigest()!r})"
)


async def test_secrets_reach_their_owners_runs_and_never_show(
    hub: Hub, core: client.CoreV1Api, api: client.ApiClient
) -> None:
    tara, uma = jobs_api(hub, hub.login("tara"), "tara"), jobs_api(hub, hub.login("uma"), "uma")
    r = tara("PUT", "/secrets/db", {"value": DB})
    assert r.status_code == 201 and DB not in r.text and r.json()["value"] == "••••••", r.text
    r = tara("PUT", "/secrets/key", {"value": KEY, "to_server": {"file": "key.json"}})
    assert r.status_code == 201, r.text
    listed = tara("GET", "/secrets")
    assert [s["name"] for s in listed.json()["secrets"]] == ["db", "key"]
    assert DB not in listed.text and "k3y-material" not in listed.text
    assert uma("GET", "/secrets").json()["secrets"] == [], "another user sees none of them"
    for bad, field in (({"value": ""}, "value"), ({"value": "x", "owner": "uma"}, "owner"), ({}, "value")):
        assert tara("PUT", "/secrets/other", bad).json()["field"] == field
    assert tara("PUT", "/secrets/Bad_Name", {"value": "x"}).json()["field"] == "name"

    body = {
        "name": "uses-secrets",
        "notebook": "s.ipynb",
        "notebook_content": READS,
        "schedule": None,
        "secrets": [{"name": "db", "env": "DB_PASSWORD"}, {"name": "key", "file": "key.json"}],
    }
    r = tara("POST", "/jobs", body)
    assert r.status_code == 201, r.text
    job = r.json()
    cron = await client.BatchV1Api(api).read_namespaced_cron_job(job["cronjob"], USER_NS)
    manifest = json.dumps(api.sanitize_for_serialization(cron))
    assert DB not in manifest and "k3y-material" not in manifest, "the CronJob refers to the Secrets"
    tara("POST", f"/jobs/{job['id']}/run")
    run = (await runs_ended(tara, job["id"]))[0]
    assert run["status"] == "succeeded", run
    out = json.loads(await read_from_pvc(core, USER_NS, "claim-tara", run["output"]))
    said = printed(out)
    assert f"db: {DB}" in said and "key ok: True" in said, "the run received both"
    log = tara("GET", f"/jobs/{job['id']}/runs/{run['id']}/log").json()["log"]
    assert "db: ••••••" in log and DB not in log, "the log MoonHub shows is masked"

    # a notebook holding a secret's value is not frozen; nothing is made
    leaky = notebook(f"password = {DB!r}")
    r = tara("POST", "/jobs", {**body, "name": "leaky", "notebook_content": leaky, "secrets": []})
    assert r.status_code == 400 and r.json()["field"] == "notebook_content" and "secret db" in r.json()["message"]
    assert DB not in r.text
    # another user can not ask for it: a name is always the asker's own (or their team's)
    r = uma("POST", "/jobs", {**body, "name": "steal"})
    assert r.status_code == 400 and r.json()["field"] == "secrets" and "no secret db" in r.json()["message"]
    audit = tara("GET", "/audit").text
    assert "secret-set" in audit and DB not in audit

    # a deleted secret holds the job at its next run; set again, the job is released
    assert tara("DELETE", "/secrets/db").status_code == 204
    r = tara("POST", f"/jobs/{job['id']}/run")
    assert r.status_code == 400 and r.json()["field"] == "secrets", r.text
    assert "no secret db" in tara("GET", f"/jobs/{job['id']}").json()["suspended_reason"]
    assert tara("PUT", "/secrets/db", {"value": DB}).status_code == 201
    await wait_for(
        lambda: tara("GET", f"/jobs/{job['id']}").json()["suspended_reason"],
        lambda reason: reason is None,
        timeout=60,
        what="the reconcile to release the job",
    )


async def test_team_secrets_follow_group_membership(hub: Hub) -> None:
    admin = hub.login("admin")
    vera, walt = jobs_api(hub, hub.login("vera"), "vera"), jobs_api(hub, hub.login("walt"), "walt")
    boss = jobs_api(hub, admin, "admin")
    assert hub.api(admin, "POST", "/groups/data-eng").status_code in (201, 409)
    assert hub.api(admin, "POST", "/groups/data-eng/users", json={"users": ["vera"]}).status_code == 200
    assert vera("PUT", "/team-secrets/data-eng/warehouse", {"value": "x"}).status_code == 403
    r = boss("PUT", "/team-secrets/data-eng/warehouse", {"value": "team-token-123456"})
    assert r.status_code == 201, r.text
    assert [s["team"] for s in vera("GET", "/secrets").json()["secrets"]] == ["data-eng"]
    assert walt("GET", "/secrets").json()["secrets"] == []
    uses = notebook("import os\nprint('length', len(os.environ['WH']))")
    body = {
        "name": "warehouse-load",
        "notebook": "w.ipynb",
        "notebook_content": uses,
        "schedule": None,
        "secrets": [{"name": "warehouse", "team": "data-eng", "env": "WH"}],
    }
    r = walt("POST", "/jobs", body)
    assert r.status_code == 403 and r.json()["field"] == "secrets" and "not in group data-eng" in r.text
    job = vera("POST", "/jobs", body).json()
    vera("POST", f"/jobs/{job['id']}/run")
    run = (await runs_ended(vera, job["id"]))[0]
    assert run["status"] == "succeeded", run
    log = vera("GET", f"/jobs/{job['id']}/runs/{run['id']}/log").json()["log"]
    assert "length 17" in log
    # out of the group: the next run is refused and the job held
    assert hub.api(admin, "DELETE", "/groups/data-eng/users", json={"users": ["vera"]}).status_code == 200
    r = vera("POST", f"/jobs/{job['id']}/run")
    assert r.status_code == 403 and r.json()["field"] == "secrets", r.text
    assert "not in group data-eng" in vera("GET", f"/jobs/{job['id']}").json()["suspended_reason"]
    assert boss("DELETE", "/team-secrets/data-eng/warehouse").status_code == 204


def test_a_server_receives_the_secrets_given_to_it(hub: Hub) -> None:
    """tara's key is given to her server as a file; uma's server has nothing of hers."""
    s = hub.login("tara")
    tara = jobs_api(hub, s, "tara")
    assert tara("PUT", "/secrets/key", {"value": KEY, "to_server": {"file": "key.json"}}).status_code in (200, 201)
    assert tara("PUT", "/secrets/token", {"value": "server-token-value", "to_server": {"env": "API_TOKEN"}}).ok
    assert hub.spawn_form(s, "tara", environment="python", size="small").status_code == 200
    hub.open_lab(s, "tara", timeout=180)
    pod = json.loads(kubectl(TEST_CLUSTER, "-n", USER_NS, "get", "pod", "jupyter-tara", "-o", "json"))
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    ref = env["API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": sec.user_secret("tara", "token"), "key": "value"} and "value" not in env["API_TOKEN"]
    got = kubectl(TEST_CLUSTER, "-n", USER_NS, "exec", "jupyter-tara", "--", "cat", "/var/run/secrets/moonhub/key.json")
    assert got == KEY
    echo = kubectl(TEST_CLUSTER, "-n", USER_NS, "exec", "jupyter-tara", "--", "printenv", "API_TOKEN")
    assert echo.strip() == "server-token-value"
    hub.api(s, "DELETE", "/users/tara/server")

    u = hub.login("uma")
    assert hub.spawn_form(u, "uma", environment="python", size="small").status_code == 200
    hub.open_lab(u, "uma", timeout=180)
    other = kubectl(TEST_CLUSTER, "-n", USER_NS, "get", "pod", "jupyter-uma", "-o", "json")
    assert "msec-" not in other, "no reference to anyone's secrets"
    hub.api(u, "DELETE", "/users/uma/server")


def test_the_hub_asks_for_a_servers_secrets_with_a_signed_claim(hub: Hub) -> None:
    """As a server starts, the hub signs a claim for its user (no token, so the jobs service
    asks the hub nothing): a claim signed with the key both derive from the service's token
    opens that user's own secrets, for reading; any other is refused."""
    tara = jobs_api(hub, hub.login("tara"), "tara")
    assert tara("PUT", "/secrets/claimed", {"value": "v4lue", "to_server": {"env": "CLAIMED"}}).ok
    url = f"http://{TEST_CLUSTER.node_ip}:18090/services/jobs/api/v1/secrets"
    token = (HUB_STATE / services.JOBS_TOKEN_FILE).read_text().strip()
    key = server_claim.key_from_token(token)

    def ask(claim: str, method: str = "GET", path: str = "") -> requests.Response:
        body = {"json": {"value": "x"}} if method != "GET" else {}
        return requests.request(method, url + path, headers={server_claim.HEADER: claim}, timeout=30, **body)

    r = ask(server_claim.make(key, "tara"))
    assert r.status_code == 200, r.text
    got = r.json()["secrets"]
    assert "claimed" in [s["name"] for s in got] and all(s["team"] is None for s in got), got
    assert "v4lue" not in r.text
    other = server_claim.key_from_token("not-the-service-token")
    uma = server_claim.make(key, "uma")
    refused = {
        "another key": ask(server_claim.make(other, "tara")),
        "expired": ask(server_claim.make(key, "tara", now=time.time() - server_claim.TTL - 5)),
        # tara's claim with the signature of one made for uma
        "tampered": ask(f"{server_claim.make(key, 'tara').split('.')[0]}.{uma.split('.')[1]}"),
        "garbage": ask("not-a-claim"),
        "a write": ask(server_claim.make(key, "tara"), "PUT", "/written"),  # claims open no other route
    }
    for what, r in refused.items():
        assert r.status_code == 403, (what, r.status_code, r.text)
    assert "claimed" not in refused["another key"].text
    assert "written" not in tara("GET", "/secrets").text, "nothing was written"
