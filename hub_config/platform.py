"""The platform config document: parsed, validated, and errors that name the key.

A config is YAML. Unknown keys and wrong types stop the hub at start with a message such
as ``platform.yaml: spawner.storage.capacty: unknown key (did you mean 'capacity'?)``.
Secrets never live in the document: they come from files or the environment.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml


class ConfigError(ValueError):
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
class StorageSection:
    storage_class: str = "glusterfs"
    capacity: str = "10Gi"
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = "ReadWriteOnce"


@dataclass(frozen=True)
class SpawnerSection:
    namespace: str = "moonhub-users"
    image: str = "moonhub/base-notebook:latest"
    #: listen on the pod IP (required on the local cluster, where pods share the host network)
    bind_pod_ip: bool = False
    start_timeout: int = 300
    storage: StorageSection = field(default_factory=StorageSection)


@dataclass(frozen=True)
class PlatformConfig:
    hub: HubSection = field(default_factory=HubSection)
    auth: AuthSection = field(default_factory=AuthSection)
    spawner: SpawnerSection = field(default_factory=SpawnerSection)


def _check(value: Any, hint: Any, path: str) -> Any:
    origin = get_origin(hint)
    if is_dataclass(hint):
        return _build(hint, value, path)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in get_args(hint):
            raise ConfigError(f"{path}: must be one of {', '.join(map(repr, get_args(hint)))}, not {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: must be a list, not {type(value).__name__}")
        return [_check(v, get_args(hint)[0], f"{path}[{i}]") for i, v in enumerate(value)]
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{path}: must be true or false, not {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{path}: must be an integer, not {value!r}")
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{path}: must be a string, not {value!r}")
    return value


def _build(cls: type, data: Any, path: str) -> Any:
    where = path or "the document"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping, not {type(data).__name__}")
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(names)})"
            raise ConfigError(f"{path + '.' if path else ''}{key}: unknown key{hint}")
    kwargs = {k: _check(v, hints[k], f"{path + '.' if path else ''}{k}") for k, v in data.items()}
    return cls(**kwargs)


def load(path: Path) -> PlatformConfig:
    """Read and validate the platform config at ``path``."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    try:
        cfg: PlatformConfig = _build(PlatformConfig, data, "")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return cfg
