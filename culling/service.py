"""The GPU reclaim service: warns users in JupyterLab before their server is stopped (GPU
idle or inactive) and stops servers whose GPUs stayed idle too long.

It never calls a user's server and never sends a credential to one: users control that
process. GPU utilization comes from NVIDIA's DCGM exporter (``--gpu-metrics-url``; on the
local cluster the node's device plugin answers in that format), which attributes GPUs to
pods through the kubelet. Warnings are kept here and each server pulls its own with its own
token (``GET /services/gpu-reclaim/notices?server=<name>``, the JupyterLab extension shows
them). Its hub role: ``list:users``, ``read:users:activity``, ``read:servers``,
``delete:servers``; its Kubernetes identity may read pods in the user namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlparse

from jupyterhub.services.auth import HubAuth, HubAuthenticated
from kubernetes_asyncio import client, config
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from hubclient.users import HubUsers
from moonhub_core import platform
from moonhub_core import pods as podc

from .gpu_metrics import MetricsError, scrape
from .idleness import IdleTracker
from .policy import Action, Server, Settings, decide

#: the pods the GPU sample reads
GPU_SERVERS = f"component=singleuser-server,{podc.GPU_COUNT}!=0"

log = logging.getLogger("moonhub.culling")
#: notices kept per server (the newest)
MAX_NOTICES = 20
#: seconds the notices route takes a server token's owner from its cache
NOTICES_AUTH_CACHE = 600


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass
class Running:
    server: Server
    started: str


class Notices:
    """Warnings waiting for each server to pull them: ``(user, server name)`` -> notices."""

    def __init__(self) -> None:
        self._by_server: dict[tuple[str, str], dict[str, dict[str, str]]] = {}

    def replace(self, user: str, server: str, notices: list[dict[str, str]]) -> None:
        """The server's current warnings (a warning no longer due is withdrawn)."""
        self._by_server[(user, server)] = {n["id"]: n for n in notices[-MAX_NOTICES:]}

    def of(self, user: str, server: str) -> list[dict[str, str]]:
        return list(self._by_server.get((user, server), {}).values())

    def keep_only(self, running: set[tuple[str, str]]) -> None:
        """Forget the notices of servers that are no longer running."""
        for key in set(self._by_server) - running:
            del self._by_server[key]


class Reclaimer:
    def __init__(
        self,
        settings: Settings,
        namespace: str,
        hub_api: str,
        token: str,
        metrics_urls: list[str],
        threshold: float = 0,
    ) -> None:
        self.settings, self.namespace = settings, namespace
        self.hub_api, self.token = hub_api.rstrip("/"), token
        self.hub = HubUsers(hub_api, token)
        self.metrics_urls, self.threshold = metrics_urls, threshold
        self.notices = Notices()
        self.warned: set[tuple[str, str, str, str]] = set()
        self.core: client.CoreV1Api | None = None
        #: pod UID -> its GPUs' idleness (a new pod starts a new clock)
        self.trackers: dict[str, IdleTracker] = {}
        #: (user, server name) -> (pod UID, GPU count) of GPU servers seen at the last sample
        self.gpu_pods: dict[tuple[str, str], tuple[str, int]] = {}
        #: when GPU utilization was last read in full (monotonic); None: never
        self.metrics_read: float | None = None

    async def _delete(self, path: str) -> None:
        req = HTTPRequest(
            f"{self.hub_api}{path}",
            method="DELETE",
            headers={"Authorization": f"token {self.token}"},
            request_timeout=20,
        )
        await AsyncHTTPClient().fetch(req)

    async def sample(self) -> None:
        """Read the GPU servers' pods and their GPUs' utilization; advance each idle clock.
        A GPU pod missing from the metrics counts as busy (no evidence of idleness)."""
        assert self.core is not None
        # only servers that may hold GPUs (CPU servers say ``gpu-count=0``; a pod without the
        # label is read too): listing and decoding every server every sample took a whole
        # core at 2,000 servers
        pods = await self.core.list_namespaced_pod(self.namespace, label_selector=GPU_SERVERS, resource_version="0")
        gpu_pods: dict[tuple[str, str], tuple[str, int]] = {}
        names: dict[str, tuple[str, str]] = {}
        ser = self.core.api_client.sanitize_for_serialization  # type: ignore[attr-defined]
        for p in pods.items:
            gpus = podc.gpus(ser(p))
            if p.status.phase != "Running" or gpus == 0:
                continue
            ann = p.metadata.annotations or {}
            key = (ann.get(podc.HUB_USER, ""), ann.get(podc.HUB_SERVER, ""))
            gpu_pods[key] = (p.metadata.uid, gpus)
            names[p.metadata.name] = key
        self.gpu_pods = gpu_pods
        self.trackers = {uid: self.trackers.get(uid) or IdleTracker(self.threshold) for uid, _ in gpu_pods.values()}
        if not gpu_pods:
            self.metrics_read = time.monotonic()
            return
        if not self.metrics_urls:
            return
        try:
            util = await scrape(self.metrics_urls)
        except MetricsError as e:
            log.warning("could not read GPU utilization (%s); no GPU server is reclaimed until it can be read", e)
            return
        now = time.time()
        for pod_name, key in names.items():
            uid, _ = gpu_pods[key]
            self.trackers[uid].observe(util.get((self.namespace, pod_name), []), now)
        self.metrics_read = time.monotonic()

    def gpu_idle_seconds(self, user: str, server: str, stale_after: float) -> float:
        """How long the server's GPUs have all been idle; 0 without a recent full reading."""
        if self.metrics_read is None or time.monotonic() - self.metrics_read > stale_after:
            return 0.0
        found = self.gpu_pods.get((user, server))
        tracker = self.trackers.get(found[0]) if found else None
        return tracker.idle_seconds() if tracker else 0.0

    async def running(self) -> list[Running]:
        """Every ready server the hub has (all pages of its user list)."""
        out = []
        for u in await self.hub.all_users(state="ready"):
            servers = u.get("servers")
            if not isinstance(servers, dict):
                continue
            for name, s in servers.items():
                if not isinstance(s, dict) or not s.get("ready"):
                    continue
                found = self.gpu_pods.get((u["name"], name))
                gpus = found[1] if found else 0
                out.append(
                    Running(Server(u["name"], name, parse_time(s.get("last_activity")), gpus), s.get("started") or "")
                )
        return out

    def warning(self, r: Running, action: Action) -> dict[str, str]:
        s = r.server
        key = (s.user, s.name, r.started, action.reason)
        if key not in self.warned:
            self.warned.add(key)
            log.info("warned %s/%s (%s): stop at %s", s.user, s.name, action.reason, action.deadline.isoformat())
        return {
            "id": f"{action.reason}-{r.started}",
            "kind": action.reason,
            "message": action.message,
            "at": action.deadline.isoformat(),
        }

    async def reclaim(self, r: Running, action: Action) -> None:
        s = r.server
        path = f"/users/{quote(s.user)}/servers/{quote(s.name)}" if s.name else f"/users/{quote(s.user)}/server"
        log.warning("reclaiming %s/%s: %s", s.user, s.name, action.message)
        await self._delete(path)

    async def check(self, stale_after: float) -> None:
        now = datetime.now(UTC)
        servers = await self.running()
        for r in servers:
            try:
                if r.server.gpu_count:
                    idle = self.gpu_idle_seconds(r.server.user, r.server.name, stale_after)
                    r.server = Server(r.server.user, r.server.name, r.server.last_activity, r.server.gpu_count, idle)
                warnings = []
                for action in decide(r.server, now, self.settings):
                    if action.kind == "reclaim":
                        await self.reclaim(r, action)
                    else:
                        warnings.append(self.warning(r, action))
                self.notices.replace(r.server.user, r.server.name, warnings)
            except Exception:  # one server's trouble never stops the pass for the others
                log.exception("could not check %s/%s", r.server.user, r.server.name)
        self.notices.keep_only({(r.server.user, r.server.name) for r in servers})

    async def run(self, every: float, sample_every: float) -> None:
        if os.environ.get("KUBECONFIG"):
            await config.load_kube_config()
        else:
            config.load_incluster_config()
        if not self.metrics_urls:
            log.warning("no GPU metrics endpoint configured (culling.gpu_metrics_urls): GPU servers are not reclaimed")
        async with client.ApiClient() as api:
            self.core = client.CoreV1Api(api)
            log.info("checking servers every %ss, GPUs every %ss (%s)", every, sample_every, self.settings)
            last_check = 0.0
            while True:
                try:
                    await self.sample()
                except Exception:
                    log.exception("GPU sample failed")
                if time.monotonic() - last_check >= every:
                    last_check = time.monotonic()
                    try:
                        await self.check(stale_after=3 * max(sample_every, every))
                    except Exception:
                        log.exception("check failed")
                await asyncio.sleep(min(every, sample_every))


class NoticesHandler(HubAuthenticated, web.RequestHandler):
    """A server's own warnings, for the server itself (its token) or its user."""

    def get_login_url(self) -> str:
        raise web.HTTPError(403, "a JupyterHub token is needed")

    @web.authenticated
    def get(self) -> None:
        user = self.current_user or {}
        reclaimer: Reclaimer = self.settings["reclaimer"]
        server = self.get_argument("server", "")
        self.set_header("Cache-Control", "no-store")
        self.finish({"notices": reclaimer.notices.of(str(user.get("name", "")), server)})


class HealthHandler(web.RequestHandler):
    def get(self) -> None:
        self.finish({"status": "ok"})


def make_app(reclaimer: Reclaimer, prefix: str) -> web.Application:
    # every running server pulls its notices every culling.notices_seconds with its own token,
    # and each token the cache does not hold costs the hub a lookup: with a 60 s cache, 2,000
    # servers cost it ~33 requests a second while nothing happens. Ten minutes: ~3 a second.
    # (A stopped server's token is then taken up to that long after; it reads only that
    # server's warnings.)
    auth = HubAuth.instance(cache_max_age=NOTICES_AUTH_CACHE)
    return web.Application(
        [(f"{prefix}notices", NoticesHandler), (f"{prefix}health", HealthHandler)],
        reclaimer=reclaimer,
        hub_auth=auth,
    )


async def serve(r: Reclaimer, listen: str, every: float, sample_every: float) -> None:
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/gpu-reclaim/")
    if listen:
        url = urlparse(listen if "//" in listen else f"http://{listen}")
        make_app(r, prefix).listen(url.port or 80, url.hostname or "")
        log.info("serving notices on %s%s", listen, prefix)
    await r.run(every, sample_every)


def main(argv: list[str] | None = None) -> None:
    """Every setting comes from the platform document the hub read (``$MOONHUB_CONFIG``, or
    ``--platform``); to try another value, change the document."""
    p = argparse.ArgumentParser(prog="python -m culling", description=__doc__)
    p.add_argument(
        "--platform", default="", help="the platform document (default: $MOONHUB_CONFIG, else the local example)"
    )
    a = p.parse_args(argv)
    path = Path(a.platform).resolve() if a.platform else platform.config_path()
    try:
        cfg = platform.load(path)
    except platform.ConfigError as e:
        raise SystemExit(f"MoonHub configuration error: {e}") from None
    cu = cfg.culling
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log.info("settings from %s", path)
    settings = Settings(cu.idle_timeout, cu.gpu_idle_timeout, cu.warn_before)
    r = Reclaimer(
        settings,
        cfg.spawner.namespace,
        os.environ["JUPYTERHUB_API_URL"],
        os.environ["JUPYTERHUB_API_TOKEN"],
        list(cu.gpu_metrics_urls),
        cu.gpu_idle_threshold,
    )
    try:
        asyncio.run(serve(r, cu.url, cu.every, cu.gpu_sample_seconds))
    except KeyboardInterrupt:  # the hub stops its services with a signal
        log.info("stopped")
