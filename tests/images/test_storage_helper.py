"""The storage provisioner's helper image: Gluster's CLI, able to talk to a glusterd (its RPC
transport is a separate package; without it the CLI waits forever). The cluster tests run
it for real against the machine's glusterd."""

from __future__ import annotations

import subprocess

import pytest

from images.build import image_exists, load_spec

IMAGE = "storage-helper"
REF = load_spec().images[IMAGE].ref


def _run(*argv: str) -> str:
    if not image_exists(REF):
        pytest.fail(f"{REF} is not built: ./moonhub test builds it (python -m images.build)")
    r = subprocess.run(["docker", "run", "--rm", REF, *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_gluster_cli_and_its_socket_transport_are_there() -> None:
    assert _run("gluster", "--version").startswith("glusterfs 10.")
    found = _run("sh", "-c", "ls /usr/lib/*/glusterfs/*/rpc-transport/socket.so")
    assert "rpc-transport/socket.so" in found
    assert _run("sh", "-c", "command -v timeout chown chmod").count("/") >= 3
