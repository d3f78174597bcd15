"""An upgrade from the previous release to this tree keeps everything (issue 33, item 4).

The previous release is the commit ``helm/previous-release`` names: its chart (``git
archive``) and its hub image (``python -m images.build hub --at <commit>``, pushed under a
tag of its own). It is installed and filled as users fill it: a server running with a file
in its workspace, a scheduled job with a finished run and its output, a secret. Then
``helm upgrade`` to this tree's chart and image: the hub and the jobs service are new pods
(the jobs database upgraded by ``upgrade-db`` before the new service serves), the user's
server is the same pod, never restarted, and every record answers as before. Then ``helm
rollback`` to the previous release, which answers again with the same records."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes_asyncio import client

from localcluster.config import REPO, ClusterConfig
from tests.chart_release import Release
from tests.conftest import Hub
from tests.helpers import NOTEBOOK, wait_for

PREVIOUS = (REPO / "helm" / "previous-release").read_text().split()[0]
RELEASE, NS = "up", "chart-upgrade"
USERS = f"{NS}-users"
USER = "erin"


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=True)


@pytest.fixture(scope="module")
def previous(
    local_cluster: ClusterConfig | None, tmp_path_factory: pytest.TempPathFactory, timings: dict[str, float]
) -> tuple[Path, str]:
    """The previous release's chart folder and hub image tag."""
    if local_cluster is None:
        pytest.skip("the upgrade is tested on the local cluster (its images are in the local registry)")
    try:
        _git("cat-file", "-e", f"{PREVIOUS}^{{commit}}")
    except subprocess.CalledProcessError:
        pytest.fail(f"helm/previous-release names {PREVIOUS}, which this clone does not have (a shallow clone?)")
    where = tmp_path_factory.mktemp("previous")
    subprocess.run(["tar", "-x", "-C", str(where)], input=_git("archive", PREVIOUS, "helm/moonhub").stdout, check=True)
    tag = f"release-{PREVIOUS[:12]}"
    t0 = time.monotonic()
    built = subprocess.run(
        [sys.executable, "-m", "images.build", "hub", "--at", PREVIOUS, "--tag", tag],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    timings["upgrade test: the previous release's hub image built and pushed"] = time.monotonic() - t0
    return where / "helm" / "moonhub", tag


async def _server(core: client.CoreV1Api) -> Any:
    return await core.read_namespaced_pod(f"jupyter-{USER}", USERS)


async def _records(s: requests.Session, hub: Hub) -> dict[str, Any]:
    """What the user sees of their things: the file, the jobs with their runs, the secrets."""
    f = await wait_for(
        lambda: hub.lab(s, USER, "api/contents/kept.txt"),
        lambda r: r.status_code == 200,
        timeout=90,
        what="the workspace's file through the proxy",
    )
    jobs = await wait_for(
        lambda: hub.lab(s, USER, "moonhub/api/v1/jobs"),
        lambda r: r.status_code == 200,
        timeout=120,
        what="the jobs service",
    )
    out: dict[str, Any] = {"file": f.json()["content"], "jobs": {}}
    for j in jobs.json()["jobs"]:
        runs = hub.lab(s, USER, f"moonhub/api/v1/jobs/{j['id']}/runs").json()["runs"]
        out["jobs"][j["name"]] = {
            "schedule": j["schedule"],
            "runs": [(r["id"], r["status"], r.get("output")) for r in runs],
        }
    secrets = hub.lab(s, USER, "moonhub/api/v1/secrets")
    assert secrets.status_code == 200, secrets.text
    out["secrets"] = sorted(x["name"] for x in secrets.json()["secrets"])
    return out


async def test_upgrade_from_the_previous_release_then_rollback(
    previous: tuple[Path, str], kubeconfig: Path, core: client.CoreV1Api, timings: dict[str, float]
) -> None:
    old_chart, old_tag = previous
    old = Release.tools(kubeconfig, release=RELEASE, namespace=NS)
    base = ["-n", NS, "--set", f"userNamespace.name={USERS}", "--wait", "--timeout", "360s"]
    try:
        t0 = time.monotonic()
        old.check(
            old.helm(
                "install", RELEASE, str(old_chart), "-f", str(old_chart / "ci" / "local-cluster.yaml"),
                "--set", f"images.hub.tag={old_tag}", "--create-namespace", *base,
            )
        )  # fmt: skip
        timings["upgrade test: helm install --wait of the previous release"] = time.monotonic() - t0
        hub = old.hub()
        s = hub.login(USER)
        r = hub.spawn_form(s, USER, environment="python", size="small")
        assert r.status_code == 200, r.text[-2000:]
        hub.open_lab(s, USER, timeout=180)
        kept = {"type": "file", "format": "text", "content": "made before the upgrade"}
        put = hub.lab(s, USER, "api/contents/kept.txt", method="PUT", json=kept)
        assert put.status_code in (200, 201), put.text
        put = hub.lab(
            s, USER, "api/contents/report.ipynb", method="PUT", json={"type": "notebook", "content": NOTEBOOK}
        )
        assert put.status_code in (200, 201), put.text
        body = {"name": "report", "notebook": "report.ipynb", "schedule": "0 6 * * 1-5", "timezone": "UTC",
                "parameters": {"rows": 7}, "notebook_content": NOTEBOOK}  # fmt: skip
        job = hub.lab(s, USER, "moonhub/api/v1/jobs", method="POST", data=json.dumps(body))
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        assert hub.lab(s, USER, f"moonhub/api/v1/jobs/{job_id}/run", method="POST").status_code == 201
        await wait_for(
            lambda: hub.lab(s, USER, f"moonhub/api/v1/jobs/{job_id}/runs").json()["runs"],
            lambda rs: bool(rs) and rs[0]["status"] in ("succeeded", "failed"),
            timeout=180,
            what="the run on the previous release",
        )
        secret = hub.lab(s, USER, "moonhub/api/v1/secrets/db-password", method="PUT", json={"value": "s3cret"})
        assert secret.status_code == 201, secret.text
        before = await _records(s, hub)
        assert before["jobs"]["report"]["runs"][0][1] == "succeeded", before
        server = await _server(core)

        # the upgrade: this tree's chart and image
        new = Release.tools(kubeconfig, release=RELEASE, namespace=NS)
        t1 = time.monotonic()
        new.check(new.helm("upgrade", *new.install_args(), "--wait", "--timeout", "360s"))
        timings["upgrade test: helm upgrade --wait from the previous release"] = time.monotonic() - t1
        new.wait_hub(hub.url)
        sel = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=hub"
        hub_pod = (await core.list_namespaced_pod(NS, label_selector=sel)).items
        images = {c.image for p in hub_pod if p.metadata.deletion_timestamp is None for c in p.spec.containers}
        assert not any(old_tag in i for i in images), f"the hub runs this tree's image now: {images}"
        after = await _records(s, hub)
        assert after == before, "nothing lost in the upgrade"
        pod = await _server(core)
        assert pod.metadata.uid == server.metadata.uid and pod.status.phase == "Running", "the server kept running"
        assert (pod.status.container_statuses[0].restart_count or 0) == 0
        # the hub's database (users, servers) and cookie secret were kept: the same session,
        # the server still known as running
        user = hub.api(s, "GET", f"/users/{USER}")
        assert user.status_code == 200 and user.json()["servers"][""]["ready"] is True, user.text

        # and back: the previous release's chart and image again, with the same records
        t2 = time.monotonic()
        new.check(new.helm("rollback", RELEASE, "1", "-n", NS, "--wait", "--timeout", "360s"))
        timings["upgrade test: helm rollback --wait to it"] = time.monotonic() - t2
        new.wait_hub(hub.url)
        assert await _records(s, hub) == before, "nothing lost in the rollback"
        assert (await _server(core)).metadata.uid == server.metadata.uid
    finally:
        old.uninstall()
