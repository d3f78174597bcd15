"""How long a new workspace claim waits for its volume (figures, no asserts).

Against the platform ``./moonhub up`` runs: ``--count`` claims of ``--class`` (the
``glusterfs`` class by default, which MoonHub's storage agent provisions) are made one at a
time in the user namespace, each with a uid as the spawner gives it, and a watch on claims
and volumes notes when the volume appears and when the claim is bound. Each claim is
deleted afterwards (its folder and quota go with it).

    ./moonhub up
    .venv/bin/python -m benchmarks.claim_binding [--count 20] [--class glusterfs]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid

from kubernetes import client, config, watch

from localcluster.config import REPO
from moonhub_core import uids

NS = "moonhub-users"


def one(v1: client.CoreV1Api, storage_class: str, uid: int) -> dict[str, float]:
    name = f"bench-claim-{uuid.uuid4().hex[:8]}"
    marks: dict[str, float] = {}
    rv_pv = (v1.list_persistent_volume().metadata or client.V1ListMeta()).resource_version
    rv_pvc = (v1.list_namespaced_persistent_volume_claim(NS).metadata or client.V1ListMeta()).resource_version
    t0 = 0.0

    def volumes() -> None:
        for ev in watch.Watch().stream(v1.list_persistent_volume, resource_version=rv_pv, timeout_seconds=60):
            ref = ev["object"].spec.claim_ref
            if ref and ref.name == name:
                marks.setdefault("volume made", time.monotonic() - t0)
                return

    def claims() -> None:
        for ev in watch.Watch().stream(
            v1.list_namespaced_persistent_volume_claim, NS, resource_version=rv_pvc, timeout_seconds=60
        ):
            c = ev["object"]
            if c.metadata.name == name and c.status.phase == "Bound":
                marks.setdefault("claim bound", time.monotonic() - t0)
                return

    watchers = [threading.Thread(target=f, daemon=True) for f in (volumes, claims)]
    for w in watchers:
        w.start()
    time.sleep(0.3)  # both watches open
    t0 = time.monotonic()
    body = {
        "metadata": {"name": name, "annotations": {uids.UID: str(uid)}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    v1.create_namespaced_persistent_volume_claim(NS, body)  # type: ignore[arg-type]
    for w in watchers:
        w.join(60)
    v1.delete_namespaced_persistent_volume_claim(name, NS)
    if "claim bound" not in marks:
        raise SystemExit(f"claim {name} of class {storage_class} was not bound in 60 s")
    return marks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--class", dest="storage_class", default="glusterfs")
    a = p.parse_args()
    config.load_kube_config(str(REPO / ".state" / "cluster" / "admin.kubeconfig"))
    v1 = client.CoreV1Api()
    runs = [one(v1, a.storage_class, uids.LAST - i) for i in range(a.count)]
    for mark in ("volume made", "claim bound"):
        xs = sorted(r[mark] for r in runs if mark in r)
        p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
        print(f"{a.storage_class}: claim made -> {mark:12} n={len(xs):3}  p50 {statistics.median(xs):5.2f} s  "
              f"p95 {p95:5.2f} s  max {xs[-1]:5.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
