"""Admission latency with Kueue vs without: Job created -> its pod scheduled, p50 / p95.

    .venv/bin/python -m benchmarks.admission_latency [--runs 200] [--in-flight 4]

A fresh local cluster (Kueue's manager on the real node, kwok's A100 nodes). The same GPU
Job (one A100, kwok completes its pod at once) is created ``--runs`` times with its owner's
queue label (Kueue creates it suspended, admits it in the user's queue, then the Job
controller makes the pod) and ``--runs`` times without (the Job controller makes the pod at
once), interleaved, ``--in-flight`` at a time. Times are taken here: from just before the
create call to the watch event that shows the pod bound to a node. The figure: Kueue's
added latency, as a ratio of the plain path's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from typing import Any

from kubernetes_asyncio import client, config, watch

from moonhub_core import queue_objects as q
from moonhub_core.catalog import EXAMPLE, load
from moonhub_core.kueue_api import Queues

from .cluster import bench_cluster
from .gpu_jobs import a100_job

NS = "moonhub-users"
USER = "bench-ann"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] * 1000


def job(name: str, queued: bool) -> dict[str, Any]:
    labels = {"bench": "admission", **(q.queue_labels(USER, server=False) if queued else {})}
    return a100_job(name, labels, {"bench": "admission", "bench-job": name})


async def run(kubeconfig: str, runs: int, in_flight: int) -> None:
    api = await config.new_client_from_config(kubeconfig)
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    cat = load(EXAMPLE)
    await Queues(api).ensure_user(cat, USER, ["ml-research"], False, NS)
    created: dict[str, float] = {}
    scheduled: dict[str, float] = {}
    seen = asyncio.Event()

    async def follow() -> None:
        w = watch.Watch()
        async for ev in w.stream(core.list_namespaced_pod, NS, label_selector="bench=admission"):
            pod = ev["object"]
            name = (pod.metadata.labels or {}).get("bench-job")
            if name and pod.spec.node_name and name not in scheduled:
                scheduled[name] = time.perf_counter()
                seen.set()

    follower = asyncio.ensure_future(follow())
    await asyncio.sleep(1)
    slots = asyncio.Semaphore(in_flight)
    tag = uuid.uuid4().hex[:6]

    async def one(i: int, queued: bool) -> None:
        name = f"adm-{tag}-{'k' if queued else 'p'}-{i}"
        async with slots:
            created[name] = time.perf_counter()
            await batch.create_namespaced_job(NS, job(name, queued))  # type: ignore[arg-type]
            while name not in scheduled:
                seen.clear()
                try:
                    await asyncio.wait_for(seen.wait(), 60)
                except TimeoutError:
                    raise SystemExit(f"{name}: no pod scheduled within 60 s") from None

    t0 = time.perf_counter()
    await asyncio.gather(*[one(i, queued) for i in range(runs) for queued in (True, False)])
    wall = time.perf_counter() - t0
    follower.cancel()
    await batch.delete_collection_namespaced_job(NS, label_selector="bench=admission", propagation_policy="Background")
    await api.close()

    def lat(kind: str) -> list[float]:
        return [scheduled[n] - created[n] for n in created if f"-{kind}-" in n]

    kueue, plain = lat("k"), lat("p")
    print(f"{runs} Jobs with Kueue and {runs} without, {in_flight} in flight, interleaved ({wall:.1f} s)")
    print("Job created -> pod scheduled:")
    for label, xs in (("without Kueue", plain), ("with Kueue   ", kueue)):
        print(f"  {label}: p50 {pct(xs, 50):.0f} ms, p95 {pct(xs, 95):.0f} ms, max {max(xs) * 1000:.0f} ms")
    print(
        f"  ratio (Kueue / plain): p50 {pct(kueue, 50) / pct(plain, 50):.2f}, p95 {pct(kueue, 95) / pct(plain, 95):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with bench_cluster() as cfg:
        asyncio.run(run(str(cfg.admin_kubeconfig), args.runs, args.in_flight))


if __name__ == "__main__":
    main()
