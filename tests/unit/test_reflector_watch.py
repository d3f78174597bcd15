"""Which of KubeSpawner's reflectors are started again (spawner_ext.reflector_watch); the
outage itself is tests/scale/test_apiserver_stopped.py."""

from __future__ import annotations

import asyncio
import logging

from spawner_ext.reflector_watch import gave_up, revive


class Reflector:
    """What the keeper reads of a reflector: its watch task, whether it was asked to stop,
    and its start (which fails while the API server is away)."""

    def __init__(self, task: asyncio.Task[None] | None, stopping: bool = False, api_up: bool = True) -> None:
        self.watch_task, self._stopping, self.api_up, self.starts = task, stopping, api_up, 0

    async def start(self) -> None:
        if not self.api_up:
            raise ConnectionRefusedError("connection refused")
        self.starts += 1
        self.watch_task = asyncio.create_task(asyncio.sleep(3600))


async def _ended() -> asyncio.Task[None]:
    task = asyncio.create_task(asyncio.sleep(0))
    await task
    return task


async def test_only_a_watch_that_gave_up_is_started_again() -> None:
    watching = asyncio.create_task(asyncio.sleep(3600))
    reflectors = {
        ("pods", "ns"): Reflector(await _ended()),
        ("events", "ns"): Reflector(watching),
        ("pods", "stopped"): Reflector(await _ended(), stopping=True),
        ("pods", "never"): Reflector(None),
        ("pods", "none"): None,
    }
    assert [gave_up(r) for r in reflectors.values() if r] == [True, False, False, False]
    started = await revive(reflectors, logging.getLogger("test"))
    assert started == [str(("pods", "ns"))]
    assert reflectors[("pods", "ns")].starts == 1  # type: ignore[union-attr]
    assert not gave_up(reflectors[("pods", "ns")])
    assert await revive(reflectors, logging.getLogger("test")) == []  # watching now: left alone
    for r in reflectors.values():
        if r and r.watch_task:
            r.watch_task.cancel()


async def test_a_start_while_the_api_server_is_away_is_tried_again_later() -> None:
    r = Reflector(await _ended(), api_up=False)
    assert await revive({"pods": r}, logging.getLogger("test")) == []
    assert gave_up(r)  # still down: the next check tries again
    r.api_up = True
    assert await revive({"pods": r}, logging.getLogger("test")) == ["pods"]
    assert r.watch_task is not None
    r.watch_task.cancel()


def test_a_watch_event_changes_the_view_and_a_bookmark_only_the_version() -> None:
    from spawner_ext.resuming_reflector import apply

    view: dict[str, object] = {}
    pod = {"metadata": {"namespace": "ns", "name": "a", "resourceVersion": "5"}}
    assert apply(view, {"type": "ADDED", "raw_object": pod}, "4") == "5" and view == {"ns/a": pod}
    changed = {"metadata": {**pod["metadata"], "resourceVersion": "7"}, "spec": {}}
    assert apply(view, {"type": "MODIFIED", "raw_object": changed}, "5") == "7" and view["ns/a"] is changed
    bookmark = {"type": "BOOKMARK", "raw_object": {"metadata": {"resourceVersion": "9"}}}
    assert apply(view, bookmark, "7") == "9" and list(view) == ["ns/a"]
    assert apply(view, {"type": "DELETED", "raw_object": changed}, "9") == "7" and view == {}


async def test_a_gone_version_is_listed_again_at_once_and_a_failed_watch_after_a_pause() -> None:
    import time

    from spawner_ext.resuming_reflector import Gone, ResumingPodReflector

    r = ResumingPodReflector(namespace="ns")
    calls: list[tuple[str, str | None]] = []
    steps = iter([Gone(), "11", RuntimeError("connection reset"), "12"])

    async def list_and_update(version: str | None = None) -> str:
        calls.append(("list", version))
        r.listed = ("10", time.monotonic())
        return "10"

    async def follow(version: str) -> str:
        calls.append(("watch", version))
        step = next(steps, None)
        if step is None:
            r._stopping = True
            return version
        if isinstance(step, Exception):
            raise step
        return step

    r._list_and_update, r._follow = list_and_update, follow  # type: ignore[method-assign]
    r.listed = ("10", time.monotonic())  # as start() leaves it
    t0 = time.monotonic()
    await asyncio.wait_for(r._watch_and_update(), 10)
    assert calls == [
        ("watch", "10"),  # goes on from start's list
        ("list", "0"),  # gone: listed again at once
        ("watch", "10"),
        ("watch", "11"),  # resumed where the last watch ended
        ("list", "0"),  # failed: listed again after the back-off
        ("watch", "10"),
        ("watch", "12"),
    ]
    assert 0.15 < time.monotonic() - t0 < 5
