"""Answers not decoded (moonhub_core.unread) against the real API server: what comes back
for a create, and that a refusal raises what the typed call raises (the spawner creates
its pods so)."""

from __future__ import annotations

import json

import pytest
from kubernetes_asyncio import client

from moonhub_core import unread


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
