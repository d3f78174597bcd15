"""Where a local cluster keeps its state, which ports and which addresses it uses.

Two control planes can run side by side (the developer's and the test suite's): each has its
own state folder, a port offset, a node address and pod and service ranges of its own. The
real node (kubelet, containerd, kube-proxy) owns machine-wide things (iptables chains, the
kubelet's device-plugin folder), so one cluster at a time runs it (see :mod:`.node`).

Every cluster range lies inside :data:`CLUSTER_RANGES`, which :mod:`.network` makes
`unreachable` on the host before anything starts, so no cluster packet can leave the machine.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: the ranges every local cluster takes its addresses from (node addresses, pod and service
#: ranges, kwok's pod range); routed `unreachable` on the host (nothing else uses them here)
CLUSTER_RANGES = ("10.80.0.0/12", "10.96.0.0/12")
#: the cloud-metadata address; a stand-in answers it on the host's loopback interface
METADATA_IP = "169.254.169.254"


def default_state_dir() -> Path:
    return Path(os.environ.get("MOONHUB_STATE", REPO / ".state" / "cluster"))


@dataclass(frozen=True)
class ClusterConfig:
    """Ports and folders of one local cluster; derived from a state folder and an offset."""

    state_dir: Path
    port_offset: int = 0
    #: simulated GPUs the real node offers (``nvidia.com/gpu`` through a device plugin, label
    #: ``moonhub.io/simulated-gpu``); pods that get them read their utilization from a file
    simulated_gpus: int = 0
    #: the address the API server and the real node use, a /32 on the host's loopback
    #: interface: reachable from pods, never routed off the machine
    node_ip: str = "10.85.0.1"
    #: the real node's pods get addresses from this range (its bridge ``moonhub-br``)
    pod_cidr: str = "10.88.0.0/24"
    service_cidr: str = "10.96.0.0/16"
    #: kwok's simulated pods get addresses from this range (never used on a wire)
    kwok_pod_cidr: str = "10.90.0.0/16"
    #: run the real node (upstream kubelet, containerd, CNI, kube-proxy, CoreDNS,
    #: kube-router's NetworkPolicy firewall) in this cluster; name ``node_name``
    real_node: bool = True
    node_name: str = "moon-local-0"
    #: the scale tier (``benchmarks/hub_scale.py``): this many simulated CPU nodes, untainted,
    #: that users' servers land on; kwok's pod range is then made ``local`` to this machine
    #: (never routed anywhere), so one stand-in server (:mod:`.standin`) listening on 0.0.0.0
    #: answers for every simulated pod as a real server answers the hub. 0: no scale tier
    scale_nodes: int = 0
    #: how many pods each scale node takes
    scale_node_pods: int = 250

    @property
    def etcd_port(self) -> int:
        return 2379 + self.port_offset

    @property
    def etcd_peer_port(self) -> int:
        return 2380 + self.port_offset

    @property
    def apiserver_port(self) -> int:
        return 6443 + self.port_offset

    @property
    def kcm_port(self) -> int:
        return 10257 + self.port_offset

    @property
    def scheduler_port(self) -> int:
        return 10259 + self.port_offset

    @property
    def kwok_port(self) -> int:
        return 10247 + self.port_offset

    @property
    def kube_proxy_port(self) -> int:
        return 10256 + self.port_offset

    @property
    def netpol_metrics_port(self) -> int:
        return 9080 + self.port_offset

    @property
    def gpu_metrics_port(self) -> int:
        """The simulated GPUs' DCGM-format metrics (DCGM exporter's port, 9400)."""
        return 9400 + self.port_offset

    @property
    def gpu_metrics_url(self) -> str:
        return f"http://{self.node_ip}:{self.gpu_metrics_port}/metrics"

    @property
    def package_index_port(self) -> int:
        """The node's package index for pods (:mod:`.package_index`; devpi's usual port)."""
        return 3141 + self.port_offset

    @property
    def package_index_url(self) -> str:
        """Where pods' pip finds packages: the simple index of the node's caching proxy."""
        return f"http://{self.node_ip}:{self.package_index_port}/index/"

    @property
    def node_registry(self) -> str:
        """The image registry as pods reach it (``host:port`` on the node address), read only:
        the machine's registry (:mod:`.registry`, which the node pulls from on 127.0.0.1)
        served again here from the same storage, for the image builder's pulls."""
        return f"{self.node_ip}:{5000 + self.port_offset}"

    @property
    def node_registry_push(self) -> str:
        """The same registry's door for the image builder's pushes: a login is needed (the
        push container's alone: :func:`.registry.push_login`)."""
        return f"{self.node_ip}:{5001 + self.port_offset}"

    @property
    def kubelet_port(self) -> int:
        return 10250 + self.port_offset

    @property
    def server(self) -> str:
        return f"https://{self.node_ip}:{self.apiserver_port}"

    @property
    def kubernetes_service_ip(self) -> str:
        """The first address of the service range: the ``kubernetes`` Service."""
        return str(ipaddress.ip_network(self.service_cidr)[1])

    @property
    def dns_service_ip(self) -> str:
        """The cluster DNS Service's address (the tenth of the range, as kubeadm does)."""
        return str(ipaddress.ip_network(self.service_cidr)[10])

    @property
    def kwok_node_ip(self) -> str:
        """The simulated nodes' address (the last of kwok's range: never on a wire either)."""
        return str(ipaddress.ip_network(self.kwok_pod_cidr)[-2])

    @property
    def bridge_ip(self) -> str:
        """The host's address on the pods' bridge (their gateway)."""
        return str(ipaddress.ip_network(self.pod_cidr)[1])

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run(self) -> Path:
        return self.state_dir / "run"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    def kubeconfig(self, name: str) -> Path:
        return self.state_dir / "kubeconfigs" / f"{name}.kubeconfig"

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # the cluster's keys and admin kubeconfig, and the folder above (the hub's state beside
        # it): the machine's root only (pods get their volumes by bind mounts, which need no
        # search permission on the folders above them)
        self.state_dir.chmod(0o700)
        if self.state_dir.parent.name == ".state":
            self.state_dir.parent.chmod(0o700)
        data = asdict(self)
        data["state_dir"] = str(self.state_dir)
        (self.state_dir / "cluster.json").write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, state_dir: Path, **defaults: int | str) -> ClusterConfig:
        """The config saved in ``state_dir``, or a new one from ``defaults``."""
        saved = state_dir / "cluster.json"
        if saved.exists():
            data = json.loads(saved.read_text())
            data["state_dir"] = Path(data["state_dir"])
            # a state folder from an earlier version may name settings that are gone
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        return cls(state_dir=state_dir, **defaults)  # type: ignore[arg-type]
