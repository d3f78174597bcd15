"""Metrics (docs/observability.md), without a cluster: the local Prometheus's configuration,
the chart's rules and dashboards read only what MoonHub's components export, and the storage
agent's and the jobs service's figures. (tests/hub/test_metrics.py runs them for real;
tests/monitoring/ has promtool check them.)"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from localcluster import prometheus
from localcluster.config import REPO, ClusterConfig
from storage_agent.gluster import Quota
from storage_agent.metrics import Workspaces
from storage_agent.plan import Usage, plan
from tests.helpers import MONITORING, monitoring_queries

RULES = yaml.safe_load((MONITORING / "rules.yaml").read_text())
DASHBOARDS = {p.name: json.loads(p.read_text()) for p in sorted((MONITORING / "dashboards").glob("*.json"))}
#: metric families of the ecosystem's exporters the rules and dashboards read
UPSTREAM = re.compile(r"^(container_|jupyterhub_|DCGM_FI_|up$|ALERTS$)")


def _exported() -> set[str]:
    """The metric names MoonHub's own code exports (a Counter's with ``_total``)."""
    names: set[str] = set()
    for path in [*REPO.glob("*/*.py")]:
        if ".venv" in path.parts or "node_modules" in path.parts:
            continue
        text = path.read_text()
        for kind, name in re.findall(r'\b(Counter|Gauge|GaugeMetricFamily|Histogram)\(\s*"(moonhub_\w+)"', text):
            names.add(f"{name}_total" if kind == "Counter" else name)
    return names


def _names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (pure enough for ours: no offsets, no
    subqueries): what is left without label matchers, ranges, groupings and functions."""
    body = re.sub(r'"[^"]*"', "", expr)
    body = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", body)
    body = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", body)
    tokens = set(re.findall(r"\b[A-Za-z_:][A-Za-z0-9_:]*+(?!\s*\()", body))  # (not a function's name)
    return tokens - {"or", "and", "unless"}


def test_rules_and_dashboards_read_only_what_is_exported_or_recorded() -> None:
    recorded = {r["record"] for g in RULES["groups"] for r in g["rules"] if "record" in r}
    exported = _exported()
    assert {"moonhub_job_runs_ended_total", "moonhub_workspace_used_bytes", "moonhub_spawns_total"} <= exported
    seen = set()
    for _, expr in monitoring_queries():
        for name in _names(expr):
            seen.add(name)
            assert name in recorded or name in exported or UPSTREAM.match(name), f"{name!r} in {expr!r}"
    assert recorded <= seen, f"recorded and never read: {recorded - seen}"


def test_every_alert_says_what_and_how_bad() -> None:
    alerts = [r for g in RULES["groups"] for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} == {
        "MoonHubServerOutOfMemory",
        "MoonHubRunsFailing",
        "MoonHubRunsWaiting",
        "MoonHubWorkspaceAlmostFull",
        "MoonHubJobsServiceBehind",
    }
    for a in alerts:
        assert a["labels"]["severity"] in ("info", "warning", "critical"), a
        assert a["annotations"]["summary"] and a["annotations"]["description"], a


def test_dashboards_ask_the_chosen_prometheus_and_have_unique_ids() -> None:
    assert len({d["uid"] for d in DASHBOARDS.values()}) == len(DASHBOARDS) >= 2
    for name, d in DASHBOARDS.items():
        assert d["templating"]["list"][0]["name"] == "datasource", name
        for p in d["panels"]:
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (name, p["title"])
            assert p["targets"] and all(t["expr"] for t in p["targets"]), (name, p["title"])
        ids = [p["id"] for p in d["panels"]]
        assert len(set(ids)) == len(ids), name


def test_local_prometheus_reads_the_kubelet_as_itself_and_listens_on_loopback(tmp_path: Path) -> None:
    cfg = ClusterConfig(tmp_path, port_offset=1000, simulated_gpus=2)
    doc = prometheus.config(cfg)
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert set(jobs) == {"kubelet-cadvisor", "kubelet-resource", "kubelet", "annotated-pods", "gpu"}
    cadvisor = jobs["kubelet-cadvisor"]
    assert cadvisor["scheme"] == "https" and cadvisor["metrics_path"] == "/metrics/cadvisor"
    assert cadvisor["static_configs"][0]["targets"] == [f"{cfg.node_ip}:{cfg.kubelet_port}"]
    assert cadvisor["tls_config"]["cert_file"].endswith("client-prometheus.crt")
    assert jobs["annotated-pods"]["kubernetes_sd_configs"][0]["kubeconfig_file"] == str(cfg.kubeconfig("prometheus"))
    assert jobs["gpu"]["static_configs"][0]["targets"] == [f"{cfg.node_ip}:{cfg.gpu_metrics_port}"]
    assert doc["rule_files"] == [str(prometheus.RULES)] and prometheus.RULES.is_file()
    assert doc["scrape_config_files"] == [str(tmp_path / "prometheus" / "scrape.d" / "*.yaml")]
    comp = prometheus.component(cfg, Path("/bin"))
    assert f"--web.listen-address=127.0.0.1:{9090 + 1000}" in comp.argv, "no pod reaches it"
    assert "gpu" not in {j["job_name"] for j in prometheus.config(ClusterConfig(tmp_path))["scrape_configs"]}


def test_a_hub_is_scraped_with_its_scrapers_token() -> None:
    token = Path("/state/metrics-scraper.token")
    job = prometheus.hub_job(
        "hub", "http://10.85.0.2:18081/hub/metrics", "http://10.85.0.2:18090/services/jobs/metrics", token
    )
    (sc,) = job["scrape_configs"]
    assert sc["job_name"] == "moonhub-hub"
    assert sc["authorization"] == {"type": "Bearer", "credentials_file": str(token)}
    hub, jobs = sc["static_configs"]
    assert hub["targets"] == ["10.85.0.2:18081"] and jobs["targets"] == ["10.85.0.2:18090"]
    assert hub["labels"] == {"__scheme__": "http", "__metrics_path__": "/hub/metrics", "hub": "hub", "service": "hub"}
    assert jobs["labels"]["__metrics_path__"] == "/services/jobs/metrics" and jobs["labels"]["service"] == "jobs"
    alone = prometheus.hub_job("x", "https://h/hub/metrics", None, token)["scrape_configs"][0]["static_configs"]
    assert [t["labels"]["service"] for t in alone] == ["hub"], "no jobs service: the hub alone"


def test_the_storage_agent_reports_every_workspace_and_forgets_those_gone() -> None:
    mount, now = "/mnt/gv", datetime.datetime.now(datetime.UTC)

    def pv(name: str, claim: str) -> dict:  # type: ignore[type-arg]
        return {
            "metadata": {"name": name},
            "spec": {"storageClassName": "glusterfs", "hostPath": {"path": f"{mount}/u/{claim}"},
                     "claimRef": {"namespace": "u", "name": claim}, "capacity": {"storage": "1Gi"}},
            "status": {"phase": "Bound"},
        }  # fmt: skip

    def pvc(claim: str) -> dict:  # type: ignore[type-arg]
        size = {"storage": "1Gi"}
        return {"metadata": {"namespace": "u", "name": claim, "annotations": {}},
                "spec": {"resources": {"requests": size}}, "status": {"capacity": size}}  # fmt: skip

    quotas = {"/u/claim-ada": Quota(2**30, 5 * 2**20), "/u/claim-bo": Quota(2**30, 0)}
    pvs, pvcs = [pv("a", "claim-ada"), pv("b", "claim-bo")], [pvc("claim-ada"), pvc("claim-bo")]
    steps = plan(pvs, pvcs, quotas, "glusterfs", mount, now)
    usage = sorted(steps.usage, key=lambda u: u.claim)
    assert usage == [Usage("u", "claim-ada", 5 * 2**20, 2**30), Usage("u", "claim-bo", 0, 2**30)]
    registry = CollectorRegistry()
    w = Workspaces()
    registry.register(w)
    w.usage = steps.usage
    text = generate_latest(registry).decode()
    assert 'moonhub_workspace_used_bytes{claim="claim-ada",namespace="u"} 5.24288e+06' in text
    assert 'moonhub_workspace_limit_bytes{claim="claim-bo",namespace="u"} 1.073741824e+09' in text
    w.usage = usage[:1]
    assert "claim-bo" not in generate_latest(registry).decode(), "a claim gone is not reported"
