"""What the real node needs inside the cluster: the pause and CoreDNS images in the local
registry, and CoreDNS as the cluster DNS (a Deployment behind the ``kube-dns`` Service).

CoreDNS answers ``cluster.local`` (and reverse lookups of cluster addresses) and refuses
every other name: there is no ``forward``, so no query leaves the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import oci
from .config import ClusterConfig
from .registry import REGISTRY

DNS_PORT = 53
COREDNS_UID = 65532
COREFILE = f""".:{DNS_PORT} {{
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loadbalance
}}
"""


def coredns_image(version: str) -> str:
    return f"{REGISTRY}/moonhub/coredns:{version}"


def push_images(bin_dir: Path, coredns_version: str) -> None:
    """The pause image (upstream's pause.c, built static by build.sh) and CoreDNS."""
    oci.push(REGISTRY, "moonhub/pause", "3.10", {"/pause": bin_dir / "pause"}, ["/pause"], "65535")
    oci.push(
        REGISTRY,
        "moonhub/coredns",
        coredns_version,
        {"/coredns": bin_dir / "coredns"},
        ["/coredns"],
        str(COREDNS_UID),
    )


_COREDNS_NS, _COREDNS = "kube-system", "coredns"
_COREDNS_LABELS = {"k8s-app": "kube-dns"}


def coredns_manifests(cfg: ClusterConfig, coredns_version: str) -> list[dict[str, Any]]:
    """The cluster DNS (pure): ServiceAccount, read-only RBAC, Corefile, Deployment, Service."""
    ns, name = _COREDNS_NS, _COREDNS
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}},
        *_coredns_rbac(),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns},
            "data": {"Corefile": COREFILE},
        },
        _coredns_deployment(coredns_version),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": ns, "labels": _COREDNS_LABELS},
            "spec": {
                "clusterIP": cfg.dns_service_ip,
                "selector": _COREDNS_LABELS,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": "dns-tcp", "protocol": "TCP"},
                ],
            },
        },
    ]


def _coredns_rbac() -> list[dict[str, Any]]:
    """CoreDNS reads Services, Pods, Namespaces and EndpointSlices, nothing else."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {"apiGroups": [""], "resources": ["services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": _COREDNS, "namespace": _COREDNS_NS}],
        },
    ]


def _coredns_deployment(coredns_version: str) -> dict[str, Any]:
    """One CoreDNS on the real node, non-root without capabilities, read-only root."""
    restricted = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": COREDNS_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "name": "coredns",
        "image": coredns_image(coredns_version),
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": DNS_PORT, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": DNS_PORT, "protocol": "TCP"},
        ],
        "resources": {
            "requests": {"cpu": "50m", "memory": "32Mi"},
            "limits": {"memory": "128Mi"},
        },
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
        "securityContext": restricted,
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": _COREDNS, "namespace": _COREDNS_NS, "labels": _COREDNS_LABELS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _COREDNS_LABELS},
            "template": {
                "metadata": {"labels": _COREDNS_LABELS},
                "spec": {
                    "serviceAccountName": _COREDNS,
                    "priorityClassName": "system-cluster-critical",
                    "dnsPolicy": "Default",
                    # port 53 as a non-root user without capabilities (a safe sysctl)
                    "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"}]},
                    "nodeSelector": {"moonhub.io/real-node": "true"},
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": _COREDNS}}],
                },
            },
        },
    }
