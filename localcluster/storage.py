"""Workspace volumes on the local cluster, behind two StorageClasses:

- ``glusterfs`` (the default, what the catalog names): folders on the cluster's GlusterFS
  volume (:mod:`.gluster`), made by MoonHub's storage agent (``storage_agent.provision``),
  a pod on this machine's node (the chart's template, :func:`chart_values`), where the
  volume is mounted and Gluster's CLI reaches glusterd.
  Each folder gets a Gluster directory quota of the claim's size when it is made, so the
  storage enforces the size. Team folders (claims annotated ``moonhub.io/gid``) get that
  group and mode 2770, workspaces their uid and 0700;
- ``local-path``: folders on the node's own disk by Rancher's local-path-provisioner
  (upstream, built from the Go module proxy): the baseline the storage benchmark compares
  with. It also removes the Gluster class's volumes it made before the agent made them.

The controller manager's host-path provisioner is gone: its volumes are ``hostPath`` PVs made
as root with mode 0750, and the kubelet applies ``fsGroup`` only to volumes it manages, so a
notebook's non-root user could not write its own workspace. local-path-provisioner makes each
volume's folder with a helper pod (our Debian base image) and hands out ``local`` PVs, which
the kubelet does give the pod's ``fsGroup``.

local-path-provisioner runs on the host with an identity of its own (RBAC below); its helper
pods run in ``local-path-storage``. Pure builders; :mod:`.cli`
applies and starts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import gluster
from .config import ClusterConfig
from .controlplane import Component
from .nodes import STORAGE_HELPER_NAMESPACE
from .registry import ref

NAMESPACE = STORAGE_HELPER_NAMESPACE
STORAGE_CLASS = "glusterfs"
LOCAL_CLASS = "local-path"
PROVISIONER = "rancher.io/local-path"
IDENTITY = "moonhub:local-path-provisioner"
AGENT_IDENTITY = "moonhub:storage-agent"
HELPER_SA = "local-path-helper"


def volumes_dir(cfg: ClusterConfig) -> Path:
    return cfg.state_dir / "node" / "volumes"


def helper_image() -> str:
    """Debian with Gluster's CLI (images/storage-helper)."""
    return ref("moonhub/storage-helper", "latest")


#: refuses a folder that is not ``<mount>/<namespace>/<claim>/<volume>`` of plain names
#: (both scripts: the teardown removes what it is given)
_CHECK_DIR = """case "$VOL_DIR" in
  *..*|*//*|*/./*|*/.|*[!A-Za-z0-9/._-]*) echo "refusing folder $VOL_DIR" >&2; exit 1 ;;
esac
"""

#: Gluster's quota command, again while another quota change holds the volume's lock: glusterd
#: refuses a second one at once ("Another transaction is in progress"), and the provisioner
#: takes a failed helper pod for one still running until its 120 s timeout (three claims
#: made at once, as a Helm install makes them, took five minutes)
_QUOTA = """quota() {
  tries=0
  while :; do
    if out=$(timeout 60 gluster --mode=script volume quota "$GLUSTER_VOLUME" "$@" 2>&1); then
      [ -z "$out" ] || echo "$out"
      return 0
    fi
    tries=$((tries + 1))
    case "$out" in
      *"Another transaction is in progress"*)
        if [ "$tries" -lt 60 ]; then sleep 1; continue; fi ;;
    esac
    echo "$out" >&2
    return 1
  done
}
"""

#: makes a ``local-path`` claim's folder on the node's disk (the Gluster class's volumes are
#: made by MoonHub's storage agent: storage_agent/provision.py)
SETUP = "set -eu\n" + _CHECK_DIR + 'mkdir -m 0777 -p "$VOL_DIR"\n'

#: removes a volume's folder: ``local-path`` ones, and the Gluster class's made by this
#: provisioner before the storage agent made them (their quota first)
TEARDOWN = (
    "set -eu\n"
    + _CHECK_DIR
    + _QUOTA
    + """case "$VOL_DIR" in
  "$GLUSTER_MOUNT"/*)
    quota remove "/${VOL_DIR#"$GLUSTER_MOUNT"/}" || true
    ;;
esac
rm -rf "$VOL_DIR"
# the claim's folder above it, once empty (folders made before v0.0.37 have none of their own)
rmdir "$(dirname "$VOL_DIR")" 2>/dev/null || true
"""
)


def manifests(cfg: ClusterConfig) -> list[dict[str, Any]]:
    """The provisioner's namespace, RBAC, helper configuration and ``local-path`` class, and
    the storage agent's namespace (pure). The ``glusterfs`` class and the agent come from the
    chart's template (:func:`chart_values`)."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": HELPER_SA, "namespace": NAMESPACE}},
        _config(cfg),
        *_rbac(),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": AGENT_NAMESPACE}},
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": LOCAL_CLASS,
                # `local` PVs: the kubelet applies fsGroup to them (not to hostPath ones)
                "annotations": {"defaultVolumeType": "local"},
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
            # the real node: kwok's nodes would "run" it without making anything
            "nodeSelector": {"moonhub.io/real-node": "true"},
            "containers": [
                {
                    "name": "helper-pod",
                    "image": helper_image(),
                    "imagePullPolicy": "IfNotPresent",
                    "env": [
                        {"name": "GLUSTER_MOUNT", "value": str(gluster.mount_dir(cfg).resolve())},
                        {"name": "GLUSTER_VOLUME", "value": gluster.volume_name(cfg)},
                    ],
                    "volumeMounts": [{"name": "glusterd", "mountPath": str(gluster.SOCKET)}],
                }
            ],
            "volumes": [{"name": "glusterd", "hostPath": {"path": str(gluster.SOCKET), "type": "Socket"}}],
        },
    }
    local = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(volumes_dir(cfg))]}]}
    config = {
        "storageClassConfigs": {
            STORAGE_CLASS: {"sharedFileSystemPath": str(gluster.mount_dir(cfg).resolve())},
            LOCAL_CLASS: local,
        }
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "local-path-config", "namespace": NAMESPACE},
        "data": {
            "config.json": json.dumps(config),
            "setup": SETUP,
            "teardown": TEARDOWN,
            "helperPod.yaml": json.dumps(helper_pod),
        },
    }


def _rbac() -> list[dict[str, Any]]:
    """The provisioner reads claims and nodes, manages PVs, and runs helper pods in its namespace."""
    name = "moonhub-local-path-provisioner"
    return [
        *_cluster_role(
            name,
            IDENTITY,
            [
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
        ),
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


def _cluster_role(name: str, user: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A ClusterRole of ``rules`` bound to ``user``."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}}
    return [{**role, "rules": rules}, _binding("ClusterRoleBinding", name, None, user)]


def _binding(kind: str, name: str, namespace: str | None, user: str = IDENTITY) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    role_kind = "Role" if kind == "RoleBinding" else "ClusterRole"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
    }


#: the namespace of the storage agent's Deployment (the chart's template, as on an install)
AGENT_NAMESPACE = "moonhub-storage"
#: the release name the local cluster renders the chart's storage template with
RELEASE = "local"
AGENT_REPOSITORY = "moonhub/storage-agent"


def chart_values(cfg: ClusterConfig, agent_digest: str) -> dict[str, Any]:
    """The chart's values that make this cluster's workspace storage (pure): its Gluster
    volume, mounted on this machine (the one real node, a Gluster peer), as the default
    class ``glusterfs``; the agent's image pinned to the registry's digest, so that a new
    build is a new pod; the host's identity for ``storage_agent.migrate`` bound too."""
    repository, _ = ref(AGENT_REPOSITORY, "latest").rsplit(":", 1)
    return {
        "queues": {"kueueCheck": False},
        "images": {"storageAgent": {"repository": repository, "tag": "latest", "digest": agent_digest}},
        "storage": {
            "gluster": {
                "enabled": True,
                "volume": gluster.volume_name(cfg),
                "mountPath": str(gluster.mount_dir(cfg).resolve()),
                "storageClass": STORAGE_CLASS,
                "defaultClass": True,
                "reclaimPolicy": "Delete",
                "agent": {
                    "nodeSelector": {"moonhub.io/real-node": "true"},
                    "glusterdSocket": str(gluster.SOCKET),
                    "interval": 5,
                    "extraSubjects": [
                        {"kind": "User", "name": AGENT_IDENTITY, "apiGroup": "rbac.authorization.k8s.io"}
                    ],
                },
            }
        },
    }


def migrate_command(cfg: ClusterConfig) -> list[str]:
    """``storage_agent.migrate`` for this cluster's workspaces, as the storage agent."""
    return [
        sys.executable,
        "-m",
        "storage_agent.migrate",
        f"--mount={gluster.mount_dir(cfg).resolve()}",
        f"--storage-class={STORAGE_CLASS}",
        f"--kubeconfig={cfg.kubeconfig('storage-agent')}",
    ]


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
            # v0.0.37 refuses a helper template with volumes of its own unless told: ours has
            # one, glusterd's socket (the quota commands), and is MoonHub's (its namespace and
            # ConfigMap are written by the platform only; the helper runs MoonHub's image and
            # scripts, which check what they are given)
            "--allow-unsafe-helper-pod-template",
        ],
    )
