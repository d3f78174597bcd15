"""Spawns and runs on the local cluster's real node, as a user sees them (figures, no asserts).

Against the platform ``./moonhub up`` runs (the hub at its ``hub.public_url``, each user's
server on a host name of its own under localhost; the development login):

- first spawn: login -> the spawn form -> JupyterLab answers, for ``--users`` new users (a
  new workspace volume each; the image is already on the node after the first);
- spawn again: each user's server stopped, then the same again (volume and image present);
- run now -> first cell executing: a job made through the user's server (the Schedule
  dialog's route), "run now", until the run's live log shows papermill executing cell 1.

Each spawn is also cut into phases, from a watch on the users' pods and direct polls: form
submitted -> pod created -> container running -> the server answers at its pod address ->
the hub says ready -> JupyterLab answers through the proxy.

    ./moonhub up
    .venv/bin/python -m benchmarks.real_node [--users 20]
"""

from __future__ import annotations

import argparse
import html
import re
import statistics
import threading
import time
from collections import defaultdict
from http.cookiejar import Cookie
from typing import Any, cast

import requests
from kubernetes import client, config, watch

from localcluster.config import REPO
from moonhub_core.platform import DEFAULT_CONFIG, load
from tests.helpers import NOTEBOOK, resolve_localhost_names

URL = load(DEFAULT_CONFIG).hub.public_url.rstrip("/")
#: with per-user host names (``hub.subdomain_host``): ``<scheme>://<user>.<host>``
SUBDOMAINS = load(DEFAULT_CONFIG).hub.subdomain_host.rstrip("/")


def server_url(user: str) -> str:
    """Where ``user``'s server answers (its own host name, or the hub's)."""
    if not SUBDOMAINS:
        return f"{URL}/user/{user}"
    scheme, host = SUBDOMAINS.split("://", 1)
    return f"{scheme}://{user}.{host}/user/{user}"


NS = "moonhub-users"
PHASES = ("pod created", "container running", "server answers", "hub says ready", "lab answers")


class PodClock(threading.Thread):
    """When (this process's monotonic clock) each user pod was first seen created, with its
    container running, and its IP: from a watch, so each is within a watch event's delay."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        config.load_kube_config(str(REPO / ".state" / "cluster" / "admin.kubeconfig"))
        self.v1 = client.CoreV1Api()
        self.seen: dict[str, dict[str, float]] = defaultdict(dict)
        self.names: dict[str, str] = {}
        self.ip: dict[str, str] = {}

    def run(self) -> None:
        while True:
            meta = self.v1.list_namespaced_pod(NS).metadata
            rv = meta.resource_version if meta else None
            for ev in watch.Watch().stream(self.v1.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=300):
                now, pod = time.monotonic(), ev["object"]
                name, uid = pod.metadata.name, pod.metadata.uid
                marks = self.seen[uid]
                marks.setdefault("pod created", now)
                statuses = pod.status.container_statuses or []
                if statuses and statuses[0].state.running:
                    marks.setdefault("container running", now)
                if pod.status.pod_ip:
                    self.ip[name] = pod.status.pod_ip
                self.names[uid] = name

    def marks(self, pod: str, since: float) -> dict[str, float]:
        for uid, marks in list(self.seen.items()):
            if self.names.get(uid) == pod and marks.get("pod created", 0) >= since:
                return dict(marks)
        return {}


def login(user: str, password: str) -> requests.Session:
    s = requests.Session()
    s.get(f"{URL}/hub/login").raise_for_status()
    s.post(f"{URL}/hub/login", data={"username": user, "password": password, "_xsrf": s.cookies.get("_xsrf")})
    # a browser sends a cookie of Domain=.localhost (the hub's, for the users' host names)
    # to localhost itself; Python's cookie jar does not, and the hub's XSRF tokens are tied
    # to its session cookie: the same cookie for the bare host too
    for c in cast("list[Cookie]", list(s.cookies)):
        if c.domain == ".localhost":
            s.cookies.set(c.name, c.value or "", domain="localhost.local", path=c.path)
    return s


def hub_api(s: requests.Session, method: str, path: str, **kw: Any) -> requests.Response:
    return s.request(
        method, f"{URL}/hub/api{path}", headers={"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/") or ""}, **kw
    )


def spawn(s: requests.Session, user: str, clock: PodClock, timeout: float = 180) -> dict[str, float]:
    """Seconds from submitting the spawn form to each phase (the last: JupyterLab answers)."""
    # where the form itself posts, with the token in its action, as a browser sends it
    form = s.get(f"{URL}/hub/spawn/{user}")
    found = re.search(r'id="spawn_form"\s+action="([^"]+)"', form.text)
    action = html.unescape(found.group(1)) if found else f"/hub/spawn/{user}"
    t0 = time.monotonic()
    r = s.post(f"{URL}{action}", data={"environment": "python", "size": "small"})
    if r.status_code >= 400:
        raise SystemExit(f"{user}'s spawn was refused: {r.status_code} {r.text[:300]}")
    at: dict[str, float] = {}
    pod = f"jupyter-{user}"
    while time.monotonic() - t0 < timeout:
        ip = clock.ip.get(pod)
        if "server answers" not in at and ip:
            try:
                if requests.get(f"http://{ip}:8888/user/{user}/api", timeout=0.5).status_code == 200:
                    at["server answers"] = time.monotonic()
            except requests.RequestException:
                pass
        if "hub says ready" not in at and (hub_api(s, "GET", f"/users/{user}").json()["servers"].get("") or {}).get(
            "ready"
        ):
            at["hub says ready"] = time.monotonic()
        lab = s.get(f"{server_url(user)}/lab", timeout=30)
        if lab.status_code == 200 and lab.url.endswith(f"/user/{user}/lab"):
            at["lab answers"] = time.monotonic()
            at |= clock.marks(pod, t0)
            return {k: v - t0 for k, v in at.items()}
        time.sleep(0.05)
    raise SystemExit(f"{user}'s lab did not answer in {timeout}s")


def stop(s: requests.Session, user: str) -> None:
    hub_api(s, "DELETE", f"/users/{user}/server")
    for _ in range(600):
        if not hub_api(s, "GET", f"/users/{user}").json()["servers"]:
            return
        time.sleep(0.2)


def run_now_to_first_cell(s: requests.Session, user: str) -> float:
    base = f"{server_url(user)}/moonhub/api/v1"
    xsrf = {"X-XSRFToken": s.cookies.get("_xsrf", path=f"/user/{user}/") or ""}
    body = {"name": f"bench-{int(time.time())}", "notebook": "bench.ipynb", "notebook_content": NOTEBOOK}
    job = s.post(f"{base}/jobs", json=body, headers=xsrf)
    job.raise_for_status()
    job_id = job.json()["id"]
    t0 = time.monotonic()
    run = s.post(f"{base}/jobs/{job_id}/run", headers=xsrf)
    run.raise_for_status()
    run_id = run.json()["id"]
    while time.monotonic() - t0 < 180:
        log = s.get(f"{base}/jobs/{job_id}/runs/{run_id}/log", headers=xsrf)
        if log.status_code == 200 and "Executing Cell 1" in (log.json().get("log") or ""):
            return time.monotonic() - t0
        time.sleep(0.2)
    raise SystemExit("the run did not start executing in 180 s")


def figures(name: str, xs: list[float]) -> None:
    if not xs:
        return
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    print(f"{name:44} n={len(xs):3}  p50 {statistics.median(xs):5.2f} s  p95 {p95:5.2f} s  max {xs[-1]:5.2f} s")


def phases(name: str, spawns: list[dict[str, float]]) -> None:
    """The median time of each phase: from the previous phase's mark to its own."""
    print(f"  {name}, median of each phase:")
    prev = [0.0] * len(spawns)
    for phase in PHASES:
        cur = [sp.get(phase, p) for sp, p in zip(spawns, prev, strict=True)]
        print(f"    -> {phase:20} {statistics.median(c - p for c, p in zip(cur, prev, strict=True)):5.2f} s")
        prev = cur


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--prefix", default=time.strftime("b%H%M%S-"), help="user names' prefix: new users (new volumes) each run"
    )
    a = p.parse_args()
    resolve_localhost_names()
    password = (REPO / ".state" / "hub" / "dev-password").read_text().strip()
    users = [f"{a.prefix}{i:02d}" for i in range(a.users)]
    first: list[dict[str, float]] = []
    again: list[dict[str, float]] = []
    clock = PodClock()
    clock.start()
    sessions = {u: login(u, password) for u in users}
    for u in users:  # one at a time: the node has 2 cores
        first.append(spawn(sessions[u], u, clock))
        stop(sessions[u], u)
    for u in users:
        again.append(spawn(sessions[u], u, clock))
        if u != users[0]:
            stop(sessions[u], u)
    runs = [run_now_to_first_cell(sessions[users[0]], users[0]) for _ in range(a.runs)]
    stop(sessions[users[0]], users[0])
    figures("spawn, new user (new volume)", [sp["lab answers"] for sp in first])
    phases("new user", first)
    figures("spawn again (volume and image present)", [sp["lab answers"] for sp in again])
    phases("again", again)
    figures("run now -> first cell executing", runs)


if __name__ == "__main__":
    main()
