"""The thin server extension: the browser talks only to its own server, which forwards
``/moonhub/api/v1/...`` to the jobs service with the server's own hub token. Also:
``/moonhub/server`` (what this server runs: a new job's defaults), ``/moonhub/gpu`` (GPU
utilization and idleness, for GPU-aware reclaim) and ``/moonhub/notices`` (warnings the
hub's culling services leave for the user, and this server's out-of-memory kills, read from
its cgroup; JupyterLab shows them).

Registered as a Jupyter server extension (``jupyter-config/.../moonhub_lab.json``); needs
``$MOONHUB_JOBS_URL`` (the jobs service, e.g. ``http://hub:8090/services/jobs/``), which
MoonSpawner sets.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.ioloop import PeriodicCallback

from .gpu import IdleTracker, pick_source
from .memory import OomWatch, message

MAX_BODY = 2 * 1024 * 1024
MAX_NOTICES = 20


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


#: the frameworks an environment's image may carry, by distribution name
FRAMEWORKS = ("torch", "tensorflow", "jupyterlab")


def image_versions() -> dict[str, Any]:
    """What this server's image holds: its Python and the frameworks installed in it."""
    found: dict[str, str] = {}
    for dist in FRAMEWORKS:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "packages": found}


class ServerInfoHandler(APIHandler):
    """What this server runs (the spawner's choices, and its image's Python and
    frameworks): a new job's defaults."""

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
                "image": image_versions(),
            }
        )


class GpuHandler(APIHandler):
    """This server's GPUs: utilization and since when all are idle (for GPU-aware reclaim).
    Reading it is not activity: the reclaim service asks without keeping the server alive."""

    _track_activity = False

    @web.authenticated
    def get(self) -> None:
        src, tracker = self.settings.get("moonhub_gpu_source"), self.settings["moonhub_gpu_idle"]
        since = tracker.idle_since
        self.finish(
            {
                "source": src.name if src else None,
                "count": len(tracker.last or []),
                "utilization": tracker.last or [],
                "idle_since": datetime.fromtimestamp(since, UTC).isoformat() if since else None,
                "idle_seconds": round(tracker.idle_seconds()),
            }
        )


class NoticesHandler(APIHandler):
    """Warnings for the user (e.g. "this server will be stopped at ..."), posted by the
    hub's culling services and shown by the JupyterLab extension. Not activity."""

    _track_activity = False

    @web.authenticated
    def get(self) -> None:
        self.finish({"notices": list(self.settings["moonhub_notices"].values())})

    @web.authenticated
    def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
            notice = {k: str(body[k]) for k in ("id", "kind", "message")} | {"at": str(body.get("at", ""))}
        except (ValueError, KeyError, TypeError):
            raise web.HTTPError(400, "a notice needs id, kind and message") from None
        add_notice(self.settings, notice)
        self.set_status(201)
        self.finish(notice)


def _start_gpu_sampling(server_app: Any) -> None:
    settings = server_app.web_app.settings
    settings["moonhub_gpu_idle"] = tracker = IdleTracker(int(os.environ.get("MOONHUB_GPU_IDLE_THRESHOLD", "0")))
    settings["moonhub_gpu_source"] = source = pick_source()
    if source is None:
        return

    def sample() -> None:
        try:
            tracker.observe(source.utilization())
        except Exception as e:  # a driver hiccup must not stop the server
            server_app.log.warning("MoonHub: GPU sample failed: %s", e)

    sample()
    every = float(os.environ.get("MOONHUB_GPU_SAMPLE_SECONDS", "15"))
    PeriodicCallback(sample, every * 1000).start()
    server_app.log.info("MoonHub: sampling GPU utilization (%s) every %.0fs", source.name, every)


def add_notice(settings: dict[str, Any], notice: dict[str, str]) -> None:
    notices = settings["moonhub_notices"]
    notices[notice["id"]] = notice
    while len(notices) > MAX_NOTICES:
        notices.pop(next(iter(notices)))


def _start_oom_watch(server_app: Any) -> None:
    """A notice for each out-of-memory kill in this server's container."""
    settings, watch = server_app.web_app.settings, OomWatch()
    watch.new_kills()  # the baseline

    def check() -> None:
        kills, limit = watch.new_kills()
        if kills:
            at = datetime.now(UTC).isoformat()
            server_app.log.warning("MoonHub: %d process(es) killed for memory (limit %s)", kills, limit)
            add_notice(
                settings, {"id": f"oom-{at}", "kind": "out-of-memory", "message": message(kills, limit), "at": at}
            )

    PeriodicCallback(check, float(os.environ.get("MOONHUB_OOM_CHECK_SECONDS", "2")) * 1000).start()


def _load_jupyter_server_extension(server_app: Any) -> None:
    web_app = server_app.web_app
    web_app.settings["moonhub_notices"] = {}
    _start_gpu_sampling(server_app)
    _start_oom_watch(server_app)
    base = web_app.settings["base_url"]
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "moonhub/api/v1/(.*)"), ForwardHandler),
            (url_path_join(base, "moonhub/server"), ServerInfoHandler),
            (url_path_join(base, "moonhub/gpu"), GpuHandler),
            (url_path_join(base, "moonhub/notices"), NoticesHandler),
        ],
    )
    route = url_path_join(base, "moonhub/api/v1/(.*)")
    server_app.log.info("MoonHub: forwarding %s to the jobs service", route)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "moonhub_lab.server"}]
