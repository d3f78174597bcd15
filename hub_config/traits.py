"""Apply a :class:`~moonhub_core.platform.PlatformConfig` to JupyterHub's config object."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from moonhub_core import pods, security
from moonhub_core.platform import HUB_SETTING, Document, PlatformConfig, catalog_path, image_builds_path

from . import auth, services
from .config_paths import REPO


def apply(c: Any, cfg: PlatformConfig, document: Path) -> None:
    """Set traitlets on ``c`` (a ``traitlets.config.Config``) from ``cfg``, read from the file
    ``document`` (relative paths in it are relative to its folder; the hub's services read it too)."""
    document = document.resolve()
    base = document.parent
    state = (base / cfg.hub.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    # the hub's secrets (cookie secret, database, tokens, the development password): its own
    # (a volume's root the hub does not own, e.g. a claim with fsGroup, keeps its mode)
    with contextlib.suppress(PermissionError):
        state.chmod(0o700)

    c.JupyterHub.bind_url = cfg.hub.public_url
    if cfg.hub.subdomain_host:
        # one origin per user server and per service (the proxy routes by host)
        c.JupyterHub.subdomain_host = cfg.hub.subdomain_host.rstrip("/")
        # host-only __Host- cookies: a user's server can not set or shadow the hub's cookies.
        # They must be Secure, which browsers keep only from https origins (over plain
        # http a server's OAuth state cookie would be dropped and every login refused)
        if cfg.hub.subdomain_host.startswith("https://"):
            c.JupyterHub.cookie_host_prefix_enabled = True
    # configuration in a user's volume (~/.jupyter) can not change how their server runs
    # (it also hides kernels registered in the workspace: an operator's choice)
    c.Spawner.disable_user_config = cfg.spawner.disable_user_config
    c.JupyterHub.hub_bind_url = cfg.hub.api_url
    if cfg.hub.connect_url:
        c.JupyterHub.hub_connect_url = cfg.hub.connect_url
    c.JupyterHub.cleanup_servers = cfg.hub.cleanup_servers
    c.JupyterHub.last_activity_interval = cfg.hub.route_check_interval
    # secrets never come from the document: the database URL from the environment, the
    # cookie secret from $JPY_COOKIE_SECRET (JupyterHub reads it) or a file in the state folder
    c.JupyterHub.db_url = os.environ.get(cfg.hub.db_url_env) or f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.ConfigurableHTTPProxy.api_url = cfg.hub.proxy_api_url
    c.ConfigurableHTTPProxy.command = [str((REPO / cfg.hub.proxy_command).resolve())]
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.ConfigurableHTTPProxy.should_start = cfg.hub.start_proxy
    # routes come back within seconds of the proxy being replaced (hub_config/proxy.py)
    c.JupyterHub.proxy_class = "hub_config.proxy.MoonProxy"
    c.JupyterHub.allow_named_servers = cfg.hub.named_servers > 0
    c.JupyterHub.named_server_limit_per_user = cfg.hub.named_servers

    auth.apply(c, cfg, base, state)

    sp = cfg.spawner
    c.JupyterHub.spawner_class = "moon"
    c.KubeSpawner.namespace = sp.namespace
    c.KubeSpawner.image_pull_policy = "IfNotPresent"
    c.MoonSpawner.catalog_path = str(catalog_path(cfg, document))
    c.MoonSpawner.storage_class_override = sp.storage_class_override
    c.MoonSpawner.image_builds = image_builds_path(cfg, document)
    c.MoonSpawner.queue_prefix = sp.queue_prefix
    c.MoonSpawner.package_index = sp.package_index
    c.KubeSpawner.start_timeout = sp.start_timeout
    # this hub's pods carry its id: it removes those none of its servers stands for
    c.MoonSpawner.hub_id = pods.hub_id(cfg.hub.public_url)
    c.MoonSpawner.orphan_pod_grace = sp.orphan_pod_grace
    # time to write open documents to the workspace and shut kernels down at a stop
    # (KubeSpawner's default is 1 s)
    c.KubeSpawner.delete_grace_period = sp.stop_grace
    c.KubeSpawner.http_timeout = 120
    # KubeSpawner's 3 s per API call fired while the hub's own event loop lagged under a
    # burst (the API server had answered): the pod was created twice, the first killed, and
    # a failed start's clean-up could give up with the pod still running (docs/performance.md)
    c.KubeSpawner.k8s_api_request_timeout = 10
    c.KubeSpawner.default_url = "/lab"
    # team-mates (each a uid of their own) can change each other's files in team folders
    c.Spawner.cmd = security.with_umask(["jupyterhub-singleuser"])

    services.apply(c, cfg, document, state)
    # what the admin console (wired in jupyterhub_config.py) reads: the typed document (the
    # catalog the spawner reads, who manages it, where users' pods run, the queues' prefix)
    c.JupyterHub.tornado_settings = {HUB_SETTING: Document(cfg, document)}
