"""The load driver of the hub benchmarks and tests: per user as hubtraf does (log in through
the form, ask for the server, follow the progress stream, reach the server through the proxy,
read the user's servers, post activity), bounded in count and time."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from yarl import URL

from .scale_tier import HubUnderTest

#: the longest a refused (429) spawn waits before it asks again
RETRY_CAP = 10.0


@dataclass
class Flow:
    """One user's way through the hub, timed."""

    user: str
    login: float | None = None
    spawn_request: float | None = None
    ready: float | None = None
    too_many: int = 0
    #: the spawn request's final answer (201 started, 202 pending; 0: none)
    status: int = 0
    #: when the spawn was first asked for (monotonic; 0: never)
    asked_at: float = 0.0
    reachable: bool = False
    error: str = ""


class Client:
    """A browser-like session per user over one shared connection pool."""

    def __init__(self, hub: HubUnderTest, pool: aiohttp.TCPConnector) -> None:
        self.hub, self.pool = hub, pool
        self.timeout = aiohttp.ClientTimeout(total=60)
        self.sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, user: str) -> aiohttp.ClientSession:
        if user not in self.sessions:
            self.sessions[user] = aiohttp.ClientSession(
                connector=self.pool,
                connector_owner=False,
                cookie_jar=aiohttp.CookieJar(unsafe=True),
                timeout=self.timeout,
            )
        return self.sessions[user]

    def xsrf(self, user: str) -> dict[str, str]:
        cookies = self.sessions[user].cookie_jar.filter_cookies(URL(f"{self.hub.url}/hub/api/"))
        return {"X-XSRFToken": cookies["_xsrf"].value if "_xsrf" in cookies else ""}

    async def login(self, user: str) -> None:
        s = self.session(user)
        async with s.get(f"{self.hub.url}/hub/login") as r:
            await r.read()
        xsrf = s.cookie_jar.filter_cookies(URL(f"{self.hub.url}/hub/login")).get("_xsrf")
        data = {"username": user, "password": self.hub.password, "_xsrf": xsrf.value if xsrf else ""}
        async with s.post(f"{self.hub.url}/hub/login", data=data, allow_redirects=False) as r:
            await r.read()
            if r.status != 302:
                raise RuntimeError(f"login of {user}: HTTP {r.status}")

    async def api(
        self, user: str, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> tuple[int, Any]:
        s = self.session(user)
        headers = {**self.xsrf(user), **(headers or {})}
        async with s.request(method, f"{self.hub.url}/hub/api{path}", headers=headers, **kw) as r:
            body = await r.read()
            try:
                return r.status, json.loads(body) if body else None
            except ValueError:
                return r.status, body.decode(errors="replace")

    async def spawn(self, user: str) -> tuple[int, Any, float]:
        """Ask for the user's server; the status, the body and the Retry-After (seconds)."""
        s = self.session(user)
        url = f"{self.hub.url}/hub/api/users/{user}/server"
        async with s.post(url, headers=self.xsrf(user), json=self.hub.options) as r:
            body = await r.text()
            return r.status, body[:300], float(r.headers.get("Retry-After", "5") or 5)

    async def close(self) -> None:
        for s in self.sessions.values():
            await s.close()


async def spawn_flow(c: Client, user: str, deadline: float) -> Flow:
    f = Flow(user)
    try:
        t0 = time.monotonic()
        await c.login(user)
        f.login = time.monotonic() - t0
        t0 = f.asked_at = time.monotonic()
        while True:
            status, body, retry_after = await c.spawn(user)
            if status != 429:
                break
            f.too_many += 1
            if time.monotonic() > deadline:
                raise RuntimeError("still 429 at the deadline")
            # as a patient client: the wait the hub suggests, at most RETRY_CAP, with jitter
            await asyncio.sleep(random.uniform(0.5, 1.0) * min(RETRY_CAP, retry_after))
        f.spawn_request, f.status = time.monotonic() - t0, status
        if status not in (201, 202):
            raise RuntimeError(f"spawn: HTTP {status} {body}")
        if status == 202:
            await wait_ready(c, user, deadline)
        f.ready = time.monotonic() - t0
        async with c.session(user).get(f"{c.hub.url}/user/{user}/api") as r:
            f.reachable = r.status == 200 and b"standin" in await r.read()
        await c.api(user, "GET", f"/users/{user}")
        await c.api(user, "POST", f"/users/{user}/activity", json=activity())
    except Exception as e:
        f.error = f"{type(e).__name__}: {e}"[:200]
    return f


async def wait_ready(c: Client, user: str, deadline: float) -> None:
    """Follow the spawn's progress stream (as the spawn page does) until ready or failed."""
    url = f"{c.hub.url}/hub/api/users/{user}/server/progress"
    timeout = aiohttp.ClientTimeout(total=max(1.0, deadline - time.monotonic()))
    async with c.session(user).get(url, headers=c.xsrf(user), timeout=timeout) as r:
        if r.status != 200:
            raise RuntimeError(f"progress: HTTP {r.status}")
        async for raw in r.content:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event.get("ready"):
                return
            if event.get("failed"):
                raise RuntimeError(f"spawn failed: {event.get('message', '')}"[:200])
    raise RuntimeError("progress stream ended before ready")


def activity() -> dict[str, Any]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {"last_activity": now, "servers": {"": {"last_activity": now}}}


async def burst(c: Client, users: list[str], seconds: float, deadline_s: float) -> tuple[list[Flow], float]:
    """Start one flow per user, evenly over ``seconds``; return the flows and the wall time."""
    t0 = time.monotonic()
    deadline = t0 + seconds + deadline_s

    async def delayed(i: int, user: str) -> Flow:
        await asyncio.sleep(seconds * i / max(1, len(users)))
        return await spawn_flow(c, user, deadline)

    flows = await asyncio.gather(*(delayed(i, u) for i, u in enumerate(users)))
    return list(flows), time.monotonic() - t0


async def latencies(call: Callable[[int], Awaitable[int]], count: int, concurrency: int = 8) -> tuple[list[float], int]:
    """Seconds per call of ``count`` calls, ``concurrency`` at a time; and how many failed."""
    gate, out, failed = asyncio.Semaphore(concurrency), [], 0

    async def one(i: int) -> None:
        nonlocal failed
        async with gate:
            t0 = time.monotonic()
            status = await call(i)
            out.append(time.monotonic() - t0)
            failed += status >= 400

    await asyncio.gather(*(one(i) for i in range(count)))
    return out, failed


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
