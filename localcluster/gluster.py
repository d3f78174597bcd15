"""The workspaces' GlusterFS: Debian's ``glusterfs-server`` on this machine, one volume per
cluster with its brick in the cluster's state folder, mounted on the node through the FUSE
client (``docs/storage.md``).

glusterd is machine-wide (its configuration is ``/var/lib/glusterd``, its port 24007), like
the image registry: ``up`` starts it when none answers. Each cluster's volume lives on the
cluster's node address (Gluster refuses loopback brick hosts; the node address is a local
/32, so no Gluster traffic leaves the machine). The volume has directory quotas on, with
``quota-deem-statfs`` so that ``df`` in a workspace shows its quota, not the whole volume.
Commands are built by pure functions; :func:`ensure` and :func:`stop` run them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from .config import ClusterConfig
from .supervisor import StartError

log = logging.getLogger("moonhub.localcluster")

PIDFILE = Path("/var/run/moonhub-glusterd.pid")
SOCKET = Path("/var/run/glusterd.socket")
#: volume options: df showing the quota; usage re-read on every write (Gluster's defaults
#: re-read it every 60 s below 80 % of the limit, so a fast writer could pass the limit by
#: gigabytes before being stopped); writes not cached in the client, so a write past the
#: limit fails in the call that made it (and in the tests here, 10.3's FUSE client aborted
#: once on a refused write that write-behind had cached); no NFS server
OPTIONS = {
    "features.quota-deem-statfs": "on",
    "features.soft-timeout": "0",
    "features.hard-timeout": "0",
    "performance.write-behind": "off",
    "nfs.disable": "on",
}


def volume_name(cfg: ClusterConfig) -> str:
    """One volume per cluster state folder (a name Gluster accepts)."""
    digest = hashlib.sha256(str(cfg.state_dir.resolve()).encode()).hexdigest()[:10]
    return f"moonhub-{digest}"


def brick_dir(cfg: ClusterConfig) -> Path:
    return cfg.state_dir / "gluster" / "brick"


def mount_dir(cfg: ClusterConfig) -> Path:
    """Where the node mounts the volume (under the node's folder: ``down`` unmounts it with
    the kubelet's mounts)."""
    return cfg.state_dir / "node" / "gluster"


def gluster(*args: str) -> list[str]:
    return ["gluster", "--mode=script", *args]


def create_commands(cfg: ClusterConfig) -> list[list[str]]:
    """Create and start this cluster's volume with quotas (pure)."""
    v = volume_name(cfg)
    cmds = [
        gluster("volume", "create", v, f"{cfg.node_ip}:{brick_dir(cfg).resolve()}", "force"),
        gluster("volume", "start", v),
        gluster("volume", "quota", v, "enable"),
    ]
    cmds += [gluster("volume", "set", v, k, val) for k, val in OPTIONS.items()]
    return cmds


def mount_command(cfg: ClusterConfig) -> list[str]:
    return ["mount", "-t", "glusterfs", f"{cfg.node_ip}:/{volume_name(cfg)}", str(mount_dir(cfg).resolve())]


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode:
        raise StartError(f"{' '.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def installed() -> bool:
    return shutil.which("glusterd") is not None and shutil.which("gluster") is not None


def answers() -> bool:
    return SOCKET.is_socket() and _run(gluster("volume", "list"), check=False).returncode == 0


def start_glusterd(logs: Path) -> None:
    """Start the machine's glusterd unless one answers (no systemd here)."""
    if answers():
        return
    if not installed():
        raise StartError("GlusterFS is not installed: ./moonhub installs Debian's glusterfs-server (apt)")
    logs.mkdir(parents=True, exist_ok=True)
    _run(["glusterd", "-p", str(PIDFILE), f"--log-file={logs / 'glusterd.log'}"])
    deadline = time.monotonic() + 30
    while not answers():
        if time.monotonic() > deadline:
            raise StartError(f"glusterd did not answer within 30 s; see {logs / 'glusterd.log'}")
        time.sleep(0.3)


def volumes() -> dict[str, dict[str, str]]:
    """Every volume glusterd knows: name -> {status, brick} (``volume info --xml``)."""
    out = _run(gluster("volume", "info", "all", "--xml"), check=False).stdout
    found: dict[str, dict[str, str]] = {}
    if not out.strip():
        return found
    for vol in ET.fromstring(out).iter("volume"):
        name = vol.findtext("name")
        if not name:
            continue
        brick = vol.findtext("bricks/brick/name") or ""
        found[name] = {"status": vol.findtext("statusStr") or "", "brick": brick}
    return found


def mounted(path: Path) -> bool:
    target = str(path.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        parts = line.split()
        if parts[4] == target and "fuse.glusterfs" in line:
            return True
    return False


def ensure(cfg: ClusterConfig) -> Path:
    """glusterd running, this cluster's volume started with quotas, mounted on the node.
    Returns the mount point. Idempotent."""
    t0 = time.monotonic()
    start_glusterd(cfg.logs)
    forget_orphans()
    v = volume_name(cfg)
    known = volumes().get(v)
    brick = brick_dir(cfg)
    if known and not brick.is_dir():
        raise StartError(
            f"Gluster volume {v} exists but its brick {brick} is gone; remove it: gluster volume delete {v}"
        )
    if not known:
        brick.mkdir(parents=True, exist_ok=True)
        for cmd in create_commands(cfg):
            _run(cmd)
        log.info("created Gluster volume %s (brick %s:%s)", v, cfg.node_ip, brick)
    elif known["status"] != "Started":
        _run(gluster("volume", "start", v))
    mnt = mount_dir(cfg)
    mnt.mkdir(parents=True, exist_ok=True)
    if not mounted(mnt):
        deadline = time.monotonic() + 30
        while True:  # the brick process may take a moment after `volume start`
            proc = _run(mount_command(cfg), check=False)
            if proc.returncode == 0 and mounted(mnt):
                break
            if time.monotonic() > deadline:
                raise StartError(f"mounting Gluster volume {v} failed: {(proc.stderr or proc.stdout).strip()}")
            time.sleep(1)
    os.chmod(mnt, 0o755)
    log.info("Gluster volume %s mounted at %s (%.1fs)", v, mnt, time.monotonic() - t0)
    return mnt


def forget_orphans() -> None:
    """Delete MoonHub volumes whose brick folder is gone (a removed state folder or clone);
    their data went with the folder. Volumes of other users of this glusterd are not ours."""
    for name, info in volumes().items():
        if not name.startswith("moonhub-"):
            continue
        path = info["brick"].split(":", 1)[-1]
        if path and not Path(path).is_dir():
            if info["status"] == "Started":
                _run(gluster("volume", "stop", name, "force"), check=False)
            _run(gluster("volume", "delete", name), check=False)
            log.info("removed Gluster volume %s: its brick %s is gone", name, path)


def stop(cfg: ClusterConfig) -> bool:
    """Unmount and stop this cluster's volume (its data stays in the brick); stop glusterd
    when no volume is started any more. True when something was stopped."""
    if not installed() or not answers():
        return False
    mnt = mount_dir(cfg)
    if mnt.exists() and mounted(mnt):
        _run(["umount", "-l", str(mnt.resolve())], check=False)
    v = volume_name(cfg)
    info = volumes().get(v)
    if info and info["status"] == "Started":
        _run(gluster("volume", "stop", v), check=False)
    if any(i["status"] == "Started" for i in volumes().values()):
        return True
    _stop_daemons()
    return True


def _stop_daemons() -> None:
    """glusterd, and the quota daemon it leaves when no volume runs."""
    if PIDFILE.exists():
        try:
            os.kill(int(PIDFILE.read_text().strip()), 15)
        except (ProcessLookupError, ValueError):
            pass
        PIDFILE.unlink(missing_ok=True)
    subprocess.run(["pkill", "-f", "glusterfs .*--volfile-id (gluster/)?quotad"], capture_output=True)
