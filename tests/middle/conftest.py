"""The middle tier: the jobs service's real handlers and operations, served in-process against
a real database (SQLite in a temporary folder), with nothing faked but its two edges: the hub
(``tests/fakes/hub.py``) and the Kubernetes API (``tests/fakes/kube.py``).

The service, both fakes and the HTTP servers run on an event loop of their own in a thread,
so a test calls the service over real HTTP with the same synchronous client as the hub tier
(``tests/hub/jobs_client.Jobs``) and plays the cluster's part by writing the fake's objects.
Each test module gets a fresh service, database, hub and cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller
from jupyterhub.services.auth import HubOAuth
from kubernetes_asyncio import client
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from jobs_service import app as jobs_app
from jobs_service import bodies, settings
from jobs_service.db import open_db
from jobs_service.notify import EmailPolicy, WebhookPolicy
from jobs_service.service import JobsService
from moonhub_core.catalog import EXAMPLE, shared_store
from tests.conftest import JOB_LIMITS, Mailbox
from tests.fakes import hub as fake_hub
from tests.fakes import kube as fake_kube
from tests.fakes.kube import now as kube_now
from tests.hub.jobs_client import Jobs
from tests.middle.serving import listen, run_loop

NAMESPACE = "moonhub-users"
PREFIX = "/services/jobs/"
#: the fake's API roots of the objects tests play the cluster with
CORE, BATCH = "api/v1", "apis/batch/v1"
_TICKS = itertools.count(29_000_000)


def _bound(pvc: dict[str, Any]) -> None:
    """The provisioner's part: a new claim is bound at once."""
    pvc["status"] = {"phase": "Bound", "capacity": (pvc["spec"].get("resources") or {}).get("requests") or {}}


@dataclass
class Middle:
    """A jobs service served in-process, its fakes, and what calls into its loop."""

    kube: fake_kube.FakeKube
    hub: fake_hub.FakeHub
    service: JobsService
    url: str
    loop: asyncio.AbstractEventLoop
    folder: Path
    servers: list[HTTPServer] = field(default_factory=list)
    #: what the real SMTP server (aiosmtpd) received from the service
    mailbox: list[EmailMessage] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"{self.url}{PREFIX}api/v1"

    def run(self, coro: Any, timeout: float = 60) -> Any:
        """Run ``coro`` on the service's loop (a tracking pass, a reconcile) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def user(self, name: str, groups: list[str] | None = None, admin: bool = False) -> Jobs:
        """A client of ``name`` (made in the hub if new) with a token for the service."""
        if name not in self.hub.users or groups is not None or admin:
            self.hub.add(name, groups, admin)
        return Jobs(self.base, self.hub.token(name))

    # ---- the cluster's part ----------------------------------------------------------
    def sync(self) -> None:
        """One pass of run tracking (what the service's loop does every few seconds)."""
        self.run(self.service.sync_runs())

    def job(self, name: str) -> dict[str, Any] | None:
        return self.kube.get(BATCH, "jobs", NAMESPACE, name)

    def env(self, job_name: str) -> dict[str, str]:
        """The plain environment variables of the Job ``job_name``'s container (what its pod is given)."""
        job = self.job(job_name)
        assert job is not None, job_name
        return {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}

    def launch(self, job_name: str, what: str = "") -> requests.Response:
        """What the run ``job_name``'s pod gets from the launch routes with its own key
        (``what``: "" its parameters, "notebook" its version's notebook)."""
        env = self.env(job_name)
        base, key = env["MOONHUB_LAUNCH_URL"], env["MOONHUB_LAUNCH_KEY"]
        path = f"{base}/notebook" if what == "notebook" else f"{base}/runs/{job_name}"
        return requests.get(path, headers={"X-MoonHub-Launch-Key": key}, timeout=30)

    def tick(self, cronjob: str) -> str:
        """The CronJob controller's part at a tick of ``cronjob``'s schedule: a Job from its
        template, owned by it. Its name."""
        cron = self.kube.get(BATCH, "cronjobs", NAMESPACE, cronjob)
        assert cron is not None, cronjob
        template = cron["spec"]["jobTemplate"]
        name = f"{cronjob}-{next(_TICKS)}"  # the controller names a Job by its minute
        owner = {"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob, "uid": cron["metadata"]["uid"]}
        meta = {**template.get("metadata", {}), "name": name, "ownerReferences": [owner]}
        self.kube.put(
            BATCH,
            "jobs",
            NAMESPACE,
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": template["spec"]},
        )
        return name

    def job_state(
        self, name: str, state: str, reason: str = "BackoffLimitExceeded", message: str = "", started: str = ""
    ) -> None:
        """The Job ``name`` as the Job controller leaves it: running (since ``started``, default
        now), succeeded or failed."""
        now = kube_now()
        status: dict[str, Any] = {"startTime": started or now}
        if state == "running":
            status["active"] = 1
        elif state == "succeeded":
            done = {"type": "Complete", "status": "True", "lastTransitionTime": now}
            status |= {"succeeded": 1, "completionTime": now, "conditions": [done]}
        elif state == "failed":
            failed = {
                "type": "Failed",
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
            }
            status |= {"failed": 1, "conditions": [failed]}
        else:
            raise ValueError(state)
        self.kube.patch_status(BATCH, "jobs", NAMESPACE, name, status)

    def pod(
        self, job_name: str, log: str = "", phase: str = "Running", terminated: dict[str, Any] | None = None
    ) -> str:
        """A pod of the Job ``job_name`` (its log, its phase, how its container ended)."""
        job = self.job(job_name) or {}
        labels = {**(((job.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels", {})}
        labels["job-name"] = job_name
        name = f"{job_name}-{len(self.kube.list(CORE, 'pods', NAMESPACE, f'job-name={job_name}'))}"
        status: dict[str, Any] = {"phase": phase}
        if terminated is not None:
            status["containerStatuses"] = [
                {
                    "name": "notebook",
                    "ready": False,
                    "restartCount": 0,
                    "image": "x",
                    "imageID": "x",
                    "state": {"terminated": {"exitCode": 1, **terminated}},
                }
            ]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "notebook", "image": "x"}]},
            "status": status,
        }
        self.kube.put(CORE, "pods", NAMESPACE, pod)
        self.kube.logs[(NAMESPACE, name)] = log
        return name


def _start(folder: Path, smtp_port: int, ready: Future[Middle]) -> None:
    async def start(loop: asyncio.AbstractEventLoop) -> Middle:
        kube, hub = fake_kube.FakeKube(), fake_hub.FakeHub()
        kube.on_create("persistentvolumeclaims", _bound)
        k_server, k_port = listen(fake_kube.app(kube))
        h_server, h_port = listen(fake_hub.app(hub))
        hub_api = f"http://127.0.0.1:{h_port}/hub/api"
        api = client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{k_port}"))
        # the service's own port first: runs' pods reach its launch routes there
        sock, port = bind_unused_port()
        # the catalog: a copy an admin may edit (a test removes an environment from it)
        shutil.copy(EXAMPLE, folder / "catalog.yaml")
        svc_settings = settings.for_tests(
            namespace=NAMESPACE,
            catalog_path=folder / "catalog.yaml",
            snapshot_dir=folder / "snapshots",
            db_url=f"sqlite:///{folder / 'jobs.sqlite'}",
            launch_url=f"http://127.0.0.1:{port}{PREFIX}launch",
        )
        # as on the test hub: its caps, receivers on loopback, mail to example.org through a
        # real SMTP server (aiosmtpd) the fixture starts
        svc_settings = dataclasses.replace(
            svc_settings,
            limits=dataclasses.replace(svc_settings.limits, **JOB_LIMITS),
            smtp=dataclasses.replace(svc_settings.smtp, host="127.0.0.1", port=smtp_port),
            webhooks=WebhookPolicy(("127.0.0.1/32",), svc_settings.webhooks.per_hour),
            emails=EmailPolicy(("example.org",), svc_settings.emails.per_hour),
        )
        from hubclient.users import HubUsers

        service = JobsService(
            open_db(svc_settings.db_url),
            shared_store(svc_settings.catalog_path),
            api,
            svc_settings,
            hub=HubUsers(hub_api, hub.service_token),
        )
        HubOAuth.clear_instance()
        auth = HubOAuth.instance(
            api_url=hub_api,
            api_token=hub.service_token,
            access_scopes={fake_hub.SERVICE_SCOPE},
            cache_max_age=0,
        )
        server = HTTPServer(jobs_app.application(service, auth, PREFIX), max_body_size=bodies.SMALL_BODY)
        server.add_sockets([sock])
        url = f"http://127.0.0.1:{port}"
        return Middle(kube, hub, service, url, loop, folder, [k_server, h_server, server])

    run_loop(start, ready)


@contextlib.contextmanager
def receiver(status: int = 204) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on this machine: its base URL, and the JSON bodies posted to it."""
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    with serving(Hook) as url:
        yield url, received


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a free loopback port in a thread (a stand-in of a service's
    edge: a webhook receiver, Prometheus's API): its base URL; stopped at the end."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def wait_until(done: Any, seconds: float = 20) -> None:
    """Wait (polling) until ``done()`` is true: what the service sends beside tracking."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.fixture(scope="module")
def middle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Middle]:
    folder = tmp_path_factory.mktemp("middle")
    mail = Mailbox()
    sock, smtp_port = bind_unused_port()
    sock.close()
    smtp = Controller(mail, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    ready: Future[Middle] = Future()
    thread = threading.Thread(target=_start, args=(folder, smtp_port, ready), daemon=True, name="middle-tier")
    thread.start()
    m = ready.result(60)
    m.mailbox = mail.messages
    yield m
    smtp.stop()

    async def stop() -> None:
        for s in m.servers:
            s.stop()
        await m.service.ctx.api.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:  # the outbox's senders, and whatever else waits
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    m.run(stop())
    m.loop.call_soon_threadsafe(m.loop.stop)
    thread.join(10)
