"""The scale tier for the hub benchmarks and tests: a cluster without the real node, kwok
scale nodes, kwok's pod range local and one stand-in server (docs/local-cluster.md, "The
scale tier"); bound workspace claims for the users; MoonHub's hub and the baseline (stock
JupyterHub + KubeSpawner, ``baseline_hub_config.py``) started on it."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from kubernetes_asyncio import client, config

from localcluster.config import REPO, ClusterConfig
from localcluster.supervisor import Supervisor

from .cluster import fresh

log = logging.getLogger("benchmarks.scale_tier")
STATE = REPO / ".state" / "scale-cluster"
NS = "moonhub-users"
STORAGE_CLASS = "scale-static"
IMAGE = "127.0.0.1:5000/moonhub/base-notebook:python-3.11-lab-4.6"
#: ports: MoonHub's hub 19000 (+1 proxy API, +81 hub API, +90 jobs, +91 reclaim); baseline 19200
MOONHUB_PORT, BASELINE_PORT = 19000, 19200


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
    with fresh(scale_config(nodes)) as cfg:
        yield cfg


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
