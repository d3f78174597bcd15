"""The platform config document: parsed, validated, and errors that name the key.

A config is YAML. Unknown keys and wrong types stop the hub at start with a message such
as ``platform.yaml: spawner.storage.capacty: unknown key (did you mean 'capacity'?)``.
Secrets never live in the document: they come from files or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .typed import DocumentError, load_file


class ConfigError(DocumentError):
    """A bad platform config; the message names the file and the key."""


@dataclass(frozen=True)
class HubSection:
    #: where browsers reach MoonHub (the proxy's public address)
    public_url: str = "http://127.0.0.1:8000"
    #: where the hub API listens; user pods call it
    api_url: str = "http://127.0.0.1:8081"
    #: the proxy's REST API
    proxy_api_url: str = "http://127.0.0.1:8001"
    #: folder for the hub database, cookie secret and proxy token (relative: to the config file)
    state_dir: str = "."
    #: the configurable-http-proxy executable (relative: to the repository)
    proxy_command: str = "node_modules/.bin/configurable-http-proxy"
    #: named servers each user may run besides the default one (0: named servers off)
    named_servers: int = 0


@dataclass(frozen=True)
class DevelopmentLogin:
    #: file holding the shared development password (created with a random one when missing)
    password_file: str = "dev-password"


@dataclass(frozen=True)
class AuthSection:
    #: ``development`` is a local login for development only; issue 6 adds OAuth / OIDC
    type: Literal["development"] = "development"
    admin_users: list[str] = field(default_factory=lambda: ["admin"])
    development: DevelopmentLogin = field(default_factory=DevelopmentLogin)


@dataclass(frozen=True)
class SpawnerSection:
    namespace: str = "moonhub-users"
    #: the catalog document (relative: to this config file); empty: the example catalog
    catalog: str = ""
    #: a StorageClass to use instead of the catalog's, for clusters that lack it
    storage_class_override: str = ""
    #: listen on the pod IP (required on the local cluster, where pods share the host network)
    bind_pod_ip: bool = False
    start_timeout: int = 300


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


@dataclass(frozen=True)
class PlatformConfig:
    hub: HubSection = field(default_factory=HubSection)
    auth: AuthSection = field(default_factory=AuthSection)
    spawner: SpawnerSection = field(default_factory=SpawnerSection)
    jobs: JobsSection = field(default_factory=JobsSection)


def load(path: Path) -> PlatformConfig:
    """Read and validate the platform config at ``path``."""
    try:
        return load_file(PlatformConfig, path)
    except DocumentError as e:
        raise ConfigError(str(e)) from None
