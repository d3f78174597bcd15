"""The local cluster's package index for pods: proxpi, a caching proxy of a PyPI-style simple
index, served by waitress on the node address.

Pods reach nothing outside the machine (their ranges are routed ``unreachable``); this
process runs on the host, which reaches the package registry, and serves each file it
fetched from its own cache afterwards. A file is always served by the proxy: proxpi's
fallback of redirecting a slow first download to the upstream's address (which a pod could
not follow) is turned off by giving a download as long as it takes. On a real cluster the
chart runs the same proxy as a Deployment in front of the operator's index
(``packageIndex`` in ``helm/moonhub/values.yaml``).

``python -m localcluster.package_index ADDRESS PORT CACHE_DIR [UPSTREAM]``
"""

from __future__ import annotations

import os
import sys

#: the index the proxy fetches from when none is named: PyPI, which this machine reaches
PYPI = "https://pypi.org/simple/"
#: bytes of package files kept (least recently used go first)
CACHE_BYTES = 5 * 2**30
#: seconds a first download may take before the client is answered (a large wheel on a slow
#: link): never the redirect to the upstream's address
DOWNLOAD_SECONDS = 3600


def proxy_env(cache_dir: str, upstream: str = PYPI) -> dict[str, str]:
    """proxpi's settings (it reads them from the environment when it is imported; pure)."""
    return {
        "PROXPI_INDEX_URL": upstream,
        "PROXPI_CACHE_DIR": cache_dir,
        "PROXPI_CACHE_SIZE": str(CACHE_BYTES),
        "PROXPI_DOWNLOAD_TIMEOUT": str(DOWNLOAD_SECONDS),
        # the upstream's TLS is checked (the machine's CA bundle, as pip here uses)
        "PROXPI_DISABLE_INDEX_SSL_VERIFICATION": "0",
    }


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    address, port, cache = argv[0], int(argv[1]), argv[2]
    os.makedirs(cache, exist_ok=True)
    os.environ.update(proxy_env(cache, *argv[3:]))
    from proxpi.server import app  # reads its settings at import
    from waitress import serve

    serve(app, host=address, port=port, threads=16, channel_timeout=DOWNLOAD_SECONDS, ident="moonhub-package-index")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
