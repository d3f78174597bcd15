"""The secrets a user gives to their own JupyterLab server (``to_server`` on their secret):
asked of the jobs service, which keeps them, as the server starts, with a claim the hub signs
for that user (``moonhub_core.server_claim``): the answer holds only their secrets, so a pod
is never built with anyone else's. Values are never read here; the pod refers to the Secrets."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from weakref import WeakKeyDictionary

from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from moonhub_core import secrets as sec
from moonhub_core import server_claim
from moonhub_core.errors import FieldError

#: calls to the jobs service at once: every spawn in progress makes one (JupyterHub's
#: ``concurrent_spawn_limit`` is 100 by default)
MAX_CALLS = 100
_CLIENTS: WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncHTTPClient] = WeakKeyDictionary()


def _client() -> AsyncHTTPClient:
    """This module's own HTTP client. Tornado's shared one runs 10 requests at a time: in a
    burst of spawns each waited there behind the others (9 s of a 10 s spawn at 400
    spawns in 30 s), though the jobs service answered each in well under a second."""
    loop = asyncio.get_running_loop()
    found = _CLIENTS.get(loop)
    if found is None:
        found = _CLIENTS[loop] = AsyncHTTPClient(force_instance=True, max_clients=MAX_CALLS)
    return found


async def wanted(jobs_url: str, user: str, claim_key: str, token: str, log: logging.Logger | Any) -> list[sec.Use]:
    """The user's secrets for their server; none when the jobs service is not configured,
    and none (with a warning) when it does not answer: the server starts without them.

    Asked with a claim signed by ``claim_key`` (``moonhub_core.server_claim``: the service
    need not ask the hub who calls), or, without a key, with the server's ``token``."""
    if not jobs_url or not (claim_key or token):
        return []
    if claim_key:
        auth = {server_claim.HEADER: server_claim.make(claim_key, user)}
    else:
        auth = {"Authorization": f"token {token}"}
    req = HTTPRequest(
        url_path_join(jobs_url, "api/v1/secrets"),
        headers=auth,
        request_timeout=10,
        follow_redirects=False,
    )
    try:
        resp = await _client().fetch(req)
        entries = json.loads(resp.body).get("secrets") or []
    except Exception as e:
        log.warning("secrets for the server not read from the jobs service (%s): it starts without them", e)
        return []
    try:
        return sec.for_server(entries)
    except FieldError as e:
        raise web.HTTPError(409, f"{e.message} (change one in Secrets)") from None


def pod_parts(uses: list[sec.Use], owner: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """KubeSpawner's form of the pod parts: environment as name -> ``{"valueFrom": ...}``."""
    env, volumes, mounts = sec.pod_parts(uses, owner)
    return {e["name"]: {"valueFrom": e["valueFrom"]} for e in env}, volumes, mounts
