"""The package index users' pods install from, run as the platform runs it
(``python -m package_index``: proxpi under waitress) in front of an upstream index on this
machine that asks for a credential, as an operator's private index does.

What a pod needs of it: many requests for the same first-time file (pip in several servers,
a job's retries) get the file, fetched from the upstream once; a download the upstream
refuses is an error the pod can act on, never a redirect to the upstream's address (a pod
can not reach it, and it would carry the credential); and the proxy recovers when the
upstream does.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.middle.conftest import serving

WHEEL = b"PK\x03\x04" + b"moonhub-demo-wheel" * 20_000
NAMES = ("demo-1.0-py3-none-any.whl", "flaky-1.0-py3-none-any.whl")
SECRET = "s3cret-upstream-token"


class Upstream:
    """What the upstream was asked for, and whether ``flaky``'s file is refused."""

    def __init__(self) -> None:
        self.fetched: dict[str, int] = {}
        self.refuse_flaky = True


def _handler(state: Upstream) -> type[BaseHTTPRequestHandler]:
    digest = hashlib.sha256(WHEEL).hexdigest()
    login = "Basic " + base64.b64encode(f"mh:{SECRET}".encode()).decode()

    class Index(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, kind: str = "text/html") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != login:
                return self._send(401, b"who are you")
            project = self.path.strip("/").split("/")[-1]
            if self.path.startswith("/simple/") and project in ("demo", "flaky"):
                name = f"{project}-1.0-py3-none-any.whl"
                link = f'<a href="/files/{name}#sha256={digest}">{name}</a>'
                return self._send(200, f"<html><body>{link}</body></html>".encode())
            name = self.path.rsplit("/", 1)[-1]
            if self.path.startswith("/files/") and name in NAMES:
                if self.command == "GET":
                    state.fetched[name] = state.fetched.get(name, 0) + 1
                if name.startswith("flaky") and state.refuse_flaky:
                    return self._send(500, b"upstream broke", "text/plain")
                time.sleep(0.5 if self.command == "GET" else 0)  # a first download takes a while
                return self._send(200, WHEEL, "application/octet-stream")
            self._send(404, b"no such thing")

        def log_message(self, *args: Any) -> None:
            return None

    return Index


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Upstream]]:
    state = Upstream()
    with serving(_handler(state)) as upstream:
        port = _free_port()
        cache = tmp_path_factory.mktemp("package-index")
        url = upstream.replace("http://", f"http://mh:{SECRET}@") + "/simple/"
        log = (Path(cache) / "index.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "package_index", "127.0.0.1", str(port), str(cache / "files"), url],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(f"{base}/health", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, (Path(cache) / "index.log").read_text()
                time.sleep(0.2)
            yield base, state
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()


def test_a_first_file_asked_for_at_once_is_fetched_once_and_served_to_all(index: tuple[str, Upstream]) -> None:
    base, upstream = index
    page = requests.get(f"{base}/index/demo/", timeout=10)
    assert page.status_code == 200 and NAMES[0] in page.text and SECRET not in page.text
    start = threading.Barrier(12)
    answers: list[requests.Response] = []

    def fetch() -> None:
        start.wait()
        answers.append(requests.get(f"{base}/index/demo/{NAMES[0]}", timeout=60, allow_redirects=False))

    threads = [threading.Thread(target=fetch) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert [a.status_code for a in answers] == [200] * 12, [(a.status_code, a.headers) for a in answers]
    assert all(a.content == WHEEL for a in answers)
    assert upstream.fetched[NAMES[0]] == 1, "one download from the upstream, the others served from the cache"


def test_a_refused_download_is_a_503_that_leaks_nothing_and_is_tried_again(index: tuple[str, Upstream]) -> None:
    base, upstream = index
    url = f"{base}/index/flaky/{NAMES[1]}"
    for _ in range(2):
        r = requests.get(url, timeout=30, allow_redirects=False)
        assert r.status_code == 503 and "Location" not in r.headers, (r.status_code, r.headers)
        assert NAMES[1] in r.text and SECRET not in r.text and "127.0.0.1" not in r.text, r.text
        assert r.headers["Retry-After"]
    assert upstream.fetched[NAMES[1]] == 2, "each request tried the upstream again"
    upstream.refuse_flaky = False
    r = requests.get(url, timeout=30, allow_redirects=False)
    assert r.status_code == 200 and r.content == WHEEL
    assert upstream.fetched[NAMES[1]] == 3
