"""The hub-managed services and the roles they (and users) get: the jobs service, the
idle culler and the GPU reclaim service. Each gets exactly the scopes it needs."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

from moonhub_core import server_claim, sharing
from moonhub_core.platform import CONFIG_ENV, ConfigError, PlatformConfig, scraper_token_path

#: set by the local cluster's supervisor on the processes it starts (localcluster/supervisor.py)
SUPERVISED_ENV = "MOONHUB_SUPERVISED"

JOBS_TOKEN_ENV = "MOONHUB_JOBS_API_TOKEN"
#: the managed jobs service's API token, in the hub's state directory
JOBS_TOKEN_FILE = "jobs-service.token"

#: every user's role: their own things, and calling the jobs service (which decides what
#: each may see)
USER_ROLE = {"name": "user", "scopes": ["self", "access:services!service=jobs"]}
#: what a user's server token may do: report activity, be reached, call the jobs service
SERVER_TOKEN_SCOPES = [
    "users:activity!user",
    "access:servers!server",
    "access:services!service=jobs",
    # what the server is shared with: its guard gives full access only to whom a share says
    # (moonhub_lab.sharing; JupyterHub's logins do not carry a share's custom scopes)
    "read:shares!server",
]


def jobs(cfg: PlatformConfig, document: Path, state: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    service = {
        "name": "jobs",
        "url": cfg.jobs.url,
        "command": [sys.executable, "-m", "jobs_service"],
        "oauth_no_confirm": True,
        "environment": {
            # the service's own Kubernetes identity (local development; in-cluster otherwise)
            "MOONHUB_JOBS_KUBECONFIG": os.environ.get("MOONHUB_JOBS_KUBECONFIG", ""),
            "MOONHUB_JOBS_DB": os.environ.get("MOONHUB_JOBS_DB_URL") or f"sqlite:///{state / 'jobs.sqlite'}",
            # notebook versions, written once (outside etcd)
            "MOONHUB_JOBS_SNAPSHOTS": str(state / "job-snapshots"),
            # the document the hub read: the service takes its namespace, catalog, storage,
            # SMTP server, limits and policies from it
            CONFIG_ENV: str(document),
        },
    }
    if cfg.jobs.managed:
        # a token kept with the hub's state (not one made at each start): the hub signs its
        # server-secrets claims with a key derived from it (moonhub_core.server_claim)
        service["api_token"] = _kept_token(state / JOBS_TOKEN_FILE)
    else:
        # it runs on its own: the hub knows it by URL and the token it authenticates with
        token = os.environ.get(JOBS_TOKEN_ENV, "")
        if not token:
            raise ConfigError(f"jobs.managed: false needs the service's token in ${JOBS_TOKEN_ENV}")
        service = {"name": "jobs", "url": cfg.jobs.url, "api_token": token, "oauth_no_confirm": True}
    # the service reads users' groups (what their jobs may use: entitlements are checked
    # again at every run), who has left the hub (their jobs go after a grace period) and
    # when each user was created (which account of a name its jobs and secrets are:
    # jobs_service.accounts; only the full read:users scope has a user's ``created``)
    scopes = ["list:users", "read:users"]
    # it shares users' servers for them (jobs_service.shares): JupyterHub's sharing, which
    # grants only what the granter holds (access to servers, the write scope) and names
    # users and teams; it reads a team's members to check the owner is one
    scopes += ["shares", "read:users:name", "read:groups", "read:groups:name", sharing.WRITE_SCOPE]
    role = {"name": "moonhub-jobs", "scopes": scopes, "services": ["jobs"]}
    return service, [role]


def _kept_token(path: Path) -> str:
    """The token in ``path``, made (random, readable by the hub's user only) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def empty_folder(path: Path) -> Path:
    """``path``, an empty folder that nobody writes to (read and search only); anything found
    in it is an error, not something to start a service beside."""
    path.mkdir(mode=0o555, parents=True, exist_ok=True)
    path.chmod(0o555)
    left = sorted(p.name for p in path.iterdir())
    if left:
        raise ConfigError(f"{path} is the services' working folder and must be empty; it holds {left[:5]}")
    return path


def culling(cfg: PlatformConfig, document: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cu = cfg.culling
    services: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = []
    if cu.idle_timeout:
        services.append(
            {
                "name": "idle-culler",
                "command": [
                    sys.executable,
                    "-m",
                    "jupyterhub_idle_culler",
                    f"--timeout={cu.idle_timeout}",
                    f"--cull-every={cu.every}",
                ],
            }
        )
        roles.append(
            {
                "name": "moonhub-idle-culler",
                "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
                "services": ["idle-culler"],
            }
        )
    reach = (cu.connect_url or cu.url).rstrip("/")
    services.append(
        {
            "name": "gpu-reclaim",
            # the proxy routes /services/gpu-reclaim/ here; user servers pull warnings here
            "url": reach,
            # its settings (culling section, users' namespace) come from the hub's document
            "command": [sys.executable, "-m", "culling"],
            # reads pods in the user namespace with the hub's Kubernetes identity: its
            # kubeconfig, or in a pod the in-cluster settings (JupyterHub passes a service
            # only the environment it is given)
            "environment": {CONFIG_ENV: str(document), "KUBECONFIG": os.environ.get("KUBECONFIG", "")}
            | {k: os.environ[k] for k in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT") if k in os.environ},
        }
    )
    roles.append(
        {
            "name": "moonhub-gpu-reclaim",
            # who runs what, and stopping servers; it never calls a user's server
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["gpu-reclaim"],
        }
    )
    return services, roles


#: the service whose token Prometheus scrapes with (docs/observability.md)
SCRAPER = "metrics-scraper"


def scraper(cfg: PlatformConfig, document: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Prometheus, as the hub knows it: a service without a URL or a process, only a token
    (from ``metrics.scraper_token_file``, else kept in the hub's state), which may read the
    hub's metrics and reach the jobs service (whose ``/metrics`` takes ``read:metrics``),
    and nothing else: no user, server or secret."""
    path = scraper_token_path(cfg, document)
    if cfg.metrics.scraper_token_file:
        try:
            token = path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"metrics.scraper_token_file: cannot read {path}: {e.strerror}") from None
        if len(token) < 32:
            raise ConfigError(f"metrics.scraper_token_file: the token in {path} is shorter than 32 characters")
    else:
        token = _kept_token(path)
    scopes = ["read:metrics"] + (["access:services!service=jobs"] if cfg.jobs.enabled else [])
    return {"name": SCRAPER, "api_token": token}, {
        "name": "moonhub-metrics-scraper",
        "scopes": scopes,
        "services": [SCRAPER],
    }


def apply(c: Any, cfg: PlatformConfig, document: Path, state: Path) -> None:
    services: list[dict[str, Any]] = []
    user_scopes = list(USER_ROLE["scopes"])
    roles: list[dict[str, Any]] = [{**USER_ROLE, "scopes": user_scopes}]
    if cfg.jobs.enabled:
        service, jobs_roles = jobs(cfg, document, state)
        services.append(service)
        roles += jobs_roles
        c.KubeSpawner.environment = {"MOONHUB_JOBS_URL": f"{cfg.jobs.url.rstrip('/')}/services/jobs/"}
        # the spawner's claims to the service; the key never leaves the hub (not in a pod's environment)
        c.MoonSpawner.server_claim_key = server_claim.key_from_token(service["api_token"])
    scopes = list(SERVER_TOKEN_SCOPES)
    if cfg.culling.enabled:
        more, culling_roles = culling(cfg, document)
        services += more
        roles += culling_roles
        # each server pulls its own warnings from the reclaim service with its own token
        cu = cfg.culling
        env = dict(c.KubeSpawner.environment) if "environment" in c.KubeSpawner else {}
        env["MOONHUB_NOTICES_URL"] = f"{(cu.connect_url or cu.url).rstrip('/')}/services/gpu-reclaim/notices"
        env["MOONHUB_NOTICES_SECONDS"] = str(cu.notices_seconds)
        c.KubeSpawner.environment = env
        # (a token's scopes are at most its user's: users may read their own warnings)
        scopes.append("access:services!service=gpu-reclaim")
        user_scopes.append("access:services!service=gpu-reclaim")
    service, role = scraper(cfg, document)
    services.append(service)
    roles.append(role)
    cwd = empty_folder(state / "service-cwd")
    for service in services:
        if "command" not in service:
            continue
        # a managed service starts in an empty folder, not the hub's (the repository, locally:
        # its .state holds the cluster's admin kubeconfig): a relative path that reaches it
        # from what a user sent names nothing
        service["cwd"] = str(cwd)
        # a service runs in a session of its own: what marks the hub's processes for its
        # supervisor marks it too, so one left by a killed hub is found (localcluster/supervisor.py)
        if SUPERVISED_ENV in os.environ:
            service["environment"] = {**service.get("environment", {}), SUPERVISED_ENV: os.environ[SUPERVISED_ENV]}
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles
    c.Spawner.server_token_scopes = scopes
    # shared servers (moonhub_core.sharing): the scope a share with full access holds besides
    # access to the server; the server's guard reads its shares and lets only those holding
    # it change anything
    c.JupyterHub.custom_scopes = {sharing.WRITE_SCOPE: {"description": sharing.WRITE_SCOPE_HELP}}


def stop_services_promptly() -> None:
    """Let the hub's services stop at the first signal JupyterHub sends them.

    JupyterHub stops a managed service with SIGINT and sends SIGTERM only 30 s later
    (``LocalProcessSpawner.interrupt_timeout``). A hub started in the background without job
    control (a CI runner, ``cmd &`` in a script) inherits SIGINT ignored, and so does every
    service it starts: each then sat out those 30 s, and every hub stop took a minute or more
    (seen in the test hubs' logs: "Cleaning up 2 services..." 60 s before the next line). The
    hub takes SIGINT back to Python's default; what it starts afterwards inherits that.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
