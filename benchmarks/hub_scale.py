"""Scale benchmark: MoonHub's hub beside stock JupyterHub + KubeSpawner, on the scale tier.

The scale tier is a local cluster without the real node: kwok plays ``--nodes`` CPU nodes,
kwok's pod range is ``local`` to this machine, and one stand-in server answers for every pod
(``localcluster/standin.py``), so a spawn completes for real from the hub's side: the pod
is made, scheduled, runs, and the server's URL answers through the proxy. Each user has a
workspace claim already (returning users; a static PV each: the storage provisioner is not
what is measured).

For each hub in turn (MoonHub, then the baseline, same proxy executable, nodes, stand-in,
claims and load), as hubtraf does per user: log in through the form, start the server
through the REST API, follow the progress stream until ready, reach the server through the
proxy, read the user's servers, post activity. Then:

1. a burst of ``--burst`` spawns started evenly over ``--burst-seconds``;
2. more spawns until ``--users`` servers run;
3. at that count: REST latencies (users list, a user's servers, activity posts, the home
   page, the spawn form), the hub's CPU while nothing happens, memory of hub and proxy;
4. every server stopped; the inventory (pods, servers and routes left).

Bounded: every request has a timeout, every wait a deadline; all traffic stays on this
machine. Prints one table, MoonHub beside the baseline with the ratio.

    .venv/bin/python -m benchmarks.hub_scale [--users 2000] [--burst 1000] [--burst-seconds 60]

The cluster slot: the scale tier has no real node, so it may run beside another cluster,
but both then share this machine's two cores; stop the others for figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from kubernetes_asyncio import client, config
from yarl import URL

from localcluster import cli
from localcluster.config import REPO, ClusterConfig
from localcluster.supervisor import Supervisor

log = logging.getLogger("benchmarks.hub_scale")
STATE = REPO / ".state" / "scale-cluster"
NS = "moonhub-users"
STORAGE_CLASS = "scale-static"
IMAGE = "127.0.0.1:5000/moonhub/base-notebook:python-3.11-lab-4.6"
#: ports: MoonHub's hub 19000 (+1 proxy API, +81 hub API, +90 jobs, +91 reclaim); baseline 19200
MOONHUB_PORT, BASELINE_PORT = 19000, 19200
#: the longest a refused (429) spawn waits before it asks again
RETRY_CAP = 10.0


def scale_config(nodes: int) -> ClusterConfig:
    return ClusterConfig(
        state_dir=STATE,
        port_offset=3000,
        node_name="moon-scale-0",
        node_ip="10.85.0.4",
        pod_cidr="10.94.0.0/24",
        service_cidr="10.99.0.0/16",
        kwok_pod_cidr="10.95.0.0/16",
        real_node=False,
        scale_nodes=nodes,
    )


@contextmanager
def scale_cluster(nodes: int) -> Iterator[ClusterConfig]:
    cfg = scale_config(nodes)
    if STATE.exists():
        cli.down(ClusterConfig.load(STATE))
        shutil.rmtree(STATE)
    cli.up(cfg)
    try:
        yield cfg
    finally:
        cli.down(cfg)


# ---- the cluster side ----------------------------------------------------------------------
async def make_claims(cfg: ClusterConfig, users: list[str]) -> None:
    """A bound workspace claim per user (a static PV each), as returning users have."""
    await config.load_kube_config(str(cfg.admin_kubeconfig))
    async with client.ApiClient() as api:
        storage, core = client.StorageV1Api(api), client.CoreV1Api(api)
        sc: Any = {
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate",
        }
        await _create(storage.create_storage_class(sc))
        gate = asyncio.Semaphore(16)

        async def one(user: str) -> None:
            claim, volume = f"claim-{user}", f"scale-{user}"
            pvc: Any = {
                "metadata": {
                    "name": claim,
                    "namespace": NS,
                    # bound already: the scheduler takes a claim as bound by this mark
                    "annotations": {"pv.kubernetes.io/bind-completed": "yes"},
                },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": STORAGE_CLASS,
                    "resources": {"requests": {"storage": "10Gi"}},
                    "volumeName": volume,
                },
            }
            async with gate:
                try:
                    made = await core.create_namespaced_persistent_volume_claim(NS, pvc)
                except client.ApiException as e:
                    if e.status != 409:
                        raise
                    made = await core.read_namespaced_persistent_volume_claim(claim, NS)
                pv: Any = {
                    "metadata": {"name": volume},
                    "spec": {
                        "capacity": {"storage": "10Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": STORAGE_CLASS,
                        "persistentVolumeReclaimPolicy": "Retain",
                        "hostPath": {"path": "/var/empty/moonhub-scale"},
                        "claimRef": {"namespace": NS, "name": claim, "uid": made.metadata.uid},
                    },
                }
                await _create(core.create_persistent_volume(pv))
                # what the PV controller would write, one by one (minutes for thousands)
                await core.patch_persistent_volume_status(volume, {"status": {"phase": "Bound"}})
                status = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}}
                await core.patch_namespaced_persistent_volume_claim_status(claim, NS, {"status": status})

        await asyncio.gather(*(one(u) for u in users))
        # the PV controller binds them one by one: a pod whose claim is not bound yet waits
        # for the scheduler's back-off, which would be counted against the first spawns
        t0 = time.monotonic()
        while time.monotonic() - t0 < 600:
            claims = await core.list_namespaced_persistent_volume_claim(NS)
            bound = sum(1 for c in claims.items if c.status.phase == "Bound")
            if bound >= len(users):
                break
            log.info("workspace claims bound: %d of %d", bound, len(users))
            await asyncio.sleep(5)
        log.info("%d workspace claims bound in %.0f s", len(users), time.monotonic() - t0)


async def _create(call: Awaitable[Any]) -> None:
    try:
        await call
    except client.ApiException as e:
        if e.status != 409:
            raise


async def pods_left(cfg: ClusterConfig, prefix: str) -> int:
    await config.load_kube_config(str(cfg.admin_kubeconfig))
    async with client.ApiClient() as api:
        pods = await client.CoreV1Api(api).list_namespaced_pod(NS)
        return sum(1 for p in pods.items if p.metadata.name.startswith(prefix))


# ---- the hubs -------------------------------------------------------------------------------
@dataclass
class HubUnderTest:
    name: str
    url: str
    password: str
    pod_prefix: str
    sup: Supervisor
    #: the platform document it was started with (MoonHub's; None for the baseline)
    config: Path | None = None
    #: the options a spawn sends (MoonHub's choices; none for the baseline)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        pid = self.sup.pid(self.name)
        assert pid, f"{self.name} is not running"
        return pid

    def proxy(self) -> psutil.Process | None:
        for child in psutil.Process(self.pid).children(recursive=True):
            if any("configurable-http-proxy" in part for part in child.cmdline()):
                return child
        return None


@contextmanager
def moonhub_hub(cfg: ClusterConfig) -> Iterator[HubUnderTest]:
    from localcluster.hub import dev_password
    from tests.conftest import platform_doc, start_hub

    state = REPO / ".state" / "scale-moonhub"
    doc = platform_doc(state, MOONHUB_PORT, cluster=cfg)
    doc["jobs"] |= {"url": f"http://{cfg.node_ip}:{MOONHUB_PORT + 90}"}
    doc["spawner"] |= {"storage_class_override": STORAGE_CLASS, "namespace": NS}
    url, platform, sup = start_hub(cfg, state, doc, "scale-moonhub")
    try:
        yield HubUnderTest("scale-moonhub", url, dev_password(platform) or "", "jupyter-", sup, platform)
    finally:
        sup.stop("scale-moonhub")


@contextmanager
def baseline_hub(cfg: ClusterConfig) -> Iterator[HubUnderTest]:
    state = REPO / ".state" / "scale-baseline"
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    password = os.urandom(12).hex()
    env = {
        "KUBECONFIG": str(cfg.kubeconfig("hub")),
        "BASELINE_PUBLIC_URL": f"http://127.0.0.1:{BASELINE_PORT}",
        "BASELINE_API_URL": f"http://{cfg.node_ip}:{BASELINE_PORT + 81}",
        "BASELINE_PROXY_API_URL": f"http://127.0.0.1:{BASELINE_PORT + 1}",
        "BASELINE_PROXY_COMMAND": str(REPO / "node_modules" / ".bin" / "configurable-http-proxy"),
        "BASELINE_STATE": str(state),
        "BASELINE_PASSWORD": password,
        "BASELINE_NAMESPACE": NS,
        "BASELINE_IMAGE": IMAGE,
        "BASELINE_STORAGE_CLASS": STORAGE_CLASS,
        "CONFIGPROXY_AUTH_TOKEN": os.urandom(16).hex(),
    }
    sup = Supervisor(cfg.run, cfg.logs, REPO)
    argv = [
        str(Path(sys.executable).parent / "jupyterhub"),
        "-f",
        str(Path(__file__).with_name("baseline_hub_config.py")),
    ]
    sup.start("scale-baseline", argv, env)
    url = env["BASELINE_PUBLIC_URL"]
    sup.wait_healthy("scale-baseline", f"{url}/hub/health", timeout=120)
    try:
        yield HubUnderTest("scale-baseline", url, password, "base-", sup)
    finally:
        sup.stop("scale-baseline")


# ---- the load -------------------------------------------------------------------------------
@dataclass
class Flow:
    """One user's way through the hub, timed."""

    user: str
    login: float | None = None
    spawn_request: float | None = None
    ready: float | None = None
    too_many: int = 0
    #: the spawn request's final answer (201 started, 202 pending; 0: none)
    status: int = 0
    #: when the spawn was first asked for (monotonic; 0: never)
    asked_at: float = 0.0
    reachable: bool = False
    error: str = ""


class Client:
    """A browser-like session per user over one shared connection pool."""

    def __init__(self, hub: HubUnderTest, pool: aiohttp.TCPConnector) -> None:
        self.hub, self.pool = hub, pool
        self.timeout = aiohttp.ClientTimeout(total=60)
        self.sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, user: str) -> aiohttp.ClientSession:
        if user not in self.sessions:
            self.sessions[user] = aiohttp.ClientSession(
                connector=self.pool,
                connector_owner=False,
                cookie_jar=aiohttp.CookieJar(unsafe=True),
                timeout=self.timeout,
            )
        return self.sessions[user]

    def xsrf(self, user: str) -> dict[str, str]:
        cookies = self.sessions[user].cookie_jar.filter_cookies(URL(f"{self.hub.url}/hub/api/"))
        return {"X-XSRFToken": cookies["_xsrf"].value if "_xsrf" in cookies else ""}

    async def login(self, user: str) -> None:
        s = self.session(user)
        async with s.get(f"{self.hub.url}/hub/login") as r:
            await r.read()
        xsrf = s.cookie_jar.filter_cookies(URL(f"{self.hub.url}/hub/login")).get("_xsrf")
        data = {"username": user, "password": self.hub.password, "_xsrf": xsrf.value if xsrf else ""}
        async with s.post(f"{self.hub.url}/hub/login", data=data, allow_redirects=False) as r:
            await r.read()
            if r.status != 302:
                raise RuntimeError(f"login of {user}: HTTP {r.status}")

    async def api(
        self, user: str, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> tuple[int, Any]:
        s = self.session(user)
        headers = {**self.xsrf(user), **(headers or {})}
        async with s.request(method, f"{self.hub.url}/hub/api{path}", headers=headers, **kw) as r:
            body = await r.read()
            try:
                return r.status, json.loads(body) if body else None
            except ValueError:
                return r.status, body.decode(errors="replace")

    async def spawn(self, user: str) -> tuple[int, Any, float]:
        """Ask for the user's server; the status, the body and the Retry-After (seconds)."""
        s = self.session(user)
        url = f"{self.hub.url}/hub/api/users/{user}/server"
        async with s.post(url, headers=self.xsrf(user), json=self.hub.options) as r:
            body = await r.text()
            return r.status, body[:300], float(r.headers.get("Retry-After", "5") or 5)

    async def close(self) -> None:
        for s in self.sessions.values():
            await s.close()


async def spawn_flow(c: Client, user: str, deadline: float) -> Flow:
    f = Flow(user)
    try:
        t0 = time.monotonic()
        await c.login(user)
        f.login = time.monotonic() - t0
        t0 = f.asked_at = time.monotonic()
        while True:
            status, body, retry_after = await c.spawn(user)
            if status != 429:
                break
            f.too_many += 1
            if time.monotonic() > deadline:
                raise RuntimeError("still 429 at the deadline")
            # as a patient client: the wait the hub suggests, at most RETRY_CAP, with jitter
            await asyncio.sleep(random.uniform(0.5, 1.0) * min(RETRY_CAP, retry_after))
        f.spawn_request, f.status = time.monotonic() - t0, status
        if status not in (201, 202):
            raise RuntimeError(f"spawn: HTTP {status} {body}")
        if status == 202:
            await wait_ready(c, user, deadline)
        f.ready = time.monotonic() - t0
        async with c.session(user).get(f"{c.hub.url}/user/{user}/api") as r:
            f.reachable = r.status == 200 and b"standin" in await r.read()
        await c.api(user, "GET", f"/users/{user}")
        await c.api(user, "POST", f"/users/{user}/activity", json=activity())
    except Exception as e:
        f.error = f"{type(e).__name__}: {e}"[:200]
    return f


async def wait_ready(c: Client, user: str, deadline: float) -> None:
    """Follow the spawn's progress stream (as the spawn page does) until ready or failed."""
    url = f"{c.hub.url}/hub/api/users/{user}/server/progress"
    timeout = aiohttp.ClientTimeout(total=max(1.0, deadline - time.monotonic()))
    async with c.session(user).get(url, headers=c.xsrf(user), timeout=timeout) as r:
        if r.status != 200:
            raise RuntimeError(f"progress: HTTP {r.status}")
        async for raw in r.content:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event.get("ready"):
                return
            if event.get("failed"):
                raise RuntimeError(f"spawn failed: {event.get('message', '')}"[:200])
    raise RuntimeError("progress stream ended before ready")


def activity() -> dict[str, Any]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {"last_activity": now, "servers": {"": {"last_activity": now}}}


async def burst(c: Client, users: list[str], seconds: float, deadline_s: float) -> tuple[list[Flow], float]:
    """Start one flow per user, evenly over ``seconds``; return the flows and the wall time."""
    t0 = time.monotonic()
    deadline = t0 + seconds + deadline_s

    async def delayed(i: int, user: str) -> Flow:
        await asyncio.sleep(seconds * i / max(1, len(users)))
        return await spawn_flow(c, user, deadline)

    flows = await asyncio.gather(*(delayed(i, u) for i, u in enumerate(users)))
    return list(flows), time.monotonic() - t0


async def latencies(call: Callable[[int], Awaitable[int]], count: int, concurrency: int = 8) -> tuple[list[float], int]:
    """Seconds per call of ``count`` calls, ``concurrency`` at a time; and how many failed."""
    gate, out, failed = asyncio.Semaphore(concurrency), [], 0

    async def one(i: int) -> None:
        nonlocal failed
        async with gate:
            t0 = time.monotonic()
            status = await call(i)
            out.append(time.monotonic() - t0)
            failed += status >= 400

    await asyncio.gather(*(one(i) for i in range(count)))
    return out, failed


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@contextmanager
def profiled(hub: HubUnderTest, phase: str, folder: Path | None) -> Iterator[None]:
    """With ``--profile``: py-spy samples the hub during ``phase`` (collapsed stacks, for
    flame graphs or a grep), ``<folder>/<hub>-<phase>.txt``."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{hub.name}-{phase}.txt"
    spy = Path(sys.executable).parent / "py-spy"
    proc = subprocess.Popen(
        [str(spy), "record", "--pid", str(hub.pid), "--format", "raw", "--rate", "50", "--nonblocking", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


@asynccontextmanager
async def cpu_window(proc: psutil.Process) -> AsyncIterator[dict[str, float]]:
    out: dict[str, float] = {}
    t0, c0 = time.monotonic(), sum(proc.cpu_times()[:2])
    yield out
    out["cpu_s"] = sum(proc.cpu_times()[:2]) - c0
    out["wall_s"] = time.monotonic() - t0


async def measure_hub(
    hub: HubUnderTest, users: list[str], form_users: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    pool = aiohttp.TCPConnector(limit=args.connections)
    c = Client(hub, pool)
    hubp = psutil.Process(hub.pid)
    proxyp = hub.proxy()
    res["hub_rss_0"], res["proxy_rss_0"] = hubp.memory_info().rss, proxyp.memory_info().rss if proxyp else 0
    await c.login("admin")
    status, _ = await c.api("admin", "POST", "/users", json={"usernames": users + form_users})
    assert status in (201, 409), status
    first, rest = users[: args.burst], users[args.burst :]
    log.info("%s: burst of %d spawns over %ds", hub.name, len(first), args.burst_seconds)
    with profiled(hub, "burst", args.profile):
        async with cpu_window(hubp) as cpu:
            flows, wall = await burst(c, first, args.burst_seconds, args.ready_within)
    res["burst"], res["burst_wall"], res["burst_cpu"] = flows, wall, cpu
    log.info("%s: %d more spawns", hub.name, len(rest))
    more, _ = await burst(c, rest, args.burst_seconds, args.ready_within)
    res["fill"] = more
    running = sum(1 for f in flows + more if f.ready is not None and not f.error)
    res["running"] = running
    log.info("%s: %d servers run; measuring", hub.name, running)
    await asyncio.sleep(5)
    async with cpu_window(hubp) as idle:
        await asyncio.sleep(args.idle_seconds)
    res["idle_cpu"] = idle
    res["hub_rss_1"], res["proxy_rss_1"] = hubp.memory_info().rss, proxyp.memory_info().rss if proxyp else 0
    for u in form_users:
        await c.login(u)
    running_users = [f.user for f in flows + more if f.ready is not None and not f.error] or users

    async def users_list(i: int) -> int:
        return (await c.api("admin", "GET", f"/users?limit=200&offset={random.randrange(0, max(1, len(users)))}"))[0]

    async def user_servers(i: int) -> int:
        u = running_users[i % len(running_users)]
        return (await c.api(u, "GET", f"/users/{u}"))[0]

    async def activity_post(i: int) -> int:
        u = running_users[i % len(running_users)]
        return (await c.api(u, "POST", f"/users/{u}/activity", json=activity()))[0]

    async def page(path: str, i: int) -> int:
        u = form_users[i % len(form_users)]
        async with c.session(u).get(f"{hub.url}/hub/{path.format(user=u)}", allow_redirects=False) as r:
            await r.read()
            return r.status

    n = args.samples
    res["api"] = {
        "users list (200)": await latencies(users_list, n),
        "a user's servers": await latencies(user_servers, n),
        "activity post": await latencies(activity_post, n),
        "home page": await latencies(lambda i: page("home", i), n),
        "spawn form": await latencies(lambda i: page("spawn/{user}", i), n),
    }
    log.info("%s: stopping %d servers", hub.name, running)
    t0 = time.monotonic()
    gate = asyncio.Semaphore(50)

    async def stop(u: str) -> int:
        async with gate:
            return (await c.api("admin", "DELETE", f"/users/{u}/server"))[0]

    with profiled(hub, "stop", args.profile):
        stops = await asyncio.gather(*(stop(u) for u in users))
        deadline = time.monotonic() + 300
        left = -1
        while time.monotonic() < deadline:
            left = await _active(c)
            if left == 0:
                break
            await asyncio.sleep(2)
    res["stop_wall"] = time.monotonic() - t0
    # 400: that user's server was not running
    res["stop_failed"] = sum(1 for s in stops if s not in (202, 204, 400))
    res["servers_left"] = left
    await c.close()
    await pool.close()
    return res


async def _active(c: Client) -> int:
    """How many servers the hub still counts as active (pending or running)."""
    status, body = await c.api(
        "admin", "GET", "/users?state=active&limit=1", headers={"Accept": "application/jupyterhub-pagination+json"}
    )
    if status != 200 or not isinstance(body, dict):
        return -1
    return int(body.get("_pagination", {}).get("total", -1))


# ---- the table ------------------------------------------------------------------------------
def summary(res: dict[str, Any], pods_after: int) -> dict[str, str]:
    flows: list[Flow] = res["burst"]
    ready = [f.ready for f in flows if f.ready is not None and not f.error]
    failed = [f for f in flows if f.error]
    fill_failed = [f for f in res["fill"] if f.error]
    row = {
        "burst: spawns": f"{len(flows)} in {res['burst_wall']:.0f} s",
        "burst: failed": f"{len(failed)}" + (f" ({failed[0].error[:60]})" if failed else ""),
        "burst: 429 answers (retried)": str(sum(f.too_many for f in flows)),
        "burst: request->ready p50 s": f"{pct(ready, 50):.2f}",
        "burst: request->ready p95 s": f"{pct(ready, 95):.2f}",
        "burst: request->ready max s": f"{max(ready) if ready else float('nan'):.2f}",
        "burst: ready within 120 s": f"{sum(1 for r in ready if r <= 120)}/{len(flows)}",
        "burst: login p95 s": f"{pct([f.login for f in flows if f.login], 95):.3f}",
        "burst: reachable through proxy": f"{sum(f.reachable for f in flows)}/{len(flows)}",
        "burst: hub CPU s per spawn": f"{res['burst_cpu']['cpu_s'] / max(1, len(flows)):.4f}",
        "fill: failed": f"{len(fill_failed)}/{len(res['fill'])}",
        "servers running": str(res["running"]),
        "idle hub CPU % at that count": f"{100 * res['idle_cpu']['cpu_s'] / res['idle_cpu']['wall_s']:.1f}",
        "hub RSS MiB (0 -> N)": f"{res['hub_rss_0'] / 2**20:.0f} -> {res['hub_rss_1'] / 2**20:.0f}",
        "hub MiB per 1000 servers": per_thousand(res["hub_rss_1"] - res["hub_rss_0"], res["running"]),
        "proxy RSS MiB (0 -> N)": f"{res['proxy_rss_0'] / 2**20:.0f} -> {res['proxy_rss_1'] / 2**20:.0f}",
        "proxy MiB per 1000 servers": per_thousand(res["proxy_rss_1"] - res["proxy_rss_0"], res["running"]),
    }
    for name, (values, bad) in res["api"].items():
        row[f"{name}: p50/p95/p99 ms"] = "/".join(f"{1000 * pct(values, p):.0f}" for p in (50, 95, 99)) + (
            f" ({bad} failed)" if bad else ""
        )
    row["stop all: s"] = f"{res['stop_wall']:.0f} ({res['stop_failed']} refused)"
    row["left: servers / pods"] = f"{res['servers_left']} / {pods_after}"
    return row


def per_thousand(grown: int, servers: int) -> str:
    return f"{grown / 2**20 * 1000 / max(1, servers):.0f}"


NUMERIC_RATIO = (
    "burst: request->ready p50 s",
    "burst: request->ready p95 s",
    "burst: hub CPU s per spawn",
    "idle hub CPU % at that count",
    "hub MiB per 1000 servers",
)


def ratio(key: str, a: str, b: str) -> str:
    try:
        if key in NUMERIC_RATIO:
            x, y = float(a.split()[0]), float(b.split()[0])
        elif key.endswith("p50/p95/p99 ms"):
            x, y = float(a.split("/")[1]), float(b.split("/")[1])
        else:
            return ""
        return f"{x / y:.2f}" if y else ""
    except (ValueError, IndexError):
        return ""


def print_table(rows: dict[str, dict[str, str]]) -> None:
    keys = list(next(iter(rows.values())).keys())
    names = list(rows)
    width = max(len(k) for k in keys)
    print(f"\n{'':{width}}  " + "  ".join(f"{n:>22}" for n in names) + "  ratio (p95 for latencies)")
    for k in keys:
        vals = [rows[n].get(k, "") for n in names]
        r = ratio(k, vals[0], vals[1]) if len(vals) == 2 else ""
        print(f"{k:{width}}  " + "  ".join(f"{v:>22}" for v in vals) + f"  {r}")


# ---- main ------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2000, help="servers running at the end (the burst included)")
    parser.add_argument("--burst", type=int, default=1000, help="spawns of the first burst")
    parser.add_argument("--burst-seconds", type=int, default=60, help="the burst's spawns start evenly over this")
    parser.add_argument(
        "--ready-within", type=int, default=180, help="a spawn not ready this long after the burst fails"
    )
    parser.add_argument("--idle-seconds", type=int, default=30, help="the window of the idle CPU reading")
    parser.add_argument("--samples", type=int, default=200, help="requests per REST latency figure")
    parser.add_argument("--connections", type=int, default=200, help="the load driver's connection pool")
    parser.add_argument("--hubs", default="moonhub,baseline")
    parser.add_argument("--profile", type=Path, help="sample each hub with py-spy into this folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.burst > args.users:
        parser.error("--burst may not exceed --users")
    users = [f"u{i:05d}" for i in range(args.users)]
    form_users = [f"f{i:03d}" for i in range(20)]
    nodes = max(1, -(-(args.users + 10) // 250))
    rows: dict[str, dict[str, str]] = {}
    with scale_cluster(nodes) as cfg:
        asyncio.run(make_claims(cfg, users + form_users))
        for name in args.hubs.split(","):
            starter = moonhub_hub if name == "moonhub" else baseline_hub
            with starter(cfg) as hub:
                res = asyncio.run(measure_hub(hub, users, form_users, args))
            rows[name] = summary(res, asyncio.run(pods_left(cfg, hub.pod_prefix)))
            print_table({name: rows[name]})
    if len(rows) == 2:
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
