"""The Helm chart installed into the local cluster, end to end: the hub, the proxy and the
jobs service come up as pods of the hub image (from the local registry) on the local
cluster's kubelet, with the release's own Gluster storage (its class and storage agent); a
user logs in through the proxy, spawns (a workspace the release's agent makes), schedules a notebook
from the server (the route "Schedule this notebook" uses) and reads its output; then an
upgrade with a changed value restarts the hub and the jobs service while the user's server,
session, workspace, job definition, run history and an admin's catalog edit stay."""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
import time
from typing import Any

import requests
from kubernetes_asyncio import client

from tests.chart_release import NS, RELEASE, STORAGE_CLASS, USERS, Release, status
from tests.conftest import Hub
from tests.helpers import NOTEBOOK, wait_for

USER = "carla"


async def _pods(core: client.CoreV1Api, component: str) -> list[Any]:
    sel = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
    pods = (await core.list_namespaced_pod(NS, label_selector=sel)).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def _runs(s: requests.Session, hub: Hub, job_id: int) -> list[dict[str, Any]]:
    r = hub.lab(s, USER, f"moonhub/api/v1/jobs/{job_id}/runs")
    assert r.status_code == 200, r.text
    return list(r.json()["runs"])


async def test_install_login_spawn_schedule_then_upgrade(
    chart: Release, core: client.CoreV1Api, timings: dict[str, float]
) -> None:
    hub = chart.hub()
    users_ns = await core.read_namespace(USERS)
    assert users_ns.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # the chart's own NetworkPolicies hold on the real node: `helm test` probes, as a user's
    # pod, that the hub answers and the proxy's API, the Kubernetes API and the metadata
    # address do not
    probe = chart.helm("test", RELEASE, "-n", NS, timeout=180)
    said = chart.kubectl("logs", "-n", USERS, f"{RELEASE}-moonhub-test-network-policies")  # kept until the next test
    assert probe.returncode == 0 and "ok: user pods reach the hub" in said, said + probe.stderr

    # log in and spawn through the proxy, as a browser does
    s = hub.login(USER)
    t1 = time.monotonic()
    r = hub.spawn_form(s, USER, environment="python", size="small")
    assert r.status_code == 200, re.findall(r"(?s)<p>(.*?)</p>", r.text) or r.text[-2000:]
    hub.open_lab(s, USER, timeout=180)
    # with the install's own figure (the `chart` fixture), "helm install to the first lab"
    timings["Helm install: the first user's spawn form -> JupyterLab answers (a new workspace)"] = time.monotonic() - t1
    server_pod = await core.read_namespaced_pod(f"jupyter-{USER}", USERS)
    assert server_pod.spec.service_account_name in (None, "default")
    env = {e.name: e.value for e in server_pod.spec.containers[0].env if e.value}
    hub_api = f"http://{RELEASE}-moonhub-hub.{NS}.svc:8081/hub/api"
    assert env["JUPYTERHUB_API_URL"] == hub_api, "pods in the user namespace reach the hub by its qualified name"
    # the workspace is the chart's storage (storage.gluster): a folder of the Gluster volume
    # made by the storage agent the release runs, in the release's class, with its use
    # reported back on the claim by that agent
    claim = await core.read_namespaced_persistent_volume_claim(f"claim-{USER}", USERS)
    assert claim.spec.storage_class_name == STORAGE_CLASS
    pv = await core.read_persistent_volume(claim.spec.volume_name)
    assert pv.metadata.annotations["pv.kubernetes.io/provisioned-by"] == "moonhub.io/gluster"
    assert pv.spec.host_path.type == "Directory" and pv.spec.host_path.path.endswith(
        f"/claim-{USER}/{pv.metadata.name}"
    )
    used = await wait_for(
        lambda: core.read_namespaced_persistent_volume_claim(f"claim-{USER}", USERS),
        lambda c: "moonhub.io/used-bytes" in (c.metadata.annotations or {}),
        timeout=60,
        what="the release's storage agent to report the workspace's use",
    )
    assert int(used.metadata.annotations["moonhub.io/used-bytes"]) >= 0
    # that agent is not a Gluster peer: off the host network, unprivileged, its quota
    # commands sent over SSH to the node's sshd, whose gate ran them (docs/storage.md)
    sel = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=storage-agent"
    (agent,) = (await core.list_namespaced_pod(NS, label_selector=sel)).items
    assert not agent.spec.host_network and not agent.spec.containers[0].security_context.privileged
    folder = pv.spec.host_path.path.split("/")[-3:]
    assert chart.ssh is not None
    sent = chart.ssh.sent()
    assert any(f" limit-usage /{'/'.join(folder)} " in c for c in sent), f"the quota set over SSH: {sent}"

    # pip in the server installs through the release's package index (its proxy, in front
    # of the operator's mirror) into the workspace
    index = f"http://{RELEASE}-moonhub-package-index.{NS}.svc:3141/index/"
    assert env["PIP_INDEX_URL"] == index and env["PIP_TRUSTED_HOST"] == f"{RELEASE}-moonhub-package-index.{NS}.svc:3141"
    # (as in a terminal or a kernel: with the user's site, which the server runs without)
    install = "python -m pip install -q tabulate==0.9.0 && python -c 'import tabulate; print(tabulate.__file__)'"
    install = f"export PYTHONNOUSERSITE= && {install}"
    out = chart.kubectl("exec", "-n", USERS, f"jupyter-{USER}", "--", "sh", "-c", install)
    assert "/home/jovyan/.local/lib/python3.11/site-packages/tabulate/" in out, out
    served = chart.kubectl("logs", "-n", NS, f"deploy/{RELEASE}-moonhub-package-index")
    assert "tabulate" in served, f"the release's proxy served it: {served[-2000:]}"

    # a notebook in the workspace, scheduled from the server (the lab extension's route)
    r = hub.lab(s, USER, "api/contents/report.ipynb", method="PUT", json={"type": "notebook", "content": NOTEBOOK})
    assert r.status_code in (200, 201), r.text
    body = {"name": "report", "notebook": "report.ipynb", "schedule": "0 6 * * 1-5", "timezone": "UTC",
            "parameters": {"rows": 42}, "notebook_content": NOTEBOOK}  # fmt: skip
    r = hub.lab(s, USER, "moonhub/api/v1/jobs", method="POST", data=json.dumps(body))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["owner"] == USER and job["schedule_description"] == "At 06:00, Monday through Friday"
    cron = await client.BatchV1Api(core.api_client).read_namespaced_cron_job(job["cronjob"], USERS)
    assert cron.spec.schedule == "0 6 * * 1-5"
    r = hub.lab(s, USER, f"moonhub/api/v1/jobs/{job['id']}/run", method="POST")
    assert r.status_code == 201, r.text
    t2 = time.monotonic()
    runs = await wait_for(
        lambda: _runs(s, hub, job["id"]),
        lambda rs: rs and rs[0]["status"] in ("succeeded", "failed"),
        timeout=180,
        what="the run to finish",
    )
    assert runs[0]["status"] == "succeeded", f"{runs[0]}\n{chart.diagnose()}"
    print(f"run now -> succeeded: {time.monotonic() - t2:.1f}s")
    out = hub.lab(s, USER, f"api/contents/{runs[0]['output']}")
    assert out.status_code == 200, f"{runs[0]['output']}: {out.text[:300]}"
    printed = "".join("".join(o.get("text", "")) for c in out.json()["content"]["cells"] for o in c.get("outputs", []))
    assert printed.strip() == "rows: 42", "the output notebook is in the user's workspace"

    # admins edit the catalog in the console on a Helm install too (catalogEdits: console):
    # the hub writes its ConfigMap and uses the edit at once
    admin = hub.login("admin")
    page = admin.get(f"{hub.url}/hub/moonhub-admin", timeout=30)
    assert page.status_code == 200 and f"ConfigMap {NS}/{RELEASE}-moonhub-catalog" in page.text, page.text[-2000:]
    xsrf = {"X-XSRFToken": admin.cookies.get("_xsrf", path="/hub/") or ""}
    size = {"name": "tiny", "display_name": "Tiny (added in the console)", "cpu_guarantee": 0.05, "cpu_limit": 0.5,
            "memory_guarantee": "128Mi", "memory_limit": "512Mi"}  # fmt: skip
    edit = {"op": "add", "kind": "size", "item": size}
    r = admin.patch(f"{hub.url}/hub/moonhub-admin/api/catalog", json=edit, headers=xsrf, timeout=30)
    assert r.status_code == 200 and r.json()["summary"] == "added size tiny", r.text
    live = await core.read_namespaced_config_map(f"{RELEASE}-moonhub-catalog", NS)
    assert "name: tiny" in live.data["catalog.yaml"]
    other = hub.login("dora")
    assert 'value="tiny"' in other.get(f"{hub.url}/hub/spawn/dora", timeout=30).text, "the hub uses it at once"
    # an upgrade with a changed value: the hub and the jobs service restart (their config
    # changed), the proxy, the user's server, the session and every record stay
    before = {c: [p.metadata.uid for p in await _pods(core, c)] for c in ("hub", "proxy", "jobs")}
    secret = await core.read_namespaced_secret(f"{RELEASE}-moonhub-secret", NS)
    t3 = time.monotonic()
    chart.check(chart.helm("upgrade", *chart.install_args(), "--set", "platform.culling.idle_timeout=7200", "--wait"))
    print(f"upgrade -> ready: {time.monotonic() - t3:.1f}s")
    chart.wait_hub(hub.url)
    after = {c: [p.metadata.uid for p in await _pods(core, c)] for c in ("hub", "proxy", "jobs")}
    assert after["hub"] != before["hub"] and after["jobs"] != before["jobs"], "their config changed: new pods"
    assert after["proxy"] == before["proxy"], "the proxy did not change: it keeps its routes"
    kept = await core.read_namespaced_secret(f"{RELEASE}-moonhub-secret", NS)
    assert {k: base64.b64decode(v) for k, v in kept.data.items()} == {
        k: base64.b64decode(v) for k, v in secret.data.items()
    }, "generated secrets are kept across upgrades"
    config = await core.read_namespaced_config_map(f"{RELEASE}-moonhub-config", NS)
    assert "idle_timeout: 7200" in config.data["platform.yaml"]
    # the admin's catalog edit outlived the upgrade (the chart renders the ConfigMap as it is),
    # and so did its history (on the hub's state volume)
    live = await core.read_namespaced_config_map(f"{RELEASE}-moonhub-catalog", NS)
    assert "name: tiny" in live.data["catalog.yaml"], "an upgrade keeps the console's edits"
    admin = hub.login("admin")
    history = admin.get(f"{hub.url}/hub/moonhub-admin/api/catalog/history", timeout=30).json()["revisions"]
    assert [h["summary"] for h in history] == ["added size tiny", "the catalog before the first console edit"]
    assert 'value="tiny"' in hub.login("dora").get(f"{hub.url}/hub/spawn/dora", timeout=30).text

    pod = await core.read_namespaced_pod(f"jupyter-{USER}", USERS)
    assert pod.metadata.uid == server_pod.metadata.uid and pod.status.phase == "Running", "the server kept running"
    assert (pod.status.container_statuses[0].restart_count or 0) == 0
    # the same browser session still reaches the lab and the workspace (same cookie secret)
    r = await wait_for(
        lambda: hub.lab(s, USER, "api/contents/report.ipynb"),
        lambda r: r.status_code == 200,
        timeout=60,
        what="the workspace through the proxy after the upgrade",
    )
    assert r.json()["type"] == "notebook"
    user = hub.api(s, "GET", f"/users/{USER}")
    assert user.status_code == 200 and user.json()["servers"][""]["ready"] is True, user.text
    # the definition and its history survived in the jobs service's volume
    jobs = await wait_for(
        lambda: hub.lab(s, USER, "moonhub/api/v1/jobs"),
        lambda r: r.status_code == 200,
        timeout=60,
        what="the jobs service after the upgrade",
    )
    assert [j["name"] for j in jobs.json()["jobs"]] == ["report"]
    assert [r["status"] for r in _runs(s, hub, job["id"])] == ["succeeded"]
    # the state is backed up by the service's own command, in its pod (helm/README.md)
    backup = ["python", "-m", "jobs_service.backup", "create", "-"]
    made = chart.kubectl_bytes("exec", "-n", NS, f"deploy/{RELEASE}-moonhub-jobs", "-c", "jobs", "--", *backup)
    assert made.returncode == 0, made.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(made.stdout), mode="r:gz") as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        names = tar.getnames()
    assert manifest["rows"]["definitions"] == 1 and manifest["rows"]["runs"] == 1, manifest
    assert any(n.startswith("store/runs/") and n.endswith("/log.json") for n in names), "the run's kept log"

    # the proxy pod replaced on its own (a node drained): the hub adds its routes again
    # (hub.route_check_interval, 30 s in the chart) and the server answers through the new one
    token = hub.token(s, USER, f"access:servers!user={USER}")
    t4 = time.monotonic()
    await core.delete_collection_namespaced_pod(NS, label_selector="app.kubernetes.io/component=proxy")
    new = await wait_for(
        lambda: _pods(core, "proxy"),
        lambda ps: len(ps) == 1 and ps[0].metadata.uid not in before["proxy"] and ps[0].status.pod_ip is not None,
        timeout=60,
        what="a new proxy pod",
    )
    url = f"http://{new[0].status.pod_ip}:8000/user/{USER}/api/status"
    await wait_for(
        lambda: status(url, token),
        lambda code: code == 200,
        timeout=90,
        what="the user's server through the new proxy",
    )
    print(f"proxy pod replaced -> user's route back: {time.monotonic() - t4:.1f}s")
