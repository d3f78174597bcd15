"""Request bodies, read only for a caller the service knows and within what it may send.

The service's memory is bounded whatever arrives (issue 32, item 2):

- the HTTP server reads at most :data:`SMALL_BODY` of any request; a route raises that for
  one request only once its caller is known (hub login or token, a run's launch key) and the
  caller's share of :class:`InFlight` is reserved;
- a body is spooled to a temporary file past :data:`SPOOL_MEMORY` (never held whole);
- JSON larger than :data:`PARSE_ON_LOOP` is parsed in a thread, few at a time;
- gzip is unpacked in bounded steps, and refused past a limit (:func:`gunzip_to`).

:class:`InFlight` and :func:`gunzip_to` are pure: unit-tested without a server.
"""

from __future__ import annotations

import asyncio
import tempfile
import zlib
from collections import defaultdict
from typing import IO, Any

from tornado import httputil
from tornado.http1connection import HTTP1Connection

from moonhub_core.errors import FieldError
from moonhub_core.jsonhttp import read_json

#: what the HTTP server reads of a request before its route has checked the caller
SMALL_BODY = 64 * 1024
#: what a known caller's too-large body is read (and dropped) up to, so that it gets its 413
#: through a proxy; past it the connection is closed
DROP_AT_MOST = 256 * 1024 * 1024
#: bytes of one body kept in memory; the rest goes to a temporary file
SPOOL_MEMORY = 1024 * 1024
#: JSON bodies larger than this are parsed off the event loop
PARSE_ON_LOOP = 256 * 1024
#: large JSON bodies read and parsed at once (each takes several times its size in memory:
#: a 100 MiB body peaked near 240 MiB); the others wait on disk
PARSES = asyncio.Semaphore(1)
#: gzip is unpacked this much at a time
GUNZIP_STEP = 1024 * 1024


def allow(request: httputil.HTTPServerRequest, n: int) -> None:
    """Let the server read up to ``n`` bytes of this request's body (the caller is known)."""
    if isinstance(request.connection, HTTP1Connection):
        request.connection.set_max_body_size(n)


class TooMuch(Exception):
    """A caller's share (or the service's) of bodies in flight is taken."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n // 1024} KiB"


class InFlight:
    """Bytes of request bodies being received, per caller and in all. A caller past its
    share is told to wait (429); the service past its total asks everyone to (503)."""

    def __init__(self, per_caller: int, total: int) -> None:
        self.per_caller, self.total = per_caller, total
        self._held: dict[str, int] = defaultdict(int)
        self._all = 0

    def take(self, caller: str, n: int) -> None:
        if self._held[caller] + n > self.per_caller:
            raise TooMuch(
                429, f"{caller} is already sending {_mib(self._held[caller])}; at most {_mib(self.per_caller)} at once"
            )
        if self._all + n > self.total:
            raise TooMuch(503, "the service is receiving as much as it takes now; try again shortly")
        self._held[caller] += n
        self._all += n

    def give_back(self, caller: str, n: int) -> None:
        left = self._held[caller] - n
        if left > 0:
            self._held[caller] = left
        else:
            self._held.pop(caller, None)
        self._all = max(0, self._all - n)

    def held(self, caller: str | None = None) -> int:
        return self._all if caller is None else self._held.get(caller, 0)


class Spool:
    """One request's body as it arrives: in memory up to :data:`SPOOL_MEMORY`, then on disk;
    refused past ``cap`` (kept no further)."""

    def __init__(self, cap: int) -> None:
        self.cap, self.size = cap, 0
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)

    @property
    def too_large(self) -> bool:
        return self.size > self.cap

    def write(self, chunk: bytes) -> int:
        """Keep ``chunk``; returns how many more bytes this body now holds (0 once past the cap)."""
        before = self.size
        self.size += len(chunk)
        if self.size > self.cap:
            if before <= self.cap:  # what was kept goes now
                self.file.seek(0)
                self.file.truncate()
            return 0
        self.file.write(chunk)
        return len(chunk)

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    async def json(self) -> Any:
        """The body as JSON: a small one here, a large one read from disk and parsed in a
        thread, one at a time (:data:`PARSES`)."""
        if self.size <= PARSE_ON_LOOP:
            return read_json(self.read())
        async with PARSES:
            return await asyncio.to_thread(lambda: read_json(self.read()))

    def close(self) -> None:
        self.file.close()


async def parse_json(data: bytes) -> Any:
    """``data`` as JSON; large bodies in a thread (at most :data:`PARSES` at once)."""
    if len(data) <= PARSE_ON_LOOP:
        return read_json(data)
    async with PARSES:
        return await asyncio.to_thread(read_json, data)


def gunzip_to(source: IO[bytes], target: IO[bytes] | None, limit: int) -> int:
    """Unpack the gzip stream ``source`` into ``target`` (or only count it), at most
    :data:`GUNZIP_STEP` at a time; returns the unpacked size. Past ``limit`` unpacked bytes,
    or for what is not one whole gzip stream, :class:`FieldError` (the target then holds a
    part: the caller drops it)."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    size = 0
    try:
        while True:
            if d.unconsumed_tail:
                packed = d.unconsumed_tail
            else:
                packed = source.read(GUNZIP_STEP)
                if not packed:
                    break
            out = d.decompress(packed, GUNZIP_STEP)
            size += len(out)
            if size > limit:
                raise FieldError("output", f"unpacks to more than {_mib(limit)}")
            if target is not None:
                target.write(out)
            if d.eof:
                break
    except zlib.error as e:
        raise FieldError("output", f"is not gzip ({e})") from None
    if not d.eof:
        raise FieldError("output", "is not a whole gzip stream")
    return size
