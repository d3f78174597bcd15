"""A contended "hour" on the GPU queues, compressed: what each team got vs its share.

    .venv/bin/python -m benchmarks.queue_fairness [--minutes 5] [--run-seconds 20]

A fresh local cluster with Kueue; the 8 A100s of the kwok fleet. Three teams own 4, 2 and
2 of them (``group_gpu_type_quotas``) and may each borrow 4 more. Every team keeps twice
its quota of one-GPU job runs waiting all the time (each runs ``--run-seconds`` on kwok),
except ``team-c``, which asks for nothing in the first third: the others borrow its GPUs,
and it gets them back as their runs end (runs are not preempted by runs:
``preempt_borrowed_servers`` is off, and runs share one priority). Every second the admitted
Workloads are sampled; each team's GPU-seconds are printed beside its share of the quotas.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import time
import uuid
from typing import Any

from kubernetes_asyncio import client, config

from localcluster.nodes import RUN_FOR
from moonhub_core import admissions
from moonhub_core import queue_objects as q
from moonhub_core.admissions import admitted
from moonhub_core.catalog import EXAMPLE, load
from moonhub_core.kueue_api import Queues

from .cluster import bench_cluster
from .gpu_jobs import a100_job

NS = "moonhub-users"
TEAMS = {"team-a": 4, "team-b": 2, "team-c": 2}


def job(name: str, user: str, run_seconds: int) -> dict[str, Any]:
    labels = {"bench": "fairness", **q.queue_labels(user, server=False)}
    return a100_job(name, labels, {"bench": "fairness"}, {RUN_FOR: f"{run_seconds}s"})


async def run(kubeconfig: str, minutes: float, run_seconds: int) -> None:
    api = await config.new_client_from_config(kubeconfig)
    batch = client.BatchV1Api(api)
    queues = Queues(api)
    cat = dataclasses.replace(
        load(EXAMPLE),
        group_gpu_quotas=dict(TEAMS),
        group_gpu_type_quotas={t: {"a100": n} for t, n in TEAMS.items()},
        group_gpu_borrowing_limits=dict.fromkeys(TEAMS, 4),
    )
    cat = dataclasses.replace(
        cat, entitlements=[*cat.entitlements, dataclasses.replace(cat.entitlements[1], groups=list(TEAMS))]
    )
    await queues.reconcile(cat)
    for team in TEAMS:
        await queues.ensure_user(cat, f"{team}-user", [team], False, NS)
    local = {q.user_local_queue(f"{t}-user"): t for t in TEAMS}
    got = dict.fromkeys(TEAMS, 0.0)
    made = dict.fromkeys(TEAMS, 0)
    tag = uuid.uuid4().hex[:5]
    t_end = time.monotonic() + minutes * 60
    c_starts = time.monotonic() + minutes * 20  # a third of the time
    last = time.monotonic()
    while time.monotonic() < t_end:
        wls = await queues.objects("Workload", NS)
        now = time.monotonic()
        step, last = now - last, now
        waiting = dict.fromkeys(TEAMS, 0)
        for w in wls:
            of = local.get(str((w.get("spec") or {}).get("queueName")))
            conditions = (w.get("status") or {}).get("conditions") or []
            if of is None or any(c.get("type") == "Finished" and c.get("status") == "True" for c in conditions):
                continue
            if admitted(w):
                got[of] += step * admissions.workload_gpus(w)
            else:
                waiting[of] += 1
        for team, quota in TEAMS.items():
            if team == "team-c" and now < c_starts:
                continue
            for _ in range(max(0, 2 * quota - waiting[team])):
                made[team] += 1
                name = f"fair-{tag}-{team}-{made[team]}"
                await batch.create_namespaced_job(NS, job(name, f"{team}-user", run_seconds))  # type: ignore[arg-type]
        await asyncio.sleep(1)
    await batch.delete_collection_namespaced_job(NS, label_selector="bench=fairness", propagation_policy="Background")
    await api.close()
    total, quota_total = sum(got.values()), sum(TEAMS.values())
    print(f"{minutes:g} min on 8 A100s, runs of {run_seconds} s; team-c idle for the first third")
    print(f"{'team':8} {'owns':>5} {'share':>6} {'GPU-s got':>10} {'got':>6}  got / share")
    for team, quota in TEAMS.items():
        share, part = quota / quota_total, got[team] / total if total else 0.0
        print(f"{team:8} {quota:5d} {share:6.0%} {got[team]:10.0f} {part:6.0%}  {part / share:.2f}")
    print(f"cluster busy: {total / (minutes * 60 * 8):.0%} of 8 GPUs x {minutes:g} min; runs made: {made}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--run-seconds", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with bench_cluster() as cfg:
        asyncio.run(run(str(cfg.admin_kubeconfig), args.minutes, args.run_seconds))


if __name__ == "__main__":
    main()
