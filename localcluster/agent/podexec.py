"""Container start-up inside the pod's private mount namespace.

The agent runs ``unshare --mount --uts --propagation private -- python -m
localcluster.agent.podexec SPEC.json``; this module sets the pod's hostname (own UTS
namespace), mounts a fresh home (tmpfs), bind-mounts the volumes at their mount paths, drops
to the container's user and groups, changes to the working dir and execs the command.
Mount points missing on the host are created as empty folders (the only change made outside the namespace).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, stdout=subprocess.DEVNULL)


def _fail(code: int, message: str) -> None:
    print(f"moonhub-node-agent: {message}", file=sys.stderr, flush=True)
    os._exit(code)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    uid, gid = spec["uid"], spec["gid"]
    home = spec.get("home")
    try:
        socket.sethostname(spec["hostname"][:63])
        if home:
            parent = str(Path(home).parent)
            _mount("-t", "tmpfs", "-o", "mode=0755,size=256m", "moonhub-home", parent)
            Path(home).mkdir(parents=True, exist_ok=True)
            os.chown(home, uid, gid)
        for m in sorted(spec["mounts"], key=lambda m: m["target"]):
            src, dst = Path(m["source"]), Path(m["target"])
            if src.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.touch(exist_ok=True)
            _mount("--bind", str(src), str(dst))
            if m.get("readOnly"):
                _mount("-o", "remount,bind,ro", str(dst))
    except (OSError, subprocess.CalledProcessError) as e:
        _fail(128, f"setting up the container's hostname and volumes failed: {e}")
    try:
        os.setgroups(spec["groups"])
        os.setgid(gid)
        os.setuid(uid)
    except OSError as e:
        _fail(128, f"switching to uid {uid} gid {gid} failed: {e}")
    try:
        os.chdir(spec["cwd"])
    except OSError as e:
        _fail(128, f"working directory {spec['cwd']!r}: {e}")
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except FileNotFoundError:
        _fail(127, f"executable {argv[0]!r} not found in $PATH ({spec['env'].get('PATH')})")
    except OSError as e:
        _fail(126, f"could not run {argv[0]!r}: {e}")


if __name__ == "__main__":
    main(sys.argv[1])
