"""The Helm chart: lint, render with several values files, validate the manifests offline
(kubernetes-validate) and by a server-side dry run on the real API server, refuse unknown
values, and grant the hub and the jobs service exactly their RBAC (asked through the
authorization API)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from localcluster.config import REPO

CHART = REPO / "helm" / "moonhub"
VALUES = sorted((CHART / "ci").glob("*.yaml"))
K8S = "1.36.3"


@pytest.fixture(scope="module")
def helm() -> str:
    out = subprocess.run([str(REPO / "helm" / "build.sh")], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def kubectl() -> str:
    out = subprocess.run([str(REPO / "localcluster" / "build.sh")], check=True, capture_output=True, text=True)
    return str(Path(out.stdout.strip().splitlines()[-1]) / "kubectl")


#: rendering as for a cluster that serves Kueue's API (the chart refuses one that does not)
KUEUE = ("--api-versions", "kueue.x-k8s.io/v1beta2")


def render(helm: str, *args: str, namespace: str = "moonhub") -> list[dict]:
    r = subprocess.run(
        [helm, "template", "t", str(CHART), "-n", namespace, "--kube-version", K8S, *KUEUE, *args],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


@pytest.mark.parametrize("values", [None, *VALUES], ids=["defaults", *(v.stem for v in VALUES)])
def test_lint_render_and_validate_offline(helm: str, values: Path | None) -> None:
    args = ["-f", str(values)] if values else []
    lint = subprocess.run(
        # lint has no --api-versions: the install-time check of Kueue is turned off for it
        [helm, "lint", "--strict", str(CHART), "--kube-version", K8S, "--set", "queues.kueueCheck=false", *args],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = render(helm, *args)
    for doc in docs:
        kubernetes_validate.validate(doc, K8S, strict=True)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "Role", "RoleBinding", "ConfigMap", "Secret"} <= kinds
    classes = [d for d in docs if d["kind"] == "StorageClass"]
    if values and values.stem == "gluster":
        assert [sc["provisioner"] for sc in classes] == ["moonhub.io/gluster"]
        agent = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("storage-agent"))
        assert agent["spec"]["template"]["spec"]["nodeSelector"] == {"storage.example.com/gluster-peer": "true"}
    else:
        assert classes == [], "no storage unless asked for"


def test_gluster_storage_is_the_local_clusters_own(helm: str) -> None:
    """The local cluster's workspace storage is this template (localcluster.cli.chart_storage):
    what an install gets is what every hub test ran on. Its values name what is missing."""
    docs = render(helm, "-f", str(CHART / "ci" / "gluster.yaml"), "--show-only", "templates/storage.yaml")
    agent = next(d for d in docs if d["kind"] == "Deployment")
    pod = agent["spec"]["template"]["spec"]
    (ctr,) = pod["containers"]
    assert ctr["command"][:3] == ["python", "-m", "storage_agent"]
    assert "--volume=workspaces" in ctr["command"] and "--mount=/mnt/moonhub" in ctr["command"]
    assert agent["spec"]["replicas"] == 1 and agent["spec"]["strategy"] == {"type": "Recreate"}
    mounts = {v["name"]: v["hostPath"] for v in pod["volumes"]}
    assert mounts["gluster"] == {"path": "/mnt/moonhub", "type": "Directory"}
    assert mounts["glusterd"]["type"] == "Socket"
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    verbs = {(r["resources"][0], v) for r in role["rules"] for v in r["verbs"]}
    assert ("persistentvolumes", "create") in verbs and ("persistentvolumeclaims", "create") not in verbs
    assert ("secrets", "get") not in verbs and ("pods", "create") not in verbs
    pinned = render(
        helm, "-f", str(CHART / "ci" / "gluster.yaml"), "--set", "images.storageAgent.digest=sha256:" + "a" * 64,
        "--show-only", "templates/storage.yaml",
    )  # fmt: skip
    image = next(d for d in pinned if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "moonhub/storage-agent@sha256:" + "a" * 64
    for bad, words in (
        ("storage.gluster.volume=", "storage.gluster.volume: name the Gluster volume"),
        ("storage.gluster.mountPath=mnt", 'storage.gluster.mountPath: "mnt" is not an absolute path'),
    ):
        r = subprocess.run(
            [helm, "template", "t", str(CHART), "--kube-version", K8S, *KUEUE, "-f", str(CHART / "ci" / "gluster.yaml"),
             "--set", bad],
            capture_output=True, text=True,
        )  # fmt: skip
        assert r.returncode != 0 and words in r.stderr, r.stderr


def test_gluster_over_ssh_runs_the_agent_unprivileged_off_the_host_network(helm: str) -> None:
    """With ``agent.ssh`` the agent sends Gluster's commands to a server (Gluster outside the
    cluster): no host network, no privilege, none of a peer's paths; its key from the Secret,
    readable by it alone. Without the Secret the install names it."""
    ssh = [
        "--set",
        "storage.gluster.agent.ssh.host=gluster-1.example.com",
        "--set",
        "storage.gluster.agent.ssh.port=2222",
    ]
    docs = render(
        helm, "-f", str(CHART / "ci" / "gluster.yaml"), *ssh, "--set", "storage.gluster.agent.ssh.secret=gluster-key",
        "--show-only", "templates/storage.yaml",
    )  # fmt: skip
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    (ctr,) = pod["containers"]
    assert "--gluster-ssh=root@gluster-1.example.com" in ctr["command"] and "--gluster-ssh-port=2222" in ctr["command"]
    assert not pod.get("hostNetwork") and not ctr["securityContext"].get("privileged")
    assert ctr["securityContext"]["allowPrivilegeEscalation"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(volumes) == {"gluster", "gluster-ssh"}, "none of a Gluster peer's paths"
    assert volumes["gluster-ssh"]["secret"]["secretName"] == "gluster-key"
    assert volumes["gluster-ssh"]["secret"]["defaultMode"] == 0o400
    r = subprocess.run(
        [helm, "template", "t", str(CHART), "--kube-version", K8S, *KUEUE,
         "-f", str(CHART / "ci" / "gluster.yaml"), *ssh],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode != 0 and "storage.gluster.agent.ssh.secret" in r.stderr, r.stderr


def test_unknown_value_fails_naming_the_key(helm: str) -> None:
    r = subprocess.run(
        [helm, "template", "t", str(CHART), "--kube-version", K8S, "--set", "hub.publcUrl=x"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode != 0 and "publcUrl" in r.stderr and "not allowed" in r.stderr


def test_a_cluster_without_kueue_is_refused_with_the_way_out(helm: str) -> None:
    r = subprocess.run([helm, "template", "t", str(CHART), "--kube-version", K8S], capture_output=True, text=True)
    assert r.returncode != 0
    assert "MoonHub needs Kueue (kueue.x-k8s.io/v1beta2" in r.stderr and "queues.kueueCheck=false" in r.stderr
    rbac = render(helm)
    queues = next(d for d in rbac if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-queues"))
    assert {"clusterqueues", "cohorts", "resourceflavors"} <= set(queues["rules"][0]["resources"])
    assert "delete" in queues["rules"][0]["verbs"] and "escalate" not in queues["rules"][0]["verbs"]


def test_user_namespace_and_secrets(helm: str) -> None:
    docs = render(helm)
    ns = next(d for d in docs if d["kind"] == "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "t-moonhub-secret")[
        "stringData"
    ]
    assert len(secret["cookie-secret"]) == 64 and int(secret["cookie-secret"], 16) >= 0, "hex, as JupyterHub wants"
    platform = yaml.safe_load(
        next(d for d in docs if d["kind"] == "ConfigMap" and "platform.yaml" in d["data"])["data"]["platform.yaml"]
    )
    assert platform["jobs"]["managed"] is False and platform["hub"]["start_proxy"] is False
    assert platform["spawner"]["namespace"] == "moonhub-users"


@pytest.fixture
def installed_rbac(helm: str, kubectl: str, kubeconfig: Path, namespace: str) -> Iterator[dict[str, str]]:
    """The chart's RBAC applied for real, with the release and the user namespace both the
    test's namespace, the Gluster storage on; yields the hub's, the jobs service's and the
    storage agent's service-account users."""
    args = ["--set", "userNamespace.create=false", "--set", f"userNamespace.name={namespace}"]
    args += ["--set", "storage.gluster.enabled=true", "--set", "storage.gluster.volume=v"]
    args += ["--set", f"storage.gluster.storageClass={namespace}-gluster"]
    rbac = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
    docs = [d for d in render(helm, *args, namespace=namespace) if d["kind"] in rbac]
    for d in docs:
        if not d["kind"].startswith("Cluster"):
            d["metadata"].setdefault("namespace", namespace)
    text = yaml.safe_dump_all(docs)

    def run(*a: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", *a], input=stdin, capture_output=True, text=True)

    r = run("apply", "-f", "-", stdin=text)
    assert r.returncode == 0, r.stderr
    yield {who: f"system:serviceaccount:{namespace}:t-moonhub-{who}" for who in ("hub", "jobs", "storage-agent")}
    run("delete", "-f", "-", "--ignore-not-found", stdin=text)


def test_each_user_and_service_gets_an_origin_by_default(helm: str) -> None:
    """The default: per-user (and per-service) host names under publicUrl, host-only
    cookies, and the proxy routing by host; off only when asked."""

    def facts(*args: str) -> tuple[Any, list[str], dict[str, str]]:
        docs = {(d["kind"], d["metadata"]["name"]): d for d in render(helm, *args)}
        platform = yaml.safe_load(docs[("ConfigMap", "t-moonhub-config")]["data"]["platform.yaml"])
        proxy = docs[("Deployment", "t-moonhub-proxy")]["spec"]["template"]["spec"]["containers"][0]["args"]
        jobs = docs[("Deployment", "t-moonhub-jobs")]["spec"]["template"]["spec"]["containers"][0]["env"]
        return platform["hub"].get("subdomain_host"), proxy, {e["name"]: e.get("value", "") for e in jobs}

    sub, proxy, env = facts("--set", "hub.publicUrl=https://moonhub.example.com")
    assert sub == "https://moonhub.example.com" and "--host-routing" in proxy
    assert (
        env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "https://jobs--service.moonhub.example.com/services/jobs/oauth_callback"
    )
    assert env["JUPYTERHUB_HOST"] == "https://moonhub.example.com"
    sub, proxy, env = facts("--set", "hub.userSubdomains=false")
    assert sub is None and "--host-routing" not in proxy
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "/services/jobs/oauth_callback"


def test_the_catalog_is_the_consoles_to_edit_or_the_releases(helm: str) -> None:
    """catalogEdits: "console" (the default) gives the hub its catalog ConfigMap to write and
    a history on its state volume; "helm" keeps the console read-only (GitOps). Both mount
    the same ConfigMap into the hub and the jobs service."""

    def facts(*args: str) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
        docs = {(d["kind"], d["metadata"]["name"]): d for d in render(helm, *args)}
        spawner = yaml.safe_load(docs[("ConfigMap", "t-moonhub-config")]["data"]["platform.yaml"])["spawner"]
        catalog = docs[("ConfigMap", "t-moonhub-catalog")]
        for deployment in ("t-moonhub-hub", "t-moonhub-jobs"):
            pod = docs[("Deployment", deployment)]["spec"]["template"]["spec"]
            assert {"name": "catalog", "configMap": {"name": "t-moonhub-catalog"}} in pod["volumes"]
            mounts = pod["containers"][0]["volumeMounts"]
            assert {"name": "catalog", "mountPath": "/etc/moonhub-catalog", "readOnly": True} in mounts
        return spawner, catalog, {name for kind, name in docs if kind == "Role"}

    spawner, catalog, roles = facts()
    assert spawner["catalog"] == "/etc/moonhub-catalog/catalog.yaml"
    assert spawner["catalog_configmap"] == "moonhub/t-moonhub-catalog" and "catalog_managed_by" not in spawner
    assert spawner["catalog_history"].startswith("/srv/jupyterhub/"), "on the hub's state volume"
    assert yaml.safe_load(catalog["data"]["catalog.yaml"])["environments"], "seeded from the value"
    assert "t-moonhub-hub-catalog" in roles
    spawner, catalog, roles = facts("--set", "catalogEdits=helm")
    assert "helm upgrade" in spawner["catalog_managed_by"] and "catalog_configmap" not in spawner
    assert "t-moonhub-hub-catalog" not in roles, "GitOps: the hub may not write it"
    r = subprocess.run(
        [helm, "template", "t", str(CHART), "--kube-version", K8S, *KUEUE, "--set", "catalogEdits=gui"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode != 0 and 'catalogEdits must be "console" or "helm"' in r.stderr


def test_users_pip_installs_through_the_releases_package_index(helm: str) -> None:
    """packageIndex: a proxy of the operator's index that users' pods reach (and their pip
    is pointed at), which reaches only DNS and the upstream; off, none of it exists."""

    def facts(*args: str) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
        docs = {(d["kind"], d["metadata"]["name"]): d for d in render(helm, *args)}
        spawner = yaml.safe_load(docs[("ConfigMap", "t-moonhub-config")]["data"]["platform.yaml"])["spawner"]
        return spawner, docs

    mirror = "https://nexus.example.com/repository/pypi/simple/"
    spawner, docs = facts("--set", f"packageIndex.upstream={mirror}", "--set", "packageIndex.cacheStorageClass=fast")
    assert spawner["package_index"] == "http://t-moonhub-package-index.moonhub.svc:3141/index/"
    pod = docs[("Deployment", "t-moonhub-package-index")]["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"][-1] == mirror and pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["securityContext"]["runAsNonRoot"] is True
    assert docs[("PersistentVolumeClaim", "t-moonhub-package-index-cache")]["spec"]["storageClassName"] == "fast"
    policy = docs[("NetworkPolicy", "t-moonhub-package-index")]["spec"]
    ingress = policy["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    assert ingress == {"kubernetes.io/metadata.name": "moonhub-users"}, "users' pods only"
    assert [r["ports"] for r in policy["egress"]][1] == [{"port": 80}, {"port": 443}]
    assert "169.254.0.0/16" in policy["egress"][1]["to"][0]["ipBlock"]["except"], "not the metadata address"
    users = docs[("NetworkPolicy", "moonhub-user-pods")]["spec"]["egress"]
    assert any(r["ports"] == [{"port": 3141}] for r in users), "users' pods reach it"

    _, docs = facts("--set", "packageIndex.upstreamSecret=nexus-login")
    container = docs[("Deployment", "t-moonhub-package-index")]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-1] == "/var/cache/moonhub-packages", "no URL in the pod's spec"
    url = next(e for e in container["env"] if e["name"] == "PROXPI_INDEX_URL")
    assert url["valueFrom"] == {"secretKeyRef": {"name": "nexus-login", "key": "url"}}

    spawner, docs = facts("--set", "packageIndex.enabled=false")
    assert "package_index" not in spawner
    assert not [k for k in docs if "package-index" in k[1]]
    users = docs[("NetworkPolicy", "moonhub-user-pods")]["spec"]["egress"]
    assert not any(r["ports"] == [{"port": 3141}] for r in users)


def test_monitoring_ships_the_rules_the_dashboards_and_a_token_that_reads_metrics_only(helm: str) -> None:
    """monitoring: the rules file and the dashboards as ConfigMaps (a PrometheusRule and
    PodMonitors when asked), the scraper's token a Secret of its own that the hub mounts and
    the PodMonitors read with, the storage agent annotated for scraping, and the operator's
    Prometheus let in to the metrics ports (and the jobs service out to it)."""
    rules = yaml.safe_load((CHART / "files" / "monitoring" / "rules.yaml").read_text())
    args = ["--set", "monitoring.podMonitors.enabled=true", "--set", "monitoring.prometheusRule.enabled=true",
            "--set", "monitoring.podMonitors.labels.release=kps",
            "--set", "monitoring.prometheusNamespaceSelector.matchLabels.team=monitoring",
            "--set", "storage.gluster.enabled=true", "--set", "storage.gluster.volume=workspaces"]  # fmt: skip
    docs = {(d["kind"], d["metadata"]["name"]): d for d in render(helm, *args)}
    assert docs[("PrometheusRule", "t-moonhub")]["spec"] == rules
    kept = yaml.safe_load(docs[("ConfigMap", "t-moonhub-monitoring")]["data"]["moonhub-rules.yaml"])
    assert kept == rules
    for name in ("platform", "workload", "usage"):
        board = docs[("ConfigMap", f"t-moonhub-dashboard-{name}")]
        assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(board["data"][f"moonhub-{name}.json"])["uid"] == f"moonhub-{name}"
    token = docs[("Secret", "t-moonhub-metrics-scraper")]["stringData"]["token"]
    assert len(token) == 48
    monitors = {n: d for (k, n), d in docs.items() if k == "PodMonitor"}
    assert set(monitors) == {"t-moonhub-hub", "t-moonhub-jobs", "t-moonhub-storage-agent"}
    for name, path in (("t-moonhub-hub", "/hub/metrics"), ("t-moonhub-jobs", "/services/jobs/metrics")):
        [endpoint] = monitors[name]["spec"]["podMetricsEndpoints"]
        assert endpoint["path"] == path and monitors[name]["metadata"]["labels"]["release"] == "kps"
        assert endpoint["authorization"]["credentials"] == {"name": "t-moonhub-metrics-scraper", "key": "token"}
    platform = yaml.safe_load(docs[("ConfigMap", "t-moonhub-config")]["data"]["platform.yaml"])
    assert platform["metrics"]["scraper_token_file"] == "/etc/moonhub-metrics/token"
    hub = docs[("Deployment", "t-moonhub-hub")]["spec"]["template"]["spec"]
    assert {"name": "metrics-scraper", "mountPath": "/etc/moonhub-metrics", "readOnly": True} in hub["containers"][0][
        "volumeMounts"
    ]
    agent = docs[("Deployment", "t-moonhub-storage-agent")]["spec"]["template"]
    assert agent["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert "--metrics-address=$(POD_IP):9102" in agent["spec"]["containers"][0]["command"]
    selector = {"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}
    hub_in = docs[("NetworkPolicy", "t-moonhub-hub")]["spec"]["ingress"]
    assert {"from": [selector], "ports": [{"port": 8081}]} in hub_in
    jobs_in = docs[("NetworkPolicy", "t-moonhub-jobs")]["spec"]["ingress"]
    assert {"from": [selector], "ports": [{"port": 8090}]} in jobs_in
    jobs_out = docs[("NetworkPolicy", "t-moonhub-jobs-egress")]["spec"]["egress"]
    assert {"to": [selector], "ports": [{"port": 9090}]} in jobs_out

    # by default: no Prometheus Operator objects, no way in for a Prometheus nobody named,
    # and an operator's own Secret instead of the chart's
    docs = {(d["kind"], d["metadata"]["name"]): d for d in render(helm, "--set", "monitoring.scraperTokenSecret=mine")}
    assert not [k for k in docs if k[0] in ("PodMonitor", "PrometheusRule")]
    assert ("Secret", "t-moonhub-metrics-scraper") not in docs
    volumes = docs[("Deployment", "t-moonhub-hub")]["spec"]["template"]["spec"]["volumes"]
    assert next(v for v in volumes if v["name"] == "metrics-scraper")["secret"]["secretName"] == "mine"
    assert len(docs[("NetworkPolicy", "t-moonhub-hub")]["spec"]["ingress"]) == 1


def test_every_network_policy_selects_pods_the_chart_makes(helm: str) -> None:
    """A policy whose selector matches no pod protects nothing, and one that names a
    component no pod carries cuts that component off (both happened once)."""
    docs = render(helm)
    components = {
        d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
        for d in docs
        if d["kind"] in ("Deployment", "DaemonSet")
    }
    assert {"hub", "proxy", "jobs"} <= components
    named: set[str] = set()
    for d in docs:
        if d["kind"] != "NetworkPolicy":
            continue
        spec = json.dumps(d["spec"])
        named |= set(re.findall(r'"app.kubernetes.io/component": "([^"]+)"', spec))
        for values in re.findall(
            r'"key": "app.kubernetes.io/component", "operator": "In", "values": \[([^\]]*)\]', spec
        ):
            named |= set(re.findall(r'"([^"]+)"', values))
    assert named and named <= components, named - components


def test_server_side_dry_run(helm: str, kubectl: str, kubeconfig: Path, namespace: str) -> None:
    args = ["--set", "userNamespace.create=false", "--set", f"userNamespace.name={namespace}"]
    text = yaml.safe_dump_all(render(helm, *args, namespace=namespace))
    r = subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "apply", "--dry-run=server", "-n", namespace, "-f", "-"],
        input=text, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "deployment.apps/t-moonhub-hub created (server dry run)" in r.stdout


#: (who, verb, resource, where: "users" = the user namespace / a namespace / None = cluster, allowed)
RBAC = [
    ("hub", "create", "pods", "users", True),
    ("hub", "delete", "persistentvolumeclaims", "users", True),
    ("hub", "watch", "events", "users", True),
    ("hub", "list", "nodes", None, True),
    ("hub", "create", "pods", "kube-system", False),
    ("hub", "get", "secrets", "users", False),
    ("hub", "create", "cronjobs.batch", "users", False),
    ("hub", "delete", "nodes", None, False),
    # the GPU view lists pods on GPU nodes; it never reads one pod (its env, its secrets' names)
    ("hub", "list", "pods", "kube-system", True),
    ("hub", "get", "pods", "kube-system", False),
    ("hub", "watch", "pods", "kube-system", False),
    ("jobs", "create", "cronjobs.batch", "users", True),
    ("jobs", "create", "jobs.batch", "users", True),
    ("jobs", "get", "pods/log", "users", True),
    ("jobs", "delete", "configmaps", "users", True),
    # the uid counter (moonhub_core/uids.py): made by either when missing, then read and
    # written by its name alone; no other ConfigMap is read or changed
    ("jobs", "update", "configmaps/moonhub-uids", "users", True),
    ("hub", "get", "configmaps/moonhub-uids", "users", True),
    ("hub", "create", "configmaps", "users", True),
    ("hub", "get", "configmaps/kube-root-ca.crt", "users", False),
    ("jobs", "update", "configmaps/kube-root-ca.crt", "users", False),
    ("hub", "get", "configmaps", "kube-system", False),
    ("jobs", "create", "pods", "users", False),
    # reclaim deletes departed users' archived workspaces (docs/storage.md)
    ("jobs", "delete", "persistentvolumeclaims", "users", True),
    ("jobs", "create", "cronjobs.batch", "kube-system", False),
    # users' and teams' secrets live in the user namespace; nowhere else
    ("jobs", "get", "secrets", "users", True),
    ("jobs", "get", "secrets", "kube-system", False),
    # the GPU queues: the cluster's GPUs per type come from the nodes (read only)
    ("jobs", "list", "nodes", None, True),
    ("jobs", "delete", "nodes", None, False),
    # both write the catalog's Kueue objects; users' queues in the user namespace only
    ("hub", "create", "clusterqueues.kueue.x-k8s.io", None, True),
    ("jobs", "update", "cohorts.kueue.x-k8s.io", None, True),
    ("hub", "create", "localqueues.kueue.x-k8s.io", "users", True),
    ("hub", "create", "localqueues.kueue.x-k8s.io", "kube-system", False),
    ("jobs", "list", "workloads.kueue.x-k8s.io", "users", True),
    ("jobs", "delete", "workloads.kueue.x-k8s.io", "users", False),
    # the admin console writes the catalog's ConfigMap, by name; nothing else in the release
    ("hub", "patch", "configmaps/t-moonhub-catalog", "users", True),
    ("hub", "get", "configmaps/t-moonhub-catalog", "users", True),
    ("hub", "patch", "configmaps/t-moonhub-config", "users", False),
    ("hub", "delete", "configmaps/t-moonhub-catalog", "users", False),
    ("jobs", "patch", "configmaps/t-moonhub-catalog", "users", False),
    # the storage agent: its class's volumes, claims' sizes and use, events; no pods or secrets
    ("storage-agent", "create", "persistentvolumes", None, True),
    ("storage-agent", "delete", "persistentvolumes", None, True),
    ("storage-agent", "patch", "persistentvolumeclaims/status", "users", True),
    ("storage-agent", "create", "events", "users", True),
    ("storage-agent", "get", "storageclasses.storage.k8s.io/{ns}-gluster", None, True),
    ("storage-agent", "get", "storageclasses.storage.k8s.io/other", None, False),
    ("storage-agent", "create", "persistentvolumeclaims", "users", False),
    ("storage-agent", "delete", "persistentvolumeclaims", "users", False),
    ("storage-agent", "create", "pods", "users", False),
    ("storage-agent", "get", "secrets", "users", False),
    ("hub", "create", "persistentvolumes", None, False),
    ("jobs", "delete", "persistentvolumes", None, False),
]


def test_rbac_exactly_what_each_needs(
    installed_rbac: dict[str, str], kubectl: str, kubeconfig: Path, namespace: str
) -> None:
    wrong = []
    for who, verb, resource, where, allowed in RBAC:
        user = installed_rbac[who]
        resource = resource.replace("{ns}", namespace)
        scope = ["-n", namespace if where == "users" else where] if where else []
        r = subprocess.run(
            [kubectl, f"--kubeconfig={kubeconfig}", "auth", "can-i", verb, resource, f"--as={user}", *scope],
            capture_output=True, text=True,
        )  # fmt: skip
        if r.stdout.strip() != ("yes" if allowed else "no"):
            wrong.append((who, verb, resource, where, r.stdout.strip(), r.stderr.strip()))
    assert not wrong, wrong
