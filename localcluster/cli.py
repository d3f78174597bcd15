"""``python -m localcluster {up,down,status,kubectl}``: the local cluster as one command."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import yaml

from .config import REPO, ClusterConfig, default_state_dir
from .controlplane import components, prepare
from .hub import dev_password, hub_up
from .nodes import FLEET, node_object
from .supervisor import StartError, Supervisor, ensure_free

log = logging.getLogger("moonhub.localcluster")
HERE = Path(__file__).resolve().parent


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


def bootstrap(cfg: ClusterConfig, bin_dir: Path) -> None:
    """Apply the StorageClass, user namespace, hub RBAC and the simulated nodes."""
    kubectl(cfg, bin_dir, "apply", "-f", str(HERE / "manifests" / "bootstrap.yaml"))
    nodes = yaml.safe_dump_all([node_object(n) for n in FLEET])
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


def up(cfg: ClusterConfig) -> Path:
    t0 = time.monotonic()
    bin_dir = build()
    prepare(cfg)
    sup = supervisor(cfg)
    for comp in components(cfg, bin_dir):
        if sup.pid(comp.name) is None and comp.health:
            url = urlparse(comp.health)
            ensure_free(comp.name, [(url.hostname or "127.0.0.1", url.port or 443)])
        sup.start(comp.name, comp.argv)
        sup.wait_healthy(comp.name, comp.health)
        log.info("%s healthy", comp.name)
        if comp.name == "kube-apiserver":
            bootstrap(cfg, bin_dir)
    wait_node_ready(cfg, bin_dir, cfg.agent_node)
    wait_service_account(cfg, bin_dir, "moonhub-users")
    log.info("local cluster up in %.1fs", time.monotonic() - t0)
    return bin_dir


def down(cfg: ClusterConfig, bin_dir: Path | None = None) -> None:
    sup = supervisor(cfg)
    names = [c.name for c in components(cfg, bin_dir or Path("/nonexistent"))] + ["hub"]
    for name in reversed(names):
        if sup.stop(name):
            log.info("stopped %s", name)


def status(cfg: ClusterConfig) -> int:
    sup = supervisor(cfg)
    down_count = 0
    for name in [c.name for c in components(cfg, Path("/"))] + ["hub"]:
        pid = sup.pid(name)
        down_count += pid is None
        print(f"{name:24} {f'running (pid {pid})' if pid else 'stopped'}")
    print(f"KUBECONFIG={cfg.admin_kubeconfig}\nlogs: {cfg.logs}")
    return 1 if down_count else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    parser.add_argument(
        "command",
        choices=["up", "down", "status", "kubectl", "platform"],
        help="up/down: the cluster (down also stops the hub); platform: cluster and hub",
    )
    parser.add_argument("--state-dir", type=Path, default=default_state_dir())
    parser.add_argument("--port-offset", type=int, default=0, help="added to every port (new clusters only)")
    parser.add_argument("--pod-ip-octet", type=int, default=10, help="pods get 127.<n>.x.y (new clusters only)")
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="[cluster %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    cfg = ClusterConfig.load(args.state_dir.resolve(), port_offset=args.port_offset, pod_ip_octet=args.pod_ip_octet)
    try:
        if args.command == "up":
            up(cfg)
            print(f"local cluster running; admin kubeconfig: {cfg.admin_kubeconfig} (or use ./moonhub kubectl)")
        elif args.command == "platform":
            up(cfg)
            url = hub_up(cfg, supervisor(cfg))
            password = dev_password()
            print(
                f"\nMoonHub is running: open {url}/\n"
                f"  log in with any user name and the development password: {password}\n"
                f"  (the user 'admin' is an admin; the password is kept in .state/hub/dev-password)\n"
                f"  kubectl: ./moonhub kubectl get pods -A    logs: {cfg.logs}/\n"
                f"  stop everything: ./moonhub down"
            )
        elif args.command == "down":
            down(cfg)
        elif args.command == "status":
            return status(cfg)
        else:
            bin_dir = build()
            os.execv(str(bin_dir / "kubectl"), ["kubectl", f"--kubeconfig={cfg.admin_kubeconfig}", *rest])
    except StartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
