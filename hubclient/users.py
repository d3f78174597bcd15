"""The hub's users, for services that act on every user (the jobs service's reconcile, the
GPU reclaim service).

The hub answers ``/users`` one page at a time (at most 200 users by default): a service that
reads one request sees only the first page, and everything it does "for users the hub no
longer has" then hits real users. So :func:`all_users` follows every page and raises when
any page fails or looks wrong; a caller that gets an exception knows nothing and must not
act as if the list were empty. :func:`is_gone` asks about one user: only the hub's 404 is
evidence that the user is gone.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

PAGINATION = "application/jupyterhub-pagination+json"
#: more pages than this means the hub is answering in a loop
MAX_PAGES = 10_000


class HubReadError(RuntimeError):
    """The hub's answer could not be read in full: decide nothing from it."""


class HubUsers:
    def __init__(self, api_url: str, token: str, page_size: int = 200, timeout: float = 30) -> None:
        self.api_url, self.token = api_url.rstrip("/"), token
        self.page_size, self.timeout = page_size, timeout

    async def _get(self, path: str, accept: str = "application/json") -> tuple[int, Any]:
        req = HTTPRequest(
            f"{self.api_url}{path}",
            headers={"Authorization": f"token {self.token}", "Accept": accept},
            request_timeout=self.timeout,
            follow_redirects=False,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except OSError as e:
            raise HubReadError(f"the hub did not answer {path}: {e}") from e
        if resp.code == 599:
            raise HubReadError(f"the hub did not answer {path}: {resp.error}")
        try:
            return resp.code, json.loads(resp.body) if resp.body else None
        except ValueError:
            raise HubReadError(f"the hub's answer to {path} is not JSON (HTTP {resp.code})") from None

    async def all_users(self, state: str = "") -> list[dict[str, Any]]:
        """Every user model the hub has (optionally only those with ``state``, e.g.
        ``ready``), following the pagination to its end."""
        out: list[dict[str, Any]] = []
        offset = 0
        for _ in range(MAX_PAGES):
            query = {"offset": offset, "limit": self.page_size} | ({"state": state} if state else {})
            code, page = await self._get(f"/users?{urlencode(query)}", PAGINATION)
            if code != 200:
                raise HubReadError(f"the hub answered {code} to /users")
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise HubReadError("the hub's /users answer has no 'items' (is its API paginated?)")
            items = page["items"]
            if not all(isinstance(u, dict) and isinstance(u.get("name"), str) for u in items):
                raise HubReadError("the hub's /users answer holds an entry without a name")
            out += items
            nxt = (page.get("_pagination") or {}).get("next")
            if not nxt:
                return out
            if not items:
                raise HubReadError("the hub's /users answer promises a next page after an empty one")
            offset = int(nxt.get("offset", offset + len(items)))
        raise HubReadError(f"the hub's /users answer did not end after {MAX_PAGES} pages")

    async def names(self) -> set[str]:
        return {u["name"] for u in await self.all_users()}

    async def is_gone(self, name: str) -> bool:
        """True only when the hub says it has no user ``name`` (404); False when it has
        them; :class:`HubReadError` for anything else."""
        return await self.user(name) is None

    async def user(self, name: str) -> dict[str, Any] | None:
        """The hub's model of user ``name`` (with groups and admin flag), None when the hub
        has no such user; :class:`HubReadError` when it can not say."""
        code, model = await self._get(f"/users/{quote(name, safe='')}")
        if code == 404:
            return None
        if code != 200 or not isinstance(model, dict) or model.get("name") != name:
            raise HubReadError(f"the hub answered {code} about user {name!r}")
        return model
