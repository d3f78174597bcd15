"""Notice promptly that a new server answers.

KubeSpawner waits for the pod to run, then JupyterHub waits for the server to answer HTTP,
each with exponential backoff (a random sleep of up to 0.2, 0.4, 0.8 ... 5 s between
checks). A server that answers 3 s after its pod is made is noticed, on average, well over
a second later. This watcher checks the shared pod reflector, and once the container runs
the server's own URL, at a short fixed interval; the spawn ends within about that interval
of the server answering, whether KubeSpawner or this watcher saw the pod run first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

#: seconds between checks: short, and only for the seconds between a pod's start and its
#: server answering (HTTP checks begin when every container is ready)
INTERVAL = 0.1
#: how long a spawn whose pod runs waits here for its server's first answer; past that,
#: JupyterHub's own wait (``http_timeout``) goes on and decides
GRACE = 30.0


def running(pod: dict[str, Any] | None, stale: set[str]) -> bool:
    """The pod this spawn made (not one of the ``stale`` UIDs seen before it) runs with
    every container ready and an address (pure)."""
    if not pod or pod["metadata"].get("uid") in stale or "deletionTimestamp" in pod["metadata"]:
        return False
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return (
        status.get("phase") == "Running" and bool(status.get("podIP")) and bool(statuses) and all(
            cs.get("ready") for cs in statuses
        )
    )  # fmt: skip


async def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a Jupyter server answers 200 at ``url`` (its ``api`` route needs no token).
    A plain HTTP/1.1 request on its own connection, bounded by ``timeout`` as a whole (the
    first version went through tornado's shared client; inside the hub its second request
    never returned, and the cause was not found)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    target = (parts.hostname, parts.port or 80, parts.netloc, parts.path or "/")
    try:
        # asyncio.timeout, not wait_for: on 3.11 a cancel that meets the answer is lost, and
        # this check's loop then outlived its spawn
        async with asyncio.timeout(timeout):
            return await _status_ok(*target)
    except (OSError, TimeoutError, ValueError):
        return False


async def _status_ok(host: str, port: int, netloc: str, path: str) -> bool:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {netloc}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        status = (await reader.readline()).split()
        return len(status) >= 2 and status[0].startswith(b"HTTP/1.") and status[1] == b"200"
    finally:
        writer.close()


async def first_answer(
    pod: Callable[[], dict[str, Any] | None], api_url: Callable[[dict[str, Any]], str], stale: set[str]
) -> dict[str, Any]:
    """Wait until the spawn's pod runs and its server answers; return that pod. Runs until
    cancelled otherwise (the caller races it against the spawn itself)."""
    while True:
        current = pod()
        if current is not None and running(current, stale) and await answers(api_url(current)):
            return current
        await asyncio.sleep(INTERVAL)
