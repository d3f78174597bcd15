"""The guard of a shared server (issue 37, item 2): who is not the server's owner may only
read, unless the share gave them full access.

JupyterHub lets a user open a server shared with them (the hub grants them access to it);
what they may do there is this server's call. Most of jupyter-server's handlers ask its
Authorizer, but not all of what runs in it does (jupyter-server-proxy's programs, VS Code
among them; the Git panel; MoonHub's own routes), so the guard sits where every handler
passes: the identity provider, which names the user of each request. For someone the server
is shared with read-only it lets through only what reads (JupyterLab's pages and assets,
files, listings: ``GET`` and ``HEAD`` of :data:`READ_ONLY`; a document's room, to follow
others' edits live, where it may send nothing that changes the document:
:data:`READ_ONLY_COLLABORATION`, :func:`reader_may_send`), and answers everything else 403
(a kernel, a terminal, a save, a proxied program). MoonHub's routes
(``moonhub/``: the owner's jobs, secrets and notices, through the server's own token) are the
owner's alone, whatever the share. The server's owner is never limited; a hub admin, who
may open any server (JupyterHub's admin role), is a reader like any other unless shared with
in full.

A share with full access (the hub's ``custom:moonhub:server-write`` on this server, which
the guard reads from the hub's list of the server's shares: JupyterHub's logins carry a
share's access but not its other scopes) lets a user do what the owner can in the server,
as the owner: a terminal there runs with the
server's token and the secrets given to it. That is what full access means, and the sharing
dialog says so."""

from __future__ import annotations

import json
import logging
import os
import re
import time
import weakref
from typing import Any
from urllib.parse import quote

from jupyterhub.services.auth import check_scopes
from jupyterhub.singleuser.extension import JupyterHubIdentityProvider
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.ioloop import PeriodicCallback
from tornado.websocket import WebSocketHandler

log = logging.getLogger("moonhub_lab")

#: the same as ``moonhub_core.sharing.WRITE_SCOPE`` (a unit test keeps the two equal; the
#: user's image does not carry moonhub_core)
WRITE_SCOPE = "custom:moonhub:server-write"
#: what a read-only share opens, relative to the server's base URL
READ_ONLY = re.compile(
    r"(?:lab(?:/.*)?"  # JupyterLab's pages, its settings, workspaces, themes and translations
    r"|static/.*"  # jupyter-server's assets
    r"|api/contents(?:/.*)?|files/.*"  # files and folders
    r"|api/kernelspecs(?:/.*)?|kernelspecs/.*"  # which kernels exist, and their logos
    r"|api|api/(?:me|status|sessions|kernels|terminals|translations(?:/.*)?|config/.*|metrics/v1)"
    r"|logout)"
)
#: what a read-only share opens besides, to follow documents as others edit them (editing
#: together, jupyter-collaboration): asking for a document's room (a PUT that changes no file)
#: and the room's websocket, where :func:`reader_may_send` drops whatever would change the
#: document or save it
READ_ONLY_COLLABORATION = {
    "PUT": re.compile(r"api/collaboration/session/.*"),
    "WEBSOCKET": re.compile(r"api/collaboration/room/.*"),
}
#: what every user the server is shared with may ask, whatever the share: how far it goes
VISITOR = re.compile(r"moonhub/access")
OWNER_ONLY = re.compile(r"moonhub(?:/.*)?")
SAFE_METHODS = ("GET", "HEAD")
#: the Yjs messages of a document's websocket (y-protocols; jupyter-collaboration's
#: ``MessageType``): the first byte says which
YJS_SYNC, YJS_AWARENESS = 0, 1
#: the second byte of a sync message: step 1 asks for what the sender lacks (it reads);
#: step 2 and update carry changes
YJS_SYNC_STEP1 = 0


def refusal(
    method: str,
    path: str,
    websocket: bool,
    owner: str,
    server: str,
    user: str,
    scopes: list[str],
    shared_in_full: bool = False,
) -> str | None:
    """Why ``user`` may not make this request of ``owner``'s ``server``, or None when they
    may. ``path`` is relative to the server's base URL (no leading slash), as the request
    had it (still percent-encoded: what the server's routes match against too). Full access
    is the write scope on this server, in the user's ``scopes`` or in the share the hub holds
    for them (``shared_in_full``)."""
    if user == owner:
        return None
    if VISITOR.fullmatch(path) and method.upper() in SAFE_METHODS and not websocket:
        return None
    if OWNER_ONLY.fullmatch(path):
        return f"MoonHub's jobs, secrets and notices in this server are {owner}'s own"
    if in_full(owner, server, scopes, shared_in_full):
        return None
    if method.upper() in SAFE_METHODS and not websocket and READ_ONLY.fullmatch(path):
        return None
    together = READ_ONLY_COLLABORATION.get("WEBSOCKET" if websocket else method.upper())
    if together is not None and together.fullmatch(path):
        return None
    return f"{owner} shared this server with you to read: files and notebooks open, but nothing runs or changes"


def in_full(owner: str, server: str, scopes: list[str], shared_in_full: bool = False) -> bool:
    """Whether a user may do in ``owner``'s ``server`` what its owner can: the write scope on
    it, in their ``scopes`` or in the share the hub holds for them."""
    return shared_in_full or check_scopes({f"{WRITE_SCOPE}!server={owner}/{server}"}, set(scopes))


def reader_may_send(message: bytes) -> bool:
    """Whether a reader's message on a document's websocket goes on to the document: asking
    for its state (sync step 1) and saying where they are in it (awareness: who is here, their
    cursor). Changes (sync step 2, updates), a save, and any message this does not know are
    dropped, so the document and its file stay as the others made them."""
    if not message:
        return False
    if message[0] == YJS_AWARENESS:
        return True
    return message[0] == YJS_SYNC and len(message) > 1 and message[1] == YJS_SYNC_STEP1


def shared_access(shares: list[dict[str, Any]]) -> dict[str, str]:
    """Who a server's shares (the hub's ``/shares/<owner>/<server>`` items) let in, and how
    far: "full" with the write scope, "read" without. MoonHub grants each user, a team's
    members too, a user share; a team share made with the hub's own API lets nobody in (the
    hub's logins do not carry it)."""
    access: dict[str, str] = {}
    for item in shares:
        if item.get("kind") != "user":
            continue
        full = any(str(sc).partition("!")[0] == WRITE_SCOPE for sc in item.get("scopes") or [])
        access[str((item.get("user") or {}).get("name"))] = "full" if full else "read"
    return access


class ShareLookup:
    """Who this server is shared with, and how far, as the hub says (the server's own token
    may read its shares). The answer is kept ``ttl`` seconds: a revoked or narrowed share
    holds at most that long. A user it does not name makes it ask again once ``miss_ttl``
    seconds have passed, so a share just made works within seconds, and someone refused
    again and again costs the hub one request per ``miss_ttl``. A hub that does not answer
    leaves the last answer (or nobody): the guard then errs on the side of refusing."""

    def __init__(
        self, api_url: str, token: str, owner: str, server: str, ttl: float = 30.0, miss_ttl: float = 5.0
    ) -> None:
        self.url = f"{api_url.rstrip('/')}/shares/{quote(owner, safe='')}/{quote(server, safe='')}"
        self.token, self.ttl, self.miss_ttl = token, ttl, miss_ttl
        self.shared: dict[str, str] = {}
        self.read_at = -1e9

    async def access(self, user: str) -> str | None:
        """ "full", "read", or None when the server is not shared with ``user``."""
        age = time.monotonic() - self.read_at
        if age >= self.ttl or (self.shared.get(user) != "full" and age >= self.miss_ttl):
            self.read_at = time.monotonic()
            req = HTTPRequest(
                f"{self.url}?limit=1000",
                headers={"Authorization": f"token {self.token}", "Accept": "application/jupyterhub-pagination+json"},
                request_timeout=10,
            )
            try:
                resp = await AsyncHTTPClient().fetch(req, raise_error=False)
                page = json.loads(resp.body) if resp.code == 200 and resp.body else None
            except (OSError, ValueError):
                page = None
            if isinstance(page, dict) and isinstance(page.get("items"), list):
                self.shared = shared_access(page["items"])
            else:
                log.warning("MoonHub: the hub did not say who this server is shared with (%s)", self.url)
        return self.shared.get(user)


#: seconds between two looks at the open connections of people a server is shared with
SWEEP_SECONDS = 5.0
#: the websocket close code when a share ends or narrows (the 4000s are the application's)
CLOSE_REVOKED = 4403


def still_allowed(opened_with: str, now: str | None) -> bool:
    """Whether a connection opened with ``opened_with`` access may stay open now that the
    share gives ``now`` (None: no share any more)."""
    if now is None:
        return False
    return not (opened_with == "full" and now != "full")


class OpenSockets:
    """The websockets open for people a server is shared with (a kernel's channels, a
    terminal, a document's room, a proxied program's): each request is checked when it is
    made, but a websocket stays open after that. Every :data:`SWEEP_SECONDS` each is checked
    against the share as the hub says it now (:class:`ShareLookup`, up to its ``ttl`` old),
    and closed when the share ended, or narrowed from full access to read. The lab then
    reconnects, as the share now allows or not at all."""

    def __init__(self) -> None:
        self.sockets: weakref.WeakKeyDictionary[WebSocketHandler, tuple[str, str]] = weakref.WeakKeyDictionary()

    def add(self, handler: WebSocketHandler, user: str, access: str) -> None:
        self.sockets[handler] = (user, access)

    async def sweep(self, lookup: ShareLookup) -> int:
        """Close what the shares no longer allow; how many were closed."""
        closed = 0
        for handler, (user, access) in list(self.sockets.items()):
            if handler.ws_connection is None:
                if getattr(handler, "_moonhub_seen_open", False):
                    self.sockets.pop(handler, None)  # it closed by itself
                continue  # or it is not open yet
            handler._moonhub_seen_open = True  # type: ignore[attr-defined]
            if still_allowed(access, await lookup.access(user)):
                continue
            log.info("MoonHub: closing %s's connection to %s: the share ended or narrowed", user, handler.request.path)
            handler.close(CLOSE_REVOKED, "the server's share with you ended or changed")
            self.sockets.pop(handler, None)
            closed += 1
        return closed


class SharedServerIdentityProvider(JupyterHubIdentityProvider):
    """JupyterHub's identity provider, and the guard of :func:`refusal` on every request.

    Someone other than the owner (and not a hub admin) gets in only while the hub holds a
    share for them: the hub's own check of a login is remembered for minutes, this one for
    at most :attr:`ShareLookup.ttl` seconds, so a revoked share stops working within that.
    JupyterHub's logins carry a share's access but none of its other scopes, so whether a
    share is in full the same list says."""

    lookup: ShareLookup | None = None
    open_sockets: OpenSockets | None = None

    async def get_user(self, handler: web.RequestHandler) -> Any:
        user = await super().get_user(handler)
        if user is None:
            return None
        base = handler.settings.get("base_url", "/")
        path = handler.request.path
        relative = path[len(base) :] if path.startswith(base) else path.lstrip("/")
        websocket = handler.request.headers.get("Upgrade", "").lower() == "websocket"
        owner, server = os.environ.get("JUPYTERHUB_USER", ""), os.environ.get("JUPYTERHUB_SERVER_NAME", "")
        model = getattr(user, "hub_user", None) or {}
        visitor = shared_full = False
        if user.username != owner and not model.get("admin") and self.lookup is not None:
            visitor = True
            access = await self.lookup.access(user.username)
            if access is None:
                raise web.HTTPError(403, f"{owner}'s server is not shared with you (any more)")
            shared_full = access == "full"
        scopes = list(model.get("scopes") or [])
        # how far this request may go, decided once: for the guard's answer, and for what
        # reads it later (a document's websocket, :func:`install_reader_filter`; the lab's
        # question, ``moonhub/access``)
        if user.username == owner:
            access_here = "owner"
        elif in_full(owner, server, scopes, shared_full):
            access_here = "full"
        else:
            access_here = "read"
        why = refusal(
            handler.request.method or "GET",
            relative,
            websocket,
            owner,
            server,
            user.username,
            [],  # the scopes are read above: full access or not is the last argument
            access_here == "full",
        )
        if why:
            raise web.HTTPError(403, why)
        setattr(handler, "moonhub_access", access_here)  # noqa: B010 (tornado's handler has no such field)
        if websocket and visitor and self.open_sockets is not None and isinstance(handler, WebSocketHandler):
            self.open_sockets.add(handler, user.username, access_here)
        return user


def install_reader_filter() -> bool:
    """Drop what a reader sends on a document's websocket (jupyter-collaboration's
    ``YDocWebSocketHandler``) unless :func:`reader_may_send` lets it through; True when
    jupyter-collaboration is there to filter. A request the guard did not see counts as a
    reader's: nothing unlooked-at changes a document."""
    try:
        from jupyter_server_ydoc.handlers import YDocWebSocketHandler
    except ImportError:
        return False
    if getattr(YDocWebSocketHandler.on_message, "moonhub_filtered", False):
        return True
    forward = YDocWebSocketHandler.on_message

    async def on_message(self: Any, message: Any) -> Any:
        if getattr(self, "moonhub_access", "read") == "read":
            raw = message.encode() if isinstance(message, str) else bytes(message)
            if not reader_may_send(raw):
                return None
        return await forward(self, message)

    on_message.moonhub_filtered = True  # type: ignore[attr-defined]
    YDocWebSocketHandler.on_message = on_message
    return True


def install(server_app: Any) -> bool:
    """Put the guard in front of every handler of a server JupyterHub runs (one whose
    identity provider is JupyterHub's); True when it did."""
    found = server_app.web_app.settings.get("identity_provider")
    if type(found) is not JupyterHubIdentityProvider or not os.environ.get("JUPYTERHUB_USER"):
        return False
    guard = SharedServerIdentityProvider(parent=server_app, hub_auth=found.hub_auth)
    lookup = ShareLookup(
        found.hub_auth.api_url,
        found.hub_auth.api_token,
        os.environ["JUPYTERHUB_USER"],
        os.environ.get("JUPYTERHUB_SERVER_NAME", ""),
    )
    # a share that ends or narrows closes the connections it had let open
    sockets = OpenSockets()
    guard.lookup, guard.open_sockets = lookup, sockets
    server_app.web_app.settings["identity_provider"] = guard
    server_app.identity_provider = guard

    async def sweep() -> None:
        if sockets.sockets:
            await sockets.sweep(lookup)

    PeriodicCallback(sweep, SWEEP_SECONDS * 1000).start()
    if install_reader_filter():
        log.info("MoonHub: readers follow documents others edit, and change none")
    return True
