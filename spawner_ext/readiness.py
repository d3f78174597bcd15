"""Notice promptly that a new server answers.

KubeSpawner waits for the pod to run, then JupyterHub waits for the server to answer HTTP,
each with exponential backoff (a random sleep of up to 0.2, 0.4, 0.8 ... 5 s between
checks). A server that answers 3 s after its pod is made is noticed, on average, well over
a second later. This watcher checks the shared pod reflector, and once the container runs
the server's own URL, at a short fixed interval; the spawn ends within about that interval
of the server answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

#: seconds between checks: short, and only for the seconds between a pod's start and its
#: server answering (HTTP checks begin when every container is ready)
INTERVAL = 0.1


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
    """Whether a Jupyter server answers at ``url`` (its ``api`` route needs no token)."""
    try:
        r = await AsyncHTTPClient().fetch(url, request_timeout=timeout, raise_error=False)
    except (OSError, HTTPClientError):
        return False
    return r.code == 200


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
