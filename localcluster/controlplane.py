"""The control plane's identities, kubeconfigs and command lines.

:func:`prepare` creates certificates and kubeconfigs once (a restart reuses them and the
etcd data, so the cluster keeps its state); :func:`components` returns the command line of
every process in start order. Nothing here starts a process: see :mod:`.supervisor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import ClusterConfig
from .pki import CertificateAuthority, service_account_keys

API_SANS = (
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

#: client identities: kubeconfig name -> (common name, groups)
IDENTITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("moonhub-admin", ("system:masters",)),
    "controller-manager": ("system:kube-controller-manager", ()),
    "scheduler": ("system:kube-scheduler", ()),
    "kwok": ("kwok-controller", ("system:masters",)),
    # kube-proxy's user, bound to system:node-proxier by the API server's default RBAC
    "kube-proxy": ("system:kube-proxy", ()),
    # the NetworkPolicy enforcer (kube-router's firewall): reads policies, pods, namespaces,
    # nodes, Services (bootstrap.yaml)
    "network-policies": ("moonhub:network-policies", ()),
    # the storage provisioner (local-path-provisioner; RBAC in storage.py)
    "local-path-provisioner": ("moonhub:local-path-provisioner", ()),
    # MoonHub's storage agent: grows Gluster folders' quotas and reports their use (storage.py)
    "storage-agent": ("moonhub:storage-agent", ()),
    # the local Prometheus: reads the kubelet's metrics and finds pods to scrape (bootstrap.yaml)
    "prometheus": ("moonhub:prometheus", ()),
    # the hub's identity in local development; RBAC grants it the user namespace only
    "hub": ("moonhub:hub", ("moonhub:platform",)),
    # the jobs service's identity: CronJobs, Jobs and users' secrets in the user namespace only
    "jobs": ("moonhub:jobs", ("moonhub:platform",)),
}


def node_identity(node: str) -> tuple[str, tuple[str, ...]]:
    """The identity the Node authorizer expects from the kubelet of ``node``."""
    return f"system:node:{node}", ("system:nodes",)


def kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> dict:
    """A kubeconfig document for one client certificate (pure)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "moonhub-local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "moonhub-local", "context": {"cluster": "moonhub-local", "user": user}}],
        "current-context": "moonhub-local",
    }


def prepare(cfg: ClusterConfig) -> None:
    """Create the CA, certificates and kubeconfigs that do not exist yet."""
    for d in (cfg.pki, cfg.logs, cfg.run, cfg.state_dir / "kubeconfigs", cfg.state_dir / "etcd"):
        d.mkdir(parents=True, exist_ok=True)
    (cfg.state_dir / "etcd").chmod(0o700)
    ca = CertificateAuthority(cfg.pki)
    sans = (*API_SANS, cfg.node_ip, cfg.kubernetes_service_ip)
    ca.issue("apiserver", "kube-apiserver", server_names=sans, client=False)
    ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",))
    ca.issue("real-kubelet-serving", f"{cfg.node_name}-serving", server_names=(cfg.node_ip,), client=False)
    service_account_keys(cfg.pki)
    identities = dict(IDENTITIES)
    identities[f"node-{cfg.node_name}"] = node_identity(cfg.node_name)
    for name, (cn, orgs) in identities.items():
        crt, key = ca.issue(f"client-{name}", cn, orgs)
        path = cfg.admin_kubeconfig if name == "admin" else cfg.kubeconfig(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(kubeconfig(cfg.server, ca.cert_path, crt, key, cn)))
        path.chmod(0o600)
    cfg.save()


@dataclass(frozen=True)
class Component:
    """One process of the local cluster."""

    name: str
    argv: list[str]
    #: an HTTPS/HTTP URL that answers 200 when the component is up, if it has one
    health: str | None = None


def _etcd(cfg: ClusterConfig, b: Path) -> Component:
    """The cluster's store, etcd (local only, no fsync: the state is disposable)."""
    return Component(
        "etcd",
        [
            str(b / "etcd"),
            "--name=moonhub",
            f"--data-dir={cfg.state_dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{cfg.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{cfg.etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{cfg.etcd_peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{cfg.etcd_peer_port}",
            f"--initial-cluster=moonhub=http://127.0.0.1:{cfg.etcd_peer_port}",
            "--listen-metrics-urls=",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        f"http://127.0.0.1:{cfg.etcd_port}/health",
    )


def _apiserver(cfg: ClusterConfig, b: Path) -> Component:
    """The API server, on the node address (pods reach it through the `kubernetes` Service)."""
    p = cfg.pki
    return Component(
        "kube-apiserver",
        [
            str(b / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{cfg.etcd_port}",
            # the node address: pods reach it through the `kubernetes` Service (kube-proxy)
            f"--bind-address={cfg.node_ip}",
            f"--advertise-address={cfg.node_ip}",
            f"--secure-port={cfg.apiserver_port}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--service-cluster-ip-range={cfg.service_cidr}",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={p / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ],
        f"{cfg.server}/readyz",
    )


def _kcm(cfg: ClusterConfig, b: Path) -> Component:
    """Every controller (Jobs, CronJobs, GC, PV binding, service-account tokens)."""
    p = cfg.pki
    return Component(
        "kube-controller-manager",
        [
            str(b / "kube-controller-manager"),
            f"--kubeconfig={cfg.kubeconfig('controller-manager')}",
            f"--authentication-kubeconfig={cfg.kubeconfig('controller-manager')}",
            f"--authorization-kubeconfig={cfg.kubeconfig('controller-manager')}",
            "--bind-address=127.0.0.1",
            f"--secure-port={cfg.kcm_port}",
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            f"--cluster-signing-cert-file={p / 'ca.crt'}",
            f"--cluster-signing-key-file={p / 'ca.key'}",
            "--leader-elect=false",
            f"--service-cluster-ip-range={cfg.service_cidr}",
            # each controller's own client: 20 requests a second by default, and the CronJob
            # controller makes two per tick (the Job, the CronJob's status), so 167 hourly
            # jobs due in the same minute (10,000 in all) came 8 s late at the median, 18 s
            # at the worst (docs/performance.md, "Jobs at scale")
            "--kube-api-qps=100",
            "--kube-api-burst=200",
            # with the requests allowed, 5 CronJob workers (the default) each waiting on the
            # API server for a tick's two requests still put the last of 167 ticks 5 s late
            "--concurrent-cron-job-syncs=20",
            "--v=1",
        ],
        f"https://127.0.0.1:{cfg.kcm_port}/healthz",
    )


def _scheduler(cfg: ClusterConfig, b: Path) -> Component:
    """The scheduler."""
    return Component(
        "kube-scheduler",
        [
            str(b / "kube-scheduler"),
            f"--kubeconfig={cfg.kubeconfig('scheduler')}",
            f"--authentication-kubeconfig={cfg.kubeconfig('scheduler')}",
            f"--authorization-kubeconfig={cfg.kubeconfig('scheduler')}",
            "--bind-address=127.0.0.1",
            f"--secure-port={cfg.scheduler_port}",
            "--leader-elect=false",
            "--v=1",
        ],
        f"https://127.0.0.1:{cfg.scheduler_port}/healthz",
    )


def _kwok(cfg: ClusterConfig, b: Path) -> Component:
    """kwok, which runs the simulated nodes and their pods' lifecycle."""
    return Component(
        "kwok",
        [
            str(b / "kwok"),
            f"--kubeconfig={cfg.kubeconfig('kwok')}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{cfg.kwok_port}",
            "--node-lease-duration-seconds=40",
            # simulated pods' addresses: from a range routed `unreachable` (never on a wire)
            f"--cidr={cfg.kwok_pod_cidr}",
            f"--node-ip={cfg.kwok_node_ip}",
            # its pod stages (nodes.kwok_stages), written by `up`
            f"--config={cfg.state_dir / 'kwok.yaml'}",
        ],
        f"http://127.0.0.1:{cfg.kwok_port}/healthz",
    )


def components(cfg: ClusterConfig, bin_dir: Path) -> list[Component]:
    """Every process of the cluster in start order (pure)."""
    return [make(cfg, bin_dir) for make in (_etcd, _apiserver, _kcm, _scheduler, _kwok)]
