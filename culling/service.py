"""The GPU reclaim service: every ``--every`` seconds, for each running server, read its
GPU idleness from the server itself, warn its user in JupyterLab before a stop (GPU idle
or inactive), and stop servers whose GPUs stayed idle too long.

It talks to each server directly at its pod's address, never through the proxy: requests
through the proxy count as activity and would keep idle servers alive. Its hub role:
``list:users``, ``read:users:activity``, ``read:servers``, ``delete:servers``,
``access:servers``; its Kubernetes identity may read pods in the user namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kubernetes_asyncio import client, config
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .policy import Action, Server, Settings, decide

log = logging.getLogger("moonhub.culling")
SERVER_PORT = 8888


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass
class Running:
    server: Server
    started: str
    #: the server's own address (pod IP), e.g. http://10.0.0.5:8888
    address: str
    #: the server's path prefix, e.g. /user/ada/
    prefix: str


class Reclaimer:
    def __init__(self, settings: Settings, namespace: str, hub_api: str, token: str) -> None:
        self.settings, self.namespace = settings, namespace
        self.hub_api, self.token = hub_api.rstrip("/"), token
        self.http = AsyncHTTPClient()
        self.warned: set[tuple[str, str, str, str]] = set()
        self.core: client.CoreV1Api | None = None

    async def _call(self, url: str, method: str = "GET", body: Any = None) -> Any:
        req = HTTPRequest(
            url,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else None,
            request_timeout=20,
            allow_nonstandard_methods=True,
        )
        resp = await self.http.fetch(req)
        return json.loads(resp.body) if resp.body else None

    async def running(self) -> list[Running]:
        """Ready servers joined with their pods (address, GPU count)."""
        assert self.core is not None
        pods = await self.core.list_namespaced_pod(self.namespace, label_selector="component=singleuser-server")
        by_server: dict[tuple[str, str], Any] = {}
        for p in pods.items:
            ann = p.metadata.annotations or {}
            if p.status.phase == "Running" and p.status.pod_ip:
                by_server[(ann.get("hub.jupyter.org/username", ""), ann.get("hub.jupyter.org/servername", ""))] = p
        users = await self._call(f"{self.hub_api}/users?state=ready")
        out = []
        for u in users:
            for name, s in (u.get("servers") or {}).items():
                pod = by_server.get((u["name"], name))
                if pod is None or not s.get("ready"):
                    continue
                gpus = int((pod.metadata.labels or {}).get("moonhub.io/gpu-count", "0"))
                out.append(
                    Running(
                        Server(u["name"], name, parse_time(s.get("last_activity")), gpus),
                        s.get("started") or "",
                        f"http://{pod.status.pod_ip}:{SERVER_PORT}",
                        s["url"],
                    )
                )
        return out

    async def gpu_idle_seconds(self, r: Running) -> float:
        gpu = await self._call(f"{r.address}{r.prefix}moonhub/gpu")
        return float(gpu.get("idle_seconds") or 0) if gpu.get("count") else 0.0

    async def act(self, r: Running, action: Action) -> None:
        s = r.server
        if action.kind == "reclaim":
            path = f"/users/{quote(s.user)}/servers/{quote(s.name)}" if s.name else f"/users/{quote(s.user)}/server"
            log.warning("reclaiming %s/%s: %s", s.user, s.name, action.message)
            await self._call(f"{self.hub_api}{path}", "DELETE")
            return
        key = (s.user, s.name, r.started, action.reason)
        if key in self.warned:
            return
        notice = {
            "id": f"{action.reason}-{r.started}",
            "kind": action.reason,
            "message": action.message,
            "at": action.deadline.isoformat(),
        }
        await self._call(f"{r.address}{r.prefix}moonhub/notices", "POST", notice)
        self.warned.add(key)
        log.info("warned %s/%s (%s): stop at %s", s.user, s.name, action.reason, action.deadline.isoformat())

    async def check(self) -> None:
        now = datetime.now(UTC)
        for r in await self.running():
            try:
                if r.server.gpu_count:
                    idle = await self.gpu_idle_seconds(r)
                    r.server = Server(r.server.user, r.server.name, r.server.last_activity, r.server.gpu_count, idle)
                for action in decide(r.server, now, self.settings):
                    await self.act(r, action)
            except (HTTPClientError, OSError, ValueError) as e:
                log.warning("could not check %s/%s: %s", r.server.user, r.server.name, e)

    async def run(self, every: float) -> None:
        if os.environ.get("KUBECONFIG"):
            await config.load_kube_config()
        else:
            config.load_incluster_config()
        async with client.ApiClient() as api:
            self.core = client.CoreV1Api(api)
            log.info("checking servers every %ss (%s)", every, self.settings)
            while True:
                try:
                    await self.check()
                except Exception:
                    log.exception("check failed")
                await asyncio.sleep(every)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m culling", description=__doc__)
    p.add_argument("--namespace", default="moonhub-users")
    p.add_argument("--idle-timeout", type=int, default=3600, help="the idle culler's timeout (seconds)")
    p.add_argument("--gpu-idle-timeout", type=int, default=1800, help="reclaim GPUs idle this long (seconds)")
    p.add_argument("--warn-before", type=int, default=600, help="warn users this long before a stop (seconds)")
    p.add_argument("--every", type=float, default=60, help="seconds between checks")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings(a.idle_timeout, a.gpu_idle_timeout, a.warn_before)
    r = Reclaimer(settings, a.namespace, os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    try:
        asyncio.run(r.run(a.every))
    except KeyboardInterrupt:  # the hub stops its services with a signal
        log.info("stopped")
