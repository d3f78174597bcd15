"""The spawn's progress events with queue messages (spawner_ext.queue_wait.with_queue_messages)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spawner_ext.queue_wait import with_queue_messages


async def ended() -> AsyncIterator[dict[str, Any]]:
    """KubeSpawner's progress once the spawn has ended: nothing more."""
    for _ in ():
        yield {}


async def two_events() -> AsyncIterator[dict[str, Any]]:
    yield {"progress": 10, "message": "pod created"}
    yield {"progress": 50, "message": "pod running"}


async def test_events_pass_through_with_the_queue_message() -> None:
    got = [e async for e in with_queue_messages(two_events(), lambda: "waiting for GPUs, place 2")]
    assert got[0] == {"progress": 10, "message": "pod created"}
    assert {"progress": 10, "message": "waiting for GPUs, place 2"} in got
    assert got.count({"progress": 10, "message": "waiting for GPUs, place 2"}) == 1
    assert {"progress": 50, "message": "pod running"} in got


@pytest.mark.parametrize("steps", range(8))
async def test_a_step_cancelled_as_the_stream_ends_is_cancelled(steps: int) -> None:
    """JupyterHub runs each step of the progress generator as a task and cancels it when the
    spawn ends; the inner stream ends at that moment too. A step that was still pending when
    cancelled must end cancelled: ending with StopAsyncIteration instead made JupyterHub's
    iterate_until raise RuntimeError and cut the user's progress stream (seen at 400 spawns)."""
    gen = with_queue_messages(ended(), lambda: "")
    step = asyncio.ensure_future(gen.__anext__())
    for _ in range(steps):
        await asyncio.sleep(0)
    if step.done():  # it ended before the cancel: a plain end of the stream
        with pytest.raises(StopAsyncIteration):
            step.result()
        return
    step.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step
    await gen.aclose()
