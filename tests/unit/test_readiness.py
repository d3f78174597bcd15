"""The prompt readiness check: which pod counts as this spawn's running pod, and that the
wait ends as soon as a server answers at the pod's URL (a real local HTTP server)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from tornado import web

from spawner_ext import readiness


def pod(uid: str = "new", phase: str = "Running", ready: bool = True, ip: str = "10.88.0.5", **meta: Any) -> Any:
    return {
        "metadata": {"uid": uid, **meta},
        "status": {"phase": phase, "podIP": ip, "containerStatuses": [{"name": "notebook", "ready": ready}]},
    }


def test_only_this_spawns_pod_running_and_ready_counts() -> None:
    assert readiness.running(pod(), stale={"old"})
    assert not readiness.running(None, stale=set())
    assert not readiness.running(pod(uid="old"), stale={"old"}), "the pod the spawn replaces"
    assert not readiness.running(pod(phase="Pending"), stale=set())
    assert not readiness.running(pod(ready=False), stale=set())
    assert not readiness.running(pod(ip=""), stale=set())
    assert not readiness.running(pod(deletionTimestamp="2026-12-03T00:00:00Z"), stale=set())
    no_statuses = pod()
    no_statuses["status"]["containerStatuses"] = []
    assert not readiness.running(no_statuses, stale=set())


async def test_wait_ends_when_the_server_answers() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/user/ann/api"
    current: dict[str, Any] = {"pod": pod(ready=False)}
    waiting = asyncio.ensure_future(readiness.first_answer(lambda: current["pod"], lambda p: url, set()))
    await asyncio.sleep(0.3)
    assert not waiting.done(), "a pod that is not ready is not waited on over HTTP"
    current["pod"] = pod()
    await asyncio.sleep(0.3)
    assert not waiting.done(), "nothing answers at the URL yet"

    class Api(web.RequestHandler):
        def get(self) -> None:
            self.write({"version": "2"})

    server = web.Application([(r"/user/ann/api", Api)]).listen(port, "127.0.0.1")
    try:
        found = await asyncio.wait_for(waiting, timeout=2)
        assert found["metadata"]["uid"] == "new"
        assert not await readiness.answers(f"http://127.0.0.1:{port}/elsewhere")
    finally:
        server.stop()
