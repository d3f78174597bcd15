"""VS Code in the browser beside JupyterLab: code-server (every notebook image carries it,
images/code_server.py) behind jupyter-server-proxy at ``<server>/vscode/``, opening the workspace.

It listens on a Unix socket in a folder only the user can read (jupyter-server-proxy makes
it), not on a port, and asks for no password of its own: the server's authentication (the
hub's token or cookie) is checked by jupyter-server-proxy before any request reaches it.
Requests and websocket messages through the proxy count as the server's activity, so the
idle culler sees work done in VS Code as it sees work done in JupyterLab (docs/vscode.md)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

ICON = Path(__file__).parent / "icons" / "vscode.svg"


def command(home: Path, executable: str) -> list[str]:
    """code-server's command line: the workspace (the home folder) opened, its settings and
    extensions kept in the workspace, nothing fetched from the internet on its own."""
    data = home / ".local" / "share" / "code-server"
    return [
        executable,
        "--socket",
        "{unix_socket}",
        "--auth",
        "none",
        "--disable-telemetry",
        "--disable-update-check",
        "--disable-workspace-trust",
        "--disable-getting-started-override",
        "--user-data-dir",
        str(data),
        "--extensions-dir",
        str(data / "extensions"),
        "--ignore-last-opened",
        str(home),
    ]


def setup() -> dict[str, Any]:
    """jupyter-server-proxy's server entry (entry point ``jupyter_serverproxy_servers``); the
    launcher card is shown only where code-server is installed."""
    executable = shutil.which("code-server")
    home = Path(os.environ.get("HOME") or Path.home())
    return {
        "command": command(home, executable or "code-server"),
        "unix_socket": True,
        "timeout": 60,
        "new_browser_tab": True,
        "launcher_entry": {
            "title": "VS Code",
            "icon_path": str(ICON),
            "enabled": executable is not None,
            "category": "Other",
        },
    }
