"""Workspaces on GlusterFS vs the node's local disk, in one run (figures, no asserts).

On a fresh benchmark cluster with its own hub (the example catalog, copied):

- **first spawn of a new user** (login -> spawn form -> JupyterLab answers through the
  proxy), each with a new workspace volume. Users alternate between the `glusterfs` class
  (a Gluster folder with its quota, made by the storage agent) and `local-path`
  (a folder on the node's disk, made by local-path-provisioner's helper pod): the catalog is switched
  before each spawn, so both see the same hub, node and moment;
- **throughput inside a workspace**, from the servers of one Gluster user and one local-disk
  user: a 1 GiB write with fsync (`dd`), and 10,000 files of 4 KiB (written and fsynced by one
  Python process), each ``--repeat`` times, median.

    .venv/bin/python -m benchmarks.storage [--users 20] [--repeat 3]

Needs the machine's node slot (stop `./moonhub up` and any test cluster first).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import yaml

from localcluster import cli
from localcluster.config import REPO, ClusterConfig
from tests.conftest import Hub

from .cluster import bench_hub

STATE = REPO / ".state" / "bench-storage-hub"
PORT = 18300
CLASSES = ("glusterfs", "local-path")
SMALL_FILES = """
import os, sys, time
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
t0 = time.monotonic()
for i in range(10000):
    with open(f"{d}/f{i}", "wb") as f:
        f.write(b"x" * 4096)
        f.flush()
        os.fsync(f.fileno())
print(time.monotonic() - t0)
"""


def _use_class(name: str) -> None:
    path = STATE / "catalog.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["storage"]["storage_class"] = name
    path.write_text(yaml.safe_dump(doc))
    time.sleep(0.05)  # a new mtime for the hub's store


def _exec(cfg: ClusterConfig, pod: str, *argv: str) -> str:
    kubectl = [str(cli.build() / "kubectl"), f"--kubeconfig={cfg.admin_kubeconfig}"]
    out = subprocess.run(
        [*kubectl, "-n", "moonhub-users", "exec", pod, "-c", "notebook", "--", *argv],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode:
        raise SystemExit(f"{pod}: {' '.join(argv)} failed: {out.stderr.strip()}")
    return out.stdout + out.stderr


def _write_gib(cfg: ClusterConfig, pod: str) -> float:
    t0 = time.monotonic()
    _exec(cfg, pod, "sh", "-c", "dd if=/dev/zero of=/home/jovyan/gib bs=4M count=256 conv=fsync 2>&1; rm -f gib")
    return time.monotonic() - t0


def _small_files(cfg: ClusterConfig, pod: str, n: int) -> float:
    out = _exec(cfg, pod, "python3", "-c", SMALL_FILES, f"/home/jovyan/small-{n}")
    _exec(cfg, pod, "rm", "-rf", f"/home/jovyan/small-{n}")
    return float(out.strip().splitlines()[-1])


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=20, help="new users (half on each class)")
    p.add_argument("--repeat", type=int, default=3, help="throughput runs per class")
    a = p.parse_args()
    with bench_hub("bench-storage-hub", PORT) as (cfg, hub):
        run(cfg, hub, a.users, a.repeat)


def run(cfg: ClusterConfig, hub: Hub, users: int, repeat: int) -> None:
    spawn: dict[str, list[float]] = {c: [] for c in CLASSES}
    sessions = {}
    warm = hub.login("warm-up")  # the first spawn also warms the hub and the node's image
    _use_class("glusterfs")
    hub.spawn_form(warm, "warm-up", environment="python", size="small")
    hub.open_lab(warm, "warm-up", timeout=300)
    hub.api(warm, "DELETE", "/users/warm-up/server")
    for i in range(users):
        cls = CLASSES[i % 2]
        user = f"st-{cls.split('-')[0][:5]}-{i:02d}"
        _use_class(cls)
        s = hub.login(user)
        t0 = time.monotonic()
        r = hub.spawn_form(s, user, environment="python", size="small")
        assert r.status_code == 200, r.text[:300]
        hub.open_lab(s, user, timeout=300)
        spawn[cls].append(time.monotonic() - t0)
        sessions[user] = (cls, s)
        print(f"  {user:18} {cls:10} first spawn {spawn[cls][-1]:5.2f} s", flush=True)
        if i >= len(CLASSES):  # the first of each class stays up to write; the node has 2 CPUs
            hub.api(s, "DELETE", f"/users/{user}/server")
    writer = {cls: next(u for u, (c, _) in sessions.items() if c == cls) for cls in CLASSES}
    gib: dict[str, list[float]] = {c: [] for c in CLASSES}
    small: dict[str, list[float]] = {c: [] for c in CLASSES}
    for _ in range(repeat):
        for cls in CLASSES:  # interleaved: both see the same disk state
            pod = f"jupyter-{writer[cls]}"
            gib[cls].append(_write_gib(cfg, pod))
            small[cls].append(_small_files(cfg, pod, 10000))
    g, loc = CLASSES
    print(f"\nfirst spawn of a new user -> JupyterLab answers (n = {users // 2} per class, interleaved)")
    for cls in CLASSES:
        xs = spawn[cls]
        print(f"  {cls:10}: p50 {statistics.median(xs):5.2f} s, p95 {_pct(xs, 95):5.2f} s, max {max(xs):5.2f} s")
    print(
        f"  ratio gluster / local disk: p50 {statistics.median(spawn[g]) / statistics.median(spawn[loc]):.2f}, "
        f"p95 {_pct(spawn[g], 95) / _pct(spawn[loc], 95):.2f}"
    )
    print(f"\nthroughput in the workspace (median of {repeat})")
    for what, data, unit in (("1 GiB write + fsync", gib, "MiB/s"), ("10,000 x 4 KiB files + fsync", small, "files/s")):
        rates = {c: (1024 if unit == "MiB/s" else 10000) / statistics.median(data[c]) for c in CLASSES}
        print(
            f"  {what:28}: gluster {rates[g]:8.1f} {unit}, local disk {rates[loc]:8.1f} {unit}, "
            f"ratio {rates[g] / rates[loc]:.2f}"
        )
    for user in writer.values():
        hub.api(sessions[user][1], "DELETE", f"/users/{user}/server")


if __name__ == "__main__":
    main()
