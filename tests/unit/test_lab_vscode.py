"""VS Code's entry for jupyter-server-proxy (lab_extension/moonhub_lab/vscode.py): what
code-server is started with, and that its launcher card shows only where it is installed."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from moonhub_lab import tensorboard, vscode


def test_code_server_opens_the_workspace_on_a_socket_without_a_password_of_its_own() -> None:
    argv = vscode.command(Path("/home/jovyan"), "/usr/local/bin/code-server")
    assert argv[0] == "/usr/local/bin/code-server"
    assert argv[-1] == "/home/jovyan", "the workspace is the folder it opens"
    # each flag with what follows it (a valueless flag's pair is never asked for)
    flags = dict(itertools.pairwise(argv))
    # a socket in a folder only the user reads, never a port any process in the pod could reach
    assert flags["--socket"] == "{unix_socket}" and "--bind-addr" not in argv and "--port" not in argv
    # jupyter-server-proxy checks the server's own token or cookie before anything reaches it
    assert flags["--auth"] == "none"
    # settings and extensions kept in the workspace, so they stay across restarts
    assert flags["--user-data-dir"] == "/home/jovyan/.local/share/code-server"
    assert flags["--extensions-dir"] == "/home/jovyan/.local/share/code-server/extensions"
    for quiet in ("--disable-telemetry", "--disable-update-check", "--ignore-last-opened"):
        assert quiet in argv


def test_the_launcher_card_shows_only_where_code_server_is_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    entry = vscode.setup()
    assert entry["unix_socket"] is True and entry["launcher_entry"]["enabled"] is False
    assert entry["launcher_entry"]["title"] == "VS Code" and Path(entry["launcher_entry"]["icon_path"]).is_file()
    assert tensorboard.setup()["launcher_entry"]["enabled"] is False

    (tmp_path / "bin").mkdir()
    for name in ("code-server", "tensorboard"):
        exe = tmp_path / "bin" / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    entry = vscode.setup()
    assert entry["launcher_entry"]["enabled"] is True
    assert entry["command"][0] == str(tmp_path / "bin" / "code-server") and entry["command"][-1] == str(tmp_path)
    assert tensorboard.setup()["launcher_entry"]["enabled"] is True
