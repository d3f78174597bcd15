"""``python -m localcluster {up,down,status,kubectl}``: the local cluster as one command."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from moonhub_core import image_builds
from moonhub_core.platform import load

from . import addons, gluster, kueue, network, node, prometheus, registry, standin, storage
from .config import REPO, ClusterConfig, default_state_dir
from .controlplane import Component, components, prepare
from .hub import DEFAULT_PLATFORM_CONFIG, dev_password, hub_up
from .nodes import FLEET, kwok_stages, node_object, scale_fleet
from .supervisor import StartError, Supervisor, ensure_free, http_ok

log = logging.getLogger("moonhub.localcluster")
HERE = Path(__file__).resolve().parent
#: the framework images' build after ``up`` (a supervised process) and its progress, which
#: the local example's ``spawner.image_builds`` names
FRAMEWORK_BUILD = "framework-images"
IMAGE_PROGRESS = REPO / ".state" / "images" / "progress.json"


def build() -> Path:
    """Build (or find cached) binaries; return their folder."""
    out = subprocess.run([str(HERE / "build.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def supervisor(cfg: ClusterConfig) -> Supervisor:
    return Supervisor(cfg.run, cfg.logs, REPO)


def kubectl(cfg: ClusterConfig, bin_dir: Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [str(bin_dir / "kubectl"), f"--kubeconfig={cfg.admin_kubeconfig}", *args],
        input=stdin,
        text=True,
        capture_output=True,
    )
    if proc.returncode:
        raise StartError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def apply_storage(cfg: ClusterConfig, bin_dir: Path) -> None:
    """local-path-provisioner's objects and class, and the storage agent's namespace (the
    Gluster class and the agent come later: :func:`apply_agent`)."""
    apply_with_classes(cfg, bin_dir, storage.manifests(cfg))


def apply_agent(cfg: ClusterConfig, bin_dir: Path) -> None:
    """The Gluster class and the storage agent, from the chart's template, once Kueue
    answers (its webhooks see every Deployment)."""
    digest = registry.manifest_digest(storage.AGENT_REPOSITORY, "latest")
    if digest is None:
        raise StartError(f"{storage.AGENT_REPOSITORY} is not in the registry: python -m images.build --platform")
    apply_with_classes(cfg, bin_dir, chart_storage(cfg, digest))
    log.info("storage agent %s applied (%s)", storage.AGENT_NAMESPACE, digest[:19])


def apply_with_classes(cfg: ClusterConfig, bin_dir: Path, docs: list[dict[str, Any]]) -> None:
    """Apply ``docs``. A class's parameters and provisioner can not be changed in place: one
    that changed (a cluster made by an older MoonHub) is made again; volumes it made keep
    working (a class is read only when a volume is made)."""
    classes = [d for d in docs if d["kind"] == "StorageClass"]
    kubectl(cfg, bin_dir, "apply", "-f", "-", stdin=yaml.safe_dump_all([d for d in docs if d not in classes]))
    for sc in classes:
        try:
            kubectl(cfg, bin_dir, "apply", "-f", "-", stdin=yaml.safe_dump(sc))
        except StartError as e:
            # the API server's words for it: "parameters: ... field is immutable"
            if "field is immutable" not in str(e) and "forbidden" not in str(e):
                raise
            log.info("StorageClass %s: parameters changed, made again", sc["metadata"]["name"])
            kubectl(cfg, bin_dir, "delete", "storageclass", sc["metadata"]["name"], "--wait=true")
            kubectl(cfg, bin_dir, "apply", "-f", "-", stdin=yaml.safe_dump(sc))


def chart_storage(cfg: ClusterConfig, agent_digest: str) -> list[dict[str, Any]]:
    """``helm template`` of the chart's storage (templates/storage.yaml) for this cluster."""
    helm = subprocess.run([str(REPO / "helm" / "build.sh")], capture_output=True, text=True)
    if helm.returncode:
        raise StartError(f"helm/build.sh failed: {helm.stderr.strip()[-500:]}")
    values = yaml.safe_dump(storage.chart_values(cfg, agent_digest))
    out = subprocess.run(
        [
            helm.stdout.strip().splitlines()[-1], "template", storage.RELEASE, str(REPO / "helm" / "moonhub"),
            "-n", storage.AGENT_NAMESPACE, "--show-only", "templates/storage.yaml", "-f", "-",
            "--kube-version", versions()["K8S_VERSION"].lstrip("v"),
        ],
        input=values, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise StartError(f"helm template of the chart's storage failed: {out.stderr.strip()}")
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    for d in docs:
        if d["kind"] not in ("StorageClass", "ClusterRole", "ClusterRoleBinding"):
            d["metadata"]["namespace"] = storage.AGENT_NAMESPACE
    return docs


def bootstrap(cfg: ClusterConfig, bin_dir: Path) -> None:
    """Apply the StorageClass, user namespace, hub RBAC and the simulated nodes."""
    kubectl(cfg, bin_dir, "apply", "-f", str(HERE / "manifests" / "bootstrap.yaml"))
    fleet = FLEET + scale_fleet(cfg.scale_nodes, cfg.scale_node_pods)
    nodes = yaml.safe_dump_all([node_object(n) for n in fleet])
    kubectl(cfg, bin_dir, "apply", "-f", "-", stdin=nodes)


def wait_node_ready(cfg: ClusterConfig, bin_dir: Path, node: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    path = '{.status.conditions[?(@.type=="Ready")].status}'
    while time.monotonic() < deadline:
        try:
            if kubectl(cfg, bin_dir, "get", "node", node, "-o", f"jsonpath={path}") == "True":
                return
        except StartError:
            pass
        time.sleep(0.5)
    raise StartError(f"node {node} not Ready after {timeout:.0f}s; see {cfg.logs}")


def wait_service_account(cfg: ClusterConfig, bin_dir: Path, namespace: str, timeout: float = 60) -> None:
    """Pods are refused until the controller manager has made the namespace's default SA."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kubectl(cfg, bin_dir, "get", "serviceaccount", "default", "-n", namespace)
            return
        except StartError:
            time.sleep(0.5)
    raise StartError(f"no default ServiceAccount in {namespace} after {timeout:.0f}s; see {cfg.logs}")


def versions() -> dict[str, str]:
    """localcluster/versions.env as a dict."""
    out = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def all_components(cfg: ClusterConfig, bin_dir: Path) -> list[Component]:
    """The control plane, then the real node and its storage provisioner (when the cluster
    has a real node), then the scale tier's stand-in server (when it has scale nodes)."""
    scale = [standin.component(cfg)] if cfg.scale_nodes else []
    if not cfg.real_node:
        return components(cfg, bin_dir) + scale
    return scale + components(cfg, bin_dir) + node.components(cfg, bin_dir) + [storage.component(cfg, bin_dir)]


def _start(cfg: ClusterConfig, sup: Supervisor, comp: Component) -> None:
    if comp.name == "metadata-stand-in" and comp.health and http_ok(comp.health):
        # machine-wide: an earlier run's already answers
        log.info("%s already answers at %s", comp.name, comp.health)
        return
    if sup.pid(comp.name) is None and comp.health:
        url = urlparse(comp.health)
        ensure_free(comp.name, [(url.hostname or "127.0.0.1", url.port or 443)])
    sup.start(comp.name, comp.argv)
    if comp.name == "containerd":
        sup.wait_for(comp.name, node.containerd_socket(cfg).is_socket, "its socket")
        refresh_images(cfg)
    else:
        sup.wait_healthy(comp.name, comp.health)
    log.info("%s healthy", comp.name)


def start_component(cfg: ClusterConfig, name: str) -> None:
    """Start one component of a cluster that is up again (one a fault test stopped)."""
    found = [c for c in all_components(cfg, _cached_bin_dir()) if c.name == name]
    if not found:
        raise StartError(f"no component {name} in this cluster")
    _start(cfg, supervisor(cfg), found[0])


def up(cfg: ClusterConfig) -> Path:
    t0 = time.monotonic()
    bin_dir = build()
    network.prepare_host(cfg)
    prepare(cfg)
    if cfg.real_node:
        try:
            node.claim(cfg)
        except RuntimeError as e:
            raise StartError(str(e)) from None
        network.prepare_bridge(cfg)
        node.write_configs(cfg)
        registry.ensure(bin_dir)
        addons.push_images(bin_dir, versions()["COREDNS_VERSION"])
        kueue.push_image(bin_dir, versions()["KUEUE_VERSION"])
    defaults = [yaml.safe_load(p.read_text()) for p in sorted((bin_dir / "kwok-stages").glob("pod-*.yaml"))]
    (cfg.state_dir / "kwok.yaml").write_text(yaml.safe_dump_all(kwok_stages(defaults)))
    sup = supervisor(cfg)
    for name in RETIRED:
        if sup.stop(name):
            log.info("stopped %s (it runs in the cluster now)", name)
    for comp in all_components(cfg, bin_dir):
        if comp.name == "local-path-provisioner":
            storage.volumes_dir(cfg).mkdir(parents=True, exist_ok=True)
            gluster.ensure(cfg)
            apply_storage(cfg, bin_dir)
        _start(cfg, sup, comp)
        if comp.name == "kube-apiserver":
            bootstrap(cfg, bin_dir)
    if cfg.real_node:
        wait_node_ready(cfg, bin_dir, cfg.node_name)
        docs = addons.coredns_manifests(cfg, versions()["COREDNS_VERSION"])
        kubectl(cfg, bin_dir, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
        kubectl(cfg, bin_dir, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=120s")
        log.info("cluster DNS ready at %s", cfg.dns_service_ip)
        install_kueue(cfg, bin_dir)
        apply_agent(cfg, bin_dir)
    elif cfg.scale_nodes:
        # no node runs Kueue's controller here: its API alone, so that the hub and the jobs
        # service find the objects they write and read (without Kueue's webhooks nothing is
        # gated or suspended: servers and runs here are placed by the scheduler alone)
        crds = [
            d
            for d in kueue.manifests(kueue.load_upstream(bin_dir), versions()["KUEUE_VERSION"])
            if d["kind"] == "CustomResourceDefinition"
        ]
        kubectl(cfg, bin_dir, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=yaml.safe_dump_all(crds))
    wait_service_account(cfg, bin_dir, "moonhub-users")
    log.info("local cluster up in %.1fs", time.monotonic() - t0)
    return bin_dir


def install_kueue(cfg: ClusterConfig, bin_dir: Path) -> None:
    """Kueue from upstream's manifests (localcluster/kueue.py), ready when its webhooks answer."""
    t0 = time.monotonic()
    version = versions()["KUEUE_VERSION"]
    docs = kueue.manifests(kueue.load_upstream(bin_dir), version)
    # server-side: the CRDs are larger than client-side apply's annotation allows
    kubectl(cfg, bin_dir, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=yaml.safe_dump_all(docs))
    ns, name = kueue.NAMESPACE, kueue.DEPLOYMENT
    try:
        kubectl(cfg, bin_dir, "-n", ns, "rollout", "status", f"deployment/{name}", "--timeout=180s")
    except StartError as e:
        # what an operator would look at: the manager's pods and the namespace's events
        seen = []
        for args in (("get", "pods", "-o", "wide"), ("get", "events", "--sort-by=.lastTimestamp")):
            try:
                seen.append(kubectl(cfg, bin_dir, "-n", ns, *args)[-2000:])
            except StartError as again:
                seen.append(str(again))
        raise StartError(f"{e}\n" + "\n".join(seen)) from None
    probe_doc = yaml.safe_dump(
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "probe"}}
    )

    def answers() -> str | None:
        try:
            kubectl(cfg, bin_dir, "create", "--dry-run=server", "-f", "-", stdin=probe_doc)
            return None
        except StartError as e:
            return str(e)[-300:]

    kueue.wait_webhooks(answers)
    log.info("Kueue %s ready (%.1fs)", version, time.monotonic() - t0)


def refresh_images(cfg: ClusterConfig) -> None:
    """Pull every MoonHub image of the registry into the node's containerd: a tag pushed
    again (`./moonhub images` after a change) then names the new image on the node too
    (pods pull `IfNotPresent`), and the first spawn does not wait for a pull."""
    t0 = time.monotonic()
    refs = registry.images()
    pull_onto_node(cfg, refs)
    log.info("images on the node match the registry (%d references, %.1fs)", len(refs), time.monotonic() - t0)


def pull_onto_node(cfg: ClusterConfig, refs: list[str]) -> None:
    crictl = [str(_cached_bin_dir() / "crictl"), f"--runtime-endpoint=unix://{node.containerd_socket(cfg)}"]
    for ref in refs:
        proc = subprocess.run([*crictl, "--timeout=600s", "pull", ref], capture_output=True, text=True)
        if proc.returncode:
            log.warning("pulling %s failed: %s", ref, proc.stderr.strip())


def build_frameworks_later(cfg: ClusterConfig) -> None:
    """Build the framework images in the background (the hub is up; a Python server starts
    without them), each pushed and pulled onto the node when done; the progress goes to
    :data:`IMAGE_PROGRESS`, which the spawn form and ``status`` read."""
    argv = [sys.executable, "-m", "images.build", "--frameworks", "--progress", str(IMAGE_PROGRESS), "--pull"]
    supervisor(cfg).start(FRAMEWORK_BUILD, argv)


def stopped_builds() -> None:
    """Say of the images a stopped build had not finished that they will not come by
    themselves (the spawn form would otherwise show them building for ever)."""
    entries = image_builds.read(IMAGE_PROGRESS)
    for e in entries:
        if e.get("state") not in ("ready", "failed"):
            e["state"], e["message"] = "failed", "stopped by ./moonhub down; the next ./moonhub up builds it"
    if entries:
        image_builds.write(IMAGE_PROGRESS, entries)


def image_status() -> list[str]:
    """``status``'s lines of the framework images' build (none when nothing was built)."""
    return [
        f"image {e['name']:18} {image_builds.words(e) if e.get('state') != 'ready' else 'ready'}"
        for e in image_builds.read(IMAGE_PROGRESS)
    ]


def stop_pods(cfg: ClusterConfig, bin_dir: Path) -> None:
    """Stop every pod sandbox on the real node (the kubelet is stopped first, so nothing
    restarts them); ``up`` starts them again from the API's pods."""
    crictl = [str(bin_dir / "crictl"), f"--runtime-endpoint=unix://{node.containerd_socket(cfg)}", "--timeout=60s"]
    pods = subprocess.run([*crictl, "pods", "-q"], capture_output=True, text=True)
    ids = pods.stdout.split()
    if ids:
        subprocess.run([*crictl, "stopp", *ids], capture_output=True)
        log.info("stopped %d pod sandboxes", len(ids))


#: components an earlier MoonHub ran on the host and this one does not: a cluster started
#: by that version still has them running, and they are stopped with it (the storage agent
#: runs in a pod now, from the chart's template)
RETIRED = ["storage-agent"]


def down(cfg: ClusterConfig, bin_dir: Path | None = None) -> None:
    sup = supervisor(cfg)
    bin_dir = bin_dir or _cached_bin_dir()
    names = RETIRED + [c.name for c in all_components(cfg, bin_dir)] + ["hub", FRAMEWORK_BUILD]
    for name in reversed(names):
        if name == "containerd" and sup.pid(name) is not None:
            stop_pods(cfg, bin_dir)
        if sup.stop(name):
            log.info("stopped %s", name)
            if name == FRAMEWORK_BUILD:
                stopped_builds()
    if cfg.real_node:
        if n := node.unmount_all(cfg):
            log.info("unmounted %d of the kubelet's mounts", n)
        if gluster.stop(cfg):
            log.info("stopped Gluster volume %s", gluster.volume_name(cfg))
        node.release(cfg)
        if registry.stop():
            log.info("stopped the image registry")
    network.release_scale(cfg)


def _cached_bin_dir() -> Path:
    """The binaries' folder without building (down and status must not build)."""
    v = versions()
    cache = Path(os.environ.get("MOONHUB_CACHE", Path.home() / ".cache" / "moonhub"))
    return cache / f"k8s-{v['K8S_VERSION']}-kwok-{v['KWOK_VERSION']}" / "bin"


def status(cfg: ClusterConfig) -> int:
    sup = supervisor(cfg)
    down_count = 0
    for name in [c.name for c in all_components(cfg, Path("/"))] + ["hub"]:
        pid = sup.pid(name)
        down_count += pid is None
        print(f"{name:24} {f'running (pid {pid})' if pid else 'stopped'}")
    for line in image_status():
        print(line)
    print(f"KUBECONFIG={cfg.admin_kubeconfig}\nlogs: {cfg.logs}")
    return 1 if down_count else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    parser.add_argument(
        "command",
        choices=["up", "down", "status", "kubectl", "platform", "migrate-uids"],
        help="up/down: the cluster (down also stops the hub); platform: cluster and hub",
    )
    parser.add_argument("--state-dir", type=Path, default=default_state_dir())
    parser.add_argument("--port-offset", type=int, default=0, help="added to every port (new clusters only)")
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="[cluster %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    cfg = ClusterConfig.load(args.state_dir.resolve(), port_offset=args.port_offset)
    try:
        if args.command == "up":
            up(cfg)
            print(f"local cluster running; admin kubeconfig: {cfg.admin_kubeconfig} (or use ./moonhub kubectl)")
        elif args.command == "platform":
            up(cfg)
            url = hub_up(cfg, supervisor(cfg))
            build_frameworks_later(cfg)
            password = dev_password()
            servers = load(DEFAULT_PLATFORM_CONFIG).hub.subdomain_host.rstrip("/")
            where = urlparse(servers)
            per_user = (
                f"  each user's server opens at {where.scheme}://<user>.{where.netloc}/ (a host name of its own)\n"
                if servers
                else ""
            )
            print(
                f"\nMoonHub is running: open {url}/\n"
                f"  log in with any user name and the development password: {password}\n"
                f"{per_user}"
                f"  (the user 'admin' is an admin; the password is kept in .state/hub/dev-password)\n"
                f"  the framework images (PyTorch, TensorFlow) are built in the background: ./moonhub status\n"
                f"    shows how far (their environments say so on the spawn form until they are ready)\n"
                f"  metrics: Prometheus at {prometheus.url(cfg)}/ (its API; alerts: docs/observability.md)\n"
                f"  kubectl: ./moonhub kubectl get pods -A    logs: {cfg.logs}/\n"
                f"  stop everything: ./moonhub down"
            )
        elif args.command == "down":
            down(cfg)
        elif args.command == "status":
            return status(cfg)
        elif args.command == "migrate-uids":
            # workspaces made before uids get one each (docs/security.md), as the storage agent
            return subprocess.run([*storage.migrate_command(cfg), *rest]).returncode
        else:
            bin_dir = build()
            os.execv(str(bin_dir / "kubectl"), ["kubectl", f"--kubeconfig={cfg.admin_kubeconfig}", *rest])
    except StartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
