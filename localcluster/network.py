"""The host's side of the local cluster's network, made before anything starts.

- Every cluster range (:data:`.config.CLUSTER_RANGES`) and the link-local range get an
  ``unreachable`` route, so a packet for a pod, a Service or kwok's simulated pods can
  never leave the machine; the pods' bridge (a longer prefix) and the addresses on the
  node addresses (the ``local`` table) still win where they exist.
- The loopback interface holds each cluster's node address (a /32 outside 127.0.0.0/8: the
  API server, the kubelet and host-run services listen there; pods reach it through their
  bridge) and the cloud-metadata address, where a stand-in answers (:mod:`.metadata`). This
  VM's kernel has no ``dummy`` link type (no modules), and an address on ``lo`` is just as
  local and can never be routed off the machine.
- Forwarding for the pods' bridge: IP forwarding on, bridged traffic through iptables (so
  kube-proxy and the policy enforcer see it), an ACCEPT for the bridge in ``DOCKER-USER``
  when Docker set FORWARD's policy to DROP, and a REJECT for anything from the pod range
  that would leave by another interface (pods have no way off the machine).

Nothing here touches the default route, DNS or a chain's default policy. Each step is
idempotent; :func:`plan` is pure and unit-tested.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from .config import CLUSTER_RANGES, METADATA_IP, ClusterConfig

log = logging.getLogger("moonhub.localcluster")

#: where the node and metadata addresses live
NODE_IF = "lo"
BRIDGE = "moonhub-br"
#: our own chain, jumped to from FORWARD (and DOCKER-USER, which Docker jumps to first)
CHAIN = "MOONHUB-FORWARD"
LINK_LOCAL = "169.254.0.0/16"


def plan(cfg: ClusterConfig) -> list[list[str]]:
    """The commands that make the host ready for ``cfg`` (pure; each is idempotent)."""
    cmds: list[list[str]] = []
    for cidr in (*CLUSTER_RANGES, LINK_LOCAL):
        cmds.append(["ip", "route", "replace", "unreachable", cidr])
    cmds += [
        ["ip", "addr", "replace", f"{cfg.node_ip}/32", "dev", NODE_IF],
        ["ip", "addr", "replace", f"{METADATA_IP}/32", "dev", NODE_IF],
        *scale_plan(cfg),
        ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
        ["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"],
        # the chain is shared by every cluster on this host (the test suite runs a scale tier
        # beside its own cluster): rules are appended where missing, never flushed
        ["iptables", "-w", "-N", CHAIN],
        # pods talk to each other across the bridge; replies to host connections pass
        ["iptables", "-w", "-A", CHAIN, "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"],
        [
            "iptables",
            "-w",
            "-A",
            CHAIN,
            "-o",
            BRIDGE,
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            "ACCEPT",
        ],
        # nothing from a pod range leaves by another interface (eth0, docker0, ...)
        ["iptables", "-w", "-A", CHAIN, "-s", CLUSTER_RANGES[0], "!", "-o", BRIDGE, "-j", "REJECT"],
    ]
    return cmds


def scale_plan(cfg: ClusterConfig) -> list[list[str]]:
    """The scale tier's one route (pure): kwok's pod range ``local`` to this machine (in
    the ``local`` table, which wins over the ``unreachable`` one), so a connection to any
    simulated pod's address reaches the stand-in server on 0.0.0.0 and never a wire."""
    if not cfg.scale_nodes:
        return []
    return [["ip", "route", "replace", "local", cfg.kwok_pod_cidr, "dev", NODE_IF, "table", "local"]]


def release_scale(cfg: ClusterConfig) -> None:
    """Take the scale tier's route away again (the range is then `unreachable` as before)."""
    for cmd in scale_plan(cfg):
        delete = ["ip", "route", "del", *cmd[3:]]
        subprocess.run(delete, capture_output=True)


def _ensure_jump(parent: str) -> None:
    """Put a jump to our chain first in ``parent`` (once)."""
    if subprocess.run(["iptables", "-w", "-C", parent, "-j", CHAIN], capture_output=True).returncode:
        subprocess.run(["iptables", "-w", "-I", parent, "1", "-j", CHAIN], check=True, capture_output=True)


def prepare_host(cfg: ClusterConfig) -> None:
    """Run :func:`plan` (errors of steps that exist already are ignored), then hook our chain
    into FORWARD and, where Docker made it, DOCKER-USER."""
    for cmd in plan(cfg):
        if cmd[:4] == ["iptables", "-w", "-A", CHAIN]:
            check = ["iptables", "-w", "-C", *cmd[3:]]
            if subprocess.run(check, capture_output=True).returncode == 0:
                continue
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode and "exists" not in proc.stderr and "already" not in proc.stderr:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    _ensure_jump("FORWARD")
    if subprocess.run(["iptables", "-w", "-L", "DOCKER-USER", "-n"], capture_output=True).returncode == 0:
        _ensure_jump("DOCKER-USER")
    log.info(
        "host network ready: %s unreachable, node address %s on %s", ", ".join(CLUSTER_RANGES), cfg.node_ip, NODE_IF
    )


def bridge_plan(cfg: ClusterConfig) -> list[list[str]]:
    """The pods' bridge with its gateway address (the CNI bridge plugin takes it as it is),
    and the service range routed to it (pure). The route lets the host's own connections to
    a Service address be made at all (the `unreachable` route would refuse them before
    kube-proxy's DNAT rewrites them to a pod); a packet for an address no Service has goes
    nowhere but the bridge."""
    prefix = cfg.pod_cidr.split("/")[1]
    return [
        ["ip", "link", "add", BRIDGE, "type", "bridge"],
        ["ip", "addr", "replace", f"{cfg.bridge_ip}/{prefix}", "dev", BRIDGE],
        ["ip", "link", "set", BRIDGE, "up"],
        ["ip", "route", "replace", cfg.service_cidr, "dev", BRIDGE, "src", cfg.bridge_ip],
    ]


def prepare_bridge(cfg: ClusterConfig) -> None:
    """Run :func:`bridge_plan`, first removing a bridge another cluster's node left with its
    own address (the bridge plugin refuses to re-address it)."""
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", BRIDGE], capture_output=True, text=True)
        if "inet " in shown.stdout and f" {cfg.bridge_ip}/" not in shown.stdout:
            subprocess.run(["ip", "link", "delete", BRIDGE], check=True, capture_output=True)
            log.info("removed the pods' bridge %s left by another cluster (%s)", BRIDGE, shown.stdout.split()[3])
    for cmd in bridge_plan(cfg):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode and "exists" not in proc.stderr:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
