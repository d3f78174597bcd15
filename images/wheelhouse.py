"""The wheelhouse served to image builds over Docker's bridge (``python -m images.build``):
builds install their Python packages from it, so nothing in a build reaches PyPI."""

from __future__ import annotations

import errno
import fcntl
import functools
import http.server
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

#: fixed: the builds' cache keys hold the wheelhouse's address
WHEEL_PORT = 18700


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def bridge_address() -> str:
    """The host's address on Docker's default bridge, which build containers reach."""
    bridge = _run(
        "docker", "network", "inspect", "bridge", "-f", '{{index .Options "com.docker.network.bridge.name"}}'
    ).strip() or "docker0"  # fmt: skip
    out = _run("ip", "-4", "-o", "addr", "show", bridge).split()
    return out[out.index("inet") + 1].split("/")[0]


class Wheelhouse:
    """The wheelhouse over HTTP on the Docker bridge, for the length of the builds.

    Its address is fixed (the builds' cache keys hold it), so two builds at once (``up``
    again while the framework images build in the background) share one server: the one
    that could not bind uses the other's. Every build holds a shared lock on
    ``wheelhouse.lock`` while it builds; the server's owner takes it exclusively before it
    stops serving, so it waits for the builds that use its server."""

    def __init__(self, folder: Path, locks: Path) -> None:
        self.folder, self.locks = folder, locks

    def __enter__(self) -> str:
        gw = bridge_address()
        url = f"http://{gw}:{WHEEL_PORT}/"
        self.locks.mkdir(parents=True, exist_ok=True)
        self.lock = (self.locks / "wheelhouse.lock").open("a+")
        fcntl.flock(self.lock, fcntl.LOCK_SH)
        self.server: http.server.ThreadingHTTPServer | None = None
        handler = functools.partial(QuietHandler, directory=str(self.folder))
        try:
            self.server = http.server.ThreadingHTTPServer((gw, WHEEL_PORT), handler)
        except OSError as e:
            if e.errno != errno.EADDRINUSE or not _serves_wheels(url):
                self._unlock()
                raise SystemExit(f"the wheelhouse's address {gw}:{WHEEL_PORT} is taken by something else: {e}") from e
            now = time.strftime("%H:%M:%S")
            print(f"[images {now}] another image build serves the wheelhouse at {url}; using it", file=sys.stderr)
            return url
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return url

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
            fcntl.flock(self.lock, fcntl.LOCK_EX)  # no build uses the server any more
            self.server.shutdown()
            self.server.server_close()
        self._unlock()

    def _unlock(self) -> None:
        fcntl.flock(self.lock, fcntl.LOCK_UN)
        self.lock.close()


def _serves_wheels(url: str) -> bool:
    """Whether ``url`` answers with the wheelhouse's listing (another build's server)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200 and b".whl" in r.read()
    except OSError:
        return False


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


# ---- building ---------------------------------------------------------------------------
