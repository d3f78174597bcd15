"""KubeSpawner's shared reflectors (the hub's view of its pods and their events) kept
watching through an outage of the API server.

A reflector retries a failed watch with a doubling wait and gives up once the wait passes
30 s, about 50 s into an outage ("Watching resources never recovered, giving up"). When the
hub watches one namespace nothing starts it again: the hub keeps a frozen view of its pods.
Servers that were running look running, but a pod made after the outage never shows up, so
every spawn waits out ``start_timeout`` and fails, until one of those failures happens to
restart the pod reflector; a stopped server's pod never seems to go either. (When the hub
watches every namespace, KubeSpawner halts the whole hub instead.)

This checks the reflectors every ``CHECK_EVERY`` seconds and starts again each one whose
watch ended without being asked to stop: it lists its objects afresh (replacing its view,
so pods that went during the outage go from it too) and watches again. While the API
server is still away the start fails and is tried again at the next check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from weakref import WeakKeyDictionary

#: seconds between two checks of the reflectors
CHECK_EVERY = 5.0
_KEEPERS: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = WeakKeyDictionary()


def gave_up(reflector: Any) -> bool:
    """The reflector's watch ended, and nobody asked it to stop."""
    task = getattr(reflector, "watch_task", None)
    return task is not None and task.done() and not getattr(reflector, "_stopping", False)


async def revive(reflectors: Mapping[Any, Any], log: logging.Logger | Any) -> list[str]:
    """Start again every reflector in ``reflectors`` whose watch gave up; the keys of those
    started (a start that fails is left for the next call)."""
    started = []
    for key, reflector in list(reflectors.items()):
        if reflector is None or not gave_up(reflector):
            continue
        try:
            await reflector.start()
        except Exception as e:
            log.warning("%s: watch still down (%s); trying again in %.0f s", key, e or type(e).__name__, CHECK_EVERY)
            continue
        log.warning("%s: the watch had given up (the API server did not answer); watching again", key)
        started.append(str(key))
    return started


async def _keep(reflectors: Mapping[Any, Any], log: logging.Logger | Any) -> None:
    while True:
        await asyncio.sleep(CHECK_EVERY)
        try:
            await revive(reflectors, log)
        except Exception:  # never let the keeper itself end
            log.exception("reflector check failed")


def keep(reflectors: Mapping[Any, Any], log: logging.Logger | Any) -> None:
    """Check ``reflectors`` (KubeSpawner's class-wide map) for the life of this event loop;
    idempotent."""
    loop = asyncio.get_running_loop()
    running = _KEEPERS.get(loop)
    if running is None or running.done():
        _KEEPERS[loop] = loop.create_task(_keep(reflectors, log))
