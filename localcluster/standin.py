"""``python -m localcluster.standin PORT``: the scale tier's stand-in single-user server.

One process answers for every simulated pod of the scale tier: kwok's pod range is
``local`` to this machine there (:func:`.network.scale_plan`), so a connection to any pod's
address on ``PORT`` (KubeSpawner's 8888) lands here. It answers as a Jupyter server answers
the hub and the proxy: the server's ``api`` route (what JupyterHub's and MoonHub's readiness
checks read) with a version, anything else under the server's prefix with a small page.
Nothing is run for a user; a spawn completes for real from the hub's side (pod made,
scheduled, running, the URL answering through the proxy) at the cost of one socket.

``/standin/stats`` says how many requests it answered (for the benchmark's inventory).
"""

from __future__ import annotations

import json
import sys
from collections import Counter

from aiohttp import web

from .config import ClusterConfig
from .controlplane import Component

#: KubeSpawner's default server port
PORT = 8888
COUNTS: Counter[str] = Counter()


async def answer(request: web.Request) -> web.StreamResponse:
    path = request.path
    if path == "/standin/stats":
        return web.json_response(dict(COUNTS))
    # which pod the caller thought it reached: the address it connected to
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    COUNTS["requests"] += 1
    if path.rstrip("/").endswith("/api"):
        COUNTS["api"] += 1
        return web.json_response({"version": "standin", "pod": sock[0] if sock else ""})
    body = json.dumps({"stand-in": path})
    return web.Response(text=body, content_type="application/json")


def app() -> web.Application:
    application = web.Application()
    application.router.add_route("*", "/{tail:.*}", answer)
    return application


def component(cfg: ClusterConfig) -> Component:
    """The stand-in as a supervised process of the scale tier's cluster."""
    return Component(
        "standin-server",
        [sys.executable, "-m", "localcluster.standin", str(PORT)],
        f"http://{cfg.kwok_node_ip}:{PORT}/standin/stats",
    )


def main() -> None:
    web.run_app(app(), host="0.0.0.0", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
