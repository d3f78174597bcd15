"""Notebook jobs for real: the jobs service's manifests, run by the runner in the notebook
image on the local cluster's kubelet; each run's pod fetches its notebook version and
parameters from the service's launch routes (served here by a real service on the node's
address, as the hub-run service is)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from tornado import web

from jobs_service import launch, manifests, snapshots, sync, validation
from jobs_service.context import Caller
from jobs_service.db import DefinitionRow, open_db
from jobs_service.jobstatus import failure_reason
from jobs_service.service import JobsService
from jobs_service.settings import for_tests
from localcluster.config import ClusterConfig
from moonhub_core import choices as ch
from moonhub_core import pods
from moonhub_core.catalog import CatalogStore
from moonhub_core.workload import build
from tests.helpers import create_pvc, describe_pod, example_catalog, notebook, read_from_pvc, wait_for

CATALOG = Path(__file__).resolve().parents[2] / "moonhub_core" / "examples" / "catalog.yaml"
LAUNCH_PORT = 18095


@pytest.fixture(autouse=True)
def _runs_on_local_cluster(local_cluster: ClusterConfig | None) -> None:
    if local_cluster is None:
        pytest.skip("needs the notebook image from the local registry")


@pytest.fixture
async def launcher(
    api: client.ApiClient, namespace: str, tmp_path: Path, local_cluster: ClusterConfig
) -> AsyncIterator[JobsService]:
    """The jobs service's launch routes on the node's address, for this test's namespace."""
    url = f"http://{local_cluster.node_ip}:{LAUNCH_PORT}/services/jobs/launch"
    svc = JobsService(
        open_db(f"sqlite:///{tmp_path / 'jobs.sqlite'}"),
        CatalogStore(CATALOG),
        api,
        for_tests(namespace=namespace, snapshot_dir=tmp_path / "snapshots", launch_url=url),
    )
    server = web.Application(launch.routes("/services/jobs/"), jobs=svc).listen(LAUNCH_PORT, local_cluster.node_ip)
    yield svc
    server.stop()


async def _submit(
    svc: JobsService, api: client.ApiClient, ns: str, owner: str, body: dict, nb: dict, run: str
) -> manifests.Names:
    batch = client.BatchV1Api(api)
    timeout = body.pop("_timeout", None)
    defn = validation.parse(body)
    if timeout:  # below the API's 60 s minimum, to keep the test short
        defn = dataclasses.replace(defn, timeout_seconds=timeout)
    choice = ch.parse(defn.choices(), example_catalog(), ch.allowed(example_catalog(), []))
    names = manifests.Names(owner, defn.name)
    w = build(example_catalog(), choice, f"claim-{owner}")
    frozen = snapshots.Frozen.of(nb)
    with svc.ctx.db() as s:
        row = DefinitionRow(
            owner=owner, name=defn.name, spec=dataclasses.asdict(defn), version=1, cronjob=names.cronjob
        )
        row.versions.append(await snapshots.freeze(svc.ctx, s, owner, 1, frozen, 0))
        s.add(row)
        s.commit()
    fetch = launch.for_version(svc.ctx, names.cronjob, 1, frozen.sha256)
    cron = manifests.cronjob(defn, names, 1, fetch, w, ns)
    await batch.create_namespaced_cron_job(ns, cron)
    await batch.create_namespaced_job(ns, manifests.manual_job(cron, run))
    return names


async def _finished(batch: client.BatchV1Api, ns: str, job: str, timeout: float = 180) -> client.V1Job:
    """The Job once it completed or failed; on timeout the failure describes its pods. (Each
    try starts a kernel and runs papermill: tens of seconds on a busy machine; a retry also
    waits out the Job controller's back-off.)"""
    try:
        return await wait_for(
            lambda: batch.read_namespaced_job(job, ns),
            lambda j: any(c.type in ("Complete", "Failed") and c.status == "True" for c in j.status.conditions or []),
            timeout=timeout,
            what=f"job {job} to finish",
        )
    except AssertionError as e:
        core = client.CoreV1Api(batch.api_client)
        pods = (await core.list_namespaced_pod(ns, label_selector=f"job-name={job}")).items
        described = [await describe_pod(core, ns, p.metadata.name) for p in pods]
        raise AssertionError("\n".join([str(e), *described])) from None


async def test_run_now_executes_snapshot_with_parameters(
    launcher: JobsService, api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    await core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    owner = "olga"
    await create_pvc(core, namespace, f"claim-{owner}")
    good = notebook(
        ("greeting = 'default'\nrepeat = 1", ["parameters"]),
        ("import socket\nprint(greeting * repeat, socket.gethostname().startswith('daily-report-run1'))", []),
    )
    bad = notebook(("x = 1", ["parameters"]), ("raise ValueError('boom at cell 2')", []))
    batch = client.BatchV1Api(api)
    daily, _ = await asyncio.gather(
        _submit(
            launcher,
            api,
            namespace,
            owner,
            {
                "name": "daily-report",
                "notebook": "reports/daily.ipynb",
                "schedule": "0 6 * * 1-5",
                "timezone": "Asia/Shanghai",
                "parameters": {"greeting": "hello ", "repeat": 2},
            },
            good,
            "daily-report-run1",
        ),
        _submit(
            launcher,
            api,
            namespace,
            owner,
            {"name": "broken", "notebook": "broken.ipynb", "schedule": None},
            bad,
            "broken-run1",
        ),
    )
    job = await _finished(batch, namespace, "daily-report-run1")
    pods = (await core.list_namespaced_pod(namespace, label_selector="job-name=daily-report-run1")).items
    assert [c.type for c in job.status.conditions if c.status == "True"][-1] == "Complete", await describe_pod(
        core, namespace, pods[0].metadata.name
    )
    out = json.loads(
        await read_from_pvc(core, namespace, f"claim-{owner}", "jobs/daily-report/daily-report-run1.ipynb")
    )
    injected = [c for c in out["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'greeting = "hello "' in "".join(injected[0]["source"])
    printed = "".join("".join(o.get("text", [])) for c in out["cells"] for o in c.get("outputs", []))
    assert printed.strip() == "hello hello  True"
    result = json.loads(
        await read_from_pvc(core, namespace, f"claim-{owner}", "jobs/daily-report/daily-report-run1.ipynb.result.json")
    )
    assert result["status"] == "succeeded"

    job = await _finished(batch, namespace, "broken-run1")
    assert [c.type for c in job.status.conditions if c.status == "True"][-1] == "Failed"
    result = json.loads(
        await read_from_pvc(core, namespace, f"claim-{owner}", "jobs/broken/broken-run1.ipynb.result.json")
    )
    assert (result["status"], result["cell"], result["error"]) == ("failed", 2, "ValueError")
    pod = (await core.list_namespaced_pod(namespace, label_selector="job-name=broken-run1")).items[0]
    assert pod.status.container_statuses[0].state.terminated.exit_code == 1
    log = await core.read_namespaced_pod_log(pod.metadata.name, namespace)
    assert "cell 2 failed: ValueError: boom at cell 2" in log

    assert daily.cronjob.startswith("nb-olga-daily-report-"), "readable, then a hash of (owner, job)"
    cron = await batch.read_namespaced_cron_job(daily.cronjob, namespace)
    assert (cron.spec.schedule, cron.spec.time_zone, cron.spec.concurrency_policy, cron.spec.suspend) == (
        "0 6 * * 1-5",
        "Asia/Shanghai",
        "Forbid",
        False,
    )


async def test_timeout_ends_the_run(
    launcher: JobsService, api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    owner = "pavel"
    await create_pvc(core, namespace, f"claim-{owner}")
    slow = notebook(("import time\ntime.sleep(600)", []))
    body = {"name": "slow", "notebook": "slow.ipynb", "_timeout": 8}
    await _submit(launcher, api, namespace, owner, body, slow, "slow-run1")
    job = await _finished(client.BatchV1Api(api), namespace, "slow-run1")
    failed = next(c for c in job.status.conditions if c.type == "Failed" and c.status == "True")
    assert failed.reason == "DeadlineExceeded"


async def test_retries_run_the_notebook_again(
    launcher: JobsService, api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    owner = "quentin"
    await create_pvc(core, namespace, f"claim-{owner}")
    flaky = notebook(("raise RuntimeError('always fails')", []))
    body = {"name": "flaky", "notebook": "flaky.ipynb", "retries": 1}
    await _submit(launcher, api, namespace, owner, body, flaky, "flaky-run1")
    job = await _finished(client.BatchV1Api(api), namespace, "flaky-run1", timeout=300)  # two tries
    assert [c.type for c in job.status.conditions if c.status == "True"][-1] == "Failed"
    pods = (await core.list_namespaced_pod(namespace, label_selector="job-name=flaky-run1")).items
    assert len(pods) == 2 and job.status.failed == 2, "one try plus one retry"
    # why, in words: the runner's termination message names the cell and its error
    why = failure_reason(pods) or ""
    assert why.startswith("cell ") and why.endswith("failed: RuntimeError: always fails"), why


async def test_a_run_out_of_memory_says_so_with_its_limit(
    launcher: JobsService, api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    """The size's memory limit (small: 4 GiB) is enforced by the kernel: the OOM killer stops
    the notebook's kernel, and the run's pod says why, which the jobs service shows."""
    owner = "rita"
    await create_pvc(core, namespace, f"claim-{owner}")
    hungry = notebook(("x = b'\\x01' * (5 * 2**30)", []))
    body = {"name": "hungry", "notebook": "hungry.ipynb"}
    await _submit(launcher, api, namespace, owner, body, hungry, "hungry-run1")
    job = await _finished(client.BatchV1Api(api), namespace, "hungry-run1")
    assert [c.type for c in job.status.conditions if c.status == "True"][-1] == "Failed"
    pods = (await core.list_namespaced_pod(namespace, label_selector="job-name=hungry-run1")).items
    assert failure_reason(pods) == "out of memory (limit 4 GiB)", await describe_pod(
        core, namespace, pods[0].metadata.name
    )


async def test_run_now_records_every_job_it_may_have_made(
    launcher: JobsService, core: client.CoreV1Api, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A "run now" whose Job create was sent and got no answer keeps its run: the sync loop
    follows the Job when the API server made it, and says the run never started when it did
    not. A create that could not be sent (no connection) or that Kubernetes refuses leaves
    no run and no audit line."""
    svc, ursula = launcher, Caller("ursula")
    job = await svc.create(
        ursula,
        {"name": "lost", "notebook": "lost.ipynb", "schedule": None, "notebook_content": notebook(("1", []))},
    )
    batch = svc.ctx.batch
    create = batch.create_namespaced_job

    async def made_then_lost(ns: str, body: Any, **kw: Any) -> Any:  # the API server made it; the answer is lost
        await create(ns, body, **kw)
        raise TimeoutError("no answer")

    async def never_sent(ns: str, body: Any, **kw: Any) -> Any:  # the request never reached it
        raise aiohttp.ServerDisconnectedError()

    monkeypatch.setattr(batch, "create_namespaced_job", made_then_lost)
    made = await svc.run_now(ursula, job["id"])
    monkeypatch.setattr(batch, "create_namespaced_job", never_sent)
    lost = await svc.run_now(ursula, job["id"])
    monkeypatch.setattr(batch, "create_namespaced_job", create)
    assert made["status"] == lost["status"] == "queued"
    # no connection to the API server (a closed port here): nothing was sent, nothing is kept
    unreachable = client.ApiClient(client.Configuration(host="https://127.0.0.1:1"))
    monkeypatch.setattr(svc.ctx, "batch", client.BatchV1Api(unreachable))
    with pytest.raises(aiohttp.ClientConnectorError):
        await svc.run_now(ursula, job["id"])
    monkeypatch.setattr(svc.ctx, "batch", batch)
    await unreachable.close()

    # Kubernetes refuses a third (a quota of no Jobs in the namespace): nothing of it is kept
    await core.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "no-jobs"}, "spec": {"hard": {"count/jobs.batch": "0"}}}
    )
    await wait_for(
        lambda: core.read_namespaced_resource_quota("no-jobs", namespace),
        lambda q: bool(q.status and q.status.hard),
        timeout=60,
        what="the quota's usage counted",
    )
    with pytest.raises(client.ApiException) as refused:
        await svc.run_now(ursula, job["id"])
    assert refused.value.status == 403, refused.value.reason

    monkeypatch.setattr(sync, "GONE_GRACE", datetime.timedelta(0))
    await svc.sync_runs()
    runs = {r["name"]: r for r in svc.runs(ursula, job["id"])}
    assert set(runs) == {made["name"], lost["name"]}, runs
    assert runs[made["name"]]["status"] in ("queued", "running", "succeeded"), runs[made["name"]]
    assert runs[lost["name"]]["status"] == "cancelled"
    assert runs[lost["name"]]["reason"].startswith("not started: its Job was never seen"), runs[lost["name"]]
    lines = [a for a in svc.audit(ursula, "ursula") if a["action"] == "run"]
    assert sorted(a["detail"] for a in lines) == sorted([made["name"], lost["name"]]), lines
    jobs = (await batch.list_namespaced_job(namespace, label_selector=f"{pods.COMPONENT}={pods.NOTEBOOK_JOB}")).items
    assert [j.metadata.name for j in jobs] == [made["name"]]
