"""The JSON answers mixin: errors as JSON, and a mixin that leaves the handler's own
authentication in charge (it once put tornado's get_login_url ahead of JupyterHub's)."""

from __future__ import annotations

import json
import socket

import pytest
from jupyterhub.handlers import BaseHandler
from jupyterhub.services.auth import HubAuthenticated, HubOAuthenticated
from tornado import web
from tornado.httpclient import AsyncHTTPClient

from admin_console.handlers import ConsoleHandler
from jobs_service.api import APIHandler
from moonhub_core.errors import Conflict, FieldError
from moonhub_core.jsonhttp import JsonResponses, read_json


def test_the_mixin_leaves_authentication_to_the_handler_base() -> None:
    assert APIHandler.get_login_url is HubAuthenticated.get_login_url
    assert APIHandler.get_current_user is HubOAuthenticated.get_current_user
    assert ConsoleHandler.get_current_user is BaseHandler.get_current_user


class _Probe(JsonResponses, web.RequestHandler):
    def get(self, what: str) -> None:
        if what == "conflict":
            self.send_field_error(Conflict("name", "is taken"))
        elif what == "tornado":
            raise web.HTTPError(413, "body larger than %d KiB", 1024)
        elif what == "crash":
            raise RuntimeError("boom")
        else:
            self.send({"ok": True}, 201)


async def test_answers_and_errors_are_json() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = web.Application([(r"/(\w+)", _Probe)]).listen(port, "127.0.0.1")
    try:
        got = {}
        for what in ("ok", "conflict", "tornado", "crash"):
            r = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/{what}", raise_error=False)
            assert r.headers["Content-Type"] == "application/json", what
            got[what] = (r.code, json.loads(r.body))
    finally:
        server.stop()
    assert got["ok"] == (201, {"ok": True})
    assert got["conflict"] == (409, {"status": 409, "field": "name", "message": "name: is taken"})
    assert got["tornado"] == (413, {"status": 413, "message": "body larger than 1024 KiB"})
    assert got["crash"] == (500, {"status": 500, "message": "Internal Server Error"}), "no traceback leaks"


def test_a_body_that_is_not_json_is_a_400_naming_it_whatever_its_bytes() -> None:
    """Invalid UTF-8 and nesting past the parser raised UnicodeDecodeError and RecursionError
    (500s) in the jobs API and the admin console (issue 32, the hostile pass)."""
    assert read_json(b"") is None and read_json(b'{"a": [1]}') == {"a": [1]}
    for bad in (b"{", b"\xff\xfe\x00", b"[" * 100_000, b'{"a": ' * 5000):
        with pytest.raises(FieldError) as e:
            read_json(bad)
        assert e.value.field == "body" and e.value.status == 400
