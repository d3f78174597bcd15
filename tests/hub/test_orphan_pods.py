"""A server pod that no server of the hub stands for (its stop failed) is removed by the hub
that made it; another hub's pods and the hub's own servers are left alone."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from moonhub_core import pods
from moonhub_core.pods import HUB, HUB_USER
from moonhub_core.security import container_security_context, pod_security_context
from tests.conftest import Hub
from tests.helpers import SHELL_IMAGE, gone, wait_for

USER_NS = "moonhub-users"


def _server_like(name: str, user: str, hub: str) -> dict[str, Any]:
    """A pod as KubeSpawner makes a server's (its labels and annotation), left behind."""
    return {
        "metadata": {
            "name": name,
            "labels": {"component": "singleuser-server", HUB: hub},
            "annotations": {HUB_USER: user},
        },
        "spec": {
            "securityContext": pod_security_context(),
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "notebook",
                    "image": SHELL_IMAGE,
                    "command": ["sleep", "3600"],
                    "securityContext": container_security_context(),
                }
            ],
        },
    }


async def test_the_hub_removes_its_own_orphaned_pods_only(hub: Hub, core: client.CoreV1Api) -> None:
    mine = pods.hub_id(hub.url)
    s = hub.login("holly")
    assert hub.spawn_form(s, "holly", environment="python", size="small").status_code == 200
    hub.open_lab(s, "holly", timeout=180)
    holly = await core.read_namespaced_pod("jupyter-holly", USER_NS)
    assert holly.metadata.labels.get(HUB) == mine, holly.metadata.labels

    await core.create_namespaced_pod(USER_NS, _server_like("jupyter-ghost", "ghost", mine))
    await core.create_namespaced_pod(USER_NS, _server_like("jupyter-stranger", "stranger", pods.hub_id("http://other")))
    try:
        # the test hub's grace is 20 s (checks every 5 s; an orphan on two checks in a row)
        await wait_for(
            lambda: gone(lambda: core.read_namespaced_pod("jupyter-ghost", USER_NS)),
            bool,
            timeout=120,
            what="the orphaned pod removed",
        )
        stranger = await core.read_namespaced_pod("jupyter-stranger", USER_NS)
        assert stranger.metadata.deletion_timestamp is None, "another hub's pod is left alone"
        again = await core.read_namespaced_pod("jupyter-holly", USER_NS)
        assert again.metadata.uid == holly.metadata.uid and again.metadata.deletion_timestamp is None
        model = hub.api(s, "GET", "/users/holly").json()
        assert model["servers"][""]["ready"], model
    finally:
        for name in ("jupyter-ghost", "jupyter-stranger"):
            if not await gone(lambda name=name: core.read_namespaced_pod(name, USER_NS)):
                await core.delete_namespaced_pod(name, USER_NS, grace_period_seconds=0)
        hub.api(s, "DELETE", "/users/holly/server")


async def test_a_pod_left_under_a_servers_name_is_replaced_when_its_user_starts(
    hub: Hub, core: client.CoreV1Api
) -> None:
    """The pod create answers 409: the spawner removes the old pod and makes the server's."""
    left = await core.create_namespaced_pod(USER_NS, _server_like("jupyter-ivy", "ivy", pods.hub_id(hub.url)))
    s = hub.login("ivy")
    try:
        assert hub.spawn_form(s, "ivy", environment="python", size="small").status_code == 200
        hub.open_lab(s, "ivy", timeout=180)
        now = await core.read_namespaced_pod("jupyter-ivy", USER_NS)
        assert now.metadata.uid != left.metadata.uid
        assert now.metadata.labels.get("component") == "singleuser-server"
        assert hub.api(s, "GET", "/users/ivy").json()["servers"][""]["ready"]
        if hub.log is not None:  # the host-run hub's log: the conflict was met, not raced by the orphan check
            said = hub.log.read_text(errors="replace")
            assert "pod jupyter-ivy exists already; deleting it before another try" in said
    finally:
        hub.api(s, "DELETE", "/users/ivy/server")
