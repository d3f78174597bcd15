"""The platform config document: parsed, validated, and errors that name the key.

A config is YAML. Unknown keys and wrong types stop the hub at start with a message such
as ``platform.yaml: spawner.storage.capacty: unknown key (did you mean 'capacity'?)``.
Secrets never live in the document: they come from files or the environment.

Every MoonHub process reads this one document: the hub (``jupyterhub_config.py``), and the
services it starts (the jobs service, the GPU reclaim service), which it points at the
same file with ``$MOONHUB_CONFIG``. Settings a service needs (the users' namespace, the
catalog, SMTP) are read from here, never passed along in other variables.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from kubernetes.utils.quantity import parse_quantity

from .catalog import EXAMPLE as EXAMPLE_CATALOG
from .numbers import is_whole
from .queue_objects import DEFAULT_PREFIX as QUEUE_PREFIX
from .typed import DocumentError, load_file

#: the environment variable naming the platform document of every MoonHub process
CONFIG_ENV = "MOONHUB_CONFIG"
#: the document read when ``$MOONHUB_CONFIG`` is not set: the local example
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "hub_config" / "examples" / "local.yaml"


class ConfigError(DocumentError):
    """A bad platform config; the message names the file and the key."""


@dataclass(frozen=True)
class HubSection:
    #: where browsers reach MoonHub (the proxy's public address)
    public_url: str = "http://127.0.0.1:8000"
    #: serve each user's server, and each service, from a host name of its own under this
    #: one (``https://moonhub.example.com`` -> ``https://ada.moonhub.example.com``), so a
    #: page one user serves can not read or act on another user's server, the jobs service or
    #: the hub. Needs wildcard DNS and, with https, a wildcard certificate; browsers resolve
    #: names under ``localhost`` themselves. Empty: one origin for everything (acceptable
    #: only where every user trusts every other, e.g. one developer's machine)
    subdomain_host: str = ""
    #: where the hub API listens; user pods call it
    api_url: str = "http://127.0.0.1:8081"
    #: where user pods and services reach the hub API when that is not ``api_url`` (e.g. the
    #: hub's Service name when it listens on all addresses); empty: ``api_url``
    connect_url: str = ""
    #: the proxy's REST API
    proxy_api_url: str = "http://127.0.0.1:8001"
    #: folder for the hub database, cookie secret and proxy token (relative: to the config file)
    state_dir: str = "."
    #: the configurable-http-proxy executable (relative: to the repository)
    proxy_command: str = "node_modules/.bin/configurable-http-proxy"
    #: ``false``: the proxy runs on its own (e.g. its own Deployment); the hub reaches it at
    #: ``proxy_api_url`` with the token in ``$CONFIGPROXY_AUTH_TOKEN``
    start_proxy: bool = True
    #: seconds between the hub's reads of the proxy's routes: users' activity, and routes
    #: missing (e.g. after a proxy that runs on its own restarted) are added again
    route_check_interval: int = 300
    #: stop every user server when the hub stops; ``false`` keeps them running across hub
    #: restarts and upgrades (the hub finds them again at start)
    cleanup_servers: bool = True
    #: named servers each user may run besides the default one (0: named servers off)
    named_servers: int = 0
    #: the hub's database URL comes from this environment variable when it is set
    #: (e.g. ``postgresql+psycopg://...``); otherwise SQLite in ``state_dir``
    db_url_env: str = "MOONHUB_HUB_DB_URL"


@dataclass(frozen=True)
class DevelopmentLogin:
    #: file holding the shared development password (created with a random one when missing)
    password_file: str = "dev-password"


@dataclass(frozen=True)
class OAuthSection:
    """What every OAuth provider (OIDC, GitLab, GitHub) needs. The client secret is never
    in the document: it comes from ``client_secret_file`` or ``$MOONHUB_OAUTH_CLIENT_SECRET``."""

    client_id: str = ""
    #: file holding the OAuth client secret (relative: to this config file)
    client_secret_file: str = ""
    #: default: <hub.public_url>/hub/oauth_callback
    callback_url: str = ""
    #: user names let in whatever their groups
    allowed_users: list[str] = field(default_factory=list)
    #: OIDC: values of the groups claim; GitLab: group paths; GitHub: organisations or org:team
    allowed_groups: list[str] = field(default_factory=list)
    #: members of these groups are hub admins
    admin_groups: list[str] = field(default_factory=list)
    #: keep JupyterHub's groups equal to the provider's at every login (the catalog's
    #: entitlements and GPU quotas follow them)
    manage_groups: bool = True
    #: extra OAuth scopes; the provider's defaults are always asked for
    scopes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OIDCSection:
    #: the issuer; endpoints come from <issuer>/.well-known/openid-configuration
    issuer: str = ""
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    #: refuse users whose ``email_verified`` claim is not true
    require_verified_email: bool = True


@dataclass(frozen=True)
class GitLabSection:
    url: str = "https://gitlab.com"


@dataclass(frozen=True)
class GitHubSection:
    url: str = "https://github.com"


@dataclass(frozen=True)
class AuthSection:
    #: ``oidc`` (e.g. Keycloak), ``gitlab``, ``github``; ``development`` is a local login
    #: (any name + a shared password) that is on only when named here
    type: Literal["oidc", "gitlab", "github", "development"] = "oidc"
    admin_users: list[str] = field(default_factory=list)
    development: DevelopmentLogin = field(default_factory=DevelopmentLogin)
    oauth: OAuthSection = field(default_factory=OAuthSection)
    oidc: OIDCSection = field(default_factory=OIDCSection)
    gitlab: GitLabSection = field(default_factory=GitLabSection)
    github: GitHubSection = field(default_factory=GitHubSection)


@dataclass(frozen=True)
class SpawnerSection:
    namespace: str = "moonhub-users"
    #: the catalog document (relative: to this config file); empty: the example catalog
    catalog: str = ""
    #: where the catalog is edited when it is not by the admin console (e.g. "the Helm
    #: release's `catalog` value"); set: the admin console shows it read-only and says so
    catalog_managed_by: str = ""
    #: ``namespace/name`` of the ConfigMap (key ``catalog.yaml``) the admin console writes
    #: the catalog to, through the Kubernetes API, when ``catalog`` is where that ConfigMap is
    #: mounted (a Helm install: the pods' mounts follow it); empty: the console writes the
    #: catalog file itself
    catalog_configmap: str = ""
    #: the folder of the catalog's edit history (relative: to this config file); empty: a
    #: ``.catalog-history`` folder next to the catalog file
    catalog_history: str = ""
    #: registries (``host`` or ``host:port``) the admin console asks over plain HTTP when it
    #: checks an image an admin offers (loopback addresses always are); every other: HTTPS
    insecure_registries: list[str] = field(default_factory=list)
    #: a StorageClass to use instead of the catalog's, for clusters that lack it
    storage_class_override: str = ""
    #: the progress document of images still being built (relative: to this config file;
    #: the local platform's `up` builds the framework images after the hub starts): an
    #: environment whose image is not ready says how far it is on the spawn form and can not
    #: be picked yet (moonhub_core/image_builds.py). Empty: every image is taken to be there
    image_builds: str = ""
    #: the prefix of this MoonHub's Kueue objects (cluster-wide names): give each MoonHub
    #: that shares a cluster its own
    queue_prefix: str = QUEUE_PREFIX
    start_timeout: int = 300
    #: seconds before a server pod of this hub that no server of it stands for (its stop
    #: failed) is taken for an orphan and removed (spawner_ext/orphans.py); 0: never
    orphan_pod_grace: int = 600
    #: seconds a server's pod has to finish once told to stop (its termination grace
    #: period): open documents are written to their files and kernels shut down in it
    #: (docs/collaboration.md); Kubernetes kills what is left after it
    stop_grace: int = 15
    #: ignore configuration and Jupyter data under the user's home (their workspace):
    #: ~/.jupyter config files, and also the kernels and lab extensions users register
    #: there (``ipykernel install --user``). With per-user host names (hub.subdomain_host)
    #: a user's own configuration can only affect their own server, so the default keeps
    #: workspace kernels working
    disable_user_config: bool = False
    #: the PyPI-style simple index users' servers and job runs install packages from (their
    #: ``pip``'s index: the platform's caching proxy, e.g. the chart's ``packageIndex``);
    #: empty: pods reach no index, and pip says it can not connect
    package_index: str = ""


@dataclass(frozen=True)
class JobsLimits:
    """What one user may hold in the jobs service (a refusal names the limit)."""

    #: job definitions per user
    jobs_per_user: int = 50
    #: notebook versions kept per job; older ones are pruned unless a run still uses them
    versions_per_job: int = 10
    #: runs of one user queued or running at once that "run now" may add to
    active_runs_per_user: int = 10
    #: bytes of a notebook as sent to be scheduled (with its outputs; they are stripped
    #: before it is stored)
    notebook_bytes: int = 128 * 1024 * 1024
    #: bytes all of one user's stored notebook versions may take (without outputs)
    snapshot_bytes_per_user: int = 2 * 1024 * 1024 * 1024
    #: runs one back-fill request may start (and one user may have waiting to start)
    backfill_runs: int = 100
    #: secrets one user may keep
    secrets_per_user: int = 50
    #: bytes one run may keep with it: its executed notebook and the files of its run folder
    run_output_bytes: int = 256 * 1024 * 1024
    #: bytes all of one user's runs may keep with them together (the oldest go with their
    #: runs as history is trimmed); past it a run's outputs are refused (413), the run is not
    output_bytes_per_user: int = 4 * 1024 * 1024 * 1024
    #: bytes all of one user's kept run logs may take together. A run's (and a pipeline task's)
    #: log is kept when it ends (its first 2 MiB, as the log route shows it), so it can be read
    #: after its Job and pod are gone; past this, the user's oldest kept logs go first
    kept_log_bytes_per_user: int = 256 * 1024 * 1024
    #: bytes of request bodies one user (with their runs) may be sending to the service at
    #: once; past it, 429. Bodies are spooled to disk as they arrive, never held whole
    body_bytes_in_flight_per_user: int = 256 * 1024 * 1024
    #: the same for all callers together; past it, 503 (try again)
    body_bytes_in_flight: int = 1024 * 1024 * 1024


@dataclass(frozen=True)
class JobsSection:
    #: run the jobs service as a JupyterHub-managed service
    enabled: bool = False
    #: where the service listens (the hub proxies /services/jobs/ to it)
    url: str = "http://127.0.0.1:8090"
    #: JupyterHub groups whose members see and manage every user's jobs (hub admins always do)
    admin_groups: list[str] = field(default_factory=lambda: ["job-admins"])
    #: SMTP server for failure e-mails ("host:port"; credentials come from the environment)
    smtp: str = ""
    #: the sender address of notification e-mails
    smtp_from: str = "moonhub@localhost"
    #: ``true``: the hub starts the service; ``false``: it runs on its own (e.g. its own
    #: Deployment with its own Kubernetes identity) and authenticates with the token in
    #: ``$MOONHUB_JOBS_API_TOKEN``
    managed: bool = True
    #: seconds between the service's reconciliations with Kubernetes and the hub (missing
    #: CronJobs, entitlements checked again, departed users); also done at start
    reconcile_interval: int = 300
    #: seconds between the service's reads of the Jobs' state from Kubernetes (run tracking)
    sync_interval: int = 2
    #: seconds a job's owner must have been gone from the hub (the hub answers 404 for
    #: them) before their jobs and run history are removed
    departed_grace: int = 7 * 24 * 3600
    #: let job admins change other users' notebooks and run their jobs (code execution as
    #: that user); off: they may view, pause, resume, cancel and delete
    admins_may_edit: bool = False
    #: networks (CIDR) job webhooks may reach although they are not public (e.g. an internal
    #: chat relay); every other private, loopback, link-local or cluster address is refused
    webhook_allowed_networks: list[str] = field(default_factory=list)
    #: domains alert e-mails may go to through the SMTP server, besides the job owner's own
    #: address (when their user name is an e-mail address); empty: only that
    email_domains: list[str] = field(default_factory=list)
    #: alert e-mails one owner's jobs may send per hour
    emails_per_hour: int = 30
    #: webhooks one owner's jobs may send per hour (past it they are dropped and counted)
    webhooks_per_hour: int = 60
    limits: JobsLimits = field(default_factory=JobsLimits)


@dataclass(frozen=True)
class BuildsSection:
    """Images users build from their environments (docs/environment-images.md): rootless
    BuildKit in the cluster, one build pod each, pushed to the platform's registry under the
    user's name and checked before anyone may use them. Run by the jobs service."""

    #: users may build images from their environments (needs ``jobs.enabled`` and a registry)
    enabled: bool = False
    #: where build pods run: a namespace of their own (their pods need a user namespace,
    #: which Pod Security's "restricted" level refuses; the users' namespace keeps it)
    namespace: str = "moonhub-builds"
    #: the builder's image (images/image-builder: BuildKit, RootlessKit, skopeo)
    builder_image: str = ""
    #: the registry built images are pushed to and pulled from, as nodes name it (``host:port``)
    registry: str = ""
    #: how build pods reach that registry, when not by the same name (the local cluster:
    #: nodes pull from 127.0.0.1:5000, pods reach it on the node's address); empty: ``registry``
    builder_registry: str = ""
    #: where build pods push, when not ``builder_registry`` (the local cluster: a door of the
    #: same registry that takes pushes only with ``push_secret``'s login, beside a read-only
    #: one for the base's pull); empty: ``builder_registry``
    push_registry: str = ""
    #: registries build pods talk to over plain HTTP (the base image's and ``builder_registry``)
    plain_http_registries: list[str] = field(default_factory=list)
    #: ``namespace/name`` of a Secret (key ``config.json``, Docker's format) with the login the
    #: push uses: mounted only into the pod's push container, never where the build runs
    push_secret: str = ""
    #: repositories of built images: ``<registry>/<repository_prefix>/<user>/<environment>``
    repository_prefix: str = "moonhub-users"
    #: what one build may use: CPU (cores), memory and disk (Kubernetes quantities; the disk
    #: holds the base image unpacked, the new layers and the archive pushed)
    cpu: str = "2"
    memory: str = "4Gi"
    disk: str = "30Gi"
    #: seconds a build may take, its pull and push included
    timeout: int = 1800
    #: bytes of the built image (compressed, the base's layers included) at most
    max_image_bytes: int = 20 * 1024**3
    #: builds at once, all users together; more wait in turn
    at_once: int = 2
    #: one user's builds waiting or running at once (each user's run one at a time)
    queued_per_user: int = 3
    #: built images one user keeps (the oldest unused beyond it may be removed by the user)
    images_per_user: int = 20
    #: seconds from a user's removal of an image to its deletion from the registry (an
    #: admin's promotion in that time keeps it: the catalog's copies take a while to agree)
    removal_grace: int = 600

    @property
    def pull_host(self) -> str:
        """The registry as build pods reach it for the base's pull."""
        return self.builder_registry or self.registry

    @property
    def push_host(self) -> str:
        """The registry as build pods reach it for pushes (and a removed image's delete)."""
        return self.push_registry or self.pull_host


@dataclass(frozen=True)
class CullingSection:
    """jupyterhub-idle-culler plus MoonHub's GPU-aware reclaim (docs/hub.md, "Culling")."""

    enabled: bool = True
    #: seconds without activity before the idle culler stops a server
    idle_timeout: int = 3600
    #: seconds with every GPU at or below ``gpu_idle_threshold`` % before a GPU server is
    #: stopped, even with its browser tab open (0: never)
    gpu_idle_timeout: int = 1800
    gpu_idle_threshold: int = 0
    #: how often the GPU reclaim service reads GPU utilization
    gpu_sample_seconds: int = 15
    #: where GPU utilization per pod is read: NVIDIA DCGM exporters' ``/metrics`` (or a
    #: Prometheus ``/federate?match[]=DCGM_FI_DEV_GPU_UTIL``). Empty: GPU servers are never
    #: reclaimed (a user's own server is not asked: it could lie)
    gpu_metrics_urls: list[str] = field(default_factory=list)
    #: users are warned in JupyterLab this long before a stop
    warn_before: int = 600
    #: seconds between checks
    every: int = 60
    #: where the GPU reclaim service listens (user servers pull their warnings from it)
    url: str = "http://127.0.0.1:8091"
    #: where user servers and the proxy reach it when that is not ``url`` (e.g. the hub's
    #: Service name when it listens on all addresses); empty: ``url``
    connect_url: str = ""
    #: seconds between a server's reads of its warnings
    notices_seconds: int = 30


@dataclass(frozen=True)
class MetricsSection:
    """What Prometheus may read of the hub and the jobs service (docs/observability.md)."""

    #: the file holding the token Prometheus reads ``/hub/metrics`` and the jobs service's
    #: ``/metrics`` with: the hub registers it as the service ``metrics-scraper``, whose only
    #: scopes are ``read:metrics`` and reaching the jobs service (the chart mounts its
    #: ``monitoring`` Secret here). Empty: a token kept in hub.state_dir
    #: (``metrics-scraper.token``, made on first start)
    scraper_token_file: str = ""
    #: the Prometheus the jobs service asks, as each run ends, for what the run's pod used
    #: (memory and CPU over the run, against its limits; kept with the run). It must scrape
    #: the kubelets' cAdvisor. Empty: runs keep no such figures
    prometheus_url: str = ""


@dataclass(frozen=True)
class PlatformConfig:
    hub: HubSection = field(default_factory=HubSection)
    auth: AuthSection = field(default_factory=AuthSection)
    spawner: SpawnerSection = field(default_factory=SpawnerSection)
    jobs: JobsSection = field(default_factory=JobsSection)
    culling: CullingSection = field(default_factory=CullingSection)
    builds: BuildsSection = field(default_factory=BuildsSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)


#: keys that would put a secret into the document, and where the secret goes instead
SECRET_KEYS = {
    ("auth", "oauth", "client_secret"): "auth.oauth.client_secret_file or $MOONHUB_OAUTH_CLIENT_SECRET",
    ("hub", "cookie_secret"): "$JPY_COOKIE_SECRET or the file in hub.state_dir",
    ("hub", "db_url"): "the environment variable hub.db_url_env names",
}


def _refuse_secrets(data: Any) -> None:
    for path, instead in SECRET_KEYS.items():
        node = data
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            raise DocumentError(f"{'.'.join(path)}: secrets never go in this document; use {instead}")


def _check_builds(cfg: PlatformConfig) -> None:
    b = cfg.builds
    for key in ("cpu", "memory", "disk"):
        try:
            if parse_quantity(getattr(b, key)) <= 0:
                raise ValueError
        except ValueError:
            raise DocumentError(f"builds.{key}: {getattr(b, key)!r} is not a positive quantity (e.g. 2, 4Gi)") from None
    if b.removal_grace < 0:
        raise DocumentError("builds.removal_grace: must be 0 or more seconds")
    for key in ("timeout", "max_image_bytes", "at_once", "queued_per_user", "images_per_user"):
        if getattr(b, key) < 1:
            raise DocumentError(f"builds.{key}: must be at least 1")
    if not b.enabled:
        return
    if not cfg.jobs.enabled:
        raise DocumentError("builds.enabled: needs jobs.enabled (the jobs service runs the builds)")
    for key in ("builder_image", "registry"):
        if not getattr(b, key):
            raise DocumentError(f"builds.{key}: needed when builds.enabled is true")
    if "/" in b.registry or "/" in b.builder_registry or "/" in b.push_registry:
        raise DocumentError("builds.registry, builder_registry, push_registry: a host or host:port, no path")
    if b.push_secret and b.push_secret.count("/") != 1:
        raise DocumentError(f"builds.push_secret: {b.push_secret!r} is not namespace/name")


def check_consistency(cfg: PlatformConfig) -> None:
    """What the types alone can not say: settings each auth type needs, sane timeouts."""
    if cfg.hub.route_check_interval < 1:
        raise DocumentError("hub.route_check_interval: must be at least 1 (second)")
    sub = cfg.hub.subdomain_host
    if sub and (not sub.startswith(("http://", "https://")) or urlparse(sub).path not in ("", "/")):
        raise DocumentError("hub.subdomain_host: a scheme and host (and port), e.g. https://moonhub.example.com")
    _check_builds(cfg)
    cu = cfg.culling
    for key in ("idle_timeout", "gpu_idle_timeout", "warn_before", "every", "gpu_sample_seconds", "notices_seconds"):
        if getattr(cu, key) < 0:
            raise DocumentError(f"culling.{key}: must not be negative")
    if cu.enabled and cu.every < 1:
        raise DocumentError("culling.every: must be at least 1 (second)")
    if cu.enabled and (cu.gpu_sample_seconds < 1 or cu.notices_seconds < 1):
        raise DocumentError("culling.gpu_sample_seconds, culling.notices_seconds: must be at least 1 (second)")
    for url in cu.gpu_metrics_urls:
        if not url.startswith(("http://", "https://")):
            raise DocumentError(f"culling.gpu_metrics_urls: {url!r} is not an http(s) URL")
    for key in ("idle_timeout", "gpu_idle_timeout"):
        if getattr(cu, key) and cu.warn_before >= getattr(cu, key):
            raise DocumentError(f"culling.warn_before: must be shorter than culling.{key}")
    if not 0 <= cu.gpu_idle_threshold <= 100:
        raise DocumentError("culling.gpu_idle_threshold: a percentage, 0-100")
    prom = cfg.metrics.prometheus_url
    if prom and (not prom.startswith(("http://", "https://")) or urlparse(prom).username or urlparse(prom).password):
        raise DocumentError(f"metrics.prometheus_url: {prom!r} is not an http(s) URL without a user or password")
    j = cfg.jobs
    if j.departed_grace < 0:
        raise DocumentError("jobs.departed_grace: must not be negative")
    if j.reconcile_interval < 1:
        raise DocumentError("jobs.reconcile_interval: must be at least 1 (second)")
    if j.sync_interval < 1:
        raise DocumentError("jobs.sync_interval: must be at least 1 (second)")
    for key in ("jobs_per_user", "versions_per_job", "active_runs_per_user"):
        if getattr(j.limits, key) < 1:
            raise DocumentError(f"jobs.limits.{key}: must be at least 1")
    if j.smtp and (not smtp_address(cfg)[0] or (not is_whole(j.smtp.rpartition(":")[2]) and ":" in j.smtp)):
        raise DocumentError(f"jobs.smtp: {j.smtp!r} is not host:port (e.g. mail.example.com:25)")
    if cfg.spawner.orphan_pod_grace != 0 and cfg.spawner.orphan_pod_grace < 10:
        raise DocumentError("spawner.orphan_pod_grace: 0 (never remove) or at least 10 (seconds)")
    if not 1 <= cfg.spawner.stop_grace <= 600:
        raise DocumentError("spawner.stop_grace: between 1 and 600 (seconds)")
    index = cfg.spawner.package_index
    if index and (not index.startswith(("http://", "https://")) or not urlparse(index).hostname):
        raise DocumentError(
            f"spawner.package_index: {index!r} is not an http(s) URL (e.g. http://pypi-proxy:3141/index/)"
        )
    if index and (urlparse(index).username or urlparse(index).password):
        # every user's pod gets it (PIP_INDEX_URL), where its user reads it
        raise DocumentError(
            "spawner.package_index: carries a credential, which every user's pod would hold; point it at "
            "the platform's proxy (the chart's packageIndex) and give the credential to the proxy's upstream"
        )
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?", cfg.spawner.queue_prefix):
        raise DocumentError(
            f"spawner.queue_prefix: {cfg.spawner.queue_prefix!r} must be 1-20 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (it starts Kubernetes names)"
        )
    for net in j.webhook_allowed_networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            msg = f"jobs.webhook_allowed_networks: {net!r} is not a network (e.g. 10.20.0.0/16)"
            raise DocumentError(msg) from None
    a = cfg.auth
    if a.type == "development":
        return
    if not a.oauth.client_id:
        raise DocumentError(f"auth.oauth.client_id: required for auth.type {a.type}")
    if a.type == "oidc" and not a.oidc.issuer.startswith(("https://", "http://")):
        raise DocumentError("auth.oidc.issuer: required for auth.type oidc (an http(s) URL)")
    if not (a.oauth.allowed_users or a.oauth.allowed_groups or a.admin_users or a.oauth.admin_groups):
        raise DocumentError("auth.oauth.allowed_groups: nobody could log in; name allowed_groups or allowed_users")


def load(path: Path) -> PlatformConfig:
    """Read and validate the platform config at ``path``."""
    try:
        data = yaml.safe_load(path.read_text()) if path.exists() else None
        _refuse_secrets(data)
        cfg = load_file(PlatformConfig, path)
        check_consistency(cfg)
        return cfg
    except yaml.YAMLError:
        try:
            return load_file(PlatformConfig, path)  # names the YAML error with the file
        except DocumentError as e:
            raise ConfigError(str(e)) from None
    except DocumentError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(f"{path}: ") else f"{path}: {msg}") from None


def config_path() -> Path:
    """The platform document of this process: ``$MOONHUB_CONFIG``, else the local example."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG).resolve()


def catalog_path(cfg: PlatformConfig, document: Path) -> Path:
    """The catalog every component reads: ``spawner.catalog`` (relative: to the folder of
    ``document``, the platform document's path), else the example catalog."""
    if cfg.spawner.catalog:
        return (document.parent / cfg.spawner.catalog).resolve()
    return EXAMPLE_CATALOG


def image_builds_path(cfg: PlatformConfig, document: Path) -> str:
    """``spawner.image_builds`` as an absolute path ("" when not set)."""
    return str((document.parent / cfg.spawner.image_builds).resolve()) if cfg.spawner.image_builds else ""


#: the metrics scraper's token when metrics.scraper_token_file is not set (in hub.state_dir)
SCRAPER_TOKEN_FILE = "metrics-scraper.token"


def scraper_token_path(cfg: PlatformConfig, document: Path) -> Path:
    """The file holding the token Prometheus scrapes the hub and the jobs service with:
    ``metrics.scraper_token_file`` (relative: to the document's folder), else one kept in
    ``hub.state_dir``."""
    if cfg.metrics.scraper_token_file:
        return (document.parent / cfg.metrics.scraper_token_file).resolve()
    return (document.parent / cfg.hub.state_dir / SCRAPER_TOKEN_FILE).resolve()


#: the hub's tornado setting that hands the parts in its process the :class:`Document`
HUB_SETTING = "moonhub_platform"


@dataclass(frozen=True)
class Document:
    """A loaded platform document and where it is (relative paths in it are relative to
    its folder): what the hub hands the parts it runs in its own process (the console)."""

    config: PlatformConfig
    path: Path

    @property
    def catalog(self) -> Path:
        return catalog_path(self.config, self.path)

    @property
    def catalog_history(self) -> Path:
        """Where the admin console keeps the catalog's edit history."""
        if self.config.spawner.catalog_history:
            return (self.path.parent / self.config.spawner.catalog_history).resolve()
        return self.catalog.parent / ".catalog-history"


def smtp_address(cfg: PlatformConfig) -> tuple[str, int]:
    """``jobs.smtp`` ("host:port", or "host" for port 25) as (host, port); ("", 25): no e-mail."""
    host, _, port = cfg.jobs.smtp.rpartition(":") if ":" in cfg.jobs.smtp else (cfg.jobs.smtp, "", "25")
    return host, int(port) if is_whole(port) else 25
