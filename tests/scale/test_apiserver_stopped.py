"""Faults on the scale tier: the API server stopped for 60 s with servers running, users
asking for more, and a job scheduled every minute.

Then, with nobody stepping in: the hub, its proxy, the jobs service, the idle culler and
the GPU reclaim service are the same processes; every server that ran before runs and
answers through the proxy; a server asked for after the outage starts; a "run now" after
the outage runs; the every-minute job has exactly one run per Job it made (none twice, none
lost); no server pod without a server.
"""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
from kubernetes_asyncio import client, config

from benchmarks.hub_load import Client, spawn_flow
from benchmarks.scale_tier import NS
from localcluster import cli
from localcluster.supervisor import marked
from moonhub_core import pods
from tests.helpers import NOTEBOOK, jobs_api, wait_for
from tests.scale.tier import ENDED, moonhub_on_scale_tier

BEFORE = [f"a{i}" for i in range(8)]
DURING = ["d0", "d1"]
AFTER = ["z0", "z1"]
OWNER = "jobs0"
OUTAGE_S = 60


async def test_the_api_server_stopped_for_a_minute_is_recovered_from_without_a_person() -> None:
    async with moonhub_on_scale_tier([*BEFORE, *DURING, *AFTER, OWNER]) as (cfg, under, hub):
        jobs = jobs_api(hub, hub.login(OWNER), OWNER)
        body = {"name": "every-minute", "notebook": "t.ipynb", "notebook_content": NOTEBOOK, "schedule": "* * * * *"}
        r = jobs("POST", "/jobs", body)
        assert r.status_code == 201, r.text
        ticking, ticking_cron = r.json()["id"], r.json()["cronjob"]
        r = jobs("POST", "/jobs", {**body, "name": "by-hand", "schedule": None})
        assert r.status_code == 201, r.text
        by_hand = r.json()["id"]

        pool = aiohttp.TCPConnector(limit=32)
        c = Client(under, pool)
        try:
            flows = await asyncio.gather(*(spawn_flow(c, u, time.monotonic() + 120) for u in BEFORE))
            assert all(f.ready and f.reachable for f in flows), [f.error for f in flows]
            processes = sorted({*marked(under.sup.mark(under.name)), under.pid})

            sup = cli.supervisor(cfg)
            sup.stop("kube-apiserver")
            t_stop = time.monotonic()
            # users keep asking while it is away: a server, a run; the hub answers them
            during = await asyncio.gather(*(spawn_flow(c, u, time.monotonic() + 45) for u in DURING))
            r = await asyncio.to_thread(jobs, "POST", f"/jobs/{by_hand}/run", None, 30)
            run_during = f"{r.status_code} {r.json().get('message', '')[:60]}"
            async with c.session(BEFORE[0]).get(f"{under.url}/hub/health") as h:
                health_during = h.status
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t_stop)))
            cli.start_component(cfg, "kube-apiserver")
            back, back_at = time.monotonic(), time.time()
            outage = back - t_stop

            # a server asked for after the outage starts, with nobody restarting anything
            after = await asyncio.gather(*(spawn_flow(c, u, time.monotonic() + 150) for u in AFTER))
            after_s = time.monotonic() - back
            assert all(f.ready and f.reachable for f in after), [f.error for f in after]
            for u in BEFORE:
                async with c.session(u).get(f"{under.url}/user/{u}/api") as resp:
                    assert resp.status == 200 and b"standin" in await resp.read(), u
        finally:
            await c.close()
            await pool.close()

        r = jobs("POST", f"/jobs/{by_hand}/run")
        assert r.status_code == 201, r.text
        await wait_for(
            lambda: jobs("GET", f"/jobs/{by_hand}/runs").json()["runs"],
            lambda rs: any(x["status"] in ENDED for x in rs) and all(x["status"] in ENDED for x in rs),
            timeout=120,
            interval=3,
            what="the run asked for after the outage to end",
        )
        # the next tick after the outage makes its Job and its run
        await config.load_kube_config(str(cfg.admin_kubeconfig))
        async with client.ApiClient() as api:
            batch = client.BatchV1Api(api)
            selector = f"{pods.COMPONENT}={pods.NOTEBOOK_JOB}"

            async def ticks() -> list[client.V1Job]:
                listed = await batch.list_namespaced_job(NS, label_selector=selector)
                return [j for j in listed.items if j.metadata.name.startswith(f"{ticking_cron}-")]

            # the first tick after the outage makes its Job
            await wait_for(
                ticks,
                lambda js: any(j.metadata.creation_timestamp.timestamp() >= back_at for j in js),
                timeout=90,
                what="a tick after the outage",
            )
            await asyncio.sleep(10)  # the sync loop takes the tick's Job up
            tick_jobs = sorted(j.metadata.name for j in await ticks())
            server_pods = await client.CoreV1Api(api).list_namespaced_pod(
                NS, label_selector="component=singleuser-server"
            )
        tick_runs = jobs("GET", f"/jobs/{ticking}/runs").json()["runs"]
        alive = [p for p in processes if _alive(p)]
        print(
            f"\nAPI server stopped {outage:.0f} s with {len(BEFORE)} servers running: during it the hub's health "
            f"answered {health_during}, spawns {[f.error or 'ready' for f in during]}, run now HTTP {run_during}; "
            f"after it: {len(AFTER)} new servers ready {after_s:.1f} s after it was back, all {len(BEFORE)} earlier "
            f"servers answering; {len(alive)}/{len(processes)} processes the same; every-minute job: "
            f"{len(tick_jobs)} Jobs, {len(tick_runs)} runs; {len(server_pods.items)} server pods"
        )
        assert alive == processes
        # what users were told while it was away: that the cluster does not answer
        assert all("does not answer" in f.error for f in during if not f.ready), [f.error for f in during]
        assert run_during.startswith("503") and "does not answer" in run_during, run_during
        assert sorted(r["name"] for r in tick_runs) == sorted(tick_jobs), (tick_runs, tick_jobs)
        # every server pod stands for a server the hub has
        running = set(BEFORE + AFTER) | {f.user for f in during if f.ready}
        owners = {(p.metadata.annotations or {}).get(pods.HUB_USER, "") for p in server_pods.items}
        assert owners == running, (owners, running)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
