"""``python -m jobs_service``: the jobs service as a JupyterHub-managed service."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from urllib.parse import urlparse

from kubernetes_asyncio import config as kconfig
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from traitlets import Integer, List, Unicode, default
from traitlets.config import Application

from spawner_ext.catalog import CatalogStore

from .api import routes
from .db import open_db
from .notify import SmtpSettings
from .service import JobsService


class JobsServiceApp(Application):
    name = "moonhub-jobs"
    description = "MoonHub's jobs service: notebooks as scheduled Kubernetes jobs."

    namespace = Unicode("moonhub-users", help="The namespace job pods run in (the users' namespace).").tag(config=True)
    catalog_path = Unicode(help="The catalog the spawner uses; jobs are validated against it.").tag(config=True)
    db_url = Unicode(help="SQLAlchemy URL of the run history, e.g. postgresql://... ").tag(config=True)
    kubeconfig = Unicode("", help="Kubeconfig of the service's own identity; empty: in-cluster credentials.").tag(
        config=True
    )
    workspace = Unicode("/home/jovyan", help="Where the owner's workspace volume is mounted in job pods.").tag(
        config=True
    )
    admin_groups = List(Unicode(), ["job-admins"], help="JupyterHub groups whose members see all jobs.").tag(
        config=True
    )
    storage_class_override = Unicode(
        "", help="StorageClass for workspace volumes the service creates, instead of the catalog's."
    ).tag(config=True)
    smtp_host = Unicode("", help="SMTP server for failure e-mails; empty: no e-mail.").tag(config=True)
    smtp_port = Integer(25, help="SMTP port.").tag(config=True)
    smtp_from = Unicode("moonhub@localhost", help="Sender address of notification e-mails.").tag(config=True)
    reconcile_interval = Integer(
        300, help="Seconds between reconciliations with Kubernetes and the hub's users (also done at start)."
    ).tag(config=True)
    sync_interval = Integer(2, help="Seconds between reading the Jobs' state from Kubernetes.").tag(config=True)

    aliases = {
        "namespace": "JobsServiceApp.namespace",
        "catalog": "JobsServiceApp.catalog_path",
        "db-url": "JobsServiceApp.db_url",
        "kubeconfig": "JobsServiceApp.kubeconfig",
    }

    @default("catalog_path")
    def _default_catalog(self) -> str:
        return os.environ.get("MOONHUB_CATALOG", str(Path(__file__).parents[1] / "spawner_ext/examples/catalog.yaml"))

    @default("db_url")
    def _default_db(self) -> str:
        return os.environ.get("MOONHUB_JOBS_DB", "sqlite:///moonhub-jobs.sqlite")

    @default("storage_class_override")
    def _default_storage_class(self) -> str:
        return os.environ.get("MOONHUB_STORAGE_CLASS_OVERRIDE", "")

    @default("kubeconfig")
    def _default_kubeconfig(self) -> str:
        return os.environ.get("MOONHUB_JOBS_KUBECONFIG", "")

    async def serve(self) -> None:
        if self.kubeconfig:
            api = await kconfig.new_client_from_config(self.kubeconfig)
        else:
            kconfig.load_incluster_config()
            from kubernetes_asyncio import client

            api = client.ApiClient()
        jobs = JobsService(
            open_db(self.db_url),
            CatalogStore(Path(self.catalog_path)),
            api,
            self.namespace,
            self.workspace,
            self.storage_class_override,
            SmtpSettings(
                host=self.smtp_host or os.environ.get("MOONHUB_SMTP_HOST", ""),
                port=int(os.environ.get("MOONHUB_SMTP_PORT", self.smtp_port)),
                sender=self.smtp_from,
                # credentials only from the environment, never from config files or job specs
                username=os.environ.get("MOONHUB_SMTP_USERNAME", ""),
                password=os.environ.get("MOONHUB_SMTP_PASSWORD", ""),
            ),
        )
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/jobs/")
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8090"))
        app = web.Application(
            routes(prefix),
            jobs=jobs,
            admin_groups=list(self.admin_groups),
            cookie_secret=os.urandom(32),
            xsrf_cookies=False,
        )
        await jobs.reconcile(await self.hub_users())
        app.listen(url.port or 80, url.hostname or "")
        self.log.info("jobs service on %s (prefix %s), namespace %s", url.geturl(), prefix, self.namespace)
        await jobs.sync_forever(self.sync_interval, self.reconcile_interval, self.hub_users)

    async def hub_users(self) -> set[str] | None:
        """The hub's user names (None when the hub can not be asked: then nobody is removed)."""
        api = os.environ.get("JUPYTERHUB_API_URL")
        token = os.environ.get("JUPYTERHUB_API_TOKEN")
        if not api or not token:
            return None
        try:
            resp = await AsyncHTTPClient().fetch(
                f"{api}/users?limit=10000", headers={"Authorization": f"token {token}"}
            )
        except Exception as e:
            self.log.warning("could not list the hub's users (%s); keeping every owner's jobs", e)
            return None
        data = json.loads(resp.body)
        items = data["items"] if isinstance(data, dict) else data
        return {u["name"] for u in items}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[jobs %(asctime)s %(levelname)s] %(message)s")
    app = JobsServiceApp()
    app.initialize()
    asyncio.run(app.serve())
