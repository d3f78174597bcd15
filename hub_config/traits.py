"""Apply a :class:`~hub_config.platform.PlatformConfig` to JupyterHub's config object."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .config_paths import REPO
from .devlogin import BANNER, DevelopmentAuthenticator, ensure_password
from .platform import PlatformConfig


def apply(c: Any, cfg: PlatformConfig, base: Path) -> None:
    """Set traitlets on ``c`` (a ``traitlets.config.Config``); ``base`` resolves relative paths."""
    state = (base / cfg.hub.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)

    c.JupyterHub.bind_url = cfg.hub.public_url
    c.JupyterHub.hub_bind_url = cfg.hub.api_url
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.ConfigurableHTTPProxy.api_url = cfg.hub.proxy_api_url
    c.ConfigurableHTTPProxy.command = [str((REPO / cfg.hub.proxy_command).resolve())]
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.ConfigurableHTTPProxy.should_start = True
    c.JupyterHub.allow_named_servers = cfg.hub.named_servers > 0
    c.JupyterHub.named_server_limit_per_user = cfg.hub.named_servers

    c.Authenticator.admin_users = set(cfg.auth.admin_users)
    if cfg.auth.type == "development":
        c.JupyterHub.authenticator_class = DevelopmentAuthenticator
        c.DummyAuthenticator.password = ensure_password(state / cfg.auth.development.password_file)
        c.Authenticator.allow_all = True
        c.JupyterHub.template_vars = {"announcement_login": BANNER}

    sp = cfg.spawner
    c.JupyterHub.spawner_class = "moon"
    c.KubeSpawner.namespace = sp.namespace
    c.KubeSpawner.image_pull_policy = "IfNotPresent"
    if sp.catalog:
        c.MoonSpawner.catalog_path = str((base / sp.catalog).resolve())
    c.MoonSpawner.storage_class_override = sp.storage_class_override
    c.MoonSpawner.bind_pod_ip = sp.bind_pod_ip
    c.KubeSpawner.start_timeout = sp.start_timeout
    c.KubeSpawner.http_timeout = 120
    c.KubeSpawner.default_url = "/lab"
    c.Spawner.cmd = ["jupyterhub-singleuser"]

    if cfg.jobs.enabled:
        catalog = str((base / sp.catalog).resolve()) if sp.catalog else ""
        c.JupyterHub.services = [
            {
                "name": "jobs",
                "url": cfg.jobs.url,
                "command": [
                    sys.executable,
                    "-m",
                    "jobs_service",
                    f"--JobsServiceApp.admin_groups={cfg.jobs.admin_groups!r}",
                ],
                "oauth_no_confirm": True,
                "environment": {
                    # the service's own Kubernetes identity (local development; in-cluster otherwise)
                    "MOONHUB_JOBS_KUBECONFIG": os.environ.get("MOONHUB_JOBS_KUBECONFIG", ""),
                    "MOONHUB_CATALOG": catalog,
                    "MOONHUB_STORAGE_CLASS_OVERRIDE": sp.storage_class_override,
                    "MOONHUB_SMTP_HOST": cfg.jobs.smtp.rsplit(":", 1)[0] if cfg.jobs.smtp else "",
                    "MOONHUB_SMTP_PORT": cfg.jobs.smtp.rsplit(":", 1)[1] if ":" in cfg.jobs.smtp else "25",
                    "MOONHUB_JOBS_DB": f"sqlite:///{state / 'jobs.sqlite'}",
                },
            }
        ]
        # the user's server reaches the service directly, with its own token, which carries
        # exactly what it needs: activity, access to its own server, and the jobs service
        c.KubeSpawner.environment = {"MOONHUB_JOBS_URL": f"{cfg.jobs.url.rstrip('/')}/services/jobs/"}
        c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", "access:services!service=jobs"]
        # every user may call the jobs service; it decides what each may see
        c.JupyterHub.load_roles = [
            {"name": "user", "scopes": ["self", "access:services!service=jobs"]},
            # the service removes the jobs of users the hub no longer has
            {"name": "moonhub-jobs", "scopes": ["list:users", "read:users:name"], "services": ["jobs"]},
        ]
