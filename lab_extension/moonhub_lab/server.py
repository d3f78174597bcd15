"""The thin server extension: the browser talks only to its own server, which forwards
``/moonhub/api/v1/...`` to the jobs service with the server's own hub token.

Registered as a Jupyter server extension (``jupyter-config/.../moonhub_lab.json``); needs
``$MOONHUB_JOBS_URL`` (the jobs service, e.g. ``http://hub:8090/services/jobs/``), which
MoonSpawner sets.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

MAX_BODY = 2 * 1024 * 1024


class ForwardHandler(APIHandler):
    """Forward one request to the jobs service as this server's user."""

    async def _forward(self, path: str) -> None:
        base = os.environ.get("MOONHUB_JOBS_URL")
        token = os.environ.get("JUPYTERHUB_API_TOKEN")
        if not base or not token:
            raise web.HTTPError(503, "the jobs service is not configured for this server (MOONHUB_JOBS_URL)")
        if len(self.request.body) > MAX_BODY:
            raise web.HTTPError(413, "request body too large")
        query = f"?{self.request.query}" if self.request.query else ""
        url = url_path_join(base, "api/v1", path) + query
        req = HTTPRequest(
            url,
            method=self.request.method,
            body=self.request.body if self.request.method in ("POST", "PATCH") else None,
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            request_timeout=60,
            follow_redirects=False,
        )
        resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        if resp.code == 599:
            raise web.HTTPError(502, f"the jobs service did not answer: {resp.error}")
        self.set_status(resp.code)
        for name in ("Content-Type",):
            if name in resp.headers:
                self.set_header(name, resp.headers[name])
        if resp.body:
            self.write(resp.body)
        await self.finish()

    @web.authenticated
    async def get(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def post(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def patch(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def delete(self, path: str) -> None:
        await self._forward(path)


class ServerInfoHandler(APIHandler):
    """What this server runs (the spawner's choices): a new job's defaults."""

    @web.authenticated
    def get(self) -> None:
        count = os.environ.get("MOONHUB_GPU_COUNT", "0")
        self.finish(
            {
                "environment": os.environ.get("MOONHUB_ENVIRONMENT") or None,
                "size": os.environ.get("MOONHUB_SIZE") or None,
                "gpu_type": os.environ.get("MOONHUB_GPU_TYPE") or None,
                "gpu_count": int(count) if count.isdigit() else 0,
                "jobs_service": bool(os.environ.get("MOONHUB_JOBS_URL")),
            }
        )


def _load_jupyter_server_extension(server_app: Any) -> None:
    web_app = server_app.web_app
    route = url_path_join(web_app.settings["base_url"], "moonhub/api/v1/(.*)")
    info = url_path_join(web_app.settings["base_url"], "moonhub/server")
    web_app.add_handlers(".*$", [(route, ForwardHandler), (info, ServerInfoHandler)])
    server_app.log.info("MoonHub: forwarding %s to the jobs service", route)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "moonhub_lab.server"}]
