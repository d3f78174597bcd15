"""Culling with short clocks: an idle GPU server is warned in JupyterLab and reclaimed
before an idle CPU server is culled by jupyterhub-idle-culler; a busy GPU is not
reclaimed. The GPUs are the local node's simulated ones (a device plugin hands them out
through the real kubelet, plays the NVIDIA runtime and answers as DCGM's exporter does:
the test sets their utilization). Warnings reach JupyterLab because each server pulls its
own from the reclaim service; the reclaim service never calls a server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes_asyncio import client

from localcluster import cli, node
from localcluster.config import REPO, ClusterConfig
from tests.conftest import Hub, platform_doc, start_hub
from tests.helpers import PYTHON_IMAGE, wait_for

STATE = REPO / ".state" / "test-hub-culling"
NS = "moonhub-users"
CLOCKS = {
    "idle_timeout": 70,
    "gpu_idle_timeout": 30,
    "warn_before": 12,
    "every": 3,
    "gpu_sample_seconds": 2,
    "notices_seconds": 2,
}
SIM_GPU = {"environment": "sim-cuda", "size": "small", "gpu_type": "sim", "gpu_count": 1}
CPU = {"environment": "python", "size": "small"}


@pytest.fixture(scope="module")
def cull_hub(local_cluster: ClusterConfig | None) -> Iterator[Hub]:
    if local_cluster is None:
        pytest.skip("the culling hub runs on the host against the local cluster")
    catalog = yaml.safe_load((REPO / "moonhub_core" / "examples" / "catalog.yaml").read_text())
    catalog["gpu_types"].append(
        {
            "name": "sim",
            "display_name": "Simulated GPU (local node)",
            "node_selector": {"moonhub.io/simulated-gpu": "true"},
            "counts": [1],
        }
    )
    catalog["entitlements"][0]["gpu_types"].append("sim")
    # a GPU environment built here: the base image, declared with CUDA (the CUDA images are
    # built with `./moonhub images --gpu` only; GPU sampling does not need CUDA)
    catalog["environments"].append(
        {
            "name": "sim-cuda",
            "display_name": "Python (simulated GPU)",
            "image": PYTHON_IMAGE.replace(":latest", ":python-3.11-lab-4.6"),
            "cuda": "12.8",
        }
    )
    doc = platform_doc(STATE, 18400, catalog)
    doc["jobs"]["enabled"] = False
    doc["builds"]["enabled"] = False  # builds need the jobs service
    # its own Kueue objects: the session's hub (another catalog) keeps its own
    doc["spawner"]["queue_prefix"] = "moonhub-culling"
    doc["culling"] |= {"enabled": True, **CLOCKS}
    url, config, sup = start_hub(local_cluster, STATE, doc, "hub-culling")
    yield Hub.started(url, config, sup, "hub-culling", local_cluster, [])
    sup.stop("hub-culling")


def _servers(hub: Hub, admin: requests.Session, user: str) -> dict[str, Any]:
    r = hub.api(admin, "GET", f"/users/{user}")
    assert r.status_code == 200, r.text
    return dict(r.json()["servers"])


async def _at_pod(core: client.CoreV1Api, hub: Hub, s: requests.Session, user: str, path: str) -> Any:
    """What the user's server answers at ``moonhub/<path>``, asked at the pod itself: through
    the proxy the read would count as activity and keep the server alive."""
    pod = await core.read_namespaced_pod(f"jupyter-{user}", NS)
    token = hub.token(s, user, f"access:servers!server={user}/")
    r = await asyncio.to_thread(
        requests.get,
        f"http://{pod.status.pod_ip}:8888/user/{user}/moonhub/{path}",
        headers={"Authorization": f"token {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


async def _notices(core: client.CoreV1Api, hub: Hub, s: requests.Session, user: str) -> list[dict[str, Any]]:
    """The notices on the user's server."""
    return list((await _at_pod(core, hub, s, user, "notices"))["notices"])


async def _gpus(core: client.CoreV1Api, hub: Hub, s: requests.Session, user: str) -> list[dict[str, Any]]:
    """The GPU figures the user's lab shows in its status bar."""
    return list((await _at_pod(core, hub, s, user, "gpus"))["gpus"])


async def test_idle_gpu_server_goes_before_idle_cpu_server(
    cull_hub: Hub, local_cluster: ClusterConfig, core: client.CoreV1Api, timings: dict[str, float]
) -> None:
    hub = cull_hub
    admin = hub.login("admin")
    sessions = {}

    async def spawn(user: str, options: dict[str, Any]) -> None:
        sessions[user] = s = hub.login(user)
        r = hub.api(s, "POST", f"/users/{user}/server", json=options)
        assert r.status_code in (201, 202), r.text
        await wait_for(
            lambda: _ready(hub, admin, user), lambda ok: ok, timeout=120, what=f"{user}'s server to be ready"
        )

    # gus's GPU gets busy as soon as his server runs (what DCGM would report under load)
    await spawn("gus", SIM_GPU)
    _gpu_file(local_cluster, "gus").write_text(json.dumps([97]))
    await spawn("gia", SIM_GPU)
    await spawn("cal", CPU)
    t0 = time.monotonic()
    assert json.loads(_gpu_file(local_cluster, "gia").read_text()) == [0], "gia's GPU stays at 0%"
    # what each user's lab shows of their own GPUs, live (issue 36, item 2): busy, idle, none
    assert await _gpus(core, hub, sessions["gus"], "gus") == [
        {"index": 0, "utilization": 97.0, "memory_used": None, "memory_total": None}
    ]
    assert [g["utilization"] for g in await _gpus(core, hub, sessions["gia"], "gia")] == [0.0]
    assert await _gpus(core, hub, sessions["cal"], "cal") == []

    # gia is warned in JupyterLab first, then reclaimed
    warned = await wait_for(
        lambda: _notices(core, hub, sessions["gia"], "gia"),
        lambda ns: any(n["kind"] == "gpu-idle" for n in ns),
        timeout=60,
        what="a GPU-idle warning on gia's server",
    )
    assert "GPUs have been idle" in warned[0]["message"]
    await asyncio.to_thread(_users_can_not_forge_or_read_others, hub, local_cluster, sessions["gus"])
    await wait_for(
        lambda: _servers(hub, admin, "gia"), lambda s: not s, timeout=60, what="gia's idle GPU server reclaimed"
    )
    timings["culling: idle GPU server reclaimed after ready"] = time.monotonic() - t0
    assert _servers(hub, admin, "gus"), "a busy GPU is not reclaimed"
    assert _servers(hub, admin, "cal"), "the idle CPU server outlives the idle GPU server"

    # the idle CPU server is warned, then stopped by jupyterhub-idle-culler
    idle = await wait_for(
        lambda: _notices(core, hub, sessions["cal"], "cal"),
        lambda ns: any(n["kind"] == "idle" for n in ns),
        timeout=90,
        what="an inactivity warning on cal's server",
    )
    assert "will be stopped at" in idle[0]["message"]
    await wait_for(lambda: _servers(hub, admin, "cal"), lambda s: not s, timeout=90, what="cal culled for inactivity")
    timings["culling: idle CPU server culled after ready"] = time.monotonic() - t0
    hub.api(admin, "DELETE", "/users/gus/server")


def _users_can_not_forge_or_read_others(hub: Hub, cfg: ClusterConfig, gus: requests.Session) -> None:
    # the user can not make an idle GPU look busy: what the exporter reads is not theirs
    kubectl = [str(cli.build() / "kubectl"), f"--kubeconfig={cfg.admin_kubeconfig}"]
    forged = subprocess.run(
        [*kubectl, "exec", "-n", NS, "jupyter-gia", "--", "sh", "-c", "echo '[99]' > /run/moonhub/simulated-gpus.json"],
        capture_output=True,
        text=True,
    )
    assert forged.returncode != 0 and "Read-only" in forged.stderr, forged.stderr
    # each token reads only its own user's warnings; no token, nothing
    reclaim = f"http://{cfg.node_ip}:{18400 + 91}/services/gpu-reclaim/notices"
    gus_token = hub.token(gus, "gus", "access:services!service=gpu-reclaim")
    theirs = requests.get(reclaim, headers={"Authorization": f"token {gus_token}"}, timeout=10)
    assert theirs.status_code == 200 and not any("idle" in n["kind"] for n in theirs.json()["notices"]), theirs.text
    assert requests.get(reclaim, timeout=10).status_code == 403


def _gpu_file(cfg: ClusterConfig, user: str) -> Path:
    """The host's copy of the utilization file of the GPUs the device plugin gave ``user``'s
    server (named after its devices, which the container's NVIDIA_VISIBLE_DEVICES lists)."""
    kubectl = [str(cli.build() / "kubectl"), f"--kubeconfig={cfg.admin_kubeconfig}"]
    out = subprocess.run(
        [*kubectl, "exec", "-n", NS, f"jupyter-{user}", "--", "printenv", "NVIDIA_VISIBLE_DEVICES"],
        capture_output=True,
        text=True,
        check=True,
    )
    devices = sorted(out.stdout.strip().split(","))
    return node.simulated_gpu_dir(cfg) / f"{'_'.join(devices)}.json"


async def _ready(hub: Hub, admin: requests.Session, user: str) -> bool:
    return bool(_servers(hub, admin, user).get("", {}).get("ready"))
