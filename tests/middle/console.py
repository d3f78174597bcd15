"""The admin console's middle tier: its real handlers in a real JupyterHub (JupyterHub's own
``MockHub``: the hub application, its database, login, scopes and XSRF checks, with a
mock spawner and PAM login where the password is the user name), served in-process with
configurable-http-proxy in front, against the fake Kubernetes API (``tests/fakes/kube.py``).

The hub runs on an event loop of its own in a thread (tornado's), so tests call it over
real HTTP with ``requests`` as the hub tier does.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from jupyterhub.tests.mocking import MockHub
from jupyterhub.tests.utils import public_url
from jupyterhub.utils import random_port
from kubernetes_asyncio import client
from traitlets.config import Config

from admin_console.handlers import TEMPLATES, handlers
from localcluster.config import REPO
from moonhub_core.platform import HUB_SETTING, Document, load
from tests.fakes import kube as fake_kube
from tests.middle.serving import listen, run_loop

CHP = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
NAMESPACE = "moonhub-users"


@dataclass
class ConsoleHub:
    url: str
    kube: fake_kube.FakeKube
    folder: Path
    hub: MockHub
    loop: asyncio.AbstractEventLoop

    @property
    def catalog(self) -> Path:
        return self.folder / "catalog.yaml"

    def login(self, user: str) -> requests.Session:
        s = requests.Session()
        s.get(f"{self.url}hub/login", timeout=30).raise_for_status()
        r = s.post(
            f"{self.url}hub/login",
            data={"username": user, "password": user, "_xsrf": s.cookies.get("_xsrf")},
            timeout=30,
        )
        r.raise_for_status()
        return s

    def call(self, s: requests.Session, method: str, path: str, **kw: Any) -> requests.Response:
        """A console route as its page calls it (session cookie + XSRF header)."""
        headers = {"X-XSRFToken": s.cookies.get("_xsrf") or ""}
        return s.request(method, f"{self.url}hub/moonhub-admin{path}", headers=headers, timeout=30, **kw)

    def edit(self, s: requests.Session, edit: dict[str, Any]) -> requests.Response:
        return self.call(s, "PATCH", "/api/catalog", json=edit)

    def stop_server(self, s: requests.Session, user: str) -> None:
        """Stop ``user``'s server and wait until it is gone (a hub stopped while a server
        still stops waits on the proxy's routes)."""
        headers = {"X-XSRFToken": s.cookies.get("_xsrf") or ""}
        s.delete(f"{self.url}hub/api/users/{user}/server", headers=headers, timeout=30)
        deadline = time.monotonic() + 30
        while s.get(f"{self.url}hub/api/users/{user}", headers=headers, timeout=30).json()["servers"]:
            assert time.monotonic() < deadline, f"{user}'s mock server did not stop"
            time.sleep(0.2)

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def spawn(self, s: requests.Session, user: str, **options: Any) -> None:
        """A running server of ``user`` (logged in as ``s``) with these choices (the mock
        spawner starts a small local server)."""
        headers = {"X-XSRFToken": s.cookies.get("_xsrf") or ""}
        r = s.post(f"{self.url}hub/api/users/{user}/server", json=options, headers=headers, timeout=30)
        # (logging in may have started it already: the mock spawner has no form to wait on)
        assert r.status_code in (201, 202) or "is already running" in r.text, r.text
        deadline = time.monotonic() + 30
        while not s.get(f"{self.url}hub/api/users/{user}", headers=headers, timeout=30).json()["servers"][""]["ready"]:
            assert time.monotonic() < deadline, f"{user}'s mock server did not start"
            time.sleep(0.2)

        async def chosen() -> None:
            # the mock spawner keeps no choices: set as MoonSpawner's load_user_options does
            self.hub.users[user].spawner.user_options = dict(options)

        self.run(chosen())


def _platform(folder: Path, **spawner: Any) -> Document:
    doc = {"auth": {"type": "development"}, "spawner": {"catalog": "catalog.yaml", **spawner}}
    path = folder / "platform.yaml"
    path.write_text(yaml.safe_dump(doc))
    return Document(load(path), path)


def _start(folder: Path, spawner: dict[str, Any], ready: Future[ConsoleHub]) -> None:
    async def start(loop: asyncio.AbstractEventLoop) -> ConsoleHub:
        kube = fake_kube.FakeKube()
        _, port = listen(fake_kube.app(kube))
        # what kubespawner's shared clients (the console's) talk to: the fake
        client.Configuration.set_default(client.Configuration(host=f"http://127.0.0.1:{port}"))
        c = Config()
        c.JupyterHub.extra_handlers = handlers()
        c.JupyterHub.template_paths = [str(TEMPLATES)]
        c.JupyterHub.tornado_settings = {HUB_SETTING: _platform(folder, **spawner), "moonhub_kube_loaded": True}
        c.Authenticator.admin_users = {"admin"}
        # after login, the home page: no server starts unless a test asks (a mock server left
        # running at the end is stopped after the proxy, whose routes it then waits for)
        c.JupyterHub.bind_url = f"http://127.0.0.1:{random_port()}/"
        c.JupyterHub.default_url = "/hub/home"
        c.ConfigurableHTTPProxy.command = [str(CHP)]
        c.ConfigurableHTTPProxy.pid_file = str(folder / "proxy.pid")
        c.JupyterHub.pid_file = str(folder / "hub.pid")
        c.JupyterHub.cookie_secret_file = str(folder / "cookie_secret")
        hub = MockHub(config=c)
        await hub.initialize([])
        await hub.start()
        return ConsoleHub(public_url(hub), kube, folder, hub, loop)

    run_loop(start, ready)


#: the slowest start and stop of a console hub in this process (printed with the timings)
SLOWEST: dict[str, float] = {}


@contextlib.contextmanager
def console_hub(folder: Path, catalog: Path, **spawner: Any) -> Iterator[ConsoleHub]:
    """A MockHub with the console, the catalog copied into ``folder``."""
    shutil.copy(catalog, folder / "catalog.yaml")
    before = client.Configuration.get_default_copy()
    ready: Future[ConsoleHub] = Future()
    thread = threading.Thread(target=_start, args=(folder, spawner, ready), daemon=True)
    t0 = time.monotonic()
    thread.start()
    hub = ready.result(60)
    _slowest("admin console middle tier: MockHub start", time.monotonic() - t0)
    try:
        yield hub
    finally:
        t1 = time.monotonic()
        try:
            hub.run(hub.hub.stop(), timeout=20)
        finally:
            hub.loop.call_soon_threadsafe(hub.loop.stop)
            thread.join(10)
            client.Configuration.set_default(before)
            _slowest("admin console middle tier: MockHub stop", time.monotonic() - t1)


def _slowest(what: str, seconds: float) -> None:
    SLOWEST[what] = max(SLOWEST.get(what, 0.0), seconds)
