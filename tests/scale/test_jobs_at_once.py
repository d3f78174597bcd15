"""Many users changing jobs at the same moment, on the scale tier: creates, "run now" and the
service's own sync loop all write the jobs database at once.

Before, the service held a write transaction across its Kubernetes calls; a second writer
then waited for SQLite's lock on the event loop itself, the first could never commit, and
both failed after the busy timeout (HTTP 500, "database is locked", 30 s requests) with 8
creates at a time. Every answer must be a success here, with one CronJob per job and one
Job per run.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from kubernetes_asyncio import client, config

from benchmarks.scale_tier import NS
from jobs_service import run_logs
from jobs_service.sync import RECORDED
from moonhub_core import pods
from tests.helpers import NOTEBOOK, jobs_api, wait_for
from tests.scale.tier import ENDED, moonhub_on_scale_tier

USERS = [f"c{i}" for i in range(8)]
JOBS_EACH = 6
AT_ONCE = 16


async def test_creates_and_runs_at_once_all_succeed() -> None:
    async with moonhub_on_scale_tier(USERS) as (cfg, under, hub):
        calls = {u: jobs_api(hub, hub.login(u), u) for u in USERS}
        asks = [(u, i) for i in range(JOBS_EACH) for u in USERS]

        def create(ask: tuple[str, int]) -> tuple[str, int, str]:
            u, i = ask
            body = {"name": f"at-once-{i}", "notebook": "a.ipynb", "notebook_content": NOTEBOOK, "schedule": None}
            t0 = time.monotonic()
            r = calls[u]("POST", "/jobs", body, timeout=60)
            took = time.monotonic() - t0
            return u, r.status_code, r.text if r.status_code != 201 else str(r.json()["id"]) + f" {took:.2f}"

        with ThreadPoolExecutor(AT_ONCE) as pool:
            made = list(pool.map(create, asks))
        refused = [m for m in made if m[1] != 201]
        assert not refused, refused[:3]
        ids = [(u, int(text.split()[0])) for u, _, text in made]
        slowest = max(float(text.split()[1]) for _, _, text in made)

        def run_now(ask: tuple[str, int]) -> int:
            u, job_id = ask
            return int(calls[u]("POST", f"/jobs/{job_id}/run", timeout=60).status_code)

        with ThreadPoolExecutor(AT_ONCE) as pool:
            answers = list(pool.map(run_now, ids))
        assert answers == [201] * len(ids), answers

        def every_run() -> dict[int, list[dict[str, object]]]:
            return {job_id: calls[u]("GET", f"/jobs/{job_id}/runs").json()["runs"] for u, job_id in ids}

        runs = await wait_for(
            every_run,
            lambda got: all(rs and rs[0]["status"] in ENDED for rs in got.values()),
            timeout=240,
            interval=3,
            what="every run to end",
        )
        await config.load_kube_config(str(cfg.admin_kubeconfig))
        async with client.ApiClient() as api:
            batch = client.BatchV1Api(api)
            selector = f"{pods.COMPONENT}={pods.NOTEBOOK_JOB}"
            crons = await batch.list_namespaced_cron_job(NS, label_selector=selector)
            # each ended run's Job is marked as recorded: the sync loop lists it no more. It is
            # marked once its log is kept; the simulated nodes serve no logs, so the service
            # asks for each for a minute (run_logs.GIVE_UP_AFTER) and then keeps a line saying so
            jobs = await wait_for(
                lambda: batch.list_namespaced_job(NS, label_selector=selector),
                lambda got: all((j.metadata.labels or {}).get(RECORDED) == "ended" for j in got.items),
                timeout=run_logs.GIVE_UP_AFTER.total_seconds() + 60,
                what="the ended runs' Jobs marked as recorded",
            )
        print(
            f"\n{len(asks)} creates {AT_ONCE} at a time: all 201, slowest {slowest:.2f} s; "
            f"{len(ids)} runs asked at once: all 201; {len(crons.items)} CronJobs, {len(jobs.items)} Jobs"
        )
        assert [len(rs) for rs in runs.values()] == [1] * len(ids)
        assert len(crons.items) == len(ids)
        assert len(jobs.items) == len(ids)
        log = (cfg.logs / f"{under.name}.log").read_text(errors="replace")
        assert "database is locked" not in log
