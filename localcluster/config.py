"""Where a local cluster keeps its state and which ports it uses.

Two clusters can run side by side (the developer's and the test suite's): each has its own
state folder, a port offset and its own range of pod IPs on 127.0.0.0/8.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def default_state_dir() -> Path:
    return Path(os.environ.get("MOONHUB_STATE", REPO / ".state" / "cluster"))


@dataclass(frozen=True)
class ClusterConfig:
    """Ports and folders of one local cluster; derived from a state folder and an offset."""

    state_dir: Path
    port_offset: int = 0
    #: second octet of the pod IPs handed out by this cluster's node agent (127.<n>.x.y)
    pod_ip_octet: int = 10
    agent_node: str = "moon-local-0"
    #: GPUs the node agent advertises (``nvidia.com/gpu``, label ``moonhub.io/simulated-gpu``);
    #: pods that get them read their utilization from a file the agent provides
    simulated_gpus: int = 0

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
    def kubelet_port(self) -> int:
        return 10250 + self.port_offset

    @property
    def kwok_port(self) -> int:
        return 10247 + self.port_offset

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

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
            return cls(**data)
        return cls(state_dir=state_dir, **defaults)  # type: ignore[arg-type]
