"""The hub's users, for services that act on every user (the jobs service's reconcile, the
GPU reclaim service), and its groups and shared servers (the jobs service's sharing).

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


class HubRefused(HubReadError):
    """The hub answered a change with an error status (``code``): nothing was changed."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class HubUsers:
    def __init__(self, api_url: str, token: str, page_size: int = 200, timeout: float = 30) -> None:
        self.api_url, self.token = api_url.rstrip("/"), token
        self.page_size, self.timeout = page_size, timeout

    async def _get(self, path: str, accept: str = "application/json") -> tuple[int, Any]:
        return await self._request("GET", path, accept=accept)

    async def _request(
        self, method: str, path: str, body: Any = None, accept: str = "application/json"
    ) -> tuple[int, Any]:
        """The hub's status and JSON answer to ``method path`` (with ``body`` as JSON);
        :class:`HubReadError` when it did not answer or its answer is not JSON."""
        req = HTTPRequest(
            f"{self.api_url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}", "Accept": accept, "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
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
        items = await self._every_page("/users", {"state": state} if state else {})
        if items is None:
            raise HubReadError("the hub answered 404 to /users")
        if not all(isinstance(u, dict) and isinstance(u.get("name"), str) for u in items):
            raise HubReadError("the hub's /users answer holds an entry without a name")
        return items

    async def _every_page(self, path: str, query: dict[str, str]) -> list[Any] | None:
        """Every item of the paginated list at ``path``, in order (None when the hub answers
        the first page with 404); :class:`HubReadError` when any page fails or looks wrong."""
        out: list[Any] = []
        offset = 0
        for _ in range(MAX_PAGES):
            code, page = await self._get(
                f"{path}?{urlencode(query | {'offset': offset, 'limit': self.page_size})}", PAGINATION
            )
            if code == 404 and offset == 0:
                return None
            if code != 200:
                raise HubReadError(f"the hub answered {code} to {path}")
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise HubReadError(f"the hub's {path} answer has no 'items' (is its API paginated?)")
            items = page["items"]
            out += items
            nxt = (page.get("_pagination") or {}).get("next")
            if not nxt:
                return out
            if not items:
                raise HubReadError(f"the hub's {path} answer promises a next page after an empty one")
            offset = int(nxt.get("offset", offset + len(items)))
        raise HubReadError(f"the hub's {path} answer did not end after {MAX_PAGES} pages")

    async def names(self) -> set[str]:
        return {u["name"] for u in await self.all_users()}

    async def is_gone(self, name: str) -> bool:
        """True only when the hub says it has no user ``name`` (404); False when it has
        them; :class:`HubReadError` for anything else."""
        return await self.user(name) is None

    async def user(self, name: str) -> dict[str, Any] | None:
        """The hub's model of user ``name`` (with groups and admin flag), None when the hub
        has no such user; :class:`HubReadError` when it can not say."""
        return await self._named("user", name)

    async def group(self, name: str) -> dict[str, Any] | None:
        """The hub's model of group ``name`` (with its users), None when it has none."""
        return await self._named("group", name)

    async def _named(self, kind: str, name: str) -> dict[str, Any] | None:
        code, model = await self._get(f"/{kind}s/{quote(name, safe='')}")
        if code == 404:
            return None
        if code != 200 or not isinstance(model, dict) or model.get("name") != name:
            raise HubReadError(f"the hub answered {code} about {kind} {name!r}")
        return model

    # ---- JupyterHub's sharing (its REST API: /shares/<owner>/<server>) --------------------
    def _shares_path(self, owner: str, server: str) -> str:
        return f"/shares/{quote(owner, safe='')}/{quote(server, safe='')}"

    async def share(self, owner: str, server: str, kind: str, name: str, scopes: list[str]) -> dict[str, Any]:
        """Grant exactly ``scopes`` on ``owner``'s server to user or group (``kind``)
        ``name``. JupyterHub's grant only adds to a share, so what the share held beyond
        ``scopes`` (full access, now read) is revoked after the grant: a failure leaves the
        share as it was or with more, never without the access it had."""
        path = self._shares_path(owner, server)
        code, model = await self._request("POST", path, {kind: name, "scopes": scopes})
        if code != 200 or not isinstance(model, dict):
            message = model.get("message") if isinstance(model, dict) else ""
            raise HubRefused(code, f"the hub answered {code} to sharing {owner}/{server} with {kind} {name}: {message}")
        extra = [s for s in model.get("scopes") or [] if s not in scopes]
        if extra:
            code, model = await self._request("PATCH", path, {kind: name, "scopes": extra})
            if code != 200 or not isinstance(model, dict):
                raise HubRefused(code, f"the hub answered {code} to narrowing {owner}/{server}'s share with {name}")
        return model

    async def unshare(self, owner: str, server: str, kind: str, name: str) -> None:
        """Revoke all that ``owner``'s server shares with user or group ``name`` (nothing
        shared, or no such server, is no error: there is nothing to revoke)."""
        code, model = await self._request("PATCH", self._shares_path(owner, server), {kind: name})
        if code not in (200, 404):
            message = model.get("message") if isinstance(model, dict) else ""
            raise HubRefused(
                code, f"the hub answered {code} to revoking {owner}/{server} from {kind} {name}: {message}"
            )

    async def shares(self, owner: str, server: str) -> list[dict[str, Any]]:
        """What ``owner``'s server is shared with, as the hub holds it, every page of it ([] for
        no server)."""
        items = await self._every_page(self._shares_path(owner, server), {})
        if items is not None and not all(isinstance(share, dict) for share in items):
            raise HubReadError(f"the hub's list of {owner}/{server}'s shares holds an entry that is not one")
        return items or []
