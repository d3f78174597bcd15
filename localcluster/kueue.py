"""Kueue (SIG Scheduling's job queueing) on the local cluster, installed as operators install
it: upstream's own manifests (rendered by ``build.sh`` from the module's kustomize tree),
the manager as a pod on the real node, from an image of the binary built here.

What is changed from upstream's manifests, and why (:func:`manifests`, pure):

- the manager's image is ours (``build.sh`` builds it with ``go install``; no registry
  outside is reachable), pulled ``IfNotPresent`` from the machine's registry, and it runs on
  the real node with smaller requests (the node is the developer's machine);
- Kueue's configuration gets what MoonHub needs (:data:`moonhub_core.queue_objects.KUEUE_CONFIGURATION`):
  Jobs and plain Pods that name a queue; GPUs, CPU, memory and pods counted, every GPU also as a
  ``moonhub.io/gpus``; one replica, so no leader election;
- its Pod and Job webhooks see only objects that name a queue (:data:`QUEUED_ONLY`);
- the visibility API's ``APIService`` objects are left out: the local API server does not
  run the aggregation layer, and an unavailable aggregated API would break discovery for
  every client (MoonHub works out queue positions from Workloads itself).
"""

from __future__ import annotations

import copy
import hashlib
import time
import urllib.error
from pathlib import Path
from typing import Any

import yaml

from moonhub_core.queue_objects import KUEUE_CONFIGURATION, QUEUE_LABEL

from . import oci
from .registry import REGISTRY

NAMESPACE = "kueue-system"
DEPLOYMENT = "kueue-controller-manager"
MANAGER_UID = "65532"
#: the Pod, Job, Deployment and StatefulSet webhooks see only objects that name a queue:
#: Kueue ignores the others anyway (``manageJobsWithoutQueueName: false``), and its webhooks
#: fail closed, so without this a Kueue outage would stop every pod (CPU servers, storage
#: helpers), Job and Deployment (the storage agent's)
QUEUED_ONLY = ("mpod", "vpod", "mjob", "vjob", "mdeployment", "vdeployment", "mstatefulset", "vstatefulset")


#: on Kueue's pod template: the digest of the configuration it was started with
CONFIG_DIGEST = "moonhub.io/kueue-config"


def image(version: str) -> str:
    return f"{REGISTRY}/moonhub/kueue:{version}"


def push_image(bin_dir: Path, version: str) -> None:
    """The manager binary as a one-layer image (skipped when the version is there already)."""
    try:
        oci._request("HEAD", f"http://{REGISTRY}/v2/moonhub/kueue/manifests/{version}").close()
        return
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise
    oci.push(REGISTRY, "moonhub/kueue", version, {"/manager": bin_dir / "kueue"}, ["/manager"], MANAGER_UID)


def _configure(text: str) -> str:
    cfg = yaml.safe_load(text)
    cfg.update(copy.deepcopy(KUEUE_CONFIGURATION))
    cfg["leaderElection"] = {"leaderElect": False}
    return yaml.safe_dump(cfg, sort_keys=False)


def manifests(upstream: list[dict[str, Any]], version: str) -> list[dict[str, Any]]:
    """Upstream's install manifests, adapted to the local cluster (pure; see the module)."""
    out = []
    configured = ""
    for doc in copy.deepcopy([d for d in upstream if d]):
        kind = doc["kind"]
        if kind == "APIService":
            continue
        if kind == "ConfigMap" and "controller_manager_config.yaml" in doc.get("data", {}):
            configured = doc["data"]["controller_manager_config.yaml"] = _configure(
                doc["data"]["controller_manager_config.yaml"]
            )
        if kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            for hook in doc.get("webhooks") or []:
                if hook["name"].split(".", 1)[0] in QUEUED_ONLY:
                    hook["objectSelector"] = {"matchExpressions": [{"key": QUEUE_LABEL, "operator": "Exists"}]}
        if kind == "Deployment" and doc["metadata"]["name"] == DEPLOYMENT:
            spec = doc["spec"]["template"]["spec"]
            spec["nodeSelector"] = {"moonhub.io/real-node": "true"}
            (manager,) = [c for c in spec["containers"] if c["name"] == "manager"]
            manager["image"] = image(version)
            manager["imagePullPolicy"] = "IfNotPresent"
            manager["args"] = [a for a in manager.get("args", []) if not a.startswith("--zap-log-level")]
            manager["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
            manager.setdefault("securityContext", {})["runAsUser"] = int(MANAGER_UID)
        out.append(doc)
    # Kueue reads its configuration once: a cluster made before a change restarts it
    for doc in out:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == DEPLOYMENT:
            meta = doc["spec"]["template"].setdefault("metadata", {})
            meta.setdefault("annotations", {})[CONFIG_DIGEST] = hashlib.sha256(configured.encode()).hexdigest()[:16]
    return out


def load_upstream(bin_dir: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((bin_dir / "kueue-manifests.yaml").read_text()) if d]


def wait_webhooks(probe: Any, timeout: float = 180) -> None:
    """Wait until Kueue's webhooks answer: ``probe()`` makes a server-side dry run that goes
    through them and returns an error text or None."""
    deadline = time.monotonic() + timeout
    last = "not tried"
    while time.monotonic() < deadline:
        last = probe()
        if last is None:
            return
        time.sleep(2)
    raise TimeoutError(f"Kueue's webhooks did not answer within {timeout:.0f}s: {last}")
