"""The storage agent's Gluster commands over SSH: the command line it sends, and the gate a
Gluster server puts on its key (storage_agent/gluster-ssh-gate), which runs the agent's
three quota commands on one volume and refuses everything else. The gate runs here with a
stand-in ``gluster`` first on PATH that prints what it was given."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from localcluster.config import REPO
from storage_agent import gluster

GATE = REPO / "storage_agent" / "gluster-ssh-gate"


def test_the_command_goes_to_the_server_as_one_quoted_line_with_its_host_key_checked() -> None:
    ssh = gluster.Ssh("root@gluster-1", "/k/id", "/k/known_hosts", 2222)
    argv = ssh.wrap(gluster.limit_command("workspaces", "/ns/claim/pvc-1", 1 << 30))
    assert argv[0] == "ssh" and argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-i") + 1] == "/k/id"
    assert "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/k/known_hosts" in argv
    assert "BatchMode=yes" in argv, "never a password prompt"
    assert argv[-3:] == [
        "root@gluster-1",
        "--",
        "gluster --mode=script volume quota workspaces limit-usage /ns/claim/pvc-1 1073741824",
    ]
    odd = ssh.wrap(["gluster", "x", "a b;c"])
    assert shlex.split(odd[-1]) == ["gluster", "x", "a b;c"], "quoted as one word each"


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("bin")
    fake = where / "gluster"
    fake.write_text('#!/bin/sh\necho "ran: $*"\n')
    fake.chmod(0o755)
    return where


def gate(fake_bin: Path, command: str | None, volume: str = "workspaces") -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{fake_bin}:{os.environ['PATH']}"}
    if command is not None:
        env["SSH_ORIGINAL_COMMAND"] = command
    return subprocess.run(["sh", str(GATE), volume], env=env, capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize(
    "argv",
    [
        gluster.list_command("workspaces"),
        gluster.limit_command("workspaces", "/team-a/ws-ada/pvc-0b1c", 5 * 2**30),
        gluster.remove_command("workspaces", "/team-a/ws-ada/pvc-0b1c"),
    ],
)
def test_the_agents_commands_pass(fake_bin: Path, argv: list[str]) -> None:
    r = gate(fake_bin, shlex.join(argv))
    assert r.returncode == 0 and r.stdout.strip() == "ran: " + " ".join(argv[1:]), r.stdout + r.stderr


@pytest.mark.parametrize(
    "command",
    [
        None,
        "",
        "sh -c id",
        "gluster --mode=script volume quota other list --xml",  # another volume
        "gluster --mode=script volume quota workspaces disable",
        "gluster --mode=script volume stop workspaces",
        "gluster --mode=script volume quota workspaces list --xml extra",
        "gluster --mode=script volume quota workspaces list",
        "gluster --mode=script volume quota workspaces limit-usage / 1",  # the volume's root
        "gluster --mode=script volume quota workspaces limit-usage /a/../b 100",
        "gluster --mode=script volume quota workspaces limit-usage relative/path 100",
        "gluster --mode=script volume quota workspaces limit-usage /a 10G",
        "gluster --mode=script volume quota workspaces limit-usage /a;id 100",
        "gluster --mode=script volume quota workspaces limit-usage '/a b' 100",
        "gluster --mode=script volume quota workspaces limit-usage /a 100 more",
        "gluster --mode=script volume quota workspaces remove /a$(id)",
        "gluster --mode=script volume quota workspaces remove /*",
        "gluster --mode=script volume quota workspaces remove",
    ],
)
def test_everything_else_is_refused(fake_bin: Path, command: str | None) -> None:
    r = gate(fake_bin, command)
    assert r.returncode == 126 and "ran:" not in r.stdout, r.stdout + r.stderr
    assert "refused" in r.stderr


def test_a_gate_without_its_volume_refuses_everything(fake_bin: Path) -> None:
    r = subprocess.run(
        ["sh", str(GATE)],
        env={"PATH": f"{fake_bin}:{os.environ['PATH']}", "SSH_ORIGINAL_COMMAND": "gluster --mode=script volume list"},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert r.returncode != 0 and "ran:" not in r.stdout and "usage" in r.stderr
