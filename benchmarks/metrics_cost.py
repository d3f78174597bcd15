"""What the metrics path costs (docs/observability.md), figures only, in one run:

- one scrape of the hub's ``/hub/metrics`` and of the jobs service's ``/metrics`` with the
  scraper's token, against ``/hub/health`` on the same hub (median of ``--scrapes``);
- the hub's and the jobs service's CPU over ``--seconds`` while the local Prometheus
  scrapes them every 10 s, and over as long without (their scrape file removed);
- the local Prometheus's series in its head block and its resident memory, with
  ``--servers`` users' servers running.

    .venv/bin/python -m benchmarks.metrics_cost [--servers 4] [--seconds 60] [--scrapes 50]

On a fresh benchmark cluster and hub (needs the machine's node slot: stop `./moonhub up`
and any test cluster first).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from pathlib import Path

import requests

from localcluster import prometheus
from localcluster.config import ClusterConfig

from .cluster import bench_hub

NAME, PORT = "bench-metrics-hub", 18400


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of ``pid`` and its children that ended (clock ticks to seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _pid_listening(port: int) -> int:
    """The pid of the process listening on TCP ``port`` (from /proc: its socket's inode)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[3] == "0A" and int(parts[1].split(":")[1], 16) == port:
            inodes.add(parts[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(proc.name)
        except OSError:
            continue
    raise RuntimeError(f"nothing listens on {port}")


def _median_ms(url: str, headers: dict[str, str], n: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        r = requests.get(url, headers=headers, timeout=30)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (url, r.status_code)
        size = len(r.content)
    return statistics.median(times), size


def _prometheus_self(cfg: ClusterConfig) -> dict[str, float]:
    text = requests.get(f"{prometheus.url(cfg)}/metrics", timeout=30).text
    out = {}
    for name in ("prometheus_tsdb_head_series", "process_resident_memory_bytes"):
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        out[name] = float(m.group(1)) if m else float("nan")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", type=int, default=4)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--scrapes", type=int, default=50)
    args = p.parse_args()
    with bench_hub(NAME, PORT) as (cfg, hub):
        for i in range(args.servers):
            user = f"metrics{i}"
            s = hub.login(user)
            assert hub.spawn_form(s, user, environment="python", size="small").status_code == 200
            hub.open_lab(s, user, timeout=240)
        token = (hub.config.parent / "metrics-scraper.token").read_text().strip()
        auth = {"Authorization": f"token {token}"}
        health, _ = _median_ms(f"{hub.url}/hub/health", {}, args.scrapes)
        hub_ms, hub_bytes = _median_ms(f"{hub.url}/hub/metrics", auth, args.scrapes)
        jobs_ms, jobs_bytes = _median_ms(f"{hub.url}/services/jobs/metrics", auth, args.scrapes)
        print(f"one scrape, median of {args.scrapes} (through the proxy):")
        print(f"  /hub/health           {health:7.1f} ms (the baseline)")
        print(f"  /hub/metrics          {hub_ms:7.1f} ms, {hub_bytes:,} bytes ({hub_ms / health:.1f}x /hub/health)")
        print(f"  /services/jobs/metrics {jobs_ms:6.1f} ms, {jobs_bytes:,} bytes ({jobs_ms / health:.1f}x /hub/health)")

        hub_pid, jobs_pid = _pid_listening(PORT + 81), _pid_listening(PORT + 90)
        scrape_file = prometheus.folder(cfg) / "scrape.d" / f"{NAME}.yaml"
        kept = scrape_file.read_text()
        cpu: dict[str, dict[str, float]] = {}
        for phase in ("scraped every 10 s", "not scraped"):
            if phase == "not scraped":
                scrape_file.unlink()
                prometheus.reload(cfg)
            time.sleep(5)
            before = {"hub": _cpu_seconds(hub_pid), "jobs service": _cpu_seconds(jobs_pid)}
            time.sleep(args.seconds)
            cpu[phase] = {k: _cpu_seconds(pid) - before[k] for k, pid in (("hub", hub_pid), ("jobs service", jobs_pid))}
        scrape_file.write_text(kept)
        prometheus.reload(cfg)
        print(f"CPU seconds over {args.seconds:.0f} s, {args.servers} servers running:")
        for who in ("hub", "jobs service"):
            on, off = cpu["scraped every 10 s"][who], cpu["not scraped"][who]
            ratio = f"{on / off:.2f}x" if off else "-"
            print(f"  {who:13} scraped {on:6.2f} s, not scraped {off:6.2f} s ({on - off:+.2f} s, {ratio})")
        figures = _prometheus_self(cfg)
        print(f"the local Prometheus: {figures['prometheus_tsdb_head_series']:,.0f} series in its head block, "
              f"{figures['process_resident_memory_bytes'] / 2**20:,.0f} MiB resident")  # fmt: skip


if __name__ == "__main__":
    main()
