"""A claim's folder on the Gluster mount, made and removed (:mod:`.provision` says which).

Runs where the volume is mounted, as root (it hands folders to users' uids). Each step is
idempotent: a make that failed halfway (folder made, quota not) is finished by the next
try, and a remove of what is already gone succeeds.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from . import gluster
from .provision import Make, safe_folder


def _make_folder(mount: str, m: Make) -> None:
    path = Path(mount.rstrip("/") + m.folder)
    # the namespace's and claim's folders: root's, readable so a pod's kubelet mount
    # resolves through them; nobody writes in them but this agent
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if path.is_symlink() or not path.is_dir():
            raise RuntimeError(f"{path} exists and is not a folder") from None
    os.chown(path, m.owner, m.group, follow_symlinks=False)
    path.chmod(m.mode)  # after chown, which clears the set-group-id bit


async def make(mount: str, volume: str, m: Make) -> None:
    """The folder, its owner and mode, then its directory quota (the claim's size)."""
    if not safe_folder(m.folder, m.volume):
        raise RuntimeError(f"refusing folder {m.folder}")
    await asyncio.to_thread(_make_folder, mount, m)
    await gluster.change(gluster.limit_command(volume, m.folder, m.size))


#: Gluster's words when a folder has no quota to remove
NO_QUOTA = ("No data available", "No such file or directory", "No quota configured")


def _remove_folder(mount: str, folder: str) -> None:
    path = Path(mount.rstrip("/") + folder)
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    try:
        path.parent.rmdir()  # the claim's folder, once empty
    except OSError:
        pass  # another volume of the claim's name is in it, or it is gone


async def remove(mount: str, volume: str, folder: str, name: str) -> None:
    """The quota, then the folder (``name``: the volume's, which the folder must end in)."""
    if not safe_folder(folder, name):
        raise RuntimeError(f"refusing to remove {folder}")
    try:
        await gluster.change(gluster.remove_command(volume, folder))
    except gluster.GlusterError as e:
        # a folder made without its quota (a make that failed halfway: "No data available"),
        # or removed before ("No such file or directory")
        if not any(words in str(e) for words in NO_QUOTA):
            raise
    await asyncio.to_thread(_remove_folder, mount, folder)
