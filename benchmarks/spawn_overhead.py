"""Spawn-time benchmark: MoonSpawner against a plain KubeSpawner configured alike.

Both spawners start the same pods (same image, resources, one A100 GPU, tolerations,
volumes, security context) against a real local cluster, where kwok plays the GPU nodes'
kubelet; each spawn is timed from ``start()`` to the pod running (what KubeSpawner waits
for before the hub polls the server). Rounds alternate between the two spawners. It also
times MoonSpawner's own hub-side work per spawn (``load_user_options``: validation,
quota, workload) separately.

    .venv/bin/python -m benchmarks.spawn_overhead [--users 8] [--rounds 3]

The hub is not running here: a small stand-in for JupyterHub's User and Hub objects feeds
the spawners (the Kubernetes side is entirely real).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from localcluster.config import ClusterConfig

from .cluster import STATE, bench_cluster

NS = "moonhub-users"
A100 = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}


@dataclass
class StandInUser:
    """What a spawner reads from JupyterHub's User object during start()."""

    name: str
    id: int
    admin: bool = True
    groups: list[Any] = field(default_factory=list)
    db: Any = None

    @property
    def url(self) -> str:
        return f"/user/{self.name}/"

    @property
    def escaped_name(self) -> str:
        return self.name


@dataclass
class StandInHub:
    base_url: str = "/hub/"
    api_url: str = "http://127.0.0.1:8081/hub/api"
    url: str = "http://127.0.0.1:8081/hub/"
    public_host: str = ""


def _common(c: Any) -> None:
    from moonhub_core.security import container_security_context, pod_security_context

    c.KubeSpawner.namespace = NS
    c.KubeSpawner.start_timeout = 120
    c.KubeSpawner.events_enabled = False
    c.KubeSpawner.storage_pvc_ensure = True
    c.KubeSpawner.storage_class = "local-path"
    c.KubeSpawner.pod_security_context = pod_security_context()
    c.KubeSpawner.container_security_context = container_security_context()
    c.KubeSpawner.automount_service_account_token = False


def moon_spawner(user: StandInUser) -> Any:
    from traitlets.config import Config

    from spawner_ext.spawner import MoonSpawner

    c = Config()
    _common(c)
    c.MoonSpawner.storage_class_override = "local-path"
    sp = MoonSpawner(user=user, hub=StandInHub(), config=c, api_token="bench", oauth_client_id=f"bench-{user.name}")
    sp.user_options = {"environment": "pytorch", "size": "small", "gpu_type": "a100", "gpu_count": 1}
    return sp


def kube_spawner(user: StandInUser) -> Any:
    """A KubeSpawner set up by hand to make the same pod as MoonSpawner's a100 x1 choice."""
    from kubespawner import KubeSpawner
    from traitlets.config import Config

    c = Config()
    _common(c)
    c.KubeSpawner.image = "moonhub/pytorch-notebook:dev"
    c.KubeSpawner.cpu_guarantee, c.KubeSpawner.cpu_limit = 0.5, 2.0
    c.KubeSpawner.mem_guarantee, c.KubeSpawner.mem_limit = 1 << 30, 4 << 30
    c.KubeSpawner.extra_resource_limits = {"nvidia.com/gpu": "1"}
    c.KubeSpawner.extra_resource_guarantees = {"nvidia.com/gpu": "1"}
    c.KubeSpawner.node_selector = A100
    c.KubeSpawner.tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    c.KubeSpawner.pvc_name_template = "claim-{username}"
    c.KubeSpawner.storage_capacity = "10Gi"
    c.KubeSpawner.storage_access_modes = ["ReadWriteOnce"]
    c.KubeSpawner.volumes = [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": "{pvc_name}"}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
    ]
    c.KubeSpawner.volume_mounts = [
        {"name": "workspace", "mountPath": "/home/jovyan"},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    c.KubeSpawner.uid, c.KubeSpawner.gid, c.KubeSpawner.fs_gid = 1000, 100, 100
    return KubeSpawner(user=user, hub=StandInHub(), config=c, api_token="bench", oauth_client_id=f"b-{user.name}")


def _time_pod_creation(sp: Any, t0: list[float], sink: list[float]) -> None:
    """Record when the pod create call succeeds: start() up to there has no back-off waits."""
    create = sp._make_create_pod_request

    async def timed(*args: Any, **kwargs: Any) -> Any:
        ok = await create(*args, **kwargs)
        if ok:
            sink.append(time.perf_counter() - t0[0])
        return ok

    sp._make_create_pod_request = timed


async def _round(make: Any, prefix: str, users: int, overhead: list[float], created: list[float]) -> list[float]:
    times = []
    spawners = []
    for i in range(users):
        sp = make(StandInUser(f"{prefix}{i}", 1000 + i))
        if prefix.startswith("moon"):
            t = time.perf_counter()
            await sp.load_user_options()
            overhead.append(time.perf_counter() - t)
        t0 = [time.perf_counter()]
        _time_pod_creation(sp, t0, created)
        t0[0] = time.perf_counter()
        await sp.start()
        times.append(time.perf_counter() - t0[0])
        spawners.append(sp)
    for sp in spawners:
        await sp.stop(now=True)
    return times


async def run(users: int, rounds: int) -> None:
    os.environ["KUBECONFIG"] = str(ClusterConfig.load(STATE).kubeconfig("hub"))
    moon: list[float] = []
    kube: list[float] = []
    overhead: list[float] = []
    created: dict[str, list[float]] = {"moon": [], "kube": []}
    for r in range(rounds):
        # alternate the order so neither spawner always runs on a warmer cluster
        order = [("moon", moon), ("kube", kube)] if r % 2 == 0 else [("kube", kube), ("moon", moon)]
        for name, sink in order:
            make = moon_spawner if name == "moon" else kube_spawner
            sink += await _round(make, f"{name}{r}u", users, overhead, created[name])
    m, k = statistics.median(moon), statistics.median(kube)
    print(f"spawns per spawner: {len(moon)} ({rounds} rounds x {users} users), pods on kwok A100 nodes")
    print(f"KubeSpawner  start() median {k * 1000:7.1f} ms  (min {min(kube) * 1000:.1f}, max {max(kube) * 1000:.1f})")
    print(f"MoonSpawner  start() median {m * 1000:7.1f} ms  (min {min(moon) * 1000:.1f}, max {max(moon) * 1000:.1f})")
    mm, km = statistics.mean(moon), statistics.mean(kube)
    print(f"ratio MoonSpawner / KubeSpawner: median {m / k:.3f}, mean {mm / km:.3f}   target <= 1.05")
    print("(KubeSpawner polls for the running pod with randomised exponential back-off, so single spawns vary a lot)")
    cm, ck = statistics.median(created["moon"]), statistics.median(created["kube"])
    print(
        f"start() -> pod created (PVC, manifest, API calls; no polling): KubeSpawner median {ck * 1000:.1f} ms, "
        f"MoonSpawner median {cm * 1000:.1f} ms, ratio {cm / ck:.3f}"
    )
    work = statistics.median(overhead) * 1000
    print(f"MoonSpawner hub-side work per spawn (load_user_options): median {work:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=8, help="spawns per round and spawner (<= 8: one A100 each)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with bench_cluster():
        asyncio.run(run(min(args.users, 8), args.rounds))


if __name__ == "__main__":
    main()
