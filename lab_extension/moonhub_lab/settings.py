"""What the server extension is told, in one typed value.

The extension runs in the user's server, next to their code, and reads nothing of the
platform's: the spawner tells it what it needs in the server's environment (its values come
from the platform document and the user's choices: ``hub_config/services.py``,
``moonhub_core/workload.py``). Each variable is named here once, with what it means;
:func:`from_env` reads them all, and a value that does not parse counts as not given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class LabSettings:
    #: the jobs service's URL (``MOONHUB_JOBS_URL``); empty: no jobs service
    jobs_url: str = ""
    #: the server's own token (``JUPYTERHUB_API_TOKEN``): the forward and the notices pull
    #: send it, nothing shows it
    api_token: str = ""
    #: this server's name among its user's (``JUPYTERHUB_SERVER_NAME``; "" the default one)
    server_name: str = ""
    #: where the GPU reclaim service keeps this server's warnings (``MOONHUB_NOTICES_URL``),
    #: and how often to ask (``MOONHUB_NOTICES_SECONDS``: the platform's
    #: ``culling.notices_seconds``; 0, not told: not asked)
    notices_url: str = ""
    notices_seconds: float = 0.0
    #: how often the kernels' memory kills and the workspace's fullness are looked for
    #: (``MOONHUB_OOM_CHECK_SECONDS``, ``MOONHUB_DISK_CHECK_SECONDS``)
    oom_check_seconds: float = 2.0
    disk_check_seconds: float = 20.0
    #: the spawner's choices (``MOONHUB_ENVIRONMENT``, ``_SIZE``, ``_GPU_TYPE``,
    #: ``_GPU_COUNT``): a new job's defaults
    environment: str = ""
    size: str = ""
    gpu_type: str = ""
    gpu_count: int = 0


ENV = {
    "jobs_url": "MOONHUB_JOBS_URL",
    "api_token": "JUPYTERHUB_API_TOKEN",
    "server_name": "JUPYTERHUB_SERVER_NAME",
    "notices_url": "MOONHUB_NOTICES_URL",
    "notices_seconds": "MOONHUB_NOTICES_SECONDS",
    "oom_check_seconds": "MOONHUB_OOM_CHECK_SECONDS",
    "disk_check_seconds": "MOONHUB_DISK_CHECK_SECONDS",
    "environment": "MOONHUB_ENVIRONMENT",
    "size": "MOONHUB_SIZE",
    "gpu_type": "MOONHUB_GPU_TYPE",
    "gpu_count": "MOONHUB_GPU_COUNT",
}


def from_env(env: Mapping[str, str] | None = None) -> LabSettings:
    """The settings the server's environment gives (pure given ``env``)."""
    env = os.environ if env is None else env
    defaults = LabSettings()
    values: dict[str, object] = {}
    for name, var in ENV.items():
        raw = env.get(var, "")
        default = getattr(defaults, name)
        if not raw:
            continue
        if isinstance(default, bool) or not isinstance(default, int | float):
            values[name] = raw
            continue
        try:
            number = type(default)(raw)
        except ValueError:
            continue
        if number > 0:
            values[name] = number
    return LabSettings(**values)  # type: ignore[arg-type]
