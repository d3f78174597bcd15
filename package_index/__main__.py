"""The package index for users' pods: proxpi, a caching proxy of a PyPI-style simple index,
served by waitress.

Pods reach no index of their own; this proxy does (the chart's Deployment, with egress to
the operator's index only; on the local cluster a process on the node, which reaches the
package registry) and serves each file it fetched from its cache afterwards. A file is
always served by the proxy, never redirected to the upstream's address (which a pod could
not follow, and which may carry a credential): the file cache is our own
(``package_index/files.py``), and a download the upstream does not answer is a 503.

Why proxpi: it is a maintained caching proxy configured by its environment alone (the
upstream, the cache's folder and size), with no index of its own to initialise or accounts
to keep; devpi-server does much more (uploads, users, replication) that MoonHub would have
to configure and lock down. Its cache-invalidation routes take no login: anyone who reaches
it can make it fetch a project's page again, nothing more.

``python -m package_index ADDRESS PORT CACHE_DIR [UPSTREAM]`` (else ``$PROXPI_INDEX_URL``, else PyPI)
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("moonhub.package_index")

#: the index the proxy fetches from when none is named: PyPI, which this machine reaches
PYPI = "https://pypi.org/simple/"
#: bytes of package files kept (least recently used go first)
CACHE_BYTES = 5 * 2**30
#: seconds a first download may take before the client is answered (a large wheel on a slow
#: link)
DOWNLOAD_SECONDS = 3600
#: seconds to connect to the upstream, and to wait for each part of its answer (a stalled
#: upstream ends the request with a 503 rather than holding it open)
CONNECT_SECONDS = 10
READ_SECONDS = 60


def proxy_env(cache_dir: str, upstream: str = PYPI) -> dict[str, str]:
    """proxpi's settings (it reads them from the environment when it is imported; pure)."""
    return {
        "PROXPI_INDEX_URL": upstream,
        "PROXPI_CACHE_DIR": cache_dir,
        "PROXPI_CACHE_SIZE": str(CACHE_BYTES),
        "PROXPI_DOWNLOAD_TIMEOUT": str(DOWNLOAD_SECONDS),
        "PROXPI_CONNECT_TIMEOUT": str(CONNECT_SECONDS),
        "PROXPI_READ_TIMEOUT": str(READ_SECONDS),
        # the upstream's TLS is checked (the machine's CA bundle, as pip here uses)
        "PROXPI_DISABLE_INDEX_SSL_VERIFICATION": "0",
    }


def logged(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """``app`` with a line per request (not the probes'): what users' pods fetched, how it
    went, how long the answer took to start."""

    def handle(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        t0 = time.monotonic()
        status: list[str] = []

        def start(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(line.split(" ", 1)[0])
            return start_response(line, headers, exc_info)

        body = app(environ, start)
        path = environ.get("PATH_INFO", "")
        if path != "/health":
            took = time.monotonic() - t0
            log.info("%s %s %s %.2fs", environ.get("REQUEST_METHOD"), path, status[0] if status else "-", took)
        return body

    return handle


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    address, port, cache = argv[0], int(argv[1]), argv[2]
    os.makedirs(cache, exist_ok=True)
    # the upstream may come from the environment (a URL with a credential, from a Secret:
    # the chart's packageIndex.upstreamSecret), and so may the cache's size
    upstream = argv[3] if len(argv) == 4 else os.environ.get("PROXPI_INDEX_URL") or PYPI
    settings = proxy_env(cache, upstream)
    settings["PROXPI_CACHE_SIZE"] = os.environ.get("PROXPI_CACHE_SIZE") or settings["PROXPI_CACHE_SIZE"]
    os.environ.update(settings)
    from proxpi import _cache
    from waitress import serve

    from package_index.files import FileUnavailable, ServedFiles

    _cache.Cache._file_cache_cls = ServedFiles  # proxpi's own way to choose it
    from proxpi.server import app  # reads its settings and makes its cache at import

    def unavailable(e: FileUnavailable) -> tuple[str, int, dict[str, str]]:
        return str(e) + "\n", e.status, {"Content-Type": "text/plain; charset=utf-8", "Retry-After": "5"}

    app.register_error_handler(FileUnavailable, unavailable)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(
        logged(app),
        host=address,
        port=port,
        threads=16,
        channel_timeout=DOWNLOAD_SECONDS,
        ident="moonhub-package-index",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
