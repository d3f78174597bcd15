"""The real node: upstream kubelet on containerd and runc, CNI bridge, kube-proxy,
kube-router's firewall (NetworkPolicy), with CoreDNS and the image registry.

Pure builders: the configuration files of containerd, CNI, the kubelet and kube-proxy and
the command line of each process (:func:`components`). :func:`write_configs` writes the
files; starting and stopping is :mod:`.cli`'s job with :mod:`.supervisor`.

What this machine needs (docs/local-cluster.md has the why of each): cgroup v1 with
``failCgroupV1: false``; ``oomScoreAdj: 0`` and containerd's ``restrict_oom_score_adj``
(the VM lacks CAP_SYS_RESOURCE); a node address outside 127.0.0.0/8 (a /32 on ``lo``); the
pause image from the local registry.

Machine-wide paths the kubelet keeps whatever its ``--root-dir`` (its device-plugin socket,
``/var/log/containers``) and kube-proxy's iptables chains make one real node per machine:
:func:`claim` records which cluster runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from . import prometheus
from .config import METADATA_IP, ClusterConfig
from .controlplane import Component
from .network import BRIDGE
from .registry import CACHE, REGISTRY, push_login, ref
from .registry import config as registry_config

PAUSE_IMAGE = ref("moonhub/pause", "3.10")
CNI_BIN = "/usr/lib/cni"
#: the NetworkPolicy enforcer's process name (kube-router's firewall)
ENFORCER = "kube-router-firewall"
#: which cluster runs the machine's one real node
CLAIM = Path("/run/moonhub-node.claim")


def node_dir(cfg: ClusterConfig) -> Path:
    return cfg.state_dir / "node"


def containerd_socket(cfg: ClusterConfig) -> Path:
    return node_dir(cfg) / "containerd" / "containerd.sock"


def kubelet_healthz_port(cfg: ClusterConfig) -> int:
    return 10248 + cfg.port_offset


#: containerd's root (image content and snapshots): machine-wide like the node itself, so a
#: new test cluster does not pull every image again
CONTAINERD_ROOT = CACHE / "containerd"


def containerd_config(cfg: ClusterConfig) -> str:
    """containerd 1.6's config (version 2 format)."""
    d = node_dir(cfg) / "containerd"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{CONTAINERD_ROOT}"
state = "{d / "state"}"
# the VM lacks CAP_SYS_RESOURCE: a negative oom_score_adj can not be set (docs/local-cluster.md)
oom_score = 0

[grpc]
  address = "{containerd_socket(cfg)}"
[ttrpc]
  address = "{d / "containerd.sock.ttrpc"}"
[debug]
  address = ""
[metrics]
  address = ""

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{node_dir(cfg) / "cni"}"
    max_conf_num = 1
  [{cri}.registry.mirrors."{REGISTRY}"]
    endpoint = ["http://{REGISTRY}"]
"""


def cni_config(cfg: ClusterConfig) -> dict[str, Any]:
    """The pods' network: a bridge with host-local addresses from ``pod_cidr``, loopback,
    and portmap for hostPort. No masquerading: pods have no way off the machine."""
    return {
        "cniVersion": "0.4.0",
        "name": "moonhub",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": cfg.pod_cidr, "gateway": cfg.bridge_ip}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node_dir(cfg) / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(cfg: ClusterConfig) -> dict[str, Any]:
    pki = cfg.pki
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": cfg.node_ip,
        "port": cfg.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": kubelet_healthz_port(cfg),
        "tlsCertFile": str(pki / "real-kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "real-kubelet-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{containerd_socket(cfg)}",
        "cgroupDriver": "cgroupfs",
        # this VM's kernel mounts cgroup v1 only; kubelet 1.35+ refuses it unless told
        "failCgroupV1": False,
        "failSwapOn": False,
        # without CAP_SYS_RESOURCE the kubelet can not lower its own oom_score_adj
        "oomScoreAdj": 0,
        "clusterDNS": [cfg.dns_service_ip],
        "clusterDomain": "cluster.local",
        # pods with dnsPolicy Default get no outside resolver either
        "resolvConf": str(node_dir(cfg) / "resolv.conf"),
        "podLogsDir": str(node_dir(cfg) / "pod-logs"),
        "serializeImagePulls": False,
        "maxPods": 110,
        # a development machine: evict only when really short (never on a busy disk)
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "imageGCHighThresholdPercent": 95,
        "imageGCLowThresholdPercent": 90,
        "staticPodPath": "",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "nodeStatusUpdateFrequency": "10s",
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(cfg: ClusterConfig) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(cfg.kubeconfig("kube-proxy"))},
        "hostnameOverride": cfg.node_name,
        "bindAddress": cfg.node_ip,
        "clusterCIDR": cfg.pod_cidr,
        "healthzBindAddress": f"127.0.0.1:{cfg.kube_proxy_port}",
        "metricsBindAddress": f"127.0.0.1:{cfg.kube_proxy_port + 1}",
        # this VM's conntrack sysctls are not writable: leave them as they are
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"masqueradeAll": False, "syncPeriod": "10s", "minSyncPeriod": "0s"},
        # NodePorts only on the node address, never on the machine's real interfaces
        "nodePortAddresses": [f"{cfg.node_ip}/32"],
    }


def write_configs(cfg: ClusterConfig) -> None:
    """Write every file the node's processes read (idempotent)."""
    d = node_dir(cfg)
    for sub in ("containerd", "cni", "cni-ipam", "kubelet", "pod-logs"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "containerd" / "config.toml").write_text(containerd_config(cfg))
    # containerd takes the first file by name; one file, one network
    (d / "cni" / "10-moonhub.conflist").write_text(json.dumps(cni_config(cfg), indent=2))
    (d / "kubelet" / "config.yaml").write_text(yaml.safe_dump(kubelet_config(cfg)))
    (d / "kube-proxy.yaml").write_text(yaml.safe_dump(kube_proxy_config(cfg)))
    (d / "registry.yaml").write_text(registry_config(cfg.node_registry, read_only=True))
    push_login(cfg.state_dir)
    htpasswd = cfg.state_dir / "registry-push" / "htpasswd"
    (d / "registry-push.yaml").write_text(registry_config(cfg.node_registry_push, htpasswd=htpasswd))
    # no outside resolver: CoreDNS answers cluster names and refuses the rest
    (d / "resolv.conf").write_text(f"nameserver {cfg.dns_service_ip}\n")
    prometheus.write_config(cfg)


def claim(cfg: ClusterConfig) -> None:
    """Record that ``cfg``'s cluster runs the machine's real node; refuse when another does."""
    try:
        holder = Path(CLAIM.read_text().strip())
    except OSError:
        holder = None
    if holder and holder != cfg.state_dir and _node_running(holder):
        raise RuntimeError(
            f"the local cluster in {holder} runs this machine's real node (one kubelet per machine: "
            f"its device-plugin socket and kube-proxy's iptables chains are machine-wide); stop it first "
            f"(`./moonhub down`, or `python -m localcluster down --state-dir {holder}`)"
        )
    CLAIM.write_text(f"{cfg.state_dir}\n")


def release(cfg: ClusterConfig) -> None:
    try:
        if Path(CLAIM.read_text().strip()) == cfg.state_dir:
            CLAIM.unlink()
    except OSError:
        pass


def _node_running(state_dir: Path) -> bool:
    pid_file = state_dir / "run" / "kubelet.pid"
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def unmount_all(cfg: ClusterConfig) -> int:
    """Unmount what the kubelet left mounted under the node's folder (its root's bind mount,
    pods' token and secret tmpfs), deepest first, so the state folder can be removed; the
    kubelet mounts again what running pods need when it starts. Returns how many."""
    root = str(node_dir(cfg).resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == root or point.startswith(root + "/"):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    return len(points)


def node_labels(cfg: ClusterConfig) -> str:
    labels = {"moonhub.io/node-kind": "cpu", "moonhub.io/real-node": "true"}
    if cfg.simulated_gpus:
        # not nvidia.com/gpu.present: CPU work still lands here
        labels["moonhub.io/simulated-gpu"] = "true"
    return ",".join(f"{k}={v}" for k, v in labels.items())


def components(cfg: ClusterConfig, bin_dir: Path) -> list[Component]:
    """The node's processes in start order (pure)."""
    d, b = node_dir(cfg), bin_dir
    metadata = Component(
        "metadata-stand-in",
        [sys.executable, "-m", "localcluster.metadata", METADATA_IP, "80"],
        f"http://{METADATA_IP}/",
    )
    containerd = Component("containerd", ["containerd", "--config", str(d / "containerd" / "config.toml")])
    kubelet = Component(
        "kubelet",
        [
            str(b / "kubelet"),
            f"--config={d / 'kubelet' / 'config.yaml'}",
            f"--kubeconfig={cfg.kubeconfig(f'node-{cfg.node_name}')}",
            f"--root-dir={d / 'kubelet' / 'root'}",
            f"--hostname-override={cfg.node_name}",
            f"--node-ip={cfg.node_ip}",
            f"--node-labels={node_labels(cfg)}",
            # the kubelet's cAdvisor finds containers (their pod, image and limits: the
            # /metrics/cadvisor series Prometheus reads) through containerd, at its default
            # socket unless told: without this it saw only cgroups, no container
            f"--containerd={containerd_socket(cfg)}",
            "--v=1",
        ],
        f"http://127.0.0.1:{kubelet_healthz_port(cfg)}/healthz",
    )
    kube_proxy = Component(
        "kube-proxy",
        [str(b / "kube-proxy"), f"--config={d / 'kube-proxy.yaml'}", "--v=1"],
        f"http://127.0.0.1:{cfg.kube_proxy_port}/livez",
    )
    netpol = _network_policies(cfg, b)
    gpus = Component(
        "gpu-plugin",
        [
            str(b / "moonhub-gpu-plugin"),
            f"--count={cfg.simulated_gpus}",
            f"--state-dir={simulated_gpu_dir(cfg)}",
            # utilization per pod in DCGM exporter's format, for the GPU reclaim service
            f"--metrics-address={cfg.node_ip}:{cfg.gpu_metrics_port}",
            f"--pod-resources-socket={d / 'kubelet' / 'root' / 'pod-resources' / 'kubelet.sock'}",
            f"--node-name={cfg.node_name}",
        ],
        cfg.gpu_metrics_url,
    )
    # pods' pip: a caching proxy of PyPI on the node address (pods reach nothing outside)
    packages = Component(
        "package-index",
        [
            sys.executable,
            "-m",
            "package_index",
            cfg.node_ip,
            str(cfg.package_index_port),
            str(cfg.state_dir / "package-index"),
        ],
        f"http://{cfg.node_ip}:{cfg.package_index_port}/health",
    )
    # the registry as pods reach it: the machine's registry's storage served on the node
    # address too, read only for the image builder's pulls, and with a login for its pushes
    # (the push container's alone: a build step, which runs a package's own code, has none)
    node_registry = Component(
        "node-registry",
        [str(b / "registry"), "serve", str(d / "registry.yaml")],
        f"http://{cfg.node_registry}/v2/",
    )
    node_registry_push = Component(
        "node-registry-push",
        [str(b / "registry"), "serve", str(d / "registry-push.yaml")],
        None,  # its /v2/ answers 401 without the login
    )
    gpu = [gpus] if cfg.simulated_gpus else []
    # metrics: after the GPUs' exporter, which it scrapes (localcluster/prometheus.py)
    return [
        metadata,
        containerd,
        kubelet,
        kube_proxy,
        netpol,
        packages,
        node_registry,
        node_registry_push,
        *gpu,
        prometheus.component(cfg, b),
    ]


def _network_policies(cfg: ClusterConfig, b: Path) -> Component:
    """kube-router as the NetworkPolicy enforcer, and nothing else of it."""
    return Component(
        ENFORCER,
        [
            str(b / "kube-router"),
            f"--kubeconfig={cfg.kubeconfig('network-policies')}",
            f"--hostname-override={cfg.node_name}",
            # its firewall only: kube-proxy serves Services, the bridge plugin the network
            "--run-firewall=true",
            "--run-router=false",
            "--run-service-proxy=false",
            "--enable-cni=false",
            "--enable-ipv6=false",
            f"--service-cluster-ip-range={cfg.service_cidr}",
            f"--health-port={cfg.netpol_metrics_port}",
            "--metrics-port=0",
            "--iptables-sync-period=30s",
            "-v=1",
        ],
        f"http://127.0.0.1:{cfg.netpol_metrics_port}/healthz",
    )


def simulated_gpu_dir(cfg: ClusterConfig) -> Path:
    """Where each GPU allocation's utilization file lives (tests write it to play load)."""
    return node_dir(cfg) / "simulated-gpus"
