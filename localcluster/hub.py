"""Run MoonHub's JupyterHub (and its proxy) on the host against a local cluster.

The hub API, the jobs service and the GPU reclaim service listen on the cluster's node
address, where pods reach them; :func:`user_pod_policy` is the NetworkPolicy the chart's
``moonhub-user-pods`` plays on a real cluster: users' pods reach only those ports and the
cluster DNS.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from moonhub_core.platform import DEFAULT_CONFIG, PlatformConfig, load, scraper_token_path

from . import prometheus
from .config import REPO, ClusterConfig
from .registry import push_login
from .supervisor import Supervisor, ensure_free

log = logging.getLogger("moonhub.localcluster")
DEFAULT_PLATFORM_CONFIG = DEFAULT_CONFIG


def hub_up(
    cfg: ClusterConfig,
    sup: Supervisor,
    platform_config: Path = DEFAULT_PLATFORM_CONFIG,
    name: str = "hub",
    extra_env: dict[str, str] | None = None,
) -> str:
    """Start the hub (supervised as ``name``) unless it runs; wait until it answers; return
    its public URL."""
    platform = load(platform_config)  # fail here, with the key named, before starting
    argv = [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(REPO / "hub_config" / "jupyterhub_config.py")]
    if sup.pid(name) is None:
        ended = sup.end_left_behind(name)
        urls = [platform.hub.api_url]
        if platform.hub.start_proxy:  # otherwise the proxy runs on its own, already listening
            urls += [platform.hub.public_url, platform.hub.proxy_api_url]
        if platform.jobs.enabled:
            urls.append(platform.jobs.url)
        if platform.culling.enabled:
            urls.append(platform.culling.url)
        addresses = [(u.hostname or "127.0.0.1", u.port or 80) for u in map(urlparse, urls)]
        ensure_free("the hub", addresses, wait=15.0 if ended else 0.0)
    apply_user_pod_policy(cfg, user_pod_policy(platform, f"moonhub-{name}-user-pods"))
    if platform.builds.enabled:
        apply_user_pod_policy(cfg, build_pod_policy(platform, f"moonhub-{name}-build-pods"))
        if platform.builds.push_secret:  # the push container's login to the node's push door
            apply_user_pod_policy(cfg, push_login_secret(platform, *push_login(cfg.state_dir)), "the push's login")
    env = {
        "MOONHUB_CONFIG": str(platform_config.resolve()),
        "KUBECONFIG": str(cfg.kubeconfig("hub")),
        "MOONHUB_JOBS_KUBECONFIG": str(cfg.kubeconfig("jobs")),
        **(extra_env or {}),
    }
    sup.start(name, argv, env)
    url = platform.hub.public_url.rstrip("/")
    sup.wait_healthy(name, f"{url}/hub/health", timeout=120)
    # the cluster's Prometheus scrapes this hub and its jobs service with the token the hub
    # gave its metrics-scraper service (made by now); a cluster without the real node has none
    if cfg.real_node:
        jobs = f"{platform.jobs.url.rstrip('/')}/services/jobs/metrics" if platform.jobs.enabled else None
        token = scraper_token_path(platform, platform_config.resolve())
        hub_metrics = f"{platform.hub.api_url.rstrip('/')}/hub/metrics"
        prometheus.add_hub(cfg, name, prometheus.hub_job(name, hub_metrics, jobs, token))
    return url


def _egress_to(targets: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Egress rules to each ``(address, port)`` over TCP, and to the cluster DNS (pure)."""
    egress: list[dict[str, Any]] = [
        {"to": [{"ipBlock": {"cidr": f"{host}/32"}}], "ports": [{"port": port, "protocol": "TCP"}]}
        for host, port in targets
    ]
    egress.append(
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        }
    )
    return egress


def _isolated(name: str, namespace: str, targets: list[tuple[str, int]]) -> dict[str, Any]:
    """A NetworkPolicy for every pod of ``namespace``: no ingress from other pods, egress only
    to ``targets`` and DNS (pure)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": _egress_to(targets)},
    }


def _address(url: str) -> tuple[str, int]:
    u = urlparse(url)
    return u.hostname or "", u.port or (443 if u.scheme == "https" else 80)


def user_pod_policy(platform: PlatformConfig, name: str = "moonhub-user-pods") -> dict[str, Any]:
    """Users' servers and job pods (the spawner's namespace): no ingress from other pods
    (the host-run proxy and hub reach them as the node); egress only to the hub API, the
    jobs service, the package index (the node's proxy) and the cluster DNS, so not to the
    Kubernetes API, the metadata address, other users' pods or anything else on the host
    (pure). Each host-run hub applies its own (``name``); policies add up, so hubs sharing a
    namespace do not cut each other off."""
    targets = [platform.hub.connect_url or platform.hub.api_url]
    if platform.jobs.enabled:
        targets.append(platform.jobs.url)
    if platform.culling.enabled:  # servers pull their warnings from the GPU reclaim service
        targets.append(platform.culling.connect_url or platform.culling.url)
    if platform.spawner.package_index:
        targets.append(platform.spawner.package_index)
    return _isolated(name, platform.spawner.namespace, [_address(u) for u in targets])


def build_pod_policy(platform: PlatformConfig, name: str = "moonhub-build-pods") -> dict[str, Any]:
    """Image builds' pods (``builds.namespace``): no ingress; egress only to the package index
    (what their ``pip install`` reads), the registry as they reach it (the base's pull, the
    push) and the cluster DNS (pure). A package's setup script runs in them: nothing else of
    the cluster, the host or the world is theirs to reach."""
    b = platform.builds
    targets = [_address(platform.spawner.package_index)] if platform.spawner.package_index else []
    for registry in sorted({b.pull_host, b.push_host}):
        host, _, port = registry.partition(":")
        targets.append((host, int(port or 443)))
    return _isolated(name, b.namespace, targets)


def push_login_secret(platform: PlatformConfig, user: str, password: str) -> dict[str, Any]:
    """The Secret ``builds.push_secret`` names: Docker's ``config.json`` with the login of the
    registry's push door (``builds.push_registry``), for the build pods' push container (pure)."""
    b = platform.builds
    namespace, name = b.push_secret.split("/", 1)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = {"auths": {b.push_host: {"auth": token}}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": {"config.json": json.dumps(config)},
    }


def apply_user_pod_policy(cfg: ClusterConfig, obj: dict[str, Any], what: str = "the user pods' NetworkPolicy") -> None:
    """``kubectl apply`` of one object the host-run hub needs in the cluster (a policy, a Secret)."""
    built = subprocess.run([str(REPO / "localcluster" / "build.sh")], check=True, capture_output=True, text=True)
    kubectl = Path(built.stdout.split()[-1]) / "kubectl"
    proc = subprocess.run(
        [str(kubectl), f"--kubeconfig={cfg.admin_kubeconfig}", "apply", "-f", "-"],
        input=yaml.safe_dump(obj),
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise RuntimeError(f"applying {what} failed: {proc.stderr.strip()}")


def dev_password(platform_config: Path = DEFAULT_PLATFORM_CONFIG) -> str | None:
    platform = load(platform_config)
    if platform.auth.type != "development":
        return None
    path = (platform_config.parent / platform.hub.state_dir / platform.auth.development.password_file).resolve()
    return path.read_text().strip() if path.exists() else None
