"""The hub's REST API as the jobs service and the admin console use it: the hub edge of the
middle tier's tests.

- ``GET /hub/api/user`` with a token: who holds it, and the scopes it grants (JupyterHub's
  ``HubAuth`` asks this for every request a service authenticates);
- ``GET /hub/api/users`` (paginated, as the hub answers with ``Accept:
  application/jupyterhub-pagination+json``) and ``GET /hub/api/users/<name>``: the users,
  their groups and when their account was made (``hubclient.users``);
- ``GET /hub/api/groups/<name>``: a group's members (the users who have it) and its
  properties (:attr:`FakeHub.group_properties`), as the hub's group model has them.

Only the service's own token may read users. Everything else is 404, as the hub answers.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tornado import web

SERVICE_SCOPE = "access:services!service=jobs"


@dataclass
class User:
    name: str
    groups: list[str] = field(default_factory=list)
    admin: bool = False
    created: str = "2026-01-01T00:00:00.000000Z"

    def model(self, scopes: list[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "user",
            "name": self.name,
            "admin": self.admin,
            "groups": list(self.groups),
            "created": self.created,
            "servers": {},
        }
        if scopes is not None:
            out["scopes"] = scopes
        return out


class FakeHub:
    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        #: token -> (user name, scopes it grants)
        self.tokens: dict[str, tuple[str, list[str]]] = {}
        self.service_token = secrets.token_hex(16)
        #: token -> the model of the hub service holding it
        self.services: dict[str, dict[str, Any]] = {}
        #: group -> its properties (a group exists while a user has it or it has properties)
        self.group_properties: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, groups: list[str] | None = None, admin: bool = False) -> User:
        with self._lock:
            user = self.users[name] = User(name, list(groups or ()), admin)
            return user

    def service(self, name: str, scopes: list[str]) -> str:
        """A token of the hub service ``name`` (Prometheus's ``metrics-scraper``), granting ``scopes``."""
        token = secrets.token_hex(16)
        with self._lock:
            self.services[token] = {"kind": "service", "name": name, "roles": [], "scopes": list(scopes)}
        return token

    def token(self, name: str, scopes: list[str] | None = None) -> str:
        """A new token of ``name``'s, granting access to the jobs service unless ``scopes``."""
        token = secrets.token_hex(16)
        with self._lock:
            self.tokens[token] = (name, [SERVICE_SCOPE] if scopes is None else scopes)
        return token


class _Handler(web.RequestHandler):
    def initialize(self, hub: FakeHub) -> None:
        self.hub = hub

    def _token(self) -> str:
        value = self.request.headers.get("Authorization", "")
        return value.split(None, 1)[1] if " " in value else ""

    def _json(self, code: int, body: Any) -> None:
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def get(self, path: str) -> None:
        token = self._token()
        hub = self.hub
        if path == "user":
            if token in hub.services:
                return self._json(200, hub.services[token])
            held = hub.tokens.get(token)
            user = hub.users.get(held[0]) if held else None
            if held is None or user is None:
                return self._json(403, {"status": 403, "message": "not a valid token"})
            return self._json(200, user.model(held[1]))
        if token != hub.service_token:
            return self._json(403, {"status": 403, "message": "the service token is needed"})
        if path == "users":
            offset = int(self.get_argument("offset", "0"))
            limit = int(self.get_argument("limit", "200"))
            names = sorted(hub.users)
            page = [hub.users[n].model() for n in names[offset : offset + limit]]
            more = offset + limit < len(names)
            nxt = {"offset": offset + limit, "limit": limit, "url": ""} if more else None
            return self._json(
                200,
                {"items": page, "_pagination": {"offset": offset, "limit": limit, "total": len(names), "next": nxt}},
            )
        if path.startswith("users/"):
            user = hub.users.get(unquote(path[len("users/") :]))
            if user is None:
                return self._json(404, {"status": 404, "message": "no such user"})
            return self._json(200, user.model())
        if path.startswith("groups/"):
            name = unquote(path[len("groups/") :])
            members = sorted(u.name for u in hub.users.values() if name in u.groups)
            if not members and name not in hub.group_properties:
                return self._json(404, {"status": 404, "message": "no such group"})
            props = hub.group_properties.get(name, {})
            return self._json(200, {"kind": "group", "name": name, "users": members, "properties": props})
        return self._json(404, {"status": 404, "message": f"no route {path}"})


def app(hub: FakeHub) -> web.Application:
    return web.Application([(r"/hub/api/(.*)", _Handler, {"hub": hub})])
