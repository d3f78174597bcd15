"""Everything the jobs service is told, in one typed value built from the platform document.

The document (:mod:`moonhub_core.platform`) declares each setting once, with its default and
help; :func:`from_platform` maps the sections the service reads (``jobs``, and of
``spawner`` the namespace, catalog, storage class and queue prefix) and the few facts of
where it runs (its database, snapshot folder, Kubernetes identity: the environment the hub
gives it) onto :class:`Settings`. Nothing here has a default of its own. A test or a
deployment changes a value by writing another document or with ``dataclasses.replace``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from moonhub_core import platform
from moonhub_core.platform import BuildsSection, PlatformConfig

from .limits import Limits
from .notify import EmailPolicy, SmtpSettings, WebhookPolicy

#: the environment the hub (or a Deployment) gives the service: where its state lives
DB_ENV = "MOONHUB_JOBS_DB"
SNAPSHOTS_ENV = "MOONHUB_JOBS_SNAPSHOTS"
KUBECONFIG_ENV = "MOONHUB_JOBS_KUBECONFIG"
#: SMTP credentials: only from the environment, never from documents or job specs
SMTP_USERNAME_ENV = "MOONHUB_SMTP_USERNAME"
SMTP_PASSWORD_ENV = "MOONHUB_SMTP_PASSWORD"
#: the URL prefix JupyterHub serves the service under
PREFIX_ENV = "JUPYTERHUB_SERVICE_PREFIX"
DEFAULT_PREFIX = "/services/jobs/"


@dataclass(frozen=True)
class Settings:
    #: where job pods, CronJobs, snapshots and workspace volumes live (``spawner.namespace``)
    namespace: str
    #: the catalog jobs are checked against (``spawner.catalog``)
    catalog_path: Path
    #: StorageClass of workspaces the service makes instead of the catalog's
    storage_class_override: str
    #: the prefix of this MoonHub's Kueue objects (``spawner.queue_prefix``)
    queue_prefix: str
    #: where runs' pip installs from (``spawner.package_index``)
    package_index: str
    #: the Prometheus asked for what each run used (``metrics.prometheus_url``; "": none)
    prometheus_url: str
    smtp: SmtpSettings
    admin_groups: tuple[str, ...]
    limits: Limits
    departed_grace: datetime.timedelta
    admins_may_edit: bool
    webhooks: WebhookPolicy
    emails: EmailPolicy
    #: seconds between reconciliations, and between reads of the Jobs' state
    reconcile_interval: int
    sync_interval: int
    #: where runs' pods reach the launch routes (``jobs.url``, the prefix, ``launch``)
    launch_url: str
    #: the snapshot store's folder, the database URL, the service's own kubeconfig ("":
    #: in-cluster credentials)
    snapshot_dir: Path
    db_url: str
    kubeconfig: str
    #: images built from users' environments (``builds``, read as declared)
    builds: BuildsSection


def from_platform(cfg: PlatformConfig, document: Path, env: Mapping[str, str]) -> Settings:
    """The service's settings from the document at ``document`` and its environment. Pure."""
    j, sp = cfg.jobs, cfg.spawner
    host, port = platform.smtp_address(cfg)
    prefix = env.get(PREFIX_ENV) or DEFAULT_PREFIX
    return Settings(
        namespace=sp.namespace,
        catalog_path=platform.catalog_path(cfg, document),
        storage_class_override=sp.storage_class_override,
        queue_prefix=sp.queue_prefix,
        package_index=sp.package_index,
        prometheus_url=cfg.metrics.prometheus_url,
        smtp=SmtpSettings(
            host=host,
            port=port,
            sender=j.smtp_from,
            username=env.get(SMTP_USERNAME_ENV, ""),
            password=env.get(SMTP_PASSWORD_ENV, ""),
        ),
        admin_groups=tuple(j.admin_groups),
        limits=Limits(**asdict(j.limits)),
        departed_grace=datetime.timedelta(seconds=j.departed_grace),
        admins_may_edit=j.admins_may_edit,
        webhooks=WebhookPolicy(tuple(j.webhook_allowed_networks), j.webhooks_per_hour),
        emails=EmailPolicy(tuple(j.email_domains), j.emails_per_hour),
        reconcile_interval=j.reconcile_interval,
        sync_interval=j.sync_interval,
        launch_url=f"{j.url.rstrip('/')}{prefix}launch",
        snapshot_dir=Path(env.get(SNAPSHOTS_ENV) or "moonhub-job-snapshots"),
        db_url=env.get(DB_ENV) or "sqlite:///moonhub-jobs.sqlite",
        kubeconfig=env.get(KUBECONFIG_ENV, ""),
        builds=cfg.builds,
    )


def for_tests(document: Path | None = None, **changes: object) -> Settings:
    """The settings of ``document`` (default: the local example) with ``changes``: what tests
    and benchmarks run a service with, the document's defaults and all."""
    import dataclasses

    path = (document or platform.DEFAULT_CONFIG).resolve()
    return dataclasses.replace(from_platform(platform.load(path), path, {}), **changes)  # type: ignore[arg-type]
