"""The thin server extension: the browser talks only to its own server, which forwards
``/moonhub/api/v1/...`` to the jobs service with the server's own hub token. Also:
``/moonhub/server`` (what this server runs: a new job's defaults) and ``/moonhub/notices``
(warnings for the user: those the GPU reclaim service keeps for this server, which the
server pulls with its own token, and this server's out-of-memory kills, read from its
cgroup, and a nearly full or full workspace), ``/moonhub/workspace`` (the workspace's
size and use, for the status bar) and ``/moonhub/gpus`` (this server's GPUs, live).
Nothing here is called by MoonHub's services: they never send a credential to a process the
user controls.

Registered as a Jupyter server extension (``jupyter-config/.../moonhub_lab.json``); needs
``$MOONHUB_JOBS_URL`` (the jobs service, e.g. ``http://hub:8090/services/jobs/``) and
``$MOONHUB_NOTICES_URL`` (the reclaim service's notices), which MoonSpawner sets.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any
from urllib.parse import quote

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.ioloop import PeriodicCallback

from . import collaboration, diskspace, environments, gpus, sharing
from . import settings as lab_settings
from .memory import OomWatch, message

#: a notebook to schedule may be this large (the jobs service has its own limit, jobs.limits.notebook_bytes)
MAX_BODY = 128 * 1024 * 1024
MAX_NOTICES = 20


def upstream_path(path: str) -> str:
    """The jobs API path of a forwarded request, as it goes to the service: each segment
    percent-encoded again (Tornado hands the path over decoded, so ``%3F`` would become a
    query and ``%2F`` a folder). A path that climbs out of the API (``..``), or holds a
    backslash or a control character, is refused: the forward reaches the jobs API only."""
    segments = path.split("/")
    if any(seg in (".", "..") for seg in segments) or "\\" in path or any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise web.HTTPError(400, "path: must name a route of the jobs API (no '..', backslash or control characters)")
    return "/".join(quote(seg, safe="") for seg in segments)


class ForwardHandler(APIHandler):
    """Forward one request to the jobs service as this server's user."""

    async def _forward(self, path: str) -> None:
        told = lab_settings.from_env()
        base, token = told.jobs_url, told.api_token
        if not base or not token:
            raise web.HTTPError(503, "the jobs service is not configured for this server (MOONHUB_JOBS_URL)")
        if len(self.request.body) > MAX_BODY:
            raise web.HTTPError(413, "request body too large")
        query = f"?{self.request.query}" if self.request.query else ""
        url = url_path_join(base, "api/v1", upstream_path(path)) + query
        req = HTTPRequest(
            url,
            method=self.request.method,
            body=self.request.body if self.request.method in ("POST", "PUT", "PATCH") else None,
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            request_timeout=60,
            follow_redirects=False,
        )
        resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        if resp.code == 599:
            raise web.HTTPError(502, f"the jobs service did not answer: {resp.error}")
        self.set_status(resp.code)
        # a run's rendered output and its files keep the service's sandbox and download headers
        for name in ("Content-Security-Policy", "Content-Disposition"):
            if name in resp.headers:
                extra = "; frame-ancestors 'self'" if name == "Content-Security-Policy" else ""
                self.set_header(name, resp.headers[name] + extra)
        if resp.body:
            self.write(resp.body)
        await self.finish(set_content_type=resp.headers.get("Content-Type", "application/json"))

    @web.authenticated
    async def get(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def post(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def put(self, path: str) -> None:
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
        told = lab_settings.from_env()
        self.finish(
            {
                "environment": told.environment or None,
                "size": told.size or None,
                "gpu_type": told.gpu_type or None,
                "gpu_count": told.gpu_count,
                "jobs_service": bool(told.jobs_url),
                "image": image_versions(),
            }
        )


class NoticesHandler(APIHandler):
    """Warnings for the user (e.g. "this server will be stopped at ..."), shown by the
    JupyterLab extension. Reading them is not activity."""

    _track_activity = False

    @web.authenticated
    def get(self) -> None:
        self.finish({"notices": list(self.settings["moonhub_notices"].values())})


def _notice(raw: Any) -> dict[str, str] | None:
    """A notice from the reclaim service's answer, or None when it is not one."""
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("id", "kind", "message")):
        return None
    return {k: str(raw.get(k, ""))[:2000] for k in ("id", "kind", "message", "at")}


def _start_notice_pull(server_app: Any) -> None:
    """Pull this server's warnings from the GPU reclaim service, with this server's token."""
    told = lab_settings.from_env()
    url, token, server, every = told.notices_url, told.api_token, told.server_name, told.notices_seconds
    if not url or not token or not every:
        return
    settings = server_app.web_app.settings
    pulled: set[str] = set()

    async def pull() -> None:
        req = HTTPRequest(
            f"{url}?server={server}",
            headers={"Authorization": f"token {token}"},
            request_timeout=20,
            follow_redirects=False,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
            found = json.loads(resp.body).get("notices", []) if resp.code == 200 else None
        except (OSError, ValueError, AttributeError) as e:
            server_app.log.debug("MoonHub: notices not read: %s", e)
            return
        if not isinstance(found, list):
            return
        current = {n["id"]: n for n in map(_notice, found) if n}
        # a warning the service withdrew (the user came back) goes; OOM notices stay
        for gone in pulled - set(current):
            settings["moonhub_notices"].pop(gone, None)
        for n in current.values():
            add_notice(settings, n)
        pulled.clear()
        pulled.update(current)

    PeriodicCallback(pull, every * 1000).start()
    server_app.log.info("MoonHub: pulling notices from %s every %.0fs", url, every)


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

    PeriodicCallback(check, lab_settings.from_env().oom_check_seconds * 1000).start()


def workspace_path(server_app: Any) -> str:
    """The workspace: the folder the lab serves (the home folder, where the volume is)."""
    return str(getattr(server_app, "root_dir", "") or os.path.expanduser("~"))


class WorkspaceHandler(APIHandler):
    """The workspace's size and use (the status bar). Reading them is not activity."""

    _track_activity = False

    @web.authenticated
    def get(self) -> None:
        try:
            space = diskspace.measure(self.settings["moonhub_workspace"])
        except OSError as e:
            raise web.HTTPError(503, f"the workspace can not be measured: {e.strerror}") from None
        self.finish(space.as_dict())


class GpusHandler(APIHandler):
    """This server's GPUs, live (the status bar). Reading them is not activity."""

    _track_activity = False

    @web.authenticated
    async def get(self) -> None:
        found = await asyncio.to_thread(gpus.read)
        self.finish({"gpus": [g.as_dict() for g in found]})


class AccessHandler(APIHandler):
    """How far the user of this request may go in this server: ``owner``, ``full`` (shared
    in full) or ``read`` (shared to read: the lab then opens documents read only). Asked by
    everyone the server is shared with (moonhub_lab.sharing lets it through)."""

    @web.authenticated
    def get(self) -> None:
        # set by the guard (moonhub_lab.sharing); a server without it has one user, its owner
        access = getattr(self, "moonhub_access", "owner")
        owner = os.environ.get("JUPYTERHUB_USER", "")
        self.finish({"access": access, "owner": owner, "user": self.current_user.username})


class EnvironmentsHandler(APIHandler):
    """The user's environments in the workspace (``moonhub-env``), and the catalog
    environment this server runs (what an image of one builds on by default)."""

    @web.authenticated
    async def get(self) -> None:
        found = await asyncio.to_thread(environments.listing)
        self.finish({"environments": found, "base": lab_settings.from_env().environment})


class EnvironmentImageHandler(ForwardHandler):
    """``POST``: build an image of environment ``name``: its packages are frozen here (``pip
    freeze`` of its own site) and the request goes on to the jobs service, which checks them
    again (``{"base": ...}``: the catalog environment to build on; default this server's)."""

    @web.authenticated
    async def post(self, name: str) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "body: must be JSON") from None
        base = body.get("base") if isinstance(body, dict) else None
        try:
            packages = await asyncio.to_thread(environments.frozen, name)
        except environments.EnvironmentError_ as e:
            self.set_status(400)
            field, _, message = str(e).partition(": ")
            self.finish({"status": 400, "field": field, "message": message})
            return
        self.request.body = json.dumps(
            {"environment": name, "packages": packages, "base": base or lab_settings.from_env().environment}
        ).encode()
        await self._forward("images")


def _start_disk_watch(server_app: Any) -> None:
    """A notice when the workspace becomes almost full and when it is full (once per level
    reached; it goes again when the level drops)."""
    settings = server_app.web_app.settings
    last = {"level": "ok"}

    def check() -> None:
        try:
            space = diskspace.measure(settings["moonhub_workspace"])
        except OSError:
            return
        level, before = space.level, last["level"]
        last["level"] = level
        if level == before:
            return
        for old in [k for k in settings["moonhub_notices"] if k.startswith("disk-")]:
            settings["moonhub_notices"].pop(old, None)
        text = diskspace.notice_text(space)
        if text:
            at = datetime.now(UTC).isoformat()
            server_app.log.warning("MoonHub: workspace %s: %s", level, text)
            add_notice(settings, {"id": f"disk-{level}-{at}", "kind": "disk", "message": text, "at": at})

    check()
    PeriodicCallback(check, lab_settings.from_env().disk_check_seconds * 1000).start()


def _load_jupyter_server_extension(server_app: Any) -> None:
    web_app = server_app.web_app
    web_app.settings["moonhub_notices"] = {}
    web_app.settings["moonhub_workspace"] = workspace_path(server_app)
    _start_notice_pull(server_app)
    _start_oom_watch(server_app)
    _start_disk_watch(server_app)
    base = web_app.settings["base_url"]
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "moonhub/api/v1/(.*)"), ForwardHandler),
            (url_path_join(base, "moonhub/server"), ServerInfoHandler),
            (url_path_join(base, "moonhub/notices"), NoticesHandler),
            (url_path_join(base, "moonhub/workspace"), WorkspaceHandler),
            (url_path_join(base, "moonhub/gpus"), GpusHandler),
            (url_path_join(base, "moonhub/access"), AccessHandler),
            (url_path_join(base, "moonhub/environments"), EnvironmentsHandler),
            (url_path_join(base, r"moonhub/environments/([a-z0-9][a-z0-9_-]{0,39})/image"), EnvironmentImageHandler),
        ],
    )
    route = url_path_join(base, "moonhub/api/v1/(.*)")
    server_app.log.info("MoonHub: forwarding %s to the jobs service", route)
    # a server shared with others: who is not its owner reads only, unless shared in full,
    # and only while the hub holds their share (moonhub_lab.sharing: within 30 s of a revoke)
    if sharing.install(server_app):
        server_app.log.info("MoonHub: users this server is shared with read only, unless shared in full")
    # editing together: documents with changes pending are written before the server stops
    if collaboration.install(server_app):
        server_app.log.info("MoonHub: open documents are written to their files before the server stops")


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "moonhub_lab.server"}]
