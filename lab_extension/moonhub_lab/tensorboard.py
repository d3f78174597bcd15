"""TensorBoard in the JupyterLab launcher, through jupyter-server-proxy (every image has the
proxy, the framework images TensorBoard): it reads the user's log directory,
``$MOONHUB_TENSORBOARD_LOGDIR`` or ``~/logs`` in the workspace."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def setup() -> dict[str, Any]:
    """jupyter-server-proxy's server entry (entry point ``jupyter_serverproxy_servers``); the
    launcher card is shown only where TensorBoard is installed."""
    logdir = Path(os.environ.get("MOONHUB_TENSORBOARD_LOGDIR", Path.home() / "logs"))
    logdir.mkdir(parents=True, exist_ok=True)
    return {
        "command": [
            "tensorboard",
            "--logdir",
            str(logdir),
            "--port",
            "{port}",
            "--path_prefix",
            "{base_url}tensorboard",
            "--reload_interval",
            "15",
        ],
        "absolute_url": True,
        "timeout": 60,
        "launcher_entry": {"title": "TensorBoard", "enabled": shutil.which("tensorboard") is not None},
    }
