"""MoonSpawner's choices through a real hub into the real cluster."""

from __future__ import annotations

import json
import time

import requests
import yaml
from kubernetes.utils.quantity import parse_quantity
from kubernetes_asyncio import client

from moonhub_core import image_builds
from tests.conftest import HUB_STATE, IMAGE_BUILDS, Hub
from tests.helpers import SHELL_IMAGE, gone, pod_scheduled, wait_for

USER_NS = "moonhub-users"
RESEARCH = "ml-research"


def _researcher(hub: Hub, name: str) -> requests.Session:
    """Log ``name`` in and make them a member of the ml-research group (as the admin)."""
    s = hub.login(name)
    admin = hub.login("admin")
    r = hub.api(admin, "POST", f"/groups/{RESEARCH}")
    assert r.status_code in (201, 409), r.text
    r = hub.api(admin, "POST", f"/groups/{RESEARCH}/users", json={"users": [name]})
    assert r.status_code == 200, r.text
    return s


def _progress_until_done(hub: Hub, s: requests.Session, user: str, timeout: float = 60) -> dict:
    """Follow the spawn's progress stream (what the spawn page shows) to its last event."""
    last: dict = {}
    headers = {"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/") or ""}
    with s.get(f"{hub.url}/hub/api/users/{user}/server/progress", headers=headers, stream=True, timeout=timeout) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                last = json.loads(line[5:])
                if last.get("failed") or last.get("ready"):
                    break
    return last


def _failed_spawn(hub: Hub, s: requests.Session, user: str, options: dict) -> str:
    """Start a spawn that must fail; return the message the user sees (the API's answer if
    it failed at once, else the last event of the spawn page's progress stream)."""
    r = hub.api(s, "POST", f"/users/{user}/server", json=options)
    if r.status_code not in (201, 202):
        return str(r.json()["message"])
    last = _progress_until_done(hub, s, user)
    assert last.get("failed"), last
    return str(last.get("message", ""))


async def test_bad_options_are_refused_and_nothing_is_created(hub: Hub, core: client.CoreV1Api) -> None:
    user = "eve"
    s = hub.login(user)
    cases = [
        ({"image": "evil/miner:latest"}, 400, "image: is not accepted"),
        ({"env": {"NVIDIA_VISIBLE_DEVICES": "all"}}, 400, "env: is not accepted: environment variables"),
        ({"node_selector": {"kubernetes.io/hostname": "kwok-gpu-a100-0"}}, 400, "node_selector: is not accepted"),
        ({"environment": "cobol"}, 400, "environment: no environment named 'cobol'"),
        ({"size": "large"}, 403, "size: your groups may not use size"),
        ({"environment": "pytorch", "gpu_type": "a100", "gpu_count": 1}, 403, "gpu_type: your groups may not use"),
        ({"environment": "pytorch", "gpu_type": "t4", "gpu_count": 3}, 400, "gpu_count: NVIDIA T4 16GB comes in 1, 2"),
        ({"environment": "pytorch", "gpu_type": "t4", "gpu_count": 2}, 403, "gpu_count: you may hold at most 1 GPUs"),
    ]
    for options, status, message in cases:
        r = hub.api(s, "POST", f"/users/{user}/server", json=options)
        assert r.status_code == status, (options, r.status_code, r.text)
        assert message in r.json()["message"], (options, r.json())
    assert await gone(lambda: core.read_namespaced_pod(f"jupyter-{user}", USER_NS))
    assert await gone(lambda: core.read_namespaced_persistent_volume_claim(f"claim-{user}", USER_NS)), (
        "a refused spawn creates no volume"
    )


async def test_form_offers_only_entitled_choices_with_free_gpus(hub: Hub) -> None:
    plain = hub.login("frank")
    form = plain.get(f"{hub.url}/hub/spawn/frank").text
    assert "NVIDIA T4 16GB" in form and "NVIDIA A100 80GB" not in form
    assert 'value="large"' not in form
    s = _researcher(hub, "grace")
    form = s.get(f"{hub.url}/hub/spawn/grace").text
    assert "NVIDIA A100 80GB &mdash; 8 of 8 free now" in " ".join(form.split())
    assert 'value="large"' in form


async def test_gpu_choice_lands_on_a_node_of_that_type(hub: Hub, core: client.CoreV1Api) -> None:
    user = "heidi"
    s = _researcher(hub, user)
    r = hub.api(s, "POST", f"/users/{user}/server", json={"environment": "pytorch", "gpu_type": "v100", "gpu_count": 2})
    assert r.status_code in (201, 202), r.text
    pod = await pod_scheduled(core, USER_NS, f"jupyter-{user}")
    node = await core.read_node(pod.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == "Tesla-V100-SXM2-32GB"
    c = pod.spec.containers[0]
    assert c.resources.limits["nvidia.com/gpu"] == "2"
    assert c.image == "127.0.0.1:5000/moonhub/pytorch-notebook:pytorch-2.9-cuda12.8"
    assert pod.metadata.labels["moonhub.io/gpu-type"] == "v100"
    assert c.security_context.capabilities.drop == ["ALL"], "GPU pods are restricted too"
    assert not any(e.name == "NVIDIA_VISIBLE_DEVICES" for e in c.env or [])
    r = hub.api(s, "DELETE", f"/users/{user}/server")
    assert r.status_code in (202, 204), r.text
    await wait_for(
        lambda: gone(lambda: core.read_namespaced_pod(f"jupyter-{user}", USER_NS)),
        bool,
        timeout=60,
        what=f"{user}'s pod removed",
    )


async def test_cpu_choice_lands_on_a_cpu_node(hub: Hub, core: client.CoreV1Api) -> None:
    user = "ivan"
    s = hub.login(user)
    hub.spawn_form(s, user, environment="python", size="medium")
    pod = await pod_scheduled(core, USER_NS, f"jupyter-{user}")
    node = await core.read_node(pod.spec.node_name)
    # never a GPU node (the real node's simulated GPUs do not make it one: it is the CPU node too)
    assert (node.metadata.labels or {}).get("nvidia.com/gpu.present") != "true"
    assert (
        "nvidia.com/gpu" not in (node.status.allocatable or {})
        or (node.metadata.labels or {}).get("moonhub.io/simulated-gpu") == "true"
    )
    env = {e.name: e.value for e in pod.spec.containers[0].env or []}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert parse_quantity(pod.spec.containers[0].resources.limits["memory"]) == parse_quantity("16Gi")
    hub.api(s, "DELETE", f"/users/{user}/server")
    await wait_for(
        lambda: gone(lambda: core.read_namespaced_pod(f"jupyter-{user}", USER_NS)),
        bool,
        timeout=60,
        what=f"{user}'s pod removed",
    )
    form = " ".join(s.get(f"{hub.url}/hub/spawn/{user}").text.split())
    assert '<option value="medium" selected>' in form, "the form preselects the last choice"


async def test_unschedulable_gpu_spawn_fails_fast_and_explains(
    hub: Hub, core: client.CoreV1Api, namespace: str, timings: dict[str, float]
) -> None:
    # somebody else's workload holds all A100 GPUs
    await core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "a100-hog"},
            "spec": {
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
                "containers": [
                    {
                        "name": "c",
                        "image": SHELL_IMAGE,
                        "command": ["sleep", "3600"],
                        "resources": {"limits": {"nvidia.com/gpu": "8"}},
                    }
                ],
            },
        },
    )
    await wait_for(
        lambda: core.read_namespaced_pod("a100-hog", namespace),
        lambda p: bool(p.spec.node_name),
        timeout=30,
        what="the A100 hog to be scheduled",
    )
    user = "judy"
    s = _researcher(hub, user)
    t0 = time.monotonic()
    message = _failed_spawn(hub, s, user, {"environment": "pytorch", "gpu_type": "a100", "gpu_count": 4})
    elapsed = time.monotonic() - t0
    timings["unschedulable GPU spawn: request -> failure explained"] = elapsed
    assert "no NVIDIA A100 80GB node has 4 free GPUs right now: 0 of 8 are free" in message, message
    assert elapsed < 30
    await wait_for(
        lambda: gone(lambda: core.read_namespaced_pod(f"jupyter-{user}", USER_NS)),
        bool,
        timeout=30,
        what="the failed pod removed",
    )


async def test_catalog_edit_applies_without_restart_and_broken_edit_keeps_last_good(hub: Hub) -> None:
    admin = hub.login("admin")
    original = hub.catalog.read_text()
    doc = yaml.safe_load(original)
    doc["sizes"][0]["display_name"] = "Tiny but mighty"
    try:
        hub.catalog.write_text(yaml.safe_dump(doc))
        form = admin.get(f"{hub.url}/hub/spawn/admin").text
        assert "Tiny but mighty" in form
        hub.catalog.write_text(original.replace("cpu_limit: 2,", "cpu_limit: two,"))
        form = admin.get(f"{hub.url}/hub/spawn/admin").text
        assert "Catalog edit refused" in form and "sizes[0].cpu_limit: must be a number" in form
        assert "Tiny but mighty" in form, "the last good catalog keeps serving"
        plain = hub.login("ken")
        assert "Catalog edit refused" not in plain.get(f"{hub.url}/hub/spawn/ken").text, "only admins see it"
    finally:
        hub.catalog.write_text(original)
    assert "Catalog edit refused" not in admin.get(f"{hub.url}/hub/spawn/admin").text


async def test_named_servers_share_or_own_a_volume_as_the_catalog_says(hub: Hub, core: client.CoreV1Api) -> None:
    user = "leo"
    s = hub.login(user)
    original = hub.catalog.read_text()
    try:
        for mode, claim in (("shared", f"claim-{user}"), ("per_server", f"claim-{user}--exp-per-server")):
            doc = yaml.safe_load(original)
            doc["storage"]["named_servers"] = mode
            hub.catalog.write_text(yaml.safe_dump(doc))
            server = f"exp-{mode}".replace("_", "-")
            r = hub.api(s, "POST", f"/users/{user}/servers/{server}", json={"environment": "python"})
            assert r.status_code in (201, 202), r.text
            pod = await wait_for(
                lambda sv=server: core.read_namespaced_pod(f"jupyter-{user}--{sv}", USER_NS),
                lambda p: bool(p.spec.node_name),
                timeout=60,
                what=f"{user}'s server {server}",
            )
            claims = [v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.persistent_volume_claim]
            assert claims == [claim], (mode, claims)
            await core.read_namespaced_persistent_volume_claim(claim, USER_NS)
            hub.api(s, "DELETE", f"/users/{user}/servers/{server}")
    finally:
        hub.catalog.write_text(original)


async def test_unpullable_image_fails_fast_and_explains(hub: Hub, core: client.CoreV1Api) -> None:
    original = hub.catalog.read_text()
    doc = yaml.safe_load(original)
    doc["environments"].append({"name": "broken", "display_name": "Broken", "image": "nowhere/missing:1"})
    user = "mallet"
    s = hub.login(user)
    try:
        hub.catalog.write_text(yaml.safe_dump(doc))
        t0 = time.monotonic()
        message = _failed_spawn(hub, s, user, {"environment": "broken"})
        assert time.monotonic() - t0 < 30
        assert "the image nowhere/missing:1 of environment 'broken' can not be pulled" in message, message
        await wait_for(
            lambda: gone(lambda: core.read_namespaced_pod(f"jupyter-{user}", USER_NS)),
            bool,
            timeout=30,
            what="the failed pod removed",
        )
    finally:
        hub.catalog.write_text(original)


async def test_an_environment_whose_image_is_building_says_so_and_can_not_be_picked(
    hub: Hub, core: client.CoreV1Api
) -> None:
    """The local platform's `up` builds the framework images after the hub starts
    (issue 34, item 3): until an image is ready, its environment says how far it is."""
    path = HUB_STATE / IMAGE_BUILDS
    user = "bea"
    s = hub.login(user)
    try:
        image_builds.write(path, [{"name": "pytorch-notebook", "state": "building", "position": 1, "of": 2}])
        form = s.get(f"{hub.url}/hub/spawn", timeout=30).text
        assert 'data-building="pytorch"' in form and "Not ready yet: building, 1 of 2" in form, form[:2000]
        radio = form[form.index('id="env-pytorch"') - 200 : form.index('id="env-pytorch"') + 300]
        assert "disabled" in radio and "checked" not in radio.split('id="env-pytorch"')[1].split(">")[0]
        r = hub.api(s, "POST", f"/users/{user}/server", json={"environment": "pytorch", "size": "small"})
        assert r.status_code == 503, r.text
        assert (
            r.json()["message"] == "environment: PyTorch (CUDA) is not ready: building, 1 of 2; pick it once it is"
        ), r.text
        assert await gone(lambda: core.read_namespaced_pod(f"jupyter-{user}", USER_NS)), "nothing made"
        # ready: offered again
        image_builds.write(path, [{"name": "pytorch-notebook", "state": "ready", "position": 1, "of": 2}])
        assert 'data-building="pytorch"' not in s.get(f"{hub.url}/hub/spawn", timeout=30).text
    finally:
        path.unlink(missing_ok=True)
