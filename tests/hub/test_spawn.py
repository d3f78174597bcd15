"""Log in, spawn, reach JupyterLab through the proxy, stop: against the real cluster."""

from __future__ import annotations

import asyncio
import time

import pytest
import requests
from kubernetes_asyncio import client

from images.build import load_spec
from localcluster import cli
from localcluster.config import ClusterConfig
from moonhub_core import uids
from moonhub_core.catalog import load
from tests.conftest import Hub
from tests.helpers import gone, kubectl, wait_for

USER_NS = "moonhub-users"


def _wait_lab(s: requests.Session, hub: Hub, user: str, timeout: float = 120) -> requests.Response:
    """Open the lab like a browser, then return the server's ``/api/status``."""
    hub.open_lab(s, user, timeout)
    r = s.get(f"{hub.url}/user/{user}/api/status")
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"
    return r


async def test_login_spawn_reach_lab_and_stop(hub: Hub, core: client.CoreV1Api, timings: dict[str, float]) -> None:
    user = "alice"
    s = hub.login(user)
    t0 = time.monotonic()
    r = hub.spawn_form(s, user, environment="python", size="small")
    assert r.status_code == 200, r.text[:500]
    status = _wait_lab(s, hub, user)
    timings["spawn (login -> /api/status answers)"] = time.monotonic() - t0
    assert "started" in status.json()
    lab = s.get(f"{hub.url}/user/{user}/lab")
    assert lab.status_code == 200 and "JupyterLab" in lab.text

    pod = await core.read_namespaced_pod(f"jupyter-{user}", USER_NS)
    assert pod.spec.node_name.startswith("moon-"), "the server runs on the local cluster's kubelet"
    # the environment's image, pulled from the registry: its Python is Debian's, not the host's
    env = next(e for e in load(hub.catalog).environments if e.name == "python")
    assert pod.spec.containers[0].image == env.image
    assert pod.status.container_statuses[0].image_id.startswith(env.image.rsplit(":", 1)[0] + "@sha256:")
    info = s.get(f"{hub.url}/user/{user}/moonhub/server").json()
    assert info["image"]["python"] == load_spec().os["python"], info
    assert info["image"]["packages"]["jupyterlab"].startswith("4.6"), info
    assert pod.spec.automount_service_account_token is False
    assert pod.spec.security_context.run_as_non_root is True
    pvc = await core.read_namespaced_persistent_volume_claim(f"claim-{user}", USER_NS)
    assert pvc.spec.storage_class_name == "glusterfs"

    # a file written in the workspace survives a stop and a new start (same PVC)
    xsrf = {"X-XSRFToken": s.cookies.get("_xsrf", path=f"/user/{user}/") or ""}
    body = {"type": "file", "format": "text", "content": "kept across restarts"}
    r = s.put(f"{hub.url}/user/{user}/api/contents/keep.txt", json=body, headers=xsrf)
    assert r.status_code in (200, 201), r.text

    # stop through the hub API (the browser's "Stop My Server")
    r = hub.api(s, "DELETE", f"/users/{user}/server")
    assert r.status_code in (202, 204), r.text
    await wait_for(
        lambda: gone(lambda: core.read_namespaced_pod(f"jupyter-{user}", USER_NS)),
        bool,
        timeout=60,
        what=f"{user}'s pod to go away",
    )
    kept = await core.read_namespaced_persistent_volume_claim(f"claim-{user}", USER_NS)
    assert kept.metadata.uid == pvc.metadata.uid, "the workspace volume survives a stop"

    hub.spawn_form(s, user, environment="python", size="small")
    _wait_lab(s, hub, user)
    r = s.get(f"{hub.url}/user/{user}/api/contents/keep.txt")
    assert r.status_code == 200 and r.json()["content"] == "kept across restarts"
    reused = await core.read_namespaced_persistent_volume_claim(f"claim-{user}", USER_NS)
    assert reused.metadata.uid == pvc.metadata.uid, "the next start reuses the volume"
    hub.api(s, "DELETE", f"/users/{user}/server")


async def test_server_is_private_to_its_user(hub: Hub) -> None:
    owner, other = "carol", "mallory"
    s = hub.login(owner)
    hub.spawn_form(s, owner)
    _wait_lab(s, hub, owner)
    intruder = hub.login(other)
    r = intruder.get(f"{hub.url}/user/{owner}/api/status", allow_redirects=True)
    assert r.status_code == 403 or not r.headers.get("content-type", "").startswith("application/json")
    hub.api(s, "DELETE", f"/users/{owner}/server")


async def _allowed(kubeconfig: str, checks: list[tuple[str, str, str, str]]) -> list[bool]:
    """Ask the API server (SelfSubjectAccessReview) what the identity in ``kubeconfig`` may do."""
    from kubernetes_asyncio import config

    api = await config.new_client_from_config(kubeconfig)
    try:
        authz = client.AuthorizationV1Api(api)
        out = []
        for verb, resource, ns, group in checks:
            attrs = {"verb": verb, "resource": resource, "namespace": ns, "group": group}
            review = await authz.create_self_subject_access_review({"spec": {"resourceAttributes": attrs}})
            out.append(bool(review.status.allowed))
        return out
    finally:
        await api.close()


async def test_platform_identities_are_limited_to_the_user_namespace(local_cluster: ClusterConfig | None) -> None:
    if local_cluster is None:
        pytest.skip("needs the local cluster's identities")
    hub = [
        ("create", "pods", USER_NS, ""),
        ("create", "persistentvolumeclaims", USER_NS, ""),
        ("create", "pods", "default", ""),
        ("get", "secrets", USER_NS, ""),
        ("create", "cronjobs", USER_NS, "batch"),
        ("create", "jobs", USER_NS, "batch"),
    ]
    assert await _allowed(str(local_cluster.kubeconfig("hub")), hub) == [True, True, False, False, False, False]
    # the jobs service: the only identity that creates CronJobs / Jobs, in the user namespace
    # only; it keeps users' secrets there (docs/jobs.md), nowhere else
    jobs = [
        ("create", "cronjobs", USER_NS, "batch"),
        ("create", "jobs", USER_NS, "batch"),
        ("create", "cronjobs", "default", "batch"),
        ("create", "pods", USER_NS, ""),
        ("get", "secrets", USER_NS, ""),
        ("get", "secrets", "default", ""),
    ]
    assert await _allowed(str(local_cluster.kubeconfig("jobs")), jobs) == [True, True, False, False, True, False]


@pytest.mark.parametrize("environment", ["pytorch", "tensorflow"])
async def test_framework_environment_runs_its_image_on_the_node(
    hub: Hub, core: client.CoreV1Api, local_cluster: ClusterConfig | None, environment: str
) -> None:
    """A framework environment (CUDA image) starts without a GPU on the CPU node: the pod
    runs the catalog's image from the registry, the server reports its framework, and the
    framework loads in the pod (it finds no GPU there)."""
    assert local_cluster is not None
    user = f"fw-{environment}"
    env = next(e for e in load(hub.catalog).environments if e.name == environment)
    # the image on the node first, as `up` and the chart's pre-puller do: its first pull after
    # a rebuild (8 GB for PyTorch) may take longer than the hub waits for a server to answer
    await asyncio.to_thread(cli.pull_onto_node, local_cluster, [env.image])
    s = hub.login(user)
    r = hub.spawn_form(s, user, environment=environment, size="small")
    assert r.status_code == 200, r.text[:500]
    try:
        _wait_lab(s, hub, user, timeout=240)
        pod = await core.read_namespaced_pod(f"jupyter-{user}", USER_NS)
        assert pod.spec.containers[0].image == env.image
        assert pod.status.container_statuses[0].image_id.startswith(env.image.rsplit(":", 1)[0] + "@sha256:")
        info = s.get(f"{hub.url}/user/{user}/moonhub/server").json()
        dist = {"pytorch": "torch", "tensorflow": "tensorflow"}[environment]
        assert info["image"]["packages"][dist].startswith(str(env.framework_version)), info
        code = {
            "pytorch": "import torch; print('FRAMEWORK', torch.__version__, torch.cuda.is_available())",
            "tensorflow": "import tensorflow as tf;"
            "print('FRAMEWORK', tf.__version__, bool(tf.config.list_physical_devices('GPU')))",
        }[environment]
        out = kubectl(local_cluster, "exec", "-n", USER_NS, f"jupyter-{user}", "--", "python", "-c", code)
        version, gpu = next(x for x in out.splitlines() if x.startswith("FRAMEWORK ")).split()[1:]
        assert version.startswith(str(env.framework_version)) and gpu == "False", out
    finally:
        hub.api(s, "DELETE", f"/users/{user}/server")


async def test_a_server_started_again_runs_as_its_workspaces_uid(hub: Hub, core: client.CoreV1Api) -> None:
    """KubeSpawner makes the claim only at a server's first start: the checks and the uid of
    the workspace (issue 32, items 5 and 6) hold at every start, also after the claim was
    deleted and made again (a new folder, a new uid)."""
    user = "again-uid"
    s = hub.login(user)
    seen = []
    for round_ in range(3):
        r = hub.spawn_form(s, user, environment="python", size="small")
        assert r.status_code == 200, r.text[:300]
        _wait_lab(s, hub, user)
        pod = await core.read_namespaced_pod(f"jupyter-{user}", USER_NS)
        claim = await core.read_namespaced_persistent_volume_claim(f"claim-{user}", USER_NS)
        uid = uids.of_claim(claim)
        assert uid is not None and pod.spec.security_context.run_as_user == uid, (round_, uid)
        assert pod.spec.containers[0].security_context.run_as_user == uid
        seen.append(uid)
        assert hub.api(s, "DELETE", f"/users/{user}/server").status_code in (202, 204)
        await wait_for(
            lambda: gone(lambda: core.read_namespaced_pod(f"jupyter-{user}", USER_NS)), bool, timeout=90, what="gone"
        )
        if round_ == 1:  # an admin deletes the workspace: the next start makes a new one
            await core.delete_namespaced_persistent_volume_claim(f"claim-{user}", USER_NS)
            await wait_for(
                lambda: gone(lambda: core.read_namespaced_persistent_volume_claim(f"claim-{user}", USER_NS)),
                bool,
                timeout=90,
                what="the claim gone",
            )
    assert seen[0] == seen[1] != seen[2], seen
