"""An upgrade from the previous release to this tree keeps everything (issue 33, item 4).

The previous release is the commit ``helm/previous-release`` names: its chart (``git
archive``) and its hub image (``python -m images.build hub --at <commit>``, pushed under a
tag of its own). It is installed and filled as users fill it: a server running with a file
in its workspace, a scheduled job with two notebook versions and a finished run of each,
a secret, a GPU run waiting in Kueue's queue, and a pipeline whose run is midway (its first
task running) when the upgrade starts. Then ``helm upgrade`` to this tree's chart and
image: the hub and the jobs service are new pods (the jobs database upgraded by
``upgrade-db`` before the new service serves), the user's server is the same pod, never
restarted, every record answers as before, the queued run is the same held Job, and the
pipeline's run goes on to its end with each task run once. Then ``helm rollback`` to the
previous release, which answers again with the same records.

Twice: with the jobs database on SQLite in the release's volume (the default), and on a
PostgreSQL server outside the cluster (``jobs.databaseSecret``, reached through
``networkPolicies.jobsExtraEgress``) as operators run it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes_asyncio import client

from jobs_service import schema
from localcluster.config import REPO, ClusterConfig
from tests.chart_release import CHART, Release
from tests.conftest import Hub
from tests.helpers import NOTEBOOK, notebook, parameter_notebook, printed, runs_ended, wait_for
from tests.postgres import fresh_database, postgres_server

PREVIOUS = (REPO / "helm" / "previous-release").read_text().split()[0]
RELEASE, NS = "up", "chart-upgrade"
USERS = f"{NS}-users"
USER = "erin"
#: the job's second notebook version, told apart from the first by what it prints
SECOND = parameter_notebook("rows = 10", "print('version two, rows:', rows)")
#: the pipeline's first task runs long enough for the upgrade to start while it runs
PIPELINE = {
    "name": "chain",
    "schedule": None,
    "tasks": [
        {"name": "first", "notebook": "first.ipynb"},
        {"name": "second", "notebook": "second.ipynb", "depends_on": ["first"]},
    ],
    "notebook_contents": {
        "first": notebook("import time\ntime.sleep(25)\nprint('first done')"),
        "second": notebook("print('second done')"),
    },
}
#: the release's catalog: the CI values' (its Python environment and size) and a GPU type no
#: node has, so a run asking for it waits in Kueue's queue through the upgrade (queued, its
#: Job suspended), with a CUDA environment for it (the same image: it never starts)
_CI = yaml.safe_load((CHART / "ci" / "local-cluster.yaml").read_text())["catalog"]
CATALOG = {
    **_CI,
    "environments": [
        *_CI["environments"],
        {**_CI["environments"][0], "name": "cuda", "display_name": "CUDA (queued only)", "cuda": "12.8",
         "default": False},
    ],
    "gpu_types": [
        {"name": "h100", "display_name": "H100 (no node)", "node_selector": {"moonhub.io/upgrade-test": "no-such-node"},
         "counts": [1]},
    ],
    "entitlements": [{"groups": ["*"], "gpu_types": ["h100"], "max_gpus_per_user": 1}],
}  # fmt: skip
QUEUED = {"name": "gpu-train", "notebook": "gpu-train.ipynb", "notebook_content": NOTEBOOK, "schedule": None,
          "environment": "cuda", "gpu_type": "h100", "gpu_count": 1}  # fmt: skip
#: the PostgreSQL server of the second case: on the test cluster's node address, which pods
#: reach through their bridge, for the pods' range only and with a password
PG_PORT, PG_PASSWORD = 15433, "upgrade-test"


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


@pytest.fixture(params=["SQLite", "PostgreSQL"])
def case(
    request: pytest.FixtureRequest, local_cluster: ClusterConfig | None, kubeconfig: Path, tmp_path: Path
) -> Iterator[tuple[str, list[str]]]:
    """The case's name and helm arguments: the release's catalog (:data:`CATALOG`) and its
    jobs database, SQLite in the release's volume or a PostgreSQL server on the node with a
    database of its own, its URL in a Secret made before the install and the jobs service's
    egress to it (the chart's policies let it reach nothing private otherwise)."""
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(json.dumps({"catalog": CATALOG}))
    if request.param == "SQLite" or local_cluster is None:
        yield request.param, ["-f", str(catalog)]
        return
    node = local_cluster.node_ip
    with postgres_server(PG_PORT, node, password=PG_PASSWORD, clients=[local_cluster.pod_cidr, f"{node}/32"]) as url:
        database = fresh_database(url, "jobs")
        tools = Release.tools(kubeconfig, release=RELEASE, namespace=NS)
        tools.kubectl("create", "namespace", NS)
        made = tools.kubectl("create", "secret", "generic", "jobs-database", "-n", NS, f"--from-literal=url={database}")
        assert "created" in made, made
        values = tmp_path / "postgres.yaml"
        egress = [{"to": [{"ipBlock": {"cidr": f"{node}/32"}}], "ports": [{"port": PG_PORT}]}]
        values.write_text(
            json.dumps({"jobs": {"databaseSecret": "jobs-database"}, "networkPolicies": {"jobsExtraEgress": egress}})
        )
        yield request.param, ["-f", str(catalog), "-f", str(values)]


async def _server(core: client.CoreV1Api) -> Any:
    return await core.read_namespaced_pod(f"jupyter-{USER}", USERS)


async def _records(s: requests.Session, hub: Hub, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """What the user sees of their things: the file, the jobs with their versions and runs
    (each run's printed output), the secrets; the jobs named in ``skip`` left out."""
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
        if j["name"] in skip:
            continue
        api = f"moonhub/api/v1/jobs/{j['id']}"
        runs = hub.lab(s, USER, f"{api}/runs").json()["runs"]
        versions = hub.lab(s, USER, f"{api}/versions").json()["versions"]
        out["jobs"][j["name"]] = {
            "schedule": j["schedule"],
            "version": j["version"],
            "versions": [(v["number"], v["sha256"]) for v in versions],
            "runs": [
                (r["id"], r["version"], r["status"], r.get("output"), _printed(hub, s, f"{api}/runs/{r['id']}"))
                for r in runs
            ],
            "tasks": {r["id"]: [(t["name"], t["status"], t["attempt"]) for t in r["tasks"] or []] for r in runs},
        }
    secrets = hub.lab(s, USER, "moonhub/api/v1/secrets")
    assert secrets.status_code == 200, secrets.text
    out["secrets"] = sorted(x["name"] for x in secrets.json()["secrets"])
    return out


def _printed(hub: Hub, s: requests.Session, run: str) -> str:
    """What a run's executed notebook printed ("" for a pipeline's run, which has none)."""
    r = hub.lab(s, USER, f"{run}/output?format=ipynb")
    if r.status_code != 200:
        return ""
    return printed(r.json())


def schema_head_at(commit: str) -> str:
    """The newest jobs-database revision the tree at ``commit`` has (its migrations' names
    begin with the revision)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-tree", "--name-only", commit, "jobs_service/migrations/versions/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return max(Path(n).name.split("_")[0] for n in listed if Path(n).name[:4].isdigit())


async def test_upgrade_from_the_previous_release_then_rollback(
    previous: tuple[Path, str],
    case: tuple[str, list[str]],
    kubeconfig: Path,
    core: client.CoreV1Api,
    api: client.ApiClient,
    timings: dict[str, float],
) -> None:
    old_chart, old_tag = previous
    name, values = case
    old = Release.tools(kubeconfig, release=RELEASE, namespace=NS)
    base = ["-n", NS, "--set", f"userNamespace.name={USERS}", *values, "--wait", "--timeout", "360s"]
    try:
        t0 = time.monotonic()
        old.check(
            old.helm(
                "install", RELEASE, str(old_chart), "-f", str(old_chart / "ci" / "local-cluster.yaml"),
                "--set", f"images.hub.tag={old_tag}", "--create-namespace", *base,
            )
        )  # fmt: skip
        timings[f"upgrade test ({name}): helm install --wait of the previous release"] = time.monotonic() - t0
        hub = old.hub()
        s = hub.login(USER)

        def jobs(method: str, path: str, body: Any = None) -> requests.Response:
            data = None if body is None else json.dumps(body)
            return hub.lab(s, USER, f"moonhub/api/v1{path}", method=method, data=data)

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
        job = jobs("POST", "/jobs", body)
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        # a run of the first version, then a second version and a run of it (the first run
        # keeps its version while it goes)
        assert jobs("POST", f"/jobs/{job_id}/run").status_code == 201
        edited = jobs("PATCH", f"/jobs/{job_id}", {"notebook_content": SECOND})
        assert edited.status_code == 200 and edited.json()["version"] == 2, edited.text
        assert jobs("POST", f"/jobs/{job_id}/run").status_code == 201
        await runs_ended(jobs, job_id, count=2, timeout=180)
        secret = hub.lab(s, USER, "moonhub/api/v1/secrets/db-password", method="PUT", json={"value": "s3cret"})
        assert secret.status_code == 201, secret.text
        # a GPU run waiting in the queue (no node has its GPU type): Kueue holds its Job
        gpu = jobs("POST", "/jobs", QUEUED)
        assert gpu.status_code == 201, gpu.text
        gpu_id = gpu.json()["id"]
        assert jobs("POST", f"/jobs/{gpu_id}/run").status_code == 201
        [queued] = await wait_for(
            lambda: jobs("GET", f"/jobs/{gpu_id}/runs").json()["runs"],
            lambda rs: bool(rs) and (rs[0]["reason"] or "").startswith("queued"),
            timeout=120,
            what="the GPU run queued with its reason",
        )
        batch = client.BatchV1Api(api)
        held = await batch.read_namespaced_job(queued["name"], USERS)
        assert held.spec.suspend, "Kueue holds the GPU run's Job"
        # the pipeline: its run midway (the first task running) when the upgrade starts
        chain = jobs("POST", "/jobs", PIPELINE)
        assert chain.status_code == 201, chain.text
        chain_id = chain.json()["id"]
        assert jobs("POST", f"/jobs/{chain_id}/run").status_code == 201
        await wait_for(
            lambda: jobs("GET", f"/jobs/{chain_id}/runs").json()["runs"][0]["tasks"] or [],
            lambda ts: any(t["name"] == "first" and t["status"] == "running" for t in ts),
            timeout=180,
            what="the pipeline's first task running",
        )
        before = await _records(s, hub, skip=("chain",))
        report = before["jobs"]["report"]
        assert [v for v, _ in report["versions"]] == [1, 2] and report["version"] == 2, report
        assert [(r[1], r[2]) for r in report["runs"]] == [(2, "succeeded"), (1, "succeeded")], report
        assert "version two, rows: 7" in report["runs"][0][4] and "rows: 7" in report["runs"][1][4], report
        server = await _server(core)

        # the upgrade: this tree's chart and image
        new = Release.tools(kubeconfig, release=RELEASE, namespace=NS)
        t1 = time.monotonic()
        new.check(new.helm("upgrade", *new.install_args(), *values, "--wait", "--timeout", "360s"))
        timings[f"upgrade test ({name}): helm upgrade --wait from the previous release"] = time.monotonic() - t1
        new.wait_hub(hub.url)
        sel = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=hub"
        hub_pod = (await core.list_namespaced_pod(NS, label_selector=sel)).items
        images = {c.image for p in hub_pod if p.metadata.deletion_timestamp is None for c in p.spec.containers}
        assert not any(old_tag in i for i in images), f"the hub runs this tree's image now: {images}"
        after = await _records(s, hub, skip=("chain",))
        assert after == before, "nothing lost in the upgrade"
        pod = await _server(core)
        assert pod.metadata.uid == server.metadata.uid and pod.status.phase == "Running", "the server kept running"
        assert (pod.status.container_statuses[0].restart_count or 0) == 0
        # the queued run is the same Job, still held, not started again nor lost
        again = await batch.read_namespaced_job(queued["name"], USERS)
        assert again.metadata.uid == held.metadata.uid and again.spec.suspend, "the queued run waits on"
        # the hub's database (users, servers) and cookie secret were kept: the same session,
        # the server still known as running
        user = hub.api(s, "GET", f"/users/{USER}")
        assert user.status_code == 200 and user.json()["servers"][""]["ready"] is True, user.text
        # the pipeline's run, begun by the previous release, ends under this one: each task
        # once, on its first attempt
        [done] = await runs_ended(jobs, chain_id, timeout=300)
        tasks = [(t["name"], t["status"], t["attempt"]) for t in done["tasks"]]
        assert done["status"] == "succeeded" and tasks == [("first", "succeeded", 1), ("second", "succeeded", 1)], done
        made = await batch.list_namespaced_job(USERS, label_selector=f"moonhub.io/pipeline-run={done['name']}")
        assert sorted(j.metadata.labels["moonhub.io/task"] for j in made.items) == ["first", "second"], "each task once"
        settled = await _records(s, hub)

        # and back: the previous release's chart and image again, with the same records. A
        # migration since that release is taken back first, by this version (the operator's
        # step in helm/README.md, Rollbacks): the older one refuses a schema it does not know
        t2 = time.monotonic()
        old_head = schema_head_at(PREVIOUS)
        if old_head != schema.head():
            said = new.kubectl(
                "exec", "-n", NS, f"deploy/{RELEASE}-moonhub-jobs", "-c", "jobs", "--",
                "python", "-m", "jobs_service.schema", "--to", old_head,
            )  # fmt: skip
            assert f"jobs database at revision {old_head} (was {schema.head()})" in said, said
        new.check(new.helm("rollback", RELEASE, "1", "-n", NS, "--wait", "--timeout", "360s"))
        timings[f"upgrade test ({name}): helm rollback --wait to it"] = time.monotonic() - t2
        new.wait_hub(hub.url)
        assert await _records(s, hub) == settled, "nothing lost in the rollback"
        assert (await _server(core)).metadata.uid == server.metadata.uid
        assert (await batch.read_namespaced_job(queued["name"], USERS)).metadata.uid == held.metadata.uid
    finally:
        old.uninstall()
