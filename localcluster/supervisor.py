"""Start, watch and stop the local cluster's processes.

Each process runs in its own session with its output in ``<state>/logs/<name>.log`` and its
pid in ``<state>/run/<name>.pid``, so ``up`` and ``down`` can be separate commands.

Each also carries ``$MOONHUB_SUPERVISED`` (its pid file's path), which what it starts keeps:
the hub passes it on to its proxy and to the services it runs (``hub_config/services.py``).
When a process died without stopping what it started (``kill -9`` of the hub), those are
found by that mark, not by their ports or names, and ended before it starts again.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("moonhub.localcluster")


class StartError(RuntimeError):
    """A process did not come up; the message names it and points at its log."""


class Supervisor:
    def __init__(self, run_dir: Path, log_dir: Path, cwd: Path) -> None:
        self.run_dir, self.log_dir, self.cwd = run_dir, log_dir, cwd

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def mark(self, name: str) -> str:
        """The value of ``$MOONHUB_SUPERVISED`` that ``name`` and what it starts carry."""
        return str((self.run_dir / f"{name}.pid").resolve())

    def end_left_behind(self, name: str) -> int:
        """When ``name`` does not run: end what an earlier run of it started and left (its
        proxy and services, still holding their ports after a ``kill -9``); how many."""
        if self.pid(name) is not None:
            return 0
        left = marked(self.mark(name))
        if left:
            log.warning("%s: ending %d processes an earlier run left behind: %s", name, len(left), _names(left))
            _end(left)
        return len(left)

    def pid(self, name: str) -> int | None:
        """The pid of ``name`` if it is running, else None (stale pid files are removed)."""
        path = self.run_dir / f"{name}.pid"
        try:
            pid = int(path.read_text().split()[0])
            expected = path.read_text().split(maxsplit=1)[1].strip()
            # /proc/<pid>/exe, not cmdline: a Go binary's cmdline reads empty for a moment
            exe = os.readlink(f"/proc/{pid}/exe")
        except (OSError, ValueError, IndexError):
            path.unlink(missing_ok=True)
            return None
        if exe != expected or not _alive(pid):
            path.unlink(missing_ok=True)
            return None
        return pid

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Start ``argv`` in the background unless ``name`` already runs; return its pid."""
        running = self.pid(name)
        if running:
            log.info("%s already running (pid %s)", name, running)
            return running
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = self.log_path(name).open("ab")
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
        out.flush()
        self.end_left_behind(name)
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.cwd,
            env={**os.environ, **(env or {}), MARK_ENV: self.mark(name)},
            start_new_session=True,
        )
        out.close()
        # remember the executable the kernel ran (a script's interpreter) to spot pid reuse
        exe = os.readlink(f"/proc/{proc.pid}/exe")
        (self.run_dir / f"{name}.pid").write_text(f"{proc.pid} {exe}\n")
        log.info("started %s (pid %s), log %s", name, proc.pid, self.log_path(name))
        return proc.pid

    def stop(self, name: str, grace: float | None = None) -> bool:
        """SIGTERM ``name``'s process group, SIGKILL after ``grace`` seconds; then end whatever
        it started in sessions of their own and left behind (a hub's proxy and services when
        the hub was killed before it stopped them)."""
        pid = self.pid(name)
        if pid is None:
            return False
        grace = grace if grace is not None else (HUB_GRACE if name.startswith("hub") else 20.0)
        children = _descendants(pid)
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            log.warning("%s did not stop in %ss; killing it", name, grace)
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _end(c for c in {*children, *marked(self.mark(name))} if _alive(c))
        (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
        return True

    def wait_healthy(self, name: str, url: str | None, timeout: float = 90.0) -> None:
        """Wait until ``url`` answers 200 (or, without a URL, the process stays up 1s)."""
        if url is None:
            time.sleep(1)
        check: Callable[[], bool] = (lambda: http_ok(url)) if url else (lambda: True)
        self.wait_for(name, check, f"healthy at {url}", timeout)

    def wait_for(self, name: str, check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
        """Wait until ``check()`` while ``name`` runs; fail with its log's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid(name) is None:
                raise StartError(f"{name} exited during start-up; see {self.log_path(name)}:\n{self.tail(name)}")
            if check():
                return
            time.sleep(0.3)
        raise StartError(f"{name} not {what} after {timeout:.0f}s; see {self.log_path(name)}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def ensure_free(name: str, addresses: list[tuple[str, int]], wait: float = 0.0) -> None:
    """Refuse to start ``name`` when something else already listens on one of its ports:
    a health check would otherwise talk to that stranger and report success. ``wait``:
    seconds a port may take to be let go (after ending what an earlier run left)."""
    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline and any(_listening(h, p) for h, p in addresses):
        time.sleep(0.2)
    for host, port in addresses:
        if _listening(host, port):
            raise StartError(
                f"cannot start {name}: {host}:{port} is already in use by another process{_holder(port)} "
                f"(a leftover from an earlier run? `./moonhub down`, or find it with `ss -ltnp 'sport = :{port}'`)"
            )


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _holder(port: int) -> str:
    """`` (pid N: command)`` of the process listening on ``port``, when it can be found."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    pids = sorted({int(p) for p in re.findall(r"pid=(\d+)", out)})
    return f" ({_names(pids)})" if pids else ""


#: the environment variable that marks a supervised process and what it starts
MARK_ENV = "MOONHUB_SUPERVISED"


def marked(mark: str) -> list[int]:
    """Every living process (but this one) whose environment carries ``MARK_ENV=mark``."""
    needle = f"{MARK_ENV}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and _alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _names(pids: Iterable[int]) -> str:
    out = []
    for p in pids:
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
            out.append(f"{p} {' '.join(c.decode(errors='replace') for c in cmd[:3]).strip()}"[:80])
        except OSError:
            continue
    return "; ".join(out)


#: seconds a hub (``hub``, ``hub-culling``, ...) gets to stop before SIGKILL: it stops its
#: services (each up to 20 s by JupyterHub's own timeouts) and its users' servers first
HUB_GRACE = 90.0


def _descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (from /proc's parent links)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # the field after the parenthesised command name is the state, then the ppid
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        frontier += kids
    return found


def _end(pids: Iterable[int], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, processes left behind."""
    left = list(pids)
    for p in left:
        log.warning("ending pid %s, left behind", p)
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    _wait_gone(left, grace)
    for p in left:
        if _alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    _wait_gone(left, 5.0)  # gone, so that their ports are free when this returns


def _wait_gone(pids: list[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def http_ok(url: str) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return bool(resp.status == 200)
    except Exception:
        return False
