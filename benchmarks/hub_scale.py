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
import logging
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from . import profiling, spawn_phases
from .hub_load import Client, Flow, activity, burst, latencies, pct
from .scale_tier import HubUnderTest, baseline_hub, make_claims, moonhub_hub, pods_left, scale_cluster

log = logging.getLogger("benchmarks.hub_scale")


@contextmanager
def profiled(hub: HubUnderTest, phase: str, folder: Path | None) -> Iterator[None]:
    """With ``--profile``: py-spy samples the hub during ``phase`` (collapsed stacks, for
    flame graphs or a grep), ``<folder>/<hub>-<phase>.txt``."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with profiling.py_spy(hub.pid, folder / f"{hub.name}-{phase}.txt"):
        yield


@asynccontextmanager
async def cpu_window(proc: psutil.Process) -> AsyncIterator[dict[str, float]]:
    """CPU seconds of the hub (``cpu_s``) and of the hub with every process it started
    (``all_cpu_s``: the proxy, and MoonHub's jobs service, culler and reclaim service, which
    do part of a spawn's work for it) over the window."""
    out: dict[str, float] = {}
    t0, c0, all0 = time.monotonic(), _cpu(proc), _family_cpu(proc)
    yield out
    out["cpu_s"] = _cpu(proc) - c0
    out["all_cpu_s"] = sum(v - all0.get(pid, 0.0) for pid, v in _family_cpu(proc).items())
    out["wall_s"] = time.monotonic() - t0


def _cpu(proc: psutil.Process) -> float:
    try:
        return float(sum(proc.cpu_times()[:2]))
    except psutil.Error:
        return 0.0


def _family_cpu(proc: psutil.Process) -> dict[int, float]:
    """pid -> CPU seconds of ``proc`` and its descendants (those that end in the window
    count up to their last reading)."""
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        family = [proc]
    return {p.pid: _cpu(p) for p in family}


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
    # the idle window is always sampled: its stacks say what the hub's idle CPU goes to
    idle_folder = args.profile or Path(tempfile.mkdtemp(prefix="hub-scale-"))
    with profiled(hub, "idle", idle_folder):
        async with cpu_window(hubp) as idle:
            await asyncio.sleep(args.idle_seconds)
    res["idle_cpu"] = idle
    res["idle_shares"] = cpu_shares(idle_folder / f"{hub.name}-idle.txt")
    if args.profile is None:
        shutil.rmtree(idle_folder, ignore_errors=True)
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
    # each call alone (what one user waits), then eight at once (admins, servers and browsers
    # calling together: a single-threaded hub answers them one after another)
    res["api"] = {}
    for label, concurrency in (("alone", 1), ("8 at once", 8)):
        res["api"] |= {
            f"users list (200), {label}": await latencies(users_list, n, concurrency),
            f"a user's servers, {label}": await latencies(user_servers, n, concurrency),
            f"activity post, {label}": await latencies(activity_post, n, concurrency),
            f"home page, {label}": await latencies(lambda i: page("home", i), n, concurrency),
            f"spawn form, {label}": await latencies(lambda i: page("spawn/{user}", i), n, concurrency),
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
    idle_pct = 100 * res["idle_cpu"]["cpu_s"] / res["idle_cpu"]["wall_s"]
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
        "burst: hub + its services CPU s per spawn": f"{res['burst_cpu']['all_cpu_s'] / max(1, len(flows)):.4f}",
        "fill: failed": f"{len(fill_failed)}/{len(res['fill'])}",
        "servers running": str(res["running"]),
        "idle hub CPU % at that count": f"{idle_pct:.1f}",
        "idle hub + its services CPU %": f"{100 * res['idle_cpu']['all_cpu_s'] / res['idle_cpu']['wall_s']:.1f}",
        **{f"idle CPU %, {what}": f"{idle_pct * share:.1f}" for what, share in res["idle_shares"].items()},
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


#: what a sampled stack of the hub is spending its time on, by the first of these found in it
#: (substrings of py-spy's frames: ``function (file:line)``)
CPU_KINDS = {
    "watches (pods, events, GPU view)": (
        "kubespawner/reflector.py",
        "spawner_ext/resuming_reflector.py",
        "kubernetes_asyncio/watch",
        "moonhub_core/gpuview.py",
        "spawner_ext/reflector_watch.py",
    ),
    "server polls": ("poll_and_notify",),
    "requests (services, servers, API)": ("tornado/web.py", "tornado/http1connection.py"),
    "other periodic checks (routes, activity, orphans)": (
        "check_routes",
        "update_last_activity",
        "spawner_ext/orphans.py",
    ),
}


def cpu_shares(stacks: Path) -> dict[str, float]:
    """Pure (reads one file): the share of the hub's sampled CPU time in each of
    ``CPU_KINDS`` and the rest (py-spy samples only a thread that runs, so the shares split
    the CPU the hub used). Empty when there is nothing to read (no py-spy, or nothing
    sampled)."""
    counts = dict.fromkeys([*CPU_KINDS, "other"], 0)
    for frames, n in profiling.stacks(stacks):
        kind = next((k for k, marks in CPU_KINDS.items() if any(m in f for f in frames for m in marks)), "other")
        counts[kind] += n
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def per_thousand(grown: int, servers: int) -> str:
    return f"{grown / 2**20 * 1000 / max(1, servers):.0f}"


NUMERIC_RATIO = (
    "burst: request->ready p50 s",
    "burst: request->ready p95 s",
    "burst: hub CPU s per spawn",
    "burst: hub + its services CPU s per spawn",
    "idle hub + its services CPU %",
    "idle hub CPU % at that count",
    "idle CPU %, watches (pods, events, GPU view)",
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
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the hubs this many times, taking turns (one hub's run, the other's, ...): "
        "the per-round ratios show how far this machine's noise moves a figure",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.burst > args.users:
        parser.error("--burst may not exceed --users")
    users = [f"u{i:05d}" for i in range(args.users)]
    form_users = [f"f{i:03d}" for i in range(20)]
    nodes = max(1, -(-(args.users + 10) // 250))
    steps: dict[str, dict[str, list[float]]] = {}
    hubs = args.hubs.split(",")
    by_round: list[dict[str, dict[str, str]]] = []
    with scale_cluster(nodes) as cfg:
        asyncio.run(make_claims(cfg, users + form_users))
        for k in range(args.rounds):
            # the hubs take turns: a slow spell of the machine falls on both, round by round
            order = hubs if k % 2 == 0 else hubs[::-1]
            by_round.append({})
            # each round's py-spy samples in a folder of their own (not the last round's alone)
            round_args = args
            if args.profile is not None and args.rounds > 1:
                round_args = argparse.Namespace(**{**vars(args), "profile": args.profile / f"round-{k + 1}"})
            for name in order:
                starter = moonhub_hub if name == "moonhub" else baseline_hub
                started = time.time()
                with starter(cfg) as hub:
                    res = asyncio.run(measure_hub(hub, users, form_users, round_args))
                by_round[k][name] = summary(res, asyncio.run(pods_left(cfg, hub.pod_prefix)))
                steps[f"{name} {k + 1}" if args.rounds > 1 else name] = spawn_phases.read(
                    hub.sup.log_path(hub.name), users[: args.burst], since=started
                )
                print_table({name: by_round[k][name]})
    for k, rows in enumerate(by_round):
        if len(rows) == 2:
            if args.rounds > 1:
                print(f"\nround {k + 1} of {args.rounds}")
            print_table({name: rows[name] for name in hubs})
    if args.rounds > 1 and len(hubs) == 2:
        print_rounds(by_round, hubs)
    print("\nthe burst's spawns, step by step (from each hub's log):")
    print(spawn_phases.table(steps))
    return 0


#: the figures compared round by round
ROUND_KEYS = (
    "burst: hub CPU s per spawn",
    "burst: hub + its services CPU s per spawn",
    "burst: request->ready p50 s",
    "burst: request->ready p95 s",
    "idle hub CPU % at that count",
)


def round_ratios(by_round: list[dict[str, dict[str, str]]], hubs: list[str]) -> dict[str, list[float]]:
    """Pure: for each of ``ROUND_KEYS``, the first hub's figure over the second's, round by
    round (rounds where either is missing are left out)."""
    out: dict[str, list[float]] = {}
    for key in ROUND_KEYS:
        out[key] = []
        for rows in by_round:
            r = ratio(key, rows.get(hubs[0], {}).get(key, ""), rows.get(hubs[1], {}).get(key, ""))
            if r:
                out[key].append(float(r))
    return out


def print_rounds(by_round: list[dict[str, dict[str, str]]], hubs: list[str]) -> None:
    print(f"\n{hubs[0]} / {hubs[1]}, round by round (median; lowest - highest)")
    for key, values in round_ratios(by_round, hubs).items():
        if values:
            listed = "  ".join(f"{v:.2f}" for v in values)
            print(f"{key:45}  {listed}   median {statistics.median(values):.2f}; {min(values):.2f} - {max(values):.2f}")


if __name__ == "__main__":
    sys.exit(main())
