"""What one token check costs the hub: the request a service made of the hub for each spawn
when it was asked with the new server's token (``GET /hub/api/user``), before the hub
signed its own claim instead (``moonhub_core/server_claim.py``).

A real JupyterHub (this repository's version, SQLite, its real proxy) on local ports; a
service makes ``--tokens`` tokens for one user with the scopes a server's token has, then
each is checked once, as a service seeing a new server's token does; the baseline in the
same run is as many requests of the hub's version route (``GET /hub/api/``: no token, the
same HTTP path through the hub). Printed: the hub process's CPU per request of each, and
wall-clock latencies.

    .venv/bin/python -m benchmarks.token_lookup [--tokens 500]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
PORT = 18950
HUB = f"http://127.0.0.1:{PORT + 1}/hub/api"
#: a server token's scopes as MoonHub gives them (without the server filter: no server here)
SCOPES = ["users:activity!user", "access:services!service=jobs"]

CONFIG = """
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.pid_file = "{state}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "null"
c.JupyterHub.services = [{{"name": "bench", "api_token": {token!r}}}, {{"name": "jobs"}}]
c.JupyterHub.load_roles = [
    {{"name": "bench", "scopes": ["admin:users", "tokens", "list:users"], "services": ["bench"]}},
    # MoonHub's user role: a server's token may call the jobs service
    {{"name": "user", "scopes": ["self", "access:services!service=jobs"]}},
]
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(pid: int, calls: list[tuple[str, dict[str, str]]]) -> tuple[float, list[float]]:
    """CPU seconds of the hub per call, and each call's latency (s)."""
    s = requests.Session()
    latencies = []
    before = cpu_seconds(pid)
    for url, headers in calls:
        t = time.perf_counter()
        r = s.get(url, headers=headers, timeout=30)
        latencies.append(time.perf_counter() - t)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {r.status_code} {r.text[:200]}")
    return (cpu_seconds(pid) - before) / len(calls), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=500, help="tokens made and checked once each")
    args = parser.parse_args()
    proxy = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
    if not proxy.exists():
        sys.exit(f"{proxy} is missing: run ./moonhub up or ./moonhub test once (npm ci)")
    state = Path(tempfile.mkdtemp(prefix="moonhub-token-bench-"))
    admin = secrets.token_hex(32)
    (state / "config.py").write_text(
        CONFIG.format(port=PORT, hub_port=PORT + 1, proxy_port=PORT + 2, proxy=str(proxy), state=state, token=admin)
    )
    log = (state / "hub.log").open("w")
    hub = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(state / "config.py")], cwd=state, stdout=log, stderr=log
    )
    try:
        auth = {"Authorization": f"token {admin}"}
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{HUB}/", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or hub.poll() is not None:
                sys.exit(f"the hub did not start; see {state / 'hub.log'}")
            time.sleep(0.5)
        requests.post(f"{HUB}/users/ada", headers=auth, timeout=30).raise_for_status()
        tokens = []
        for _ in range(args.tokens):
            r = requests.post(f"{HUB}/users/ada/tokens", headers=auth, json={"scopes": SCOPES}, timeout=30)
            r.raise_for_status()
            tokens.append(r.json()["token"])
        time.sleep(2)  # let the token writes settle before measuring
        plain_cpu, plain_lat = timed(hub.pid, [(f"{HUB}/", {})] * args.tokens)
        check_cpu, check_lat = timed(hub.pid, [(f"{HUB}/user", {"Authorization": f"token {t}"}) for t in tokens])
        ms = 1000.0
        print(
            json.dumps(
                {
                    "tokens": args.tokens,
                    "hub CPU ms per request: GET /hub/api/ (baseline)": round(plain_cpu * ms, 2),
                    "hub CPU ms per request: GET /hub/api/user, a new token each": round(check_cpu * ms, 2),
                    "ratio (token check / baseline)": round(check_cpu / plain_cpu, 2) if plain_cpu else None,
                    "latency p50 ms: baseline / token check": [
                        round(statistics.median(plain_lat) * ms, 2),
                        round(statistics.median(check_lat) * ms, 2),
                    ],
                },
                indent=1,
            )
        )
    finally:
        hub.terminate()
        try:
            hub.wait(20)
        except subprocess.TimeoutExpired:
            hub.kill()
        subprocess.run(["pkill", "-f", "--", f"--api-port {PORT + 2}"], check=False)
        log.close()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
