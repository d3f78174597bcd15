"""The uid counter on the real API server (issue 32, item 6): many services handing out uids
at once never hand out one twice, and the counter moves past every one handed out."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio import client

from moonhub_core import uids
from moonhub_core.errors import Conflict


async def test_uids_handed_out_at_once_are_all_different(core: client.CoreV1Api, namespace: str) -> None:
    # 24 at once, the first ones racing to make the counter itself
    got = await asyncio.gather(*(uids.allocate(core, namespace) for _ in range(24)))
    assert len(set(got)) == 24, sorted(got)
    assert min(got) == uids.FIRST and max(got) == uids.FIRST + 23, sorted(got)
    cm = await core.read_namespaced_config_map(uids.COUNTER, namespace)
    assert cm.data[uids.NEXT_KEY] == str(uids.FIRST + 24)
    assert await uids.allocate(core, namespace) == uids.FIRST + 24


async def test_a_damaged_counter_hands_out_nothing(core: client.CoreV1Api, namespace: str) -> None:
    await core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=uids.COUNTER), data={uids.NEXT_KEY: "0"})
    )
    with pytest.raises(Conflict, match="uid counter"):
        await uids.allocate(core, namespace)
