"""Jobs service latency: 1,000 definitions over 100 users; create and list p50 / p95.

    .venv/bin/python -m benchmarks.jobs_latency [--users 100] [--per-user 10] [--lists 5]

Runs the service's operations in-process (validation, SQLite history, the snapshot store,
the real API server for the CronJob) against a fresh local cluster. Targets:
create p95 < 200 ms, list p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

from kubernetes_asyncio import config

from jobs_service.db import open_db
from jobs_service.service import Caller, JobsService
from jobs_service.settings import for_tests
from localcluster.config import REPO, ClusterConfig
from moonhub_core.catalog import CatalogStore

from .cluster import bench_cluster

NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {},
    "cells": [
        {
            "cell_type": "code",
            "id": "a",
            "metadata": {"tags": ["parameters"]},
            "source": "n = 1",
            "outputs": [],
            "execution_count": None,
        }
    ],
}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] * 1000


async def run(cfg: ClusterConfig, users: int, per_user: int, lists: int) -> None:
    api = await config.new_client_from_config(str(cfg.kubeconfig("jobs")))
    with tempfile.TemporaryDirectory() as tmp:
        svc = JobsService(
            open_db(f"sqlite:///{Path(tmp) / 'jobs.sqlite'}"),
            CatalogStore(REPO / "moonhub_core" / "examples" / "catalog.yaml"),
            api,
            for_tests(storage_class_override="local-path", snapshot_dir=Path(tmp) / "snapshots"),
        )
        create: list[float] = []
        for u in range(users):
            caller = Caller(f"user{u:03d}")
            for j in range(per_user):
                body = {
                    "name": f"job-{j}",
                    "notebook": f"nb/{j}.ipynb",
                    "notebook_content": NOTEBOOK,
                    "schedule": f"{j} 3 * * *",
                    "parameters": {"n": j},
                }
                t = time.perf_counter()
                await svc.create(caller, body)
                create.append(time.perf_counter() - t)
        listing: list[float] = []
        for _ in range(lists):
            for u in range(users):
                t = time.perf_counter()
                got = svc.list_jobs(Caller(f"user{u:03d}"))
                listing.append(time.perf_counter() - t)
                assert len(got) == per_user
        t = time.perf_counter()
        everything = svc.list_jobs(Caller("admin", admin=True))
        admin_list = time.perf_counter() - t
    await api.close()
    print(f"{len(create)} definitions over {users} users (each: validation, DB row + version, ConfigMap, CronJob)")
    print(
        f"create: p50 {pct(create, 50):.1f} ms, p95 {pct(create, 95):.1f} ms, max {max(create) * 1000:.1f} ms"
        f"   target p95 < 200 ms"
    )
    print(
        f"list (one user's {per_user}): p50 {pct(listing, 50):.2f} ms, p95 {pct(listing, 95):.2f} ms"
        f"   target p95 < 50 ms"
    )
    mean = statistics.mean(create) * 1000
    print(f"list as admin (all {len(everything)}): {admin_list * 1000:.1f} ms; mean create {mean:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--per-user", type=int, default=10)
    parser.add_argument("--lists", type=int, default=5, help="list calls per user")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with bench_cluster() as cfg:
        asyncio.run(run(cfg, args.users, args.per_user, args.lists))


if __name__ == "__main__":
    main()
