"""Jobs at scale: ``--users`` x ``--per-user`` scheduled notebook jobs (10,000 over 1,000
users by default) on the scale tier, made through the jobs API over HTTP, then watched as
their CronJobs fire.

Each job runs hourly, at a minute of its own (job k at minute k mod 60, so about 1/60 of
them fire every minute, as a fleet of hourly reports would); kwok plays each run's pod to
completion. After every definition exists, for ``--window`` seconds:

- **scheduled time -> Job created**: for each CronJob tick in the window, the Job's creation
  time against the time it was scheduled for (``batch.kubernetes.io/cronjob-scheduled-timestamp``;
  both to the second); ticks that made no Job are counted as missed;
- **scheduled time -> run recorded**: when the jobs service recorded the run (its sync loop
  takes each new Job up);
- **the jobs service's CPU and memory** (sampled every 5 s), beside the controller manager's
  (upstream's CronJob controller) and the API server's; each reconcile pass's length (from
  the service's log) and where the service's CPU went (py-spy over the window; ``--profile
  DIR`` keeps the samples);

then the API's latencies over HTTP with all the definitions there: create (the last tenth of
the creates), a user's jobs, a job's runs, a run's log. Bounded in count and time; all
traffic stays on this machine.

    .venv/bin/python -m benchmarks.jobs_scale [--users 1000] [--per-user 10] [--window 300] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import math
import random
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from kubernetes_asyncio import client, config

from localcluster.config import ClusterConfig
from localcluster.supervisor import marked
from moonhub_core import pods as podc

from .hub_load import Client, latencies, pct
from .jobs_latency import NOTEBOOK
from .profiling import py_spy, top_frames
from .scale_tier import NS, HubUnderTest, make_claims, moonhub_hub, scale_cluster

log = logging.getLogger("benchmarks.jobs_scale")
SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"


@dataclass
class Fleet:
    """The users, their tokens and their jobs (id and CronJob name)."""

    users: list[str]
    tokens: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, tuple[str, int]] = field(default_factory=dict)  # cronjob -> (user, id)
    minutes: dict[str, int] = field(default_factory=dict)  # cronjob -> the minute it fires at
    create_s: list[float] = field(default_factory=list)
    create_failed: list[str] = field(default_factory=list)


class JobsClient:
    """The jobs API through the hub's proxy, with each user's token."""

    def __init__(self, hub: HubUnderTest, session: aiohttp.ClientSession, fleet: Fleet) -> None:
        self.base, self.s, self.fleet = f"{hub.url}/services/jobs/api/v1", session, fleet

    async def call(self, user: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"token {self.fleet.tokens[user]}"}
        async with self.s.request(method, f"{self.base}{path}", headers=headers, json=body) as r:
            raw = await r.read()
            try:
                return r.status, (await r.json()) if raw else None
            except (ValueError, aiohttp.ContentTypeError):
                return r.status, raw[:300].decode(errors="replace")


async def tokens(hub: HubUnderTest, fleet: Fleet, concurrency: int = 8) -> None:
    """Each user logs in through the form and makes a token for the jobs service."""
    pool = aiohttp.TCPConnector(limit=concurrency * 2)
    c = Client(hub, pool)
    gate = asyncio.Semaphore(concurrency)

    async def one(user: str) -> None:
        async with gate:
            await c.login(user)
            body = {"scopes": ["access:services!service=jobs"], "note": "jobs_scale"}
            status, made = await c.api(user, "POST", f"/users/{user}/tokens", json=body)
            if status != 201:
                raise RuntimeError(f"token of {user}: HTTP {status} {made}")
            fleet.tokens[user] = made["token"]

    try:
        t0 = time.monotonic()
        for i in range(0, len(fleet.users), 200):
            await asyncio.gather(*(one(u) for u in fleet.users[i : i + 200]))
            log.info("tokens: %d of %d (%.0f s)", len(fleet.tokens), len(fleet.users), time.monotonic() - t0)
    finally:
        await c.close()
        await pool.close()


async def create_all(api: JobsClient, fleet: Fleet, per_user: int, concurrency: int) -> float:
    """Every user's ``per_user`` hourly jobs, ``concurrency`` creates at a time; the wall time."""
    asks = [(u, j) for j in range(per_user) for u in fleet.users]  # users interleaved
    gate = asyncio.Semaphore(concurrency)
    t0 = time.monotonic()
    done = 0

    async def one(k: int, user: str, j: int) -> None:
        nonlocal done
        body = {
            "name": f"report-{j}",
            "notebook": f"reports/report-{j}.ipynb",
            "notebook_content": NOTEBOOK,
            "schedule": f"{k % 60} * * * *",
            "parameters": {"n": j},
        }
        async with gate:
            t = time.monotonic()
            try:
                status, made = await api.call(user, "POST", "/jobs", body)
            except (aiohttp.ClientError, TimeoutError) as e:
                status, made = 0, f"{type(e).__name__}: {e}"
            took = time.monotonic() - t
        if status == 201:
            fleet.create_s.append(took)
            fleet.jobs[made["cronjob"]] = (user, made["id"])
            fleet.minutes[made["cronjob"]] = k % 60
        else:
            fleet.create_failed.append(f"{user}/report-{j}: HTTP {status} {str(made)[:160]}")
        done += 1
        if done % 500 == 0:
            log.info("definitions: %d of %d (%.0f s)", done, len(asks), time.monotonic() - t0)

    await asyncio.gather(*(one(k, u, j) for k, (u, j) in enumerate(asks)))
    return time.monotonic() - t0


@dataclass
class Usage:
    """CPU (share of one core) and memory of a process over the window."""

    name: str
    proc: psutil.Process | None
    cpu: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)

    def sample(self, dt_s: float, last: dict[str, float]) -> None:
        if self.proc is None:
            return
        try:
            t = self.proc.cpu_times()
            used = t.user + t.system
            if self.name in last:
                self.cpu.append((used - last[self.name]) / dt_s * 100)
            last[self.name] = used
            self.rss_mib.append(self.proc.memory_info().rss / 2**20)
        except psutil.Error:
            self.proc = None

    def row(self) -> str:
        if not self.cpu:
            return f"| {self.name} | n/a | n/a | n/a |"
        mean = sum(self.cpu) / len(self.cpu)
        return f"| {self.name} | {mean:.1f} | {max(self.cpu):.1f} | {max(self.rss_mib):.0f} |"


def _process(cmd_part: str, candidates: list[psutil.Process]) -> psutil.Process | None:
    for p in candidates:
        try:
            if any(cmd_part in part for part in p.cmdline()):
                return p
        except psutil.Error:
            continue
    return None


async def watch(seconds: float, usage: list[Usage]) -> None:
    last: dict[str, float] = {}
    t_end = time.monotonic() + seconds
    for u in usage:
        u.sample(1, last)
    while time.monotonic() < t_end:
        await asyncio.sleep(5)
        for u in usage:
            u.sample(5, last)


async def ticks(cfg: ClusterConfig, fleet: Fleet, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The CronJob ticks scheduled in [start, end): the Jobs they made and how late; the
    ticks that made none."""
    await config.load_kube_config(str(cfg.admin_kubeconfig))
    async with client.ApiClient() as api:
        jobs = await client.BatchV1Api(api).list_namespaced_job(
            NS, label_selector=f"{podc.COMPONENT}={podc.NOTEBOOK_JOB}"
        )
    late: dict[str, float] = {}  # job name -> seconds from scheduled time to created
    scheduled_of: dict[str, dt.datetime] = {}
    fired: set[tuple[str, dt.datetime]] = set()
    for j in jobs.items:
        stamp = (j.metadata.annotations or {}).get(SCHEDULED)
        owner = next((o.name for o in j.metadata.owner_references or [] if o.kind == "CronJob"), None)
        if not stamp or owner is None:
            continue
        at = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if not start <= at < end:
            continue
        late[j.metadata.name] = (j.metadata.creation_timestamp - at).total_seconds()
        scheduled_of[j.metadata.name] = at
        fired.add((owner, at))
    expected = []
    by_minute: dict[int, list[str]] = {}
    for cron, minute in fleet.minutes.items():
        by_minute.setdefault(minute, []).append(cron)
    t = start.replace(second=0, microsecond=0)
    if t < start:
        t += dt.timedelta(minutes=1)
    while t < end:
        expected += [(cron, t) for cron in by_minute.get(t.minute, [])]
        t += dt.timedelta(minutes=1)
    missed = [e for e in expected if e not in fired]
    return {"late": late, "scheduled": scheduled_of, "expected": len(expected), "missed": missed}


async def recorded(api: JobsClient, fleet: Fleet, scheduled: dict[str, dt.datetime], sample: int) -> dict[str, Any]:
    """For a sample of the window's runs: scheduled time -> run recorded by the jobs service,
    and how the runs ended; with the latency of reading a job's runs."""
    by_cron: dict[str, list[str]] = {}
    for name in scheduled:
        cron = name.rsplit("-", 1)[0]
        by_cron.setdefault(cron, []).append(name)
    crons = [c for c in by_cron if c in fleet.jobs]
    random.Random(7).shuffle(crons)
    crons = crons[:sample]
    rec: list[float] = []
    statuses: dict[str, int] = {}
    unrecorded = 0

    async def one(i: int) -> int:
        nonlocal unrecorded
        cron = crons[i]
        user, job_id = fleet.jobs[cron]
        status, body = await api.call(user, "GET", f"/jobs/{job_id}/runs")
        if status != 200:
            return status
        runs = {r["name"]: r for r in body["runs"]}
        for name in by_cron[cron]:
            r = runs.get(name)
            if r is None:
                unrecorded += 1
                continue
            rec.append((dt.datetime.fromisoformat(r["created"]) - scheduled[name]).total_seconds())
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        return status

    runs_s, runs_failed = await latencies(one, len(crons))
    return {
        "recorded": rec,
        "statuses": statuses,
        "unrecorded": unrecorded,
        "runs_s": runs_s,
        "runs_failed": runs_failed,
    }


async def api_latencies(
    api: JobsClient, fleet: Fleet, scheduled: dict[str, dt.datetime], samples: int
) -> dict[str, Any]:
    users = random.Random(3).sample(fleet.users, min(samples, len(fleet.users)))
    rng = random.Random(5)

    async def list_jobs(i: int) -> int:
        status, _ = await api.call(users[i % len(users)], "GET", "/jobs")
        return status

    # the runs of the window whose pods kwok completed: their logs
    ended: list[tuple[str, int, int]] = []
    for cron in rng.sample(sorted({n.rsplit("-", 1)[0] for n in scheduled}), min(samples, len(scheduled))):
        if cron in fleet.jobs:
            user, job_id = fleet.jobs[cron]
            status, body = await api.call(user, "GET", f"/jobs/{job_id}/runs")
            if status == 200 and body["runs"]:
                ended.append((user, job_id, body["runs"][0]["id"]))
    log_status: dict[int, int] = {}

    async def read_log(i: int) -> int:
        user, job_id, run_id = ended[i % len(ended)]
        status, _ = await api.call(user, "GET", f"/jobs/{job_id}/runs/{run_id}/log")
        log_status[status] = log_status.get(status, 0) + 1
        return status

    made: list[tuple[str, int]] = []

    async def create_more(i: int) -> int:
        user = users[i % len(users)]
        body = {"name": f"extra-{i}", "notebook": "extra.ipynb", "notebook_content": NOTEBOOK, "schedule": "0 4 * * *"}
        status, job = await api.call(user, "POST", "/jobs", body)
        if status == 201:
            made.append((user, job["id"]))
        return status

    # one create at a time (as people make jobs), then 4 at a time, with every definition there
    create_s, create_failed = await latencies(create_more, samples // 2, concurrency=1)
    create4_s, create4_failed = await latencies(lambda i: create_more(samples + i), samples // 2, concurrency=4)
    for user, job_id in made:  # the fleet stays as it was
        await api.call(user, "DELETE", f"/jobs/{job_id}")
    list_s, list_failed = await latencies(list_jobs, samples)
    log_s, log_failed = await latencies(read_log, samples) if ended else ([], 0)
    return {
        "list": (list_s, list_failed),
        "log": (log_s, log_failed),
        "log_status": log_status,
        "create": (create_s, create_failed),
        "create4": (create4_s, create4_failed),
    }


def ms(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    return f"{pct(xs, 50) * 1000:.0f} / {pct(xs, 95) * 1000:.0f} / {pct(xs, 99) * 1000:.0f}"


def s3(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    return f"{pct(xs, 50):.1f} / {pct(xs, 95):.1f} / {pct(xs, 99):.1f} / {max(xs):.1f}"


async def main(args: argparse.Namespace) -> None:
    users = [f"u{i:04d}" for i in range(args.users)]
    fleet = Fleet(users)
    # enough simulated nodes for the runs going at once (each ends within seconds on kwok)
    nodes = max(1, math.ceil(args.users * args.per_user / 60 / 250) + 1)
    with scale_cluster(nodes) as cfg, moonhub_hub(cfg) as hub:
        t0 = time.monotonic()
        await make_claims(cfg, users)
        log.info("workspace claims of %d users in %.0f s", len(users), time.monotonic() - t0)
        await tokens(hub, fleet)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency * 2), timeout=timeout
        ) as session:
            api = JobsClient(hub, session, fleet)
            made_in = await create_all(api, fleet, args.per_user, args.concurrency)
            log.info("%d definitions in %.0f s (%d refused)", len(fleet.jobs), made_in, len(fleet.create_failed))
            if len(fleet.create_failed) > len(fleet.jobs) // 100:
                raise SystemExit("too many creates refused:\n  " + "\n  ".join(fleet.create_failed[:5]))
            sup_procs = [psutil.Process(p) for p in marked(hub.sup.mark(hub.name)) if psutil.pid_exists(p)]
            cluster_procs = [p for p in psutil.process_iter() if _in_state(p, cfg)]
            usage = [
                Usage("jobs service", _process("jobs_service", sup_procs)),
                Usage("hub", psutil.Process(hub.pid)),
                Usage(
                    "kube-controller-manager (CronJob controller)", _process("kube-controller-manager", cluster_procs)
                ),
                Usage("kube-apiserver", _process("kube-apiserver", cluster_procs)),
                Usage("kwok", _process("kwok", cluster_procs)),
            ]
            start = dt.datetime.now(dt.UTC)
            log_at = _size(hub.sup.log_path(hub.name))
            log.info("watching the CronJobs fire for %d s", args.window)
            with tempfile.TemporaryDirectory() as tmp:
                folder = args.profile or Path(tmp)
                folder.mkdir(parents=True, exist_ok=True)
                stacks = folder / "jobs-service-window.txt"
                with ExitStack() as spying:  # py-spy has written the file once this ends
                    if usage[0].proc is not None:
                        spying.enter_context(py_spy(usage[0].proc.pid, stacks))
                    await watch(args.window, usage)
                in_reconcile, top = top_frames(stacks, "reconcile.py")
                in_sync, _ = top_frames(stacks, "sync.py")
            end = dt.datetime.now(dt.UTC)
            passes = reconcile_passes(hub.sup.log_path(hub.name), log_at)
            await asyncio.sleep(10)  # the runs of the window's last ticks are taken up
            fired = await ticks(cfg, fleet, start, end)
            rec = await recorded(api, fleet, fired["scheduled"], args.samples)
            lat = await api_latencies(api, fleet, fired["scheduled"], args.samples)
    tail = fleet.create_s[-max(1, len(fleet.create_s) // 10) :]
    late = list(fired["late"].values())
    print()
    print(f"## Jobs at scale: {len(fleet.jobs)} definitions over {len(users)} users ({args.per_user} each)")
    print()
    print("| | figure |")
    print("| --- | ---: |")
    print(f"| definitions made (HTTP, {args.concurrency} at a time) | {len(fleet.jobs)} in {made_in:.0f} s |")
    print(f"| refused creates | {len(fleet.create_failed)} |")
    print(f"| window | {args.window} s, {fired['expected']} ticks scheduled |")
    print(f"| ticks that made a Job | {len(late)} |")
    print(f"| ticks missed | {len(fired['missed'])} |")
    print(f"| scheduled -> Job created p50/p95/p99/max s | {s3(late)} |")
    print(f"| scheduled -> run recorded p50/p95/p99/max s ({len(rec['recorded'])} runs) | {s3(rec['recorded'])} |")
    print(f"| runs not recorded (of the sample) | {rec['unrecorded']} |")
    print(f"| sample's runs by status | {rec['statuses']} |")
    print(f"| bulk create p50/p95/p99 ms ({args.concurrency} at a time, all) | {ms(fleet.create_s)} |")
    print(f"| bulk create p50/p95/p99 ms (last {len(tail)}) | {ms(tail)} |")
    print(f"| create, one at a time, p50/p95/p99 ms | {ms(lat['create'][0])} ({lat['create'][1]} failed) |")
    print(f"| create, 4 at a time, p50/p95/p99 ms | {ms(lat['create4'][0])} ({lat['create4'][1]} failed) |")
    print(f"| a user's jobs p50/p95/p99 ms | {ms(lat['list'][0])} ({lat['list'][1]} failed) |")
    print(f"| a job's runs p50/p95/p99 ms | {ms(rec['runs_s'])} ({rec['runs_failed']} failed) |")
    print(f"| a run's log p50/p95/p99 ms | {ms(lat['log'][0])} (answers {lat['log_status']}) |")
    print()
    print("| process over the window | CPU % mean | CPU % max (5 s) | RSS MiB max |")
    print("| --- | ---: | ---: | ---: |")
    for u in usage:
        print(u.row())
    print()
    print(f"reconcile passes in the window (jobs service log): {', '.join(f'{x:.1f} s' for x in passes) or 'none'}")
    if top:
        print(f"jobs service's sampled CPU in reconcile: {in_reconcile:.0%}; in the sync loop: {in_sync:.0%}")
        print("where reconcile's time went (innermost MoonHub frame, share of reconcile's samples):")
        for frame, share in top:
            print(f"  {share:6.1%}  {frame}")
    if fleet.create_failed:
        print("\nrefused creates (first 5):", *fleet.create_failed[:5], sep="\n  ")
    if fired["missed"]:
        print("\nmissed ticks (first 5):", *[f"{c} at {t:%H:%M}" for c, t in fired["missed"][:5]], sep="\n  ")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


PASS = re.compile(rb"reconcile pass: ([0-9.]+) s")


def reconcile_passes(log_file: Path, since: int) -> list[float]:
    """Pure (reads one file): the seconds of each reconcile pass the jobs service logged
    after byte ``since`` of the hub's log (its services write there)."""
    try:
        with log_file.open("rb") as f:
            f.seek(since)
            return [float(m.group(1)) for m in PASS.finditer(f.read())]
    except OSError:
        return []


def _in_state(p: psutil.Process, cfg: ClusterConfig) -> bool:
    try:
        return any(str(cfg.state_dir) in part for part in p.cmdline())
    except psutil.Error:
        return False


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--per-user", type=int, default=10)
    ap.add_argument("--window", type=int, default=300, help="seconds the CronJobs are watched firing")
    ap.add_argument("--concurrency", type=int, default=8, help="creates at a time")
    ap.add_argument("--samples", type=int, default=200, help="requests per API latency")
    ap.add_argument("--profile", type=Path, help="keep py-spy's samples of the jobs service over the window here")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    asyncio.run(main(ap.parse_args()))
