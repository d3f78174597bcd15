"""The guard of a shared server (lab_extension/moonhub_lab/sharing.py): what someone the
server is shared with may do, read-only or in full, and that the owner is never limited."""

from __future__ import annotations

import asyncio

import pytest
from moonhub_lab import sharing as guard

from moonhub_core import sharing

OWNER = "ola"
FULL = sharing.scopes(OWNER, "full")
READ = sharing.scopes(OWNER, "read")


def refusal(method: str, path: str, user: str = "rui", scopes: list[str] = READ, websocket: bool = False) -> str | None:
    return guard.refusal(method, path, websocket, OWNER, "", user, scopes)


def test_the_guard_and_the_hub_name_one_write_scope() -> None:
    assert guard.WRITE_SCOPE == sharing.WRITE_SCOPE
    assert READ == ["access:servers!server=ola/"]
    assert FULL == ["access:servers!server=ola/", "custom:moonhub:server-write!server=ola/"]
    assert sharing.access_of(FULL) == "full" and sharing.access_of(READ) == "read"
    with pytest.raises(ValueError, match="access must be one of"):
        sharing.scopes(OWNER, "admin")


@pytest.mark.parametrize(
    "path",
    [
        "lab",
        "lab/tree/report.ipynb",
        "lab/api/settings",
        "lab/api/workspaces/default",
        "static/style/index.css",
        "api/contents",
        "api/contents/data/report.ipynb",
        "files/data/plot.png",
        "api/kernelspecs",
        "kernelspecs/python3/logo-64x64.png",
        "api/me",
        "api/status",
        "api/sessions",
        "api/kernels",
        "api/terminals",
        "api/metrics/v1",
        "api",
    ],
)
def test_read_only_opens_pages_files_and_listings(path: str) -> None:
    assert refusal("GET", path) is None
    assert refusal("HEAD", path) is None


@pytest.mark.parametrize(
    ("method", "path", "websocket"),
    [
        ("PUT", "api/contents/report.ipynb", False),  # a save
        ("POST", "api/contents", False),  # a new file
        ("DELETE", "api/contents/report.ipynb", False),
        ("PATCH", "api/contents/report.ipynb", False),  # a rename
        ("POST", "api/sessions", False),  # a notebook's kernel
        ("POST", "api/kernels", False),
        ("GET", "api/kernels/0b5e/channels", True),  # talking to a kernel
        ("POST", "api/terminals", False),
        ("GET", "terminals/websocket/1", True),
        ("GET", "vscode/", False),  # VS Code, through jupyter-server-proxy
        ("GET", "vscode/stable-abc/static/out/vs/workbench.js", False),
        ("GET", "proxy/8080/", False),
        ("GET", "tensorboard/", False),
        ("POST", "git/clone", False),  # the Git panel
        ("GET", "git/settings", False),
        ("PUT", "lab/api/settings/@jupyterlab/apputils-extension:themes", False),
        ("GET", "lab/api/workspaces", True),  # any websocket
        ("GET", "api/collaboration/room/json:notebook:abc", False),  # a room, not as a socket
        ("PUT", "api/collaboration/undo_redo/json:notebook:abc", False),  # undoes others' edits
        ("PUT", "api/collaboration/fork/json:notebook:abc", False),
        ("DELETE", "api/collaboration/fork/abc", False),
        ("POST", "api/collaboration/session/report.ipynb", False),
        ("GET", "api/collaboration/session/report.ipynb", True),
        ("GET", "nbconvert/html/report.ipynb", False),  # runs a converter
        ("GET", "api/contents/../kernels", True),
        ("GET", "lab%2F..%2Fapi/kernels", False),
    ],
)
def test_read_only_refuses_what_runs_or_changes(method: str, path: str, websocket: bool) -> None:
    why = refusal(method, path, websocket=websocket)
    assert why and "shared this server with you to read" in why


def test_full_access_works_as_the_owner_would_but_moonhubs_routes_stay_the_owners() -> None:
    for method, path, ws in [("PUT", "api/contents/x.py", False), ("GET", "api/kernels/1/channels", True)]:
        assert refusal(method, path, scopes=FULL, websocket=ws) is None
    assert refusal("GET", "vscode/", scopes=FULL) is None
    # MoonHub's own routes act with the server's token, as its owner: never for someone else
    for path in ("moonhub/api/v1/jobs", "moonhub/api/v1/secrets", "moonhub/notices", "moonhub"):
        for scopes in (READ, FULL):
            why = refusal("GET", path, scopes=scopes)
            assert why and "ola's own" in why


def test_the_owner_is_never_limited_and_other_servers_scopes_do_not_count() -> None:
    assert refusal("POST", "api/kernels", user=OWNER, scopes=[]) is None
    assert refusal("GET", "moonhub/api/v1/jobs", user=OWNER, scopes=[]) is None
    # full access to another server (or to the owner's other, named server) is not to this one
    other = [*sharing.scopes("someone", "full"), f"{sharing.WRITE_SCOPE}!server={OWNER}/gpu"]
    assert refusal("POST", "api/kernels", scopes=READ + other)
    # the write scope on all the owner's servers (a !user filter) does count
    assert refusal("POST", "api/kernels", scopes=[*READ, f"{sharing.WRITE_SCOPE}!user={OWNER}"]) is None


def test_who_is_let_in_and_how_far_read_from_the_hubs_list_of_the_servers_shares() -> None:
    """JupyterHub's logins carry access but not a share's other scopes: the guard reads who
    is shared with, and in full or not, from the hub's list of the server's shares."""
    items = [
        {"kind": "user", "user": {"name": "wren"}, "scopes": FULL},
        {"kind": "user", "user": {"name": "rudi"}, "scopes": READ},
        {"kind": "group", "group": {"name": "crew"}, "scopes": FULL},  # never granted by MoonHub
    ]
    assert guard.shared_access(items) == {"wren": "full", "rudi": "read"}
    assert refusal("POST", "api/kernels", user="wren", scopes=READ) is not None
    assert guard.refusal("POST", "api/kernels", False, OWNER, "", "wren", READ, shared_in_full=True) is None
    # MoonHub's routes stay the owner's even then
    assert guard.refusal("GET", "moonhub/api/v1/jobs", False, OWNER, "", "wren", READ, shared_in_full=True)


async def test_the_lookup_asks_the_hub_again_after_its_ttl_and_sooner_for_someone_it_does_not_know() -> None:
    """The list of shares, from an HTTP server on loopback standing for the hub's API: kept
    ``ttl`` seconds; a user not named (or not in full) asks again after ``miss_ttl``."""
    import json as _json

    from tornado import httpserver, web
    from tornado.testing import bind_unused_port

    items: list[dict[str, object]] = [{"kind": "user", "user": {"name": "rudi"}, "scopes": READ}]
    asked: list[str] = []

    class Shares(web.RequestHandler):
        def get(self, owner: str, server: str) -> None:
            asked.append(self.request.headers.get("Authorization", ""))
            self.write(_json.dumps({"items": items, "_pagination": {"next": None}}))

    sock, port = bind_unused_port()
    srv = httpserver.HTTPServer(web.Application([(r"/hub/api/shares/([^/]+)/([^/]*)", Shares)]))
    srv.add_sockets([sock])
    try:
        lookup = guard.ShareLookup(f"http://127.0.0.1:{port}/hub/api", "server-token", OWNER, "", ttl=0.6, miss_ttl=0.2)
        assert await lookup.access("rudi") == "read" and asked == ["token server-token"]
        items[:] = [{"kind": "user", "user": {"name": "wren"}, "scopes": FULL}]
        # rudi's share revoked, wren's made in full: not seen until the answer is older than
        # miss_ttl, then both at once
        assert await lookup.access("wren") is None and len(asked) == 1
        await asyncio.sleep(0.25)
        assert await lookup.access("wren") == "full" and len(asked) == 2
        assert await lookup.access("rudi") is None and len(asked) == 2  # within miss_ttl of the last read
        assert await lookup.access("wren") == "full" and len(asked) == 2  # in full: kept for ttl
    finally:
        srv.stop()


def test_a_reader_follows_a_document_others_edit_live() -> None:
    """Editing together: a reader may ask for a document's room and open its websocket,
    where :func:`reader_may_send` keeps them from changing it; the owner's and full access's
    edits go through unlimited."""
    assert refusal("PUT", "api/collaboration/session/data/report.ipynb") is None
    assert refusal("GET", "api/collaboration/room/json:notebook:0c1d", websocket=True) is None
    assert refusal("GET", "api/collaboration/room/JupyterLab:globalAwareness", websocket=True) is None
    # and every visitor may ask how far their share goes
    for scopes in (READ, FULL):
        assert refusal("GET", "moonhub/access", scopes=scopes) is None
        assert refusal("POST", "moonhub/access", scopes=scopes)
        assert refusal("GET", "moonhub/access", scopes=scopes, websocket=True)


@pytest.mark.parametrize(
    ("message", "goes_on"),
    [
        (bytes([0, 0, 1, 0]), True),  # sync step 1: the state the reader has; they get the rest
        (bytes([1, 5, 1, 2, 3, 4, 5]), True),  # awareness: who is here, where their cursor is
        (bytes([0, 1, 2, 0, 0]), False),  # sync step 2: what the reader has and the room lacks
        (bytes([0, 2, 9, 1, 2, 3]), False),  # an update: a reader's edit
        (bytes([2, 4]) + b"save" + bytes([7]), False),  # jupyter-collaboration's save
        (bytes([125, 1, 2]), False),  # chat, and whatever else: not let through unknown
        (bytes([3]), False),
        (bytes([0]), False),
        (b"", False),
    ],
)
def test_what_a_reader_sends_on_a_documents_websocket(message: bytes, goes_on: bool) -> None:
    assert guard.reader_may_send(message) is goes_on


def test_how_far_a_visitor_goes_is_the_write_scope_or_the_hubs_share() -> None:
    assert guard.in_full(OWNER, "", FULL) and not guard.in_full(OWNER, "", READ)
    assert guard.in_full(OWNER, "", READ, shared_in_full=True)
    assert not guard.in_full(OWNER, "gpu", FULL)  # another of the owner's servers


def test_an_open_connection_stays_only_while_the_share_allows_it() -> None:
    assert guard.still_allowed("read", "read") and guard.still_allowed("read", "full")
    assert guard.still_allowed("full", "full")
    assert not guard.still_allowed("full", "read")  # narrowed: reconnect as a reader
    assert not guard.still_allowed("read", None) and not guard.still_allowed("full", None)  # revoked


class _Socket:
    """What the sweep reads of a tornado websocket handler."""

    def __init__(self, path: str) -> None:
        self.ws_connection: object | None = None
        self.request = type("Request", (), {"path": path})()
        self.closed: tuple[int, str] | None = None

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self.ws_connection = None


class _Lookup:
    def __init__(self, shared: dict[str, str]) -> None:
        self.shared = shared

    async def access(self, user: str) -> str | None:
        return self.shared.get(user)


def test_the_sweep_closes_what_a_revoked_or_narrowed_share_had_let_open() -> None:
    sockets = guard.OpenSockets()
    kernel, room, terminal, opening = (_Socket(p) for p in ("/k", "/room", "/t", "/later"))
    for s, user, access in ((kernel, "wren", "full"), (room, "rudi", "read"), (terminal, "zeke", "full")):
        s.ws_connection = object()
        sockets.add(s, user, access)  # type: ignore[arg-type]
    sockets.add(opening, "gone", "read")  # type: ignore[arg-type]  # not upgraded yet: left alone
    lookup = _Lookup({"wren": "read", "rudi": "read", "zeke": "full"})
    assert asyncio.run(sockets.sweep(lookup)) == 1  # type: ignore[arg-type]
    assert kernel.closed and kernel.closed[0] == guard.CLOSE_REVOKED  # narrowed from full
    assert room.closed is None and terminal.closed is None and opening.closed is None
    lookup.shared.pop("rudi")
    assert asyncio.run(sockets.sweep(lookup)) == 1  # type: ignore[arg-type]
    assert room.closed is not None and terminal.closed is None
    assert set(sockets.sockets) == {terminal, opening}  # type: ignore[comparison-overlap]
