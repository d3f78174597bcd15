from pathlib import Path

from localcluster.config import ClusterConfig
from localcluster.controlplane import components, kubeconfig, node_identity
from localcluster.nodes import FLEET, GPU_TAINT, KWOK_TAINT, SimulatedNode, node_object


def test_gpu_node_has_capacity_labels_and_taints() -> None:
    node = node_object(SimulatedNode("g", gpus=4, gpu_product="Tesla-T4", gpu_memory_mib=15360))
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "4"
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "Tesla-T4"
    assert node["spec"]["taints"] == [GPU_TAINT]
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}


def test_cpu_node_has_no_gpu() -> None:
    node = node_object(SimulatedNode("c"))
    assert "nvidia.com/gpu" not in node["status"]["capacity"]
    assert node["spec"]["taints"] == [KWOK_TAINT]


def test_fleet_has_several_gpu_products() -> None:
    assert len({n.gpu_product for n in FLEET if n.gpus}) >= 3


def test_two_clusters_do_not_share_ports() -> None:
    a, b = ClusterConfig(Path("/a")), ClusterConfig(Path("/b"), port_offset=1000)
    ports = ("etcd_port", "etcd_peer_port", "apiserver_port", "kcm_port", "scheduler_port", "kubelet_port", "kwok_port")
    assert not {getattr(a, p) for p in ports} & {getattr(b, p) for p in ports}


def test_control_plane_flags_enable_security_and_controllers() -> None:
    comps = {c.name: c.argv for c in components(ClusterConfig(Path("/s")), Path("/bin"))}
    api = comps["kube-apiserver"]
    assert "--authorization-mode=Node,RBAC" in api
    assert "--enable-admission-plugins=NodeRestriction" in api
    assert any(a.startswith("--service-account-signing-key-file=") for a in api)
    kcm = comps["kube-controller-manager"]
    assert "--controllers=*" in kcm and "--enable-hostpath-provisioner=true" in kcm
    assert list(comps) == ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "node-agent"]


def test_kubeconfig_and_node_identity() -> None:
    doc = kubeconfig("https://127.0.0.1:6443", Path("/ca"), Path("/c"), Path("/k"), "u")
    assert doc["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:6443", "certificate-authority": "/ca"}
    assert node_identity("n1") == ("system:node:n1", ("system:nodes",))
