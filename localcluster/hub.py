"""Run MoonHub's JupyterHub (and its proxy) on the host against a local cluster."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from urllib.parse import urlparse

from hub_config.platform import load

from .config import REPO, ClusterConfig
from .supervisor import Supervisor, ensure_free

log = logging.getLogger("moonhub.localcluster")
DEFAULT_PLATFORM_CONFIG = REPO / "hub_config" / "examples" / "local.yaml"


def hub_up(
    cfg: ClusterConfig,
    sup: Supervisor,
    platform_config: Path = DEFAULT_PLATFORM_CONFIG,
    name: str = "hub",
    extra_env: dict[str, str] | None = None,
) -> str:
    """Start the hub (supervised as ``name``) unless it runs; wait until it answers; return
    its public URL."""
    platform = load(platform_config)  # fail here, with the key named, before starting
    argv = [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(REPO / "hub_config" / "jupyterhub_config.py")]
    if sup.pid(name) is None:
        urls = [platform.hub.public_url, platform.hub.api_url, platform.hub.proxy_api_url]
        if platform.jobs.enabled:
            urls.append(platform.jobs.url)
        ensure_free("the hub", [(u.hostname or "127.0.0.1", u.port or 80) for u in map(urlparse, urls)])
    env = {
        "MOONHUB_CONFIG": str(platform_config.resolve()),
        "KUBECONFIG": str(cfg.kubeconfig("hub")),
        "MOONHUB_JOBS_KUBECONFIG": str(cfg.kubeconfig("jobs")),
        **(extra_env or {}),
    }
    sup.start(name, argv, env)
    url = platform.hub.public_url.rstrip("/")
    sup.wait_healthy(name, f"{url}/hub/health", timeout=120)
    return url


def dev_password(platform_config: Path = DEFAULT_PLATFORM_CONFIG) -> str | None:
    platform = load(platform_config)
    if platform.auth.type != "development":
        return None
    path = (platform_config.parent / platform.hub.state_dir / platform.auth.development.password_file).resolve()
    return path.read_text().strip() if path.exists() else None
