"""Editing together on a server that stops (lab_extension/moonhub_lab/collaboration.py): the
AnyIO worker threads jupyter-collaboration leaves behind under an event loop that never ends
its root task are told to stop, so the server's process ends when its shutdown is done."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio
from anyio._backends._asyncio import WorkerThread
from moonhub_lab import collaboration


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, WorkerThread) and t.is_alive()]


def test_worker_threads_left_by_a_loop_that_stopped_are_told_to_stop() -> None:
    loop = asyncio.new_event_loop()

    async def serve() -> None:  # a long-lived task, like a document room's, that uses threads
        await anyio.to_thread.run_sync(time.sleep, 0)
        await asyncio.sleep(3600)

    task = loop.create_task(serve())
    loop.call_later(0.5, loop.stop)  # what jupyter-server's stop does: the loop stops, tasks stay
    loop.run_forever()
    left = _workers()
    assert left, "the loop left no worker thread: nothing to show"
    assert collaboration.stop_worker_threads() >= len(left)
    for thread in left:
        thread.join(timeout=5)
    assert not _workers()
    task.cancel()
    loop.close()
