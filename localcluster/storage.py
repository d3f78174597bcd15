"""Workspace volumes on the local cluster: Rancher's local-path-provisioner (upstream, built
from the Go module proxy) behind the StorageClass ``local-path``.

The controller manager's host-path provisioner is gone: its volumes are ``hostPath`` PVs made
as root with mode 0750, and the kubelet applies ``fsGroup`` only to volumes it manages, so a
notebook's non-root user could not write its own workspace. local-path-provisioner makes each
volume's folder with a helper pod (our Debian base image) and hands out ``local`` PVs, which
the kubelet does give the pod's ``fsGroup``.

The provisioner runs on the host with its own identity (RBAC as upstream's manifest); its
helper pods run in ``local-path-storage``. Pure builders; :mod:`.cli` applies and starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import ClusterConfig
from .controlplane import Component
from .nodes import STORAGE_HELPER_NAMESPACE
from .registry import ref

NAMESPACE = STORAGE_HELPER_NAMESPACE
STORAGE_CLASS = "local-path"
PROVISIONER = "rancher.io/local-path"
IDENTITY = "moonhub:local-path-provisioner"
HELPER_SA = "local-path-helper"


def volumes_dir(cfg: ClusterConfig) -> Path:
    return cfg.state_dir / "node" / "volumes"


def helper_image() -> str:
    return ref("moonhub/debian", "bookworm")


def manifests(cfg: ClusterConfig) -> list[dict[str, Any]]:
    """Namespace, RBAC, the helper's configuration and the StorageClass (pure)."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": HELPER_SA, "namespace": NAMESPACE}},
        _config(cfg),
        *_rbac(),
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {
                    "storageclass.kubernetes.io/is-default-class": "true",
                    # `local` PVs: the kubelet applies fsGroup to them (not to hostPath ones)
                    "defaultVolumeType": "local",
                },
            },
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
        },
    ]


def _config(cfg: ClusterConfig) -> dict[str, Any]:
    """Where volumes go, and the helper pod that makes and removes their folders."""
    helper_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "tolerations": [{"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "helper-pod", "image": helper_image(), "imagePullPolicy": "IfNotPresent"}],
        },
    }
    config = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(volumes_dir(cfg))]}]}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "local-path-config", "namespace": NAMESPACE},
        "data": {
            "config.json": json.dumps(config),
            # world-writable like upstream's default; the kubelet then applies the pod's fsGroup
            "setup": 'set -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
            "teardown": 'set -eu\nrm -rf "$VOL_DIR"\n',
            "helperPod.yaml": json.dumps(helper_pod),
        },
    }


def _rbac() -> list[dict[str, Any]]:
    """The provisioner reads claims and nodes, manages PVs, and runs helper pods in its namespace."""
    name = "moonhub-local-path-provisioner"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["persistentvolumes"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
                },
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
                {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
            ],
        },
        _binding("ClusterRoleBinding", name, None),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
                }
            ],
        },
        _binding("RoleBinding", name, NAMESPACE),
    ]


def _binding(kind: str, name: str, namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    role_kind = "Role" if kind == "RoleBinding" else "ClusterRole"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [{"kind": "User", "name": IDENTITY, "apiGroup": "rbac.authorization.k8s.io"}],
    }


def component(cfg: ClusterConfig, bin_dir: Path) -> Component:
    return Component(
        "local-path-provisioner",
        [
            str(bin_dir / "local-path-provisioner"),
            "start",
            f"--kubeconfig={cfg.kubeconfig('local-path-provisioner')}",
            f"--namespace={NAMESPACE}",
            f"--provisioner-name={PROVISIONER}",
            f"--helper-image={helper_image()}",
            f"--service-account-name={HELPER_SA}",
        ],
    )
