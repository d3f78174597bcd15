"""The node's kubelet endpoint: what the API server calls for ``pods/log``.

HTTPS with the cluster CA; ``/containerLogs`` needs the API server's client certificate.
Supports ``follow``, ``tailLines``, ``limitBytes`` and ``previous``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .pods import PodWorker


def tail_bytes(data: bytes, lines: int | None) -> bytes:
    """The last ``lines`` lines of ``data`` (pure)."""
    if lines is None:
        return data
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def make_app(find: Callable[[str, str], PodWorker | None]) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def container_logs(request: web.Request) -> web.StreamResponse:
        if not request.transport or not request.transport.get_extra_info("peercert"):
            raise web.HTTPUnauthorized(text="client certificate required")
        ns, pod, name = (request.match_info[k] for k in ("ns", "pod", "container"))
        worker = find(ns, pod)
        if worker is None:
            raise web.HTTPNotFound(text=f"pod {ns}/{pod} is not on this node")
        states = {c.name: c for c in [*worker.init, *worker.main]}
        if name not in states:
            raise web.HTTPNotFound(text=f"container {name!r} is not in pod {ns}/{pod}")
        state = states[name]
        q = request.query
        previous = q.get("previous") in ("true", "1")
        restart = state.restart_count - 1 if previous else state.restart_count
        path: Path = worker.log_path(name, restart)
        if restart < 0 or not path.exists():
            what = "previous terminated" if previous else "current"
            raise web.HTTPBadRequest(text=f"no {what} log for container {name!r} in pod {ns}/{pod}")
        tail = int(q["tailLines"]) if "tailLines" in q else None
        limit = int(q["limitBytes"]) if "limitBytes" in q else None
        follow = q.get("follow") in ("true", "1") and not previous
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        sent = 0
        with path.open("rb") as f:
            chunk = tail_bytes(f.read(), tail)
            while True:
                if limit is not None:
                    chunk = chunk[: max(0, limit - sent)]
                if chunk:
                    await resp.write(chunk)
                    sent += len(chunk)
                if limit is not None and sent >= limit:
                    break
                if not follow:
                    break
                if not (state.running and state.restart_count == restart) and not chunk:
                    break
                await asyncio.sleep(0.2 if not chunk else 0)
                chunk = f.read()
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/containerLogs/{ns}/{pod}/{container}", container_logs)
    return app


def server_ssl(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
