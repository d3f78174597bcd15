"""The jobs service's memory under unauthenticated uploads (figures, no asserts; issue 32, item 2).

Starts the jobs service twice on this machine, from this working tree and from ``--before``
(a commit, default the one before the fix: checked out into a temporary worktree), each on
a port of its own on 127.0.0.1 against the local cluster (``./moonhub up``), with a fresh
database. Against each, in turn:

- **API**: ``--uploads`` unauthenticated POSTs of ``--api-mib`` MiB at once to
  ``/api/v1/jobs`` (no token, no cookie; 120 MiB: under the route's 128 MiB limit, which
  the service held before it refused a larger one unread);
- **outputs**: ``--uploads`` POSTs of ``--mib`` MiB to a run's output route with a wrong
  launch key;

each sent as fast as the service reads it, streamed from memory that is reused (the sender
holds 1 MiB). Printed per service and phase: the service's resident memory before, its peak
(``VmHWM`` of /proc, reset between phases by restarting the service), what each upload got
(status, or how the connection ended) and how long the phase took. All traffic stays on
127.0.0.1; bounded in count and time.

    .venv/bin/python -m benchmarks.body_memory [--uploads 20] [--mib 250] [--api-mib 120] [--before REV]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the commit before the service knew its callers before reading their bodies
DEFAULT_BEFORE = "b43d773"
CHUNK = b"\0" * 2**20
PREFIX = "/services/jobs/"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Service:
    """``python -m jobs_service`` from ``tree`` on a free port, with a fresh database."""

    def __init__(self, tree: Path, label: str, work: Path) -> None:
        self.tree, self.label, self.port = tree, label, _free_port()
        state = work / f"{label}-{self.port}"
        state.mkdir(parents=True)
        kubeconfig = REPO / ".state" / "cluster" / "kubeconfigs" / "jobs.kubeconfig"
        if not kubeconfig.exists():
            raise SystemExit(f"no local cluster ({kubeconfig} missing): run ./moonhub up first")
        env = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "MOONHUB_CONFIG": str(REPO / "hub_config" / "examples" / "local.yaml"),
            "MOONHUB_JOBS_KUBECONFIG": str(kubeconfig),
            "MOONHUB_JOBS_DB": f"sqlite:///{state / 'jobs.sqlite'}",
            "MOONHUB_JOBS_SNAPSHOTS": str(state / "snapshots"),
            "JUPYTERHUB_API_TOKEN": secrets.token_hex(16),
            # no hub answers here: the uploads carry no credentials to check
            "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
            "JUPYTERHUB_SERVICE_NAME": "jobs",
            "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{self.port}",
            "JUPYTERHUB_CLIENT_ID": "service-jobs",
            "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{PREFIX}oauth_callback",
        }
        self.log = (state / "service.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobs_service"], cwd=tree, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{label}: the service ended ({self.proc.returncode}); see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit(f"{label}: the service did not listen within 90 s; see {self.log.name}")
        time.sleep(1.0)  # its start-up (reconcile) settles

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def _upload(port: int, path: str, size: int, headers: dict[str, str], deadline: float) -> str:
    """Send ``size`` bytes as one POST; what came of it (a status, or how it ended)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    except (OSError, TimeoutError) as e:
        return f"no connection ({type(e).__name__})"
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {size}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "Connection: close\r\n\r\n"
    sent = 0
    outcome = ""
    try:
        writer.write(head.encode())
        while sent < size and time.monotonic() < deadline:
            n = min(len(CHUNK), size - sent)
            writer.write(CHUNK[:n])
            await asyncio.wait_for(writer.drain(), max(1.0, deadline - time.monotonic()))
            sent += n
        line = await asyncio.wait_for(reader.readline(), max(1.0, deadline - time.monotonic()))
        outcome = line.decode(errors="replace").split(" ", 2)[1] if line.startswith(b"HTTP/") else "closed, no answer"
    except (ConnectionError, OSError):
        outcome = "closed by the service"
    except TimeoutError:
        outcome = "timed out"
    finally:
        writer.close()
    mib = sent / 2**20
    return f"{outcome} after {mib:.0f} MiB sent" if mib < size / 2**20 else f"{outcome} (all sent)"


async def _phase(svc: Service, path: str, headers: dict[str, str], uploads: int, size: int) -> tuple[str, float]:
    t0 = time.monotonic()
    deadline = t0 + 240
    results = await asyncio.gather(*(_upload(svc.port, path, size, headers, deadline) for _ in range(uploads)))
    counted = collections.Counter(results)
    return "; ".join(f"{n} x {what}" for what, n in counted.most_common()), time.monotonic() - t0


def _worktree(rev: str, work: Path) -> Path:
    tree = work / f"tree-{rev}"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev], check=True, capture_output=True
    )
    return tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--uploads", type=int, default=20)
    ap.add_argument("--mib", type=int, default=250)
    ap.add_argument("--api-mib", type=int, default=120)
    ap.add_argument("--before", default=DEFAULT_BEFORE)
    args = ap.parse_args()
    if not 1 <= args.uploads <= 50 or not 1 <= args.mib <= 1024 or not 1 <= args.api_mib <= 1024:
        raise SystemExit("--uploads 1..50, --mib and --api-mib 1..1024 (traffic stays bounded)")
    phases = [
        ("API", f"{PREFIX}api/v1/jobs", {"Content-Type": "application/json"}, args.api_mib * 2**20),
        (
            "outputs",
            f"{PREFIX}launch/nb-nobody-x/1/runs/nb-nobody-x-1/output",
            {"X-MoonHub-Launch-Key": "0" * 64, "Content-Type": "application/gzip"},
            args.mib * 2**20,
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="moonhub-body-memory-") as tmp:
        work = Path(tmp)
        before = _worktree(args.before, work)
        try:
            each = f"API {args.api_mib} MiB each, outputs {args.mib} MiB each"
            print(f"{args.uploads} unauthenticated uploads at once: {each}")
            print(f"{'service':<28} {'phase':<8} {'RSS before':>11} {'peak RSS':>10} {'time':>7}  answers")
            for label, tree in ((f"before ({args.before})", before), ("after (working tree)", REPO)):
                for phase, path, headers, size in phases:
                    svc = Service(tree, label.split()[0], work)  # a fresh process: its peak is this phase's
                    try:
                        rss = _kib(svc.proc.pid, "VmRSS")
                        answers, took = asyncio.run(_phase(svc, path, headers, args.uploads, size))
                        peak = _kib(svc.proc.pid, "VmHWM")
                    finally:
                        svc.stop()
                    figures = f"{rss / 1024:>8.0f} MiB {peak / 1024:>6.0f} MiB {took:>6.1f}s"
                    print(f"{label:<28} {phase:<8} {figures}  {answers}")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], capture_output=True)


if __name__ == "__main__":
    main()
