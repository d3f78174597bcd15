"""Editing together (jupyter-collaboration) on a server that can stop at any time.

jupyter-collaboration keeps each open document in memory and writes it to its file a second
after the last change. When the server stops (its owner, the idle culler or the hub's admin
stops it; Kubernetes sends SIGTERM), its own shutdown cancels the writes still waiting, so the
last second of typing would be lost. Before that shutdown, MoonHub writes every document with
a write pending, or with changes not yet saved, to its file: what others saw is what is on
disk. The pod is given time for it (the spawner's ``stop_grace``, docs/collaboration.md).

Then the process must end. jupyter-collaboration's document store and file loader run work in
AnyIO's worker threads; under jupyter-server's event loop (Tornado's, not ``anyio.run``) those
threads are never told to stop, and Python waits for them at exit: the server hung until
Kubernetes killed it at the end of the grace period (15 s for every stop, measured with
``docker stop`` on the image). At exit, before Python waits for its threads, the idle workers
are told to stop (:func:`stop_worker_threads`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

log = logging.getLogger("moonhub_lab")

#: the longest the write of all pending documents may hold the server's stop, in seconds
FLUSH_TIMEOUT = 8.0


def _pending(room: Any) -> bool:
    """Whether a document room has changes not yet in its file: a write waiting for its
    delay, or a document marked changed since the last write."""
    saving = getattr(room, "_saving_document", None)
    if saving is not None and not saving.done():
        return True
    return bool(getattr(getattr(room, "_document", None), "dirty", False))


async def flush(ydoc_app: Any) -> list[str]:
    """Write each open document with changes pending to its file now; the rooms written."""
    try:
        from jupyter_server_ydoc.rooms import DocumentRoom
    except ImportError:
        return []
    server = getattr(ydoc_app, "ywebsocket_server", None)
    rooms = dict(getattr(server, "rooms", {}) or {})
    writes: dict[str, Any] = {}
    for name, room in rooms.items():
        if isinstance(room, DocumentRoom) and _pending(room):
            task = room._save_to_disc()  # cancels the delayed write and writes at once
            if task is not None:
                writes[name] = task
    if writes:
        _done, late = await asyncio.wait(list(writes.values()), timeout=FLUSH_TIMEOUT)
        for name, task in writes.items():
            if task in late:
                log.warning("MoonHub: %s was still being written when the server stopped", name)
            elif not task.cancelled() and task.exception() is not None:
                log.error("MoonHub: %s could not be written at stop: %r", name, task.exception())
    return sorted(writes)


def stop_worker_threads() -> int:
    """Tell every AnyIO worker thread to stop once its current call is done (a ``None`` in
    its queue, AnyIO's own stop command); how many were told."""
    try:
        from anyio._backends._asyncio import WorkerThread
    except ImportError:
        return 0
    told = 0
    for thread in threading.enumerate():
        if isinstance(thread, WorkerThread) and not thread.stopping:
            thread.stopping = True
            thread.queue.put_nowait(None)
            told += 1
    return told


_exit_hook = False


def install(server_app: Any) -> bool:
    """Have jupyter-collaboration's shutdown write pending documents first; True when it
    runs in this server."""
    apps = dict(server_app.extension_manager.extension_apps).get("jupyter_server_ydoc") or set()
    installed = False
    for app in apps:
        if getattr(app.stop_extension, "moonhub_flushes", False):
            installed = True
            continue
        stop = app.stop_extension

        async def stop_extension(app: Any = app, stop: Any = stop) -> None:
            written = await flush(app)
            if written:
                log.info("MoonHub: %d document(s) written before the server stopped", len(written))
            await stop()

        stop_extension.moonhub_flushes = True  # type: ignore[attr-defined]
        app.stop_extension = stop_extension
        installed = True
    global _exit_hook
    if installed and not _exit_hook:
        # run when the interpreter exits, before it waits for its threads
        threading._register_atexit(stop_worker_threads)  # type: ignore[attr-defined]
        _exit_hook = True
    return installed
