"""The local cluster's Prometheus (docs/observability.md): the metrics an operator's
Prometheus collects from a MoonHub install, collected the same way here.

It runs on the host, on ``127.0.0.1`` (no pod can reach it: pods come from the bridge, and
loopback is not routed there), and scrapes:

- the real node's kubelet: ``/metrics/cadvisor`` (every container's CPU, memory, OOM events),
  ``/metrics/resource`` and ``/metrics`` (volumes), with a client certificate of its own that
  may read node metrics and nothing else (``moonhub:prometheus``, bootstrap.yaml);
- the simulated GPUs' DCGM-format metrics, when the node has them;
- pods that ask to be scraped (``prometheus.io/scrape: "true"``, the chart's components),
  found through the API with the same identity;
- each hub started on the host against this cluster and its jobs service: :func:`hub_job`
  writes a scrape file into ``scrape.d`` (with the token of the hub's ``metrics-scraper``
  service) and :func:`reload` asks Prometheus to read it.

The rules it evaluates are the chart's (``helm/moonhub/files/monitoring/rules.yaml``): one
file, so the alerts tested here are the ones operators load.
"""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from .config import REPO, ClusterConfig
from .controlplane import Component

log = logging.getLogger("moonhub.localcluster")

#: the chart's recording and alerting rules, which the local Prometheus evaluates too
RULES = REPO / "helm" / "moonhub" / "files" / "monitoring" / "rules.yaml"
#: how often targets are scraped and rules evaluated (the operator's usual 15-30 s is slower)
INTERVAL = "10s"
#: the identity Prometheus reads the kubelet and the API with (controlplane.IDENTITIES)
IDENTITY = "prometheus"


def folder(cfg: ClusterConfig) -> Path:
    return cfg.state_dir / "prometheus"


def port(cfg: ClusterConfig) -> int:
    return 9090 + cfg.port_offset


def url(cfg: ClusterConfig) -> str:
    """Where the host (tests, ``./moonhub status``) queries it: loopback only."""
    return f"http://127.0.0.1:{port(cfg)}"


def config(cfg: ClusterConfig) -> dict[str, Any]:
    """Prometheus's configuration for ``cfg``'s cluster (pure)."""
    pki = cfg.pki
    tls = {
        "ca_file": str(pki / "ca.crt"),
        "cert_file": str(pki / f"client-{IDENTITY}.crt"),
        "key_file": str(pki / f"client-{IDENTITY}.key"),
    }
    kubelet = f"{cfg.node_ip}:{cfg.kubelet_port}"
    node_label = {"node": cfg.node_name}

    def kubelet_job(name: str, path: str) -> dict[str, Any]:
        return {
            "job_name": name,
            "scheme": "https",
            "metrics_path": path,
            "tls_config": tls,
            "static_configs": [{"targets": [kubelet], "labels": node_label}],
        }

    cadvisor = kubelet_job("kubelet-cadvisor", "/metrics/cadvisor")
    # cAdvisor also reports the cgroups above the containers (pod, QoS, system slices) with
    # empty container labels, and each pod's sandbox as "POD": only containers are kept
    cadvisor["metric_relabel_configs"] = [{"source_labels": ["container"], "regex": "|POD", "action": "drop"}]
    jobs: list[dict[str, Any]] = [
        cadvisor,
        kubelet_job("kubelet-resource", "/metrics/resource"),
        kubelet_job("kubelet", "/metrics"),
        {
            # the chart's components (and anything else that asks), by their pods' annotations
            "job_name": "annotated-pods",
            "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": str(cfg.kubeconfig(IDENTITY))}],
            "relabel_configs": [
                {
                    "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                    "regex": "true",
                    "action": "keep",
                },
                {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
                {
                    "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                    "regex": "(.+)",
                    "target_label": "__metrics_path__",
                },
                {
                    "source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
                    "regex": r"([^:]+)(?::\d+)?;(\d+)",
                    "replacement": "$1:$2",
                    "target_label": "__address__",
                },
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {
                    "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
                    "target_label": "component",
                },
            ],
        },
    ]
    if cfg.simulated_gpus:
        jobs.append({"job_name": "gpu", "static_configs": [{"targets": [cfg.gpu_metrics_url.split("/")[2]]}]})
    return {
        "global": {
            "scrape_interval": INTERVAL,
            "evaluation_interval": INTERVAL,
            "external_labels": {"cluster": "local"},
        },
        "rule_files": [str(RULES)],
        "scrape_configs": jobs,
        # each hub on the host adds its own (hub_job)
        "scrape_config_files": [str(folder(cfg) / "scrape.d" / "*.yaml")],
    }


def hub_job(name: str, hub_metrics: str, jobs_metrics: str | None, token_file: Path) -> dict[str, Any]:
    """The scrape file of one hub (started as ``name``): its ``/hub/metrics`` and its jobs
    service's ``/services/jobs/metrics``, with the token of its ``metrics-scraper`` service
    (pure)."""
    targets = []
    for service, where in (("hub", hub_metrics), ("jobs", jobs_metrics)):
        if where:
            scheme, rest = where.split("://", 1)
            address, _, path = rest.partition("/")
            labels = {"__scheme__": scheme, "__metrics_path__": f"/{path}", "hub": name, "service": service}
            targets.append({"targets": [address], "labels": labels})
    return {
        "scrape_configs": [
            {
                "job_name": f"moonhub-{name}",
                "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                "static_configs": targets,
            }
        ]
    }


def write_config(cfg: ClusterConfig) -> None:
    d = folder(cfg)
    (d / "scrape.d").mkdir(parents=True, exist_ok=True)
    (d / "data").mkdir(exist_ok=True)
    (d / "prometheus.yml").write_text(yaml.safe_dump(config(cfg), sort_keys=False))


def add_hub(cfg: ClusterConfig, name: str, job: dict[str, Any]) -> None:
    """Scrape one more hub (its file replaced when it starts again), and say so to Prometheus."""
    d = folder(cfg) / "scrape.d"
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{name}.tmp"
    tmp.write_text(yaml.safe_dump(job, sort_keys=False))
    tmp.replace(d / f"{name}.yaml")
    reload(cfg)


def reload(cfg: ClusterConfig) -> bool:
    """Ask a running Prometheus to read its configuration again; False when none answers."""
    req = urllib.request.Request(f"{url(cfg)}/-/reload", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status == 200
    except OSError as e:
        log.info("the local Prometheus did not take the new scrape file now (%s); it reads it when it starts", e)
        return False


def component(cfg: ClusterConfig, bin_dir: Path) -> Component:
    d = folder(cfg)
    return Component(
        "prometheus",
        [
            str(bin_dir / "prometheus"),
            f"--config.file={d / 'prometheus.yml'}",
            f"--storage.tsdb.path={d / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address=127.0.0.1:{port(cfg)}",
            # POST /-/reload when a hub adds its scrape file (loopback only)
            "--web.enable-lifecycle",
            "--log.level=warn",
        ],
        f"{url(cfg)}/-/ready",
    )
