"""What the middle tier's in-process servers share: a loop of their own in a thread, and
HTTP servers on free ports of this machine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application

T = TypeVar("T")


def listen(app: Application) -> tuple[HTTPServer, int]:
    """``app`` served on a free port of 127.0.0.1; the server and its port."""
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    return server, port


def run_loop(start: Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, T]], ready: Future[T]) -> None:
    """A thread's body: a new event loop, ``start(loop)`` run on it (its result, or its
    error, handed to ``ready``), then the loop served until someone stops it."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        ready.set_result(loop.run_until_complete(start(loop)))
    except BaseException as e:
        ready.set_exception(e)
        return
    loop.run_forever()
