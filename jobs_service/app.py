"""``python -m jobs_service``: the jobs service as a JupyterHub-managed service."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth
from kubernetes_asyncio import config as kconfig
from tornado import web
from traitlets import Unicode, default
from traitlets.config import Application

from hubclient.users import HubUsers
from moonhub_core import platform, server_claim
from moonhub_core.catalog import shared_store

from . import bodies, launch, snapshots
from .api import routes
from .db import open_db
from .service import JobsService
from .settings import DEFAULT_PREFIX, PREFIX_ENV, from_platform


class JobsServiceApp(Application):
    name = "moonhub-jobs"
    description = "MoonHub's jobs service: notebooks as scheduled Kubernetes jobs."

    # every setting is the platform document's (jobs_service.settings): the hub and this
    # service read one document, which the hub names in $MOONHUB_CONFIG
    platform = Unicode(
        help="The platform document (platform.yaml) this service takes its settings from. "
        "Default: $MOONHUB_CONFIG, else the local example.",
    ).tag(config=True)

    aliases = {"platform": "JobsServiceApp.platform"}

    @default("platform")
    def _default_platform(self) -> str:
        return str(platform.config_path())

    async def serve(self) -> None:
        path = Path(self.platform).resolve()
        settings = from_platform(platform.load(path), path, os.environ)
        if settings.kubeconfig:
            api = await kconfig.new_client_from_config(settings.kubeconfig)
        else:
            kconfig.load_incluster_config()
            from kubernetes_asyncio import client

            api = client.ApiClient()
        hub_api, hub_token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
        jobs = JobsService(
            open_db(settings.db_url),
            shared_store(settings.catalog_path),
            api,
            settings,
            hub=HubUsers(hub_api, hub_token) if hub_api and hub_token else None,
        )
        # who a request comes from is cached a short while (JupyterHub's default is 5 min):
        # a user removed from the job-admin group stops seeing others' jobs soon after
        auth = HubOAuth.instance(cache_max_age=30)
        prefix = os.environ.get(PREFIX_ENV, DEFAULT_PREFIX)
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8090"))
        app = application(jobs, auth, prefix)
        await snapshots.move_into_store(jobs.ctx)
        await jobs.reconcile()
        # the server reads a small body of anyone; a route raises that for one request once
        # it knows the caller (jobs_service/bodies.py)
        app.listen(url.port or 80, url.hostname or "", max_body_size=bodies.SMALL_BODY)
        self.log.info(
            "jobs service on %s (prefix %s), namespace %s, settings from %s",
            url.geturl(),
            prefix,
            settings.namespace,
            path,
        )
        await jobs.sync_forever(settings.sync_interval, settings.reconcile_interval)


def application(jobs: JobsService, auth: HubOAuth, prefix: str) -> web.Application:
    """The service's routes and what its handlers share: what :meth:`JobsServiceApp.serve`
    listens with, and the middle tier's tests serve in-process (``tests/middle``)."""
    limits = jobs.settings.limits
    return web.Application(
        routes(prefix) + launch.routes(prefix),
        jobs=jobs,
        admin_groups=list(jobs.settings.admin_groups),
        # checks the hub's claims as it starts servers (moonhub_core.server_claim)
        server_claim_key=server_claim.key_from_token(auth.api_token or ""),
        # request bodies being received, per caller and in all
        in_flight=bodies.InFlight(limits.body_bytes_in_flight_per_user, limits.body_bytes_in_flight),
        cookie_secret=os.urandom(32),
        xsrf_cookies=False,
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[jobs %(asctime)s %(levelname)s] %(message)s")
    app = JobsServiceApp()
    app.initialize()
    asyncio.run(app.serve())
