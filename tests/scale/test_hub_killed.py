"""Faults on the scale tier: the hub killed (SIGKILL) during a burst of spawns.

The scale tier (``benchmarks/scale_tier.py``): kwok nodes, one stand-in server answering for
every pod, the real hub, proxy and services. 200 users start their servers over a few
seconds; the hub is killed once ten run (others starting), leaving its proxy and
services running; it is started again as ``./moonhub up`` would start it. Then the
inventory: every server either runs and answers through the proxy or is not there, no pod
without a server, every workspace kept.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, config

from benchmarks.hub_load import Client, burst
from benchmarks.scale_tier import NS, HubUnderTest, make_claims, moonhub_hub, scale_cluster
from localcluster.config import ClusterConfig
from localcluster.hub import hub_up
from localcluster.supervisor import marked

USERS = [f"k{i:03d}" for i in range(200)]


async def settled(c: Client, users: list[str], timeout: float = 300) -> dict[str, Any]:
    """Each user's default server as the hub reports it, once none is pending any more."""
    deadline = time.monotonic() + timeout
    while True:
        servers = {}
        for u in users:
            status, body = await c.api("admin", "GET", f"/users/{u}")
            assert status == 200, (u, status, body)
            servers[u] = (body.get("servers") or {}).get("")
        pending = [u for u, s in servers.items() if s and s.get("pending")]
        if not pending or time.monotonic() > deadline:
            return servers
        await asyncio.sleep(3)


async def inventory(cfg: ClusterConfig, hub: HubUnderTest, users: list[str]) -> dict[str, Any]:
    pool = aiohttp.TCPConnector(limit=50)
    c = Client(hub, pool)
    try:
        await c.login("admin")
        t0 = time.monotonic()
        servers = await settled(c, users)
        out: dict[str, Any] = {"settle_s": time.monotonic() - t0}
        running = {u for u, s in servers.items() if s and s.get("ready")}
        out["pending"] = sorted(u for u, s in servers.items() if s and s.get("pending"))
        out["running"] = running
        unreachable = []
        for u in sorted(running):
            async with c.session("admin").get(f"{hub.url}/user/{u}/api", allow_redirects=False) as r:
                if r.status != 200 or b"standin" not in await r.read():
                    unreachable.append(u)
        out["unreachable"] = unreachable
    finally:
        await c.close()
        await pool.close()
    await config.load_kube_config(str(cfg.admin_kubeconfig))
    async with client.ApiClient() as api:
        core = client.CoreV1Api(api)
        pods = (await core.list_namespaced_pod(NS, label_selector="component=singleuser-server")).items
        claims = (await core.list_namespaced_persistent_volume_claim(NS)).items
    live = {p.metadata.name for p in pods if not p.metadata.deletion_timestamp}
    out["orphan_pods"] = sorted(n for n in live if n.removeprefix("jupyter-") not in running)
    out["missing_pods"] = sorted(u for u in running if f"jupyter-{u}" not in live)
    out["claims"] = sum(1 for pvc in claims if pvc.metadata.name.removeprefix("claim-") in users)
    return out


async def burst_and_kill(hub: HubUnderTest, users: list[str], over: float, ready_first: int) -> tuple[int, int, int]:
    """Start ``users``' servers over ``over`` seconds and SIGKILL the hub half-way, once
    ``ready_first`` of them are ready (others under way); how many spawns were asked
    for and how many were ready before it died, and how many processes it left."""
    pool = aiohttp.TCPConnector(limit=100)
    c = Client(hub, pool)
    await c.login("admin")
    status, _ = await c.api("admin", "POST", "/users", json={"usernames": users})
    assert status in (201, 409)
    going = asyncio.ensure_future(burst(c, users, over, 20))
    deadline = time.monotonic() + over
    ready = 0
    await asyncio.sleep(over / 2)  # half the spawns asked for
    while ready < ready_first and time.monotonic() < deadline:
        # counted from the servers themselves: the filter's total also counts spawns still
        # pending (they have a server row already), which a restart rightly ends
        _, body = await c.api("admin", "GET", "/users?state=ready&limit=500")
        ready = sum(
            1
            for u in body or []
            if isinstance(u, dict)
            and (u.get("servers") or {}).get("", {}).get("ready")
            and not (u.get("servers") or {}).get("", {}).get("pending")
        )
        await asyncio.sleep(0.3)
    os.kill(hub.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    flows, _ = await going
    await c.close()
    await pool.close()
    taken = sum(1 for f in flows if 0 < f.asked_at < killed_at)
    return taken, ready, len(marked(hub.sup.mark(hub.name)))


def test_the_hub_killed_mid_burst_comes_back_with_nothing_lost_or_orphaned() -> None:
    if os.environ.get("KUBECONFIG"):
        pytest.skip("the scale tier runs its own control plane on this host")
    with scale_cluster(1) as cfg, moonhub_hub(cfg) as hub:
        asyncio.run(make_claims(cfg, USERS))
        taken, ready, left_behind = asyncio.run(burst_and_kill(hub, USERS, over=20.0, ready_first=10))
        # the proxy and the services outlive a killed hub, holding their ports
        assert left_behind >= 2, left_behind
        t0 = time.monotonic()
        assert hub.config is not None
        hub_up(cfg, hub.sup, hub.config, name=hub.name)
        restart_s = time.monotonic() - t0
        assert not [p for p in marked(hub.sup.mark(hub.name)) if p != hub.pid and not _below(p, hub.pid)]
        found = asyncio.run(inventory(cfg, hub, USERS))
        print(
            f"\nhub killed half-way through 200 spawns over 20 s: {taken} spawns asked for, {ready} ready before; "
            f"restarted in {restart_s:.1f} s; "
            f"settled in {found['settle_s']:.1f} s: {len(found['running'])} running, "
            f"{len(found['unreachable'])} unreachable, {len(found['orphan_pods'])} pods without a server, "
            f"{found['claims']}/{len(USERS)} workspaces"
        )
        assert ready > 0 and taken >= ready, "servers ran when it was killed"
        # a server that ran when the hub was killed still runs
        assert len(found["running"]) >= ready
        assert not found["pending"], found["pending"]
        assert not found["unreachable"], found["unreachable"]
        assert not found["orphan_pods"], found["orphan_pods"]
        assert not found["missing_pods"], found["missing_pods"]
        assert found["claims"] == len(USERS)


def _below(pid: int, parent: int) -> bool:
    """Whether ``pid`` descends from ``parent`` (the new hub's own proxy and services)."""
    import psutil

    try:
        return any(p.pid == parent for p in psutil.Process(pid).parents())
    except psutil.NoSuchProcess:
        return True
