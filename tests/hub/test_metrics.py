"""Metrics the ecosystem's way (issue 36, item 1), through the local cluster's Prometheus
(localcluster/prometheus.py), which scrapes the real kubelet's cAdvisor, the hub, its jobs
service and the storage agent, and evaluates the chart's rules:

- every target of this cluster and this hub is up, the hub and the jobs service read with
  the token of the hub's ``metrics-scraper`` service, which opens nothing else;
- a process in a user's server killed for memory fires ``MoonHubServerOutOfMemory`` for
  exactly that server;
- a run that fails is counted, and what it used (memory and CPU against its limits) is kept
  with it from Prometheus;
- every recording rule and every query of the chart's dashboards returns data.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests
from kubernetes_asyncio import client

from localcluster import prometheus
from localcluster.storage import AGENT_NAMESPACE
from tests.conftest import Hub
from tests.helpers import gone, jobs_api, kubectl, monitoring_queries, notebook, runs_ended, wait_for

USER_NS = "moonhub-users"
USER = "metra"
POD = f"jupyter-{USER}"


def _query(prom: str, expr: str) -> list[dict[str, Any]]:
    r = requests.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=30)
    assert r.status_code == 200, f"{expr}: {r.status_code} {r.text[:500]}"
    return list(r.json()["data"]["result"])


def _the_scrapers_token_opens_only_metrics(hub: Hub, s: requests.Session) -> None:
    """Prometheus's token reads the hub's and the jobs service's metrics and nothing else; a
    user's token does not read the jobs service's."""
    token = (hub.config.parent / "metrics-scraper.token").read_text().strip()
    auth = {"Authorization": f"token {token}"}
    assert requests.get(f"{hub.url}/hub/metrics", headers=auth, timeout=30).status_code == 200
    assert requests.get(f"{hub.url}/hub/api/users", headers=auth, timeout=30).status_code == 403
    jobs_url = f"{hub.url}/services/jobs"
    assert requests.get(f"{jobs_url}/metrics", headers=auth, timeout=30).status_code == 200
    r = requests.get(f"{jobs_url}/api/v1/jobs", headers=auth, timeout=30)
    assert r.status_code == 403 and "not a user" in r.text, r.text
    user_token = hub.token(s, USER, "access:services!service=jobs")
    r = requests.get(f"{jobs_url}/metrics", headers={"Authorization": f"token {user_token}"}, timeout=30)
    assert r.status_code == 403, "a user's token does not read the platform's metrics"


def _recording_rules(prom: str) -> list[str]:
    groups = requests.get(f"{prom}/api/v1/rules", timeout=30).json()["data"]["groups"]
    return [r["name"] for g in groups for r in g["rules"] if r["type"] == "recording"]


async def test_prometheus_scrapes_moonhub_and_its_rules_and_dashboards_answer(
    hub: Hub, core: client.CoreV1Api, timings: dict[str, float]
) -> None:
    assert hub.cluster is not None
    prom = prometheus.url(hub.cluster)
    s = hub.login(USER)

    _the_scrapers_token_opens_only_metrics(hub, s)

    # a refused spawn (an unknown size) is counted by reason
    r = hub.api(s, "POST", f"/users/{USER}/server", json={"size": "nope"}, timeout=60)
    assert r.status_code == 400, r.text

    # the server, and a run that fails
    r = hub.spawn_form(s, USER, environment="python", size="small")
    assert r.status_code == 200, r.text[:500]
    hub.open_lab(s, USER, timeout=240)
    jobs = jobs_api(hub, s, USER)
    # long enough for a few of Prometheus's samples (every 10 s here), then it fails
    content = notebook("import time; time.sleep(30)", "raise SystemExit('no')")
    body = {"name": "fails", "notebook": "f.ipynb", "notebook_content": content, "schedule": None}
    r = jobs("POST", "/jobs", body)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    try:
        assert jobs("POST", f"/jobs/{job_id}/run").status_code == 201

        # every target up: the kubelet's three, the storage agent's pod, this hub and its jobs service
        def targets() -> list[dict[str, Any]]:
            active = requests.get(f"{prom}/api/v1/targets", timeout=30).json()["data"]["activeTargets"]
            # (not other hubs' of the run, nor the Helm-installed release's pods)
            return [
                t
                for t in active
                if t["labels"].get("hub", "hub") == "hub"
                and (t["labels"]["job"] != "annotated-pods" or t["labels"].get("namespace") == AGENT_NAMESPACE)
            ]

        def all_up(ts: list[dict[str, Any]]) -> bool:
            jobs_seen = {t["labels"]["job"] for t in ts if t["health"] == "up"}
            wanted = {"kubelet-cadvisor", "kubelet-resource", "kubelet", "annotated-pods", "moonhub-hub"}
            return wanted <= jobs_seen and all(t["health"] == "up" for t in ts)

        t0 = time.monotonic()
        up = await wait_for(targets, all_up, timeout=120, interval=2, what="every target up")
        timings["Prometheus: every target up"] = time.monotonic() - t0
        assert {t["labels"].get("service") for t in up if t["labels"]["job"] == "moonhub-hub"} == {"hub", "jobs"}
        assert any(t["labels"].get("component") == "storage-agent" for t in up), [t["labels"] for t in up]

        # the server's memory is known before its process is killed (an OOM counter seen
        # only after would look like no increase)
        t0 = time.monotonic()
        await wait_for(
            lambda: _query(prom, f'container_oom_events_total{{namespace="{USER_NS}", pod="{POD}", image!=""}}'),
            bool,
            timeout=90,
            interval=2,
            what=f"{POD} in cAdvisor's figures",
        )
        timings["a new server's first sample in Prometheus"] = time.monotonic() - t0
        await wait_for(lambda: _query(prom, f'moonhub:pod_cpu_cores:rate2m{{pod="{POD}"}}'), bool, timeout=90,
                       interval=2, what="the server's CPU rate (two samples)")  # fmt: skip
        # a process in the server runs out of memory (as a notebook that loads too much would)
        out = kubectl(hub.cluster, "-n", USER_NS, "exec", POD, "--", "sh", "-c",
                      "python -c 'b = bytearray(6 * 2**30)'; echo rc=$?")  # fmt: skip
        assert "rc=137" in out, out
        t0 = time.monotonic()

        def alerts() -> list[dict[str, Any]]:
            return list(requests.get(f"{prom}/api/v1/alerts", timeout=30).json()["data"]["alerts"])

        def oom_firing(alist: list[dict[str, Any]]) -> bool:
            return any(
                a["labels"]["alertname"] == "MoonHubServerOutOfMemory"
                and a["labels"].get("pod") == POD
                and a["state"] == "firing"
                for a in alist
            )

        fired = await wait_for(alerts, oom_firing, timeout=120, interval=2, what="MoonHubServerOutOfMemory firing")
        timings["an OOM kill to its alert firing"] = time.monotonic() - t0
        alert = next(
            a for a in fired if a["labels"]["alertname"] == "MoonHubServerOutOfMemory" and a["labels"]["pod"] == POD
        )
        assert alert["labels"]["namespace"] == USER_NS and alert["labels"]["severity"] == "info", alert
        assert alert["annotations"]["summary"] == f"{POD}: a process was killed for memory", alert

        [run] = await runs_ended(jobs, job_id, timeout=240)
        assert run["status"] == "failed", run
        # what the run used, kept from Prometheus as it ended (its pod is gone with its Job later)
        used = await wait_for(
            lambda: jobs("GET", f"/jobs/{job_id}/runs/{run['id']}/resources").json(),
            lambda d: d.get("kept") is True,
            timeout=60,
            what="the run's figures kept",
        )
        print("the failed run used:", {k: v for k, v in used.items() if not isinstance(v, list)})
        assert used["samples"] >= 1 and used["memory_bytes_peak"] > 10 * 2**20, used
        assert used["memory_limit_bytes"] == 4 * 2**30 and used["cpu_limit_cores"] == 2, used
        await wait_for(
            lambda: _query(prom, 'moonhub_job_runs_ended_total{status="failed", kind="run", hub="hub"}'),
            bool,
            timeout=60,
            interval=2,
            what="the failed run counted",
        )

        # every recording rule and every dashboard query answers with data
        rules = _recording_rules(prom)
        assert len(rules) == 6, rules
        # (the alerts' expressions are not asked: no data is what most of them should give)
        dashboards = [(w, q) for w, q in monitoring_queries() if not w.startswith("rule ")]
        here = [
            (w, q.replace("$namespace", USER_NS).replace("$pod", POD).replace("$team", ".*").replace("$user", USER))
            for w, q in dashboards
        ]
        # GPU-seconds exist once somebody holds a GPU (tests/hub/test_gpu_queues.py): here
        # their queries are asked (Prometheus refuses a bad one) but may answer nothing
        no_gpus = [(w, q) for w, q in here if "moonhub_gpu_seconds_total" in q]
        asked = [(f"recording rule {name}", name) for name in rules] + [x for x in here if x not in no_gpus]
        for _, q in no_gpus:
            _query(prom, q)
        empty: list[str] = []

        def answered() -> list[str]:
            empty[:] = [f"{where}: {q}" for where, q in asked if not _query(prom, q)]
            return empty

        await wait_for(answered, lambda e: not e, timeout=120, interval=5, what="data for every query")
        print(f"{len(asked)} queries answered with data")
    finally:
        jobs("DELETE", f"/jobs/{job_id}")
        r = hub.api(s, "DELETE", f"/users/{USER}/server")
        assert r.status_code in (202, 204), r.text
        await wait_for(lambda: gone(lambda: core.read_namespaced_pod(POD, USER_NS)), bool, timeout=120, what="pod gone")


def test_the_local_prometheus_listens_on_loopback_only(hub: Hub) -> None:
    """No pod reaches Prometheus: it listens on 127.0.0.1, which pods do not route to."""
    assert hub.cluster is not None
    port = prometheus.port(hub.cluster)
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    ours = [
        line.split()[1] for line in listening if line.split()[3] == "0A" and line.split()[1].endswith(f":{port:04X}")
    ]
    assert ours == [f"0100007F:{port:04X}"], ours
