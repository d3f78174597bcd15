"""A server in its Kueue queue (spawner_ext.queue_wait.refusal): refused or placed from the
watched Workloads, looking again only when a Workload changes (never on a clock). The
watch itself against the real API server: tests/cluster/test_resuming_reflector.py."""

from __future__ import annotations

import asyncio
from typing import Any

from moonhub_core import queue_objects as q
from spawner_ext import queue_wait
from spawner_ext.workload_watch import OWNER_UID_LABEL, owned_by

NO_GPUS = "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor a100, 1 more needed"


def _pod(uid: str = "pod-1", gated: bool = True) -> dict[str, Any]:
    gates = [{"name": queue_wait.KUEUE_GATE}] if gated else []
    return {"metadata": {"uid": uid, "name": "jupyter-ada"}, "spec": {"schedulingGates": gates}}


def _workload(
    owner: str, uid: str, created: str, message: str | None, queue: str = "moonhub-user-ada"
) -> dict[str, Any]:
    conditions = [] if message is None else [{"type": "QuotaReserved", "status": "False", "message": message}]
    return {
        "metadata": {
            "name": f"pod-{owner}",
            "uid": uid,
            "creationTimestamp": created,
            "labels": {OWNER_UID_LABEL: owner},
        },
        "spec": {"queueName": queue},
        "status": {"conditions": conditions},
    }


class View:
    """The watched Workloads: changed by the test, each change waking the waiters."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.waits = 0
        self._changed = asyncio.Event()

    @property
    def workloads(self) -> list[dict[str, Any]]:
        return list(self.items.values())

    def put(self, wl: dict[str, Any]) -> None:
        self.items[wl["metadata"]["uid"]] = wl
        self._changed.set()
        self._changed = asyncio.Event()

    async def next_change(self, timeout: float) -> bool:
        self.waits += 1
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
            return True
        except TimeoutError:
            return False


class Queues:
    """The API calls refusal makes: counted."""

    prefix = q.DEFAULT_PREFIX

    def __init__(self) -> None:
        self.calls = 0

    async def standing(self, user: str, namespace: str, blocked: list[str]) -> str:
        self.calls += 1
        return "you use 1 of your 1 GPUs"

    async def objects(self, *a: Any, **kw: Any) -> list[dict[str, Any]]:
        self.calls += 1
        return []


def _uq() -> q.UserQueue:
    cq = {"metadata": {"name": "cq", "annotations": {q.USER_ANNOTATION: "ada"}, "labels": {}}}
    return q.UserQueue(cq, {"metadata": {"name": "moonhub-user-ada"}}, None, 1)


async def _never(timeout: float) -> bool:
    await asyncio.sleep(timeout)
    return False


def test_the_workload_of_a_pod_is_found_by_its_owner_label() -> None:
    a, b = _workload("pod-1", "w1", "t1", None), _workload("pod-2", "w2", "t2", None)
    assert owned_by([a, b], "pod-2") is b
    assert owned_by([a, b], "pod-3") is None
    assert owned_by([{"metadata": {}}], "pod-1") is None


async def test_a_server_that_does_not_fit_is_refused_once_kueue_has_looked() -> None:
    view, queues = View(), Queues()
    view.put(_workload("pod-1", "w1", "t1", None))  # made, not yet looked at by Kueue

    async def watch() -> View:
        return view

    task = asyncio.ensure_future(
        queue_wait.refusal(queues, "ns", _pod, _uq(), False, lambda t: None, watch, _never)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.05)
    assert not task.done() and queues.calls == 0
    view.put(_workload("pod-1", "w1", "t1", NO_GPUS))
    message = await asyncio.wait_for(task, 2)
    assert message.startswith(queue_wait.REFUSED) and "you use 1 of your 1 GPUs" in message and NO_GPUS in message


async def test_a_waiting_server_is_placed_again_only_when_a_workload_changes() -> None:
    view, queues, shown = View(), Queues(), []
    view.put(_workload("other", "w0", "t0", NO_GPUS))  # ahead of it in the same queue
    view.put(_workload("pod-1", "w1", "t1", NO_GPUS))

    async def watch() -> View:
        return view

    task = asyncio.ensure_future(
        queue_wait.refusal(queues, "ns", _pod, _uq(), True, shown.append, watch, _never)  # type: ignore[arg-type]
    )
    try:
        for _ in range(100):
            if shown:
                break
            await asyncio.sleep(0.01)
        assert shown == ["waiting for GPUs, place 2 in the queue: you use 1 of your 1 GPUs"]
        calls = queues.calls
        await asyncio.sleep(0.3)  # nothing changes: nothing is read
        assert queues.calls == calls and view.waits == 1
        # the one ahead is admitted: it moves up at once
        ahead = _workload("other", "w0", "t0", None)
        ahead["status"]["conditions"] = [{"type": "QuotaReserved", "status": "True"}]
        view.put(ahead)
        for _ in range(100):
            if len(shown) > 1:
                break
            await asyncio.sleep(0.01)
        assert shown[-1].startswith("waiting for GPUs, place 1 in the queue")
        assert not task.done(), "a server that waits is never refused"
    finally:
        task.cancel()


async def test_until_the_pod_is_made_it_waits_on_the_pods_and_starts_no_watch() -> None:
    pods: list[dict[str, Any] | None] = [None]
    changed = asyncio.Event()
    watched = []

    async def pod_changed(timeout: float) -> bool:
        await changed.wait()
        return True

    async def watch() -> View:
        watched.append(1)
        return View()

    task = asyncio.ensure_future(
        queue_wait.refusal(Queues(), "ns", lambda: pods[0], _uq(), False, lambda t: None, watch, pod_changed)  # type: ignore[arg-type]
    )
    try:
        await asyncio.sleep(0.05)
        assert not watched
        pods[0] = _pod(gated=False)  # no Kueue manages it: nothing to watch, ever
        changed.set()
        await asyncio.sleep(0.05)
        assert not watched and not task.done()
    finally:
        task.cancel()
