"""Faults on the scale tier: the proxy replaced while 100 servers run.

The proxy runs on its own here, as in the Helm chart (``hub.start_proxy: false``); it is
stopped and a new one started with an empty routing table. The hub notices within its
route watch (``hub_config/proxy.py``) and adds every route again; the test follows each
user's server through the new proxy until all answer, and prints how long that took.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time

import aiohttp
import pytest
import yaml

from benchmarks.hub_load import Client, burst
from benchmarks.scale_tier import MOONHUB_PORT, NS, STORAGE_CLASS, HubUnderTest, make_claims, scale_cluster
from localcluster.config import REPO
from localcluster.hub import dev_password, hub_up
from localcluster.supervisor import Supervisor
from tests.conftest import platform_doc

USERS = [f"p{i:03d}" for i in range(100)]
PORT = MOONHUB_PORT + 400


def proxy_argv(token_port: int, hub_api: str) -> list[str]:
    # node itself, not the package's `#!/usr/bin/env node` script: the supervisor knows a
    # process by the executable the kernel ran first
    chp = str(REPO / "node_modules" / "configurable-http-proxy" / "bin" / "configurable-http-proxy")
    return [
        str(shutil.which("node")),
        chp,
        "--ip=127.0.0.1",
        f"--port={token_port}",
        "--api-ip=127.0.0.1",
        f"--api-port={token_port + 1}",
        f"--default-target={hub_api}",
        f"--error-target={hub_api}/hub/error",
    ]


async def all_answer(c: Client, users: list[str], timeout: float) -> tuple[float, int]:
    """Seconds until every user's server answers through the proxy; how many did at the end."""
    t0 = time.monotonic()
    left = set(users)
    while left and time.monotonic() - t0 < timeout:
        for u in sorted(left):
            try:
                async with c.session("admin").get(f"{c.hub.url}/user/{u}/api", allow_redirects=False) as r:
                    if r.status == 200 and b"standin" in await r.read():
                        left.discard(u)
            except aiohttp.ClientError:
                pass
        if left:
            await asyncio.sleep(0.5)
    return time.monotonic() - t0, len(users) - len(left)


def test_a_replaced_proxy_gets_every_route_back() -> None:
    if os.environ.get("KUBECONFIG"):
        pytest.skip("the scale tier runs its own control plane on this host")
    with scale_cluster(1) as cfg:
        asyncio.run(make_claims(cfg, USERS))
        state = REPO / ".state" / "scale-proxy-hub"
        doc = platform_doc(state, PORT, cluster=cfg)
        doc["hub"]["start_proxy"] = False
        doc["jobs"] |= {"url": f"http://{cfg.node_ip}:{PORT + 90}"}
        doc["spawner"] |= {"storage_class_override": STORAGE_CLASS, "namespace": NS}
        config = state / "platform.yaml"
        config.write_text(yaml.safe_dump(doc))
        token = os.urandom(16).hex()
        sup = Supervisor(cfg.run, cfg.logs, REPO)
        hub_api = doc["hub"]["api_url"]
        sup.start("scale-proxy", proxy_argv(PORT, hub_api), {"CONFIGPROXY_AUTH_TOKEN": token})
        sup.wait_healthy("scale-proxy", None)
        try:
            url = hub_up(cfg, sup, config, name="scale-proxy-hub", extra_env={"CONFIGPROXY_AUTH_TOKEN": token})
            hub = HubUnderTest("scale-proxy-hub", url, dev_password(config) or "", "jupyter-", sup, config)

            async def scenario() -> tuple[int, float, int]:
                pool = aiohttp.TCPConnector(limit=50)
                c = Client(hub, pool)
                try:
                    await c.login("admin")
                    status, _ = await c.api("admin", "POST", "/users", json={"usernames": USERS})
                    assert status in (201, 409)
                    flows, _ = await burst(c, USERS, 5.0, 120)
                    running = [f.user for f in flows if f.reachable]
                    assert len(running) == len(USERS), [f.error for f in flows if f.error][:3]
                    sup.stop("scale-proxy")
                    sup.start("scale-proxy", proxy_argv(PORT, hub_api), {"CONFIGPROXY_AUTH_TOKEN": token})
                    seconds, back = await all_answer(c, running, timeout=120)
                    return len(running), seconds, back
                finally:
                    await c.close()
                    await pool.close()

            running, seconds, back = asyncio.run(scenario())
            print(f"\nproxy replaced with {running} servers running: {back} routes back in {seconds:.1f} s")
            assert back == running
        finally:
            sup.stop("scale-proxy-hub")
            sup.stop("scale-proxy")
