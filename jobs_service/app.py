"""``python -m jobs_service``: the jobs service as a JupyterHub-managed service."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth
from kubernetes_asyncio import config as kconfig
from tornado import web
from traitlets import Bool, Integer, List, Unicode, default
from traitlets.config import Application

from hubclient.users import HubUsers
from moonhub_core import platform, server_claim
from moonhub_core.catalog import shared_store
from moonhub_core.platform import JobsLimits, JobsSection

from . import bodies, launch, snapshots
from .api import routes
from .db import open_db
from .limits import Limits
from .notify import EmailPolicy, SmtpSettings, WebhookPolicy
from .service import JobsService


class JobsServiceApp(Application):
    name = "moonhub-jobs"
    description = "MoonHub's jobs service: notebooks as scheduled Kubernetes jobs."

    # Every setting below defaults to the platform document's (``platform``): the hub and
    # this service read one document. A value given to the service directly wins.
    namespace = Unicode(
        "moonhub-users", help="The namespace job pods run in (the users' namespace; spawner.namespace)."
    ).tag(config=True)
    catalog_path = Unicode(help="The catalog the spawner uses; jobs are validated against it (spawner.catalog).").tag(
        config=True
    )
    db_url = Unicode(help="SQLAlchemy URL of the run history, e.g. postgresql://... ").tag(config=True)
    kubeconfig = Unicode("", help="Kubeconfig of the service's own identity; empty: in-cluster credentials.").tag(
        config=True
    )
    admin_groups = List(Unicode(), ["job-admins"], help="JupyterHub groups whose members see all jobs.").tag(
        config=True
    )
    storage_class_override = Unicode(
        "",
        help="StorageClass for workspace volumes the service creates, instead of the catalog's "
        "(spawner.storage_class_override).",
    ).tag(config=True)
    queue_prefix = Unicode("moonhub", help="The prefix of this MoonHub's Kueue objects (spawner.queue_prefix).").tag(
        config=True
    )
    smtp_host = Unicode("", help="SMTP server for failure e-mails; empty: no e-mail (jobs.smtp).").tag(config=True)
    smtp_port = Integer(25, help="SMTP port (jobs.smtp).").tag(config=True)
    smtp_from = Unicode("moonhub@localhost", help="Sender address of notification e-mails.").tag(config=True)
    reconcile_interval = Integer(
        300, help="Seconds between reconciliations with Kubernetes and the hub's users (also done at start)."
    ).tag(config=True)
    sync_interval = Integer(2, help="Seconds between reading the Jobs' state from Kubernetes.").tag(config=True)
    departed_grace = Integer(
        7 * 24 * 3600,
        help="Seconds a job's owner must have been gone from the hub (the hub answers 404 for them) "
        "before their jobs and run history are removed.",
    ).tag(config=True)
    admins_may_edit = Bool(
        False,
        help="Let job admins change other users' notebooks and run their jobs (code execution as that user, "
        "with their workspace). Off: job admins may view, pause, resume, cancel and delete.",
    ).tag(config=True)
    webhook_allowed_networks = List(
        Unicode(),
        [],
        help="Networks (CIDR) that job webhooks may reach although they are not public, e.g. an internal chat relay.",
    ).tag(config=True)
    email_domains = List(
        Unicode(),
        [],
        help="Domains alert e-mails may go to besides the job owner's own address (when their user name is one).",
    ).tag(config=True)
    emails_per_hour = Integer(30, help="Alert e-mails one owner's jobs may send per hour.").tag(config=True)
    max_jobs_per_user = Integer(Limits.jobs_per_user, help="Job definitions one user may have.").tag(config=True)
    max_versions_per_job = Integer(
        Limits.versions_per_job, help="Notebook versions kept per job (older ones are pruned)."
    ).tag(config=True)
    max_active_runs_per_user = Integer(
        Limits.active_runs_per_user, help="Runs of one user queued or running at once that 'run now' may add to."
    ).tag(config=True)

    snapshot_dir = Unicode(
        help="Folder of the snapshot store: every job's notebook versions, written once (keep it on the "
        "service's persistent volume). Default: $MOONHUB_JOBS_SNAPSHOTS, else ./moonhub-job-snapshots.",
    ).tag(config=True)
    launch_url = Unicode(
        help="Where runs' pods reach this service's launch routes (their notebook and parameters). "
        "Default: jobs.url of the platform document, then the service prefix and 'launch'.",
    ).tag(config=True)

    platform = Unicode(
        help="The platform document (platform.yaml) this service takes its settings from: the hub and the "
        "service read one document. Default: $MOONHUB_CONFIG, else the local example.",
    ).tag(config=True)

    #: jobs.limits of the platform document (those without an option above)
    platform_limits = JobsLimits()
    #: jobs.webhooks_per_hour of the platform document
    webhooks_per_hour = JobsSection.webhooks_per_hour

    aliases = {
        "namespace": "JobsServiceApp.namespace",
        "catalog": "JobsServiceApp.catalog_path",
        "db-url": "JobsServiceApp.db_url",
        "kubeconfig": "JobsServiceApp.kubeconfig",
    }

    @default("platform")
    def _default_platform(self) -> str:
        return str(platform.config_path())

    def apply_platform(self) -> None:
        """Settings from the platform document (settings given to this service directly win)."""
        path = Path(self.platform).resolve()
        cfg = platform.load(path)
        j = cfg.jobs
        given = self.config.get("JobsServiceApp", {})
        smtp_host, smtp_port = platform.smtp_address(cfg)
        values = {
            "namespace": cfg.spawner.namespace,
            "catalog_path": str(platform.catalog_path(cfg, path)),
            "storage_class_override": cfg.spawner.storage_class_override,
            "queue_prefix": cfg.spawner.queue_prefix,
            "smtp_host": smtp_host,
            "smtp_port": smtp_port,
            "admin_groups": j.admin_groups,
            "departed_grace": j.departed_grace,
            "reconcile_interval": j.reconcile_interval,
            "admins_may_edit": j.admins_may_edit,
            "webhook_allowed_networks": j.webhook_allowed_networks,
            "email_domains": j.email_domains,
            "emails_per_hour": j.emails_per_hour,
            "max_jobs_per_user": j.limits.jobs_per_user,
            "max_versions_per_job": j.limits.versions_per_job,
            "max_active_runs_per_user": j.limits.active_runs_per_user,
        }
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/jobs/")
        values["launch_url"] = f"{j.url.rstrip('/')}{prefix}launch"
        for name, value in values.items():
            if name not in given:
                setattr(self, name, value)
        # the settings the service has no option of its own for
        self.platform_limits = j.limits
        self.webhooks_per_hour = j.webhooks_per_hour

    @default("db_url")
    def _default_db(self) -> str:
        return os.environ.get("MOONHUB_JOBS_DB", "sqlite:///moonhub-jobs.sqlite")

    @default("snapshot_dir")
    def _default_snapshot_dir(self) -> str:
        return os.environ.get("MOONHUB_JOBS_SNAPSHOTS", "moonhub-job-snapshots")

    @default("kubeconfig")
    def _default_kubeconfig(self) -> str:
        return os.environ.get("MOONHUB_JOBS_KUBECONFIG", "")

    async def serve(self) -> None:
        self.apply_platform()
        if self.kubeconfig:
            api = await kconfig.new_client_from_config(self.kubeconfig)
        else:
            kconfig.load_incluster_config()
            from kubernetes_asyncio import client

            api = client.ApiClient()
        hub_api, hub_token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
        jobs = JobsService(
            open_db(self.db_url),
            shared_store(self.catalog_path),
            api,
            self.namespace,
            self.storage_class_override,
            SmtpSettings(
                host=self.smtp_host,
                port=self.smtp_port,
                sender=self.smtp_from,
                # credentials only from the environment, never from config files or job specs
                username=os.environ.get("MOONHUB_SMTP_USERNAME", ""),
                password=os.environ.get("MOONHUB_SMTP_PASSWORD", ""),
            ),
            hub=HubUsers(hub_api, hub_token) if hub_api and hub_token else None,
            admin_groups=list(self.admin_groups),
            limits=Limits(
                **{
                    **dataclasses.asdict(self.platform_limits),
                    "jobs_per_user": self.max_jobs_per_user,
                    "versions_per_job": self.max_versions_per_job,
                    "active_runs_per_user": self.max_active_runs_per_user,
                }
            ),
            departed_grace=datetime.timedelta(seconds=self.departed_grace),
            admins_may_edit=self.admins_may_edit,
            webhooks=WebhookPolicy(tuple(self.webhook_allowed_networks), self.webhooks_per_hour),
            emails=EmailPolicy(tuple(self.email_domains), self.emails_per_hour),
            queue_prefix=self.queue_prefix,
            snapshot_dir=Path(self.snapshot_dir),
            launch_url=self.launch_url,
        )
        # who a request comes from is cached a short while (JupyterHub's default is 5 min):
        # a user removed from the job-admin group stops seeing others' jobs soon after
        auth = HubOAuth.instance(cache_max_age=30)
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/jobs/")
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8090"))
        limits = jobs.ctx.limits
        app = web.Application(
            routes(prefix) + launch.routes(prefix),
            jobs=jobs,
            admin_groups=list(self.admin_groups),
            # checks the hub's claims as it starts servers (moonhub_core.server_claim)
            server_claim_key=server_claim.key_from_token(auth.api_token or ""),
            # request bodies being received, per caller and in all
            in_flight=bodies.InFlight(limits.body_bytes_in_flight_per_user, limits.body_bytes_in_flight),
            cookie_secret=os.urandom(32),
            xsrf_cookies=False,
        )
        await snapshots.move_into_store(jobs.ctx)
        await jobs.reconcile()
        # the server reads a small body of anyone; a route raises that for one request once
        # it knows the caller (jobs_service/bodies.py)
        app.listen(url.port or 80, url.hostname or "", max_body_size=bodies.SMALL_BODY)
        self.log.info(
            "jobs service on %s (prefix %s), namespace %s, settings from %s",
            url.geturl(),
            prefix,
            self.namespace,
            self.platform,
        )
        await jobs.sync_forever(self.sync_interval, self.reconcile_interval)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[jobs %(asctime)s %(levelname)s] %(message)s")
    app = JobsServiceApp()
    app.initialize()
    asyncio.run(app.serve())
