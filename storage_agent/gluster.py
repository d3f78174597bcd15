"""Gluster's CLI as the agent uses it: directory quotas and their accounting, run here (on
a Gluster peer) or on a Gluster server over SSH (:class:`Ssh`)."""

from __future__ import annotations

import asyncio
import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from moonhub_core.numbers import is_whole


@dataclass(frozen=True)
class Quota:
    limit: int
    used: int


class GlusterError(RuntimeError):
    pass


@dataclass(frozen=True)
class Ssh:
    """A Gluster server that runs the agent's commands: Gluster's own remote CLI
    (``--remote-host``) only reads, so where the agent is not on a peer it asks a server
    over SSH, with a key whose ``authorized_keys`` line may allow nothing but these
    commands (``storage_agent/gluster-ssh-gate``)."""

    target: str  # user@host
    key: str  # the private key's file
    known_hosts: str  # the server's host key (checked strictly)
    port: int = 22

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` as run on the server (one quoted command line, as SSH sends it)."""
        return [
            "ssh", "-i", self.key, "-p", str(self.port),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "ConnectTimeout=10",
            "-o", "ServerAliveInterval=15",
            self.target, "--", shlex.join(argv),
        ]  # fmt: skip


#: where the agent's Gluster commands run: None, here (a peer); else that server
REMOTE: Ssh | None = None


def mounted_volume(mountinfo: str, path: str) -> str | None:
    """The Gluster volume mounted at ``path`` according to ``/proc/self/mountinfo`` (the
    last mount there wins), or None when what is there is not a Gluster FUSE mount."""
    found = None
    want = path.rstrip("/") or "/"
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        point = fields[4].replace("\\040", " ")
        if point != want:
            continue
        fstype, source = ([*after, "", ""])[:2]
        found = source.rsplit(":", 1)[-1].lstrip("/") if fstype == "fuse.glusterfs" else None
    return found


def parse_quota_list(xml: str) -> dict[str, Quota]:
    """``volume quota <v> list --xml`` -> {folder path in the volume: its limit and use}."""
    if not xml.strip():
        return {}
    root = ET.fromstring(xml)
    out: dict[str, Quota] = {}
    for limit in root.iter("limit"):
        path = limit.findtext("path")
        hard, used = limit.findtext("hard_limit"), limit.findtext("used_space")
        if not path or not hard or not is_whole(hard):
            continue
        out[path] = Quota(int(hard), int(used) if used and is_whole(used) else 0)
    return out


def limit_command(volume: str, path: str, size: int) -> list[str]:
    return ["gluster", "--mode=script", "volume", "quota", volume, "limit-usage", path, str(size)]


def list_command(volume: str) -> list[str]:
    return ["gluster", "--mode=script", "volume", "quota", volume, "list", "--xml"]


async def run(argv: list[str], timeout: float = 60) -> str:
    """A Gluster command, here or on :data:`REMOTE`; its output, or a :class:`GlusterError`
    saying what it said."""
    if REMOTE is not None:
        argv = REMOTE.wrap(argv)
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        raise GlusterError(f"{' '.join(argv)}: no answer in {timeout:.0f} s") from None
    if proc.returncode:
        raise GlusterError(f"{' '.join(argv)}: {(err or out).decode(errors='replace').strip()}")
    return out.decode()


async def quotas(volume: str) -> dict[str, Quota]:
    try:
        return parse_quota_list(await run(list_command(volume)))
    except GlusterError as e:
        if "No quota configured" in str(e):
            return {}
        raise


def remove_command(volume: str, path: str) -> list[str]:
    return ["gluster", "--mode=script", "volume", "quota", volume, "remove", path]


#: glusterd refuses a second volume transaction while one runs (any client's): tried again
BUSY = "Another transaction is in progress"


async def change(argv: list[str], tries: int = 60, pause: float = 0.5) -> str:
    """A quota change, again while another transaction holds the volume's lock."""
    for attempt in range(tries):
        try:
            return await run(argv)
        except GlusterError as e:
            if BUSY not in str(e) or attempt == tries - 1:
                raise
        await asyncio.sleep(pause)
    raise AssertionError("unreachable")
