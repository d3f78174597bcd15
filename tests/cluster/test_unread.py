"""Answers not decoded (moonhub_core.unread) against the real API server: what comes back
for a create, and that a refusal raises what the typed call raises (the spawner creates
its pods so)."""

from __future__ import annotations

import json

import pytest
from kubernetes_asyncio import client

from moonhub_core import unread
from moonhub_core.security import container_security_context, pod_security_context
from tests.helpers import wait_for


def _config_map(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


async def test_a_create_answers_its_object_undecoded_and_refusals_raise_as_typed_calls_do(
    core: client.CoreV1Api, namespace: str
) -> None:
    made = await unread.body(core.create_namespaced_config_map(namespace, _config_map("a"), _preload_content=False))
    assert json.loads(made)["metadata"]["name"] == "a"
    assert (await core.read_namespaced_config_map("a", namespace)).data == {"k": "v"}

    # the same refusals, the same exceptions: status, reason, body and headers
    for bad in (_config_map("a"), _config_map("Not_A_Name")):
        with pytest.raises(client.ApiException) as typed:
            await core.create_namespaced_config_map(namespace, bad)
        with pytest.raises(client.ApiException) as undecoded:
            await unread.body(core.create_namespaced_config_map(namespace, bad, _preload_content=False))
        assert (undecoded.value.status, undecoded.value.reason) == (typed.value.status, typed.value.reason)
        assert json.loads(undecoded.value.body)["message"] == json.loads(typed.value.body)["message"]
        assert undecoded.value.headers["Content-Type"] == "application/json"
    assert typed.value.status == 422


async def test_a_log_not_there_yet_is_refused_in_the_api_servers_words(core: client.CoreV1Api, namespace: str) -> None:
    # an image that is nowhere: the pod is scheduled and its container waits to start (the
    # jobs service reads a run's log so, and shows these words rather than the Status)
    pod = {
        "metadata": {"name": "waiting"},
        "spec": {
            "securityContext": pod_security_context(),
            "containers": [
                {
                    "name": "c",
                    "image": "127.0.0.1:5000/moonhub/no-such-image:never",
                    "securityContext": container_security_context(),
                }
            ],
        },
    }
    await core.create_namespaced_pod(namespace, pod)
    await wait_for(
        lambda: core.read_namespaced_pod("waiting", namespace),
        lambda p: any(c.state.waiting for c in p.status.container_statuses or []),
        timeout=60,
        what="the container waiting to start",
    )
    with pytest.raises(client.ApiException) as e:
        await unread.body(core.read_namespaced_pod_log("waiting", namespace, _preload_content=False))
    assert e.value.status == 400
    said = unread.message(e.value)
    assert "waiting to start" in said and not said.startswith("{"), said
    assert unread.message(client.ApiException(status=503, reason="Service Unavailable")) == "Service Unavailable"
