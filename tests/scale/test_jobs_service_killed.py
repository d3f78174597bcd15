"""Faults on the scale tier: the jobs service killed (SIGKILL) while 50 runs are going.

Five users run ten jobs each at once ("run now"; kwok plays each run's pod to completion).
The jobs service is killed as the last run is asked for; the hub starts it again. Then the
inventory: every run the service acknowledged is recorded and ends, each job has exactly
one run, and the cluster holds exactly one Job per run (none started twice, none lost).
"""

from __future__ import annotations

import os
import signal
import time

from kubernetes_asyncio import client, config

from benchmarks.scale_tier import NS
from localcluster.supervisor import marked
from moonhub_core import pods
from tests.helpers import NOTEBOOK, jobs_api, wait_for
from tests.scale.tier import ENDED, moonhub_on_scale_tier

USERS = [f"j{i}" for i in range(5)]
JOBS_EACH = 10


async def test_the_jobs_service_killed_with_50_runs_going_loses_and_repeats_none() -> None:
    async with moonhub_on_scale_tier(USERS) as (cfg, under, hub):
        calls = {u: jobs_api(hub, hub.login(u), u) for u in USERS}
        jobs: dict[str, list[int]] = {u: [] for u in USERS}
        for u, call in calls.items():
            for i in range(JOBS_EACH):
                body = {
                    "name": f"report-{i}",
                    "notebook": "report.ipynb",
                    "notebook_content": NOTEBOOK,
                    "schedule": None,
                }
                r = call("POST", "/jobs", body)
                assert r.status_code == 201, r.text
                jobs[u].append(r.json()["id"])
        service = [p for p in marked(under.sup.mark(under.name)) if b"jobs_service" in _cmdline(p)]
        assert len(service) == 1, service
        acknowledged = 0
        asks = [(u, job_id) for u, ids in jobs.items() for job_id in ids]
        for k, (u, job_id) in enumerate(asks):
            if k == len(asks) - 1:  # killed as the last run is asked for
                os.kill(service[0], signal.SIGKILL)
            try:
                r = calls[u]("POST", f"/jobs/{job_id}/run", timeout=10)
                acknowledged += r.status_code == 201
            except OSError:
                pass
        assert acknowledged >= len(USERS) * JOBS_EACH - 1, acknowledged
        t0 = time.monotonic()

        def every_run() -> dict[int, list[dict[str, object]]]:
            out = {}
            for u, ids in jobs.items():
                for job_id in ids:
                    r = calls[u]("GET", f"/jobs/{job_id}/runs", timeout=10)
                    out[job_id] = r.json()["runs"] if r.status_code == 200 else [{"status": f"HTTP {r.status_code}"}]
            return out

        runs = await wait_for(
            every_run,
            lambda got: sum(1 for rs in got.values() for r in rs if r["status"] in ENDED) >= acknowledged,
            timeout=300,
            interval=3,
            what="every acknowledged run to end after the restart",
        )
        settle_s = time.monotonic() - t0
        await config.load_kube_config(str(cfg.admin_kubeconfig))
        async with client.ApiClient() as api:
            made = await client.BatchV1Api(api).list_namespaced_job(
                NS, label_selector=f"{pods.COMPONENT}={pods.NOTEBOOK_JOB}"
            )
        counts = [len(rs) for rs in runs.values()]
        statuses = sorted({str(r["status"]) for rs in runs.values() for r in rs})
        print(
            f"\njobs service killed with {acknowledged} runs acknowledged: all ended {settle_s:.1f} s later; "
            f"runs per job {min(counts)}..{max(counts)}, statuses {statuses}, {len(made.items)} Kubernetes Jobs"
        )
        assert sum(counts) >= acknowledged and max(counts) == 1, counts
        assert len(made.items) == sum(counts), [j.metadata.name for j in made.items]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
