"""What the jobs service's tests through the real hub share: a client holding one user's
token, a job's body, and reading runs, logs, snapshots and the service's process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import requests

from tests.conftest import HUB_STATE, Hub
from tests.helpers import NOTEBOOK

USER_NS = "moonhub-users"


class Jobs:
    """A client of the jobs service holding one user's token (none: an anonymous caller):
    through the hub's proxy, or at a base URL (the middle tier serves the service itself)."""

    def __init__(self, where: Hub | str, token: str) -> None:
        self.base = where if isinstance(where, str) else f"{where.url}/services/jobs/api/v1"
        self.headers = {"Authorization": f"token {token}"} if token else {}

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> requests.Response:
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return requests.request(method, f"{self.base}{path}", headers=self.headers, data=data, timeout=30)


def job_body(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "notebook": "analysis/report.ipynb",
        "notebook_content": NOTEBOOK,
        "schedule": None,
        "parameters": {"rows": 42},
        **extra,
    }


async def _runs(c: Jobs, job_id: int) -> list[dict[str, Any]]:
    r = c.call("GET", f"/jobs/{job_id}/runs")
    assert r.status_code == 200, r.text
    return list(r.json()["runs"])


async def _log(c: Jobs, job_id: int, run_id: int) -> str:
    r = c.call("GET", f"/jobs/{job_id}/runs/{run_id}/log")
    return str(r.json().get("log", "")) if r.status_code == 200 else ""


def snapshot_folder(owner: str) -> Path:
    return HUB_STATE / "job-snapshots" / hashlib.sha256(owner.encode()).hexdigest()[:20]


def _service_pid(hub: Hub) -> int:
    """The jobs service process the test hub started: its child (found in /proc), not another
    hub's (a developer's cluster may run one too)."""
    hub_pid = (hub.config.parent / "jupyterhub.pid").read_text().strip()
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if proc.name.isdigit() and b"jobs_service" in cmd and b"-m" in cmd and parent == hub_pid:
            return int(proc.name)
    raise AssertionError("no jobs service process found")


def _health(hub: Hub) -> bool:
    try:
        return requests.get(f"{hub.url}/services/jobs/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False
