import gzip
import io
import ipaddress
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from localcluster import addons, gluster, network, node, oci, storage
from localcluster.config import CLUSTER_RANGES, ClusterConfig
from localcluster.controlplane import components, kubeconfig, node_identity
from localcluster.hub import user_pod_policy
from localcluster.nodes import FLEET, GPU_TAINT, KWOK_TAINT, RUN_FOR, SimulatedNode, kwok_stages, node_object
from moonhub_core.platform import CullingSection, HubSection, JobsSection, PlatformConfig, SpawnerSection


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
    ports = (
        "etcd_port",
        "etcd_peer_port",
        "apiserver_port",
        "kcm_port",
        "scheduler_port",
        "kwok_port",
        "kubelet_port",
        "kube_proxy_port",
        "netpol_metrics_port",
    )
    assert not {getattr(a, p) for p in ports} & {getattr(b, p) for p in ports}


def test_control_plane_flags_enable_security_and_controllers() -> None:
    comps = {c.name: c.argv for c in components(ClusterConfig(Path("/s")), Path("/bin"))}
    api = comps["kube-apiserver"]
    assert "--authorization-mode=Node,RBAC" in api
    assert "--enable-admission-plugins=NodeRestriction" in api
    assert any(a.startswith("--service-account-signing-key-file=") for a in api)
    kcm = comps["kube-controller-manager"]
    assert "--controllers=*" in kcm
    assert "--kube-api-qps=100" in kcm, "the CronJob controller keeps up with thousands of jobs due at once"
    assert list(comps) == ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]


def test_kubeconfig_and_node_identity() -> None:
    doc = kubeconfig("https://127.0.0.1:6443", Path("/ca"), Path("/c"), Path("/k"), "u")
    assert doc["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:6443", "certificate-authority": "/ca"}
    assert node_identity("n1") == ("system:node:n1", ("system:nodes",))


def test_every_cluster_address_is_in_a_range_made_unreachable() -> None:
    """No packet for a cluster address can leave the machine: each lies in a range that
    network.plan routes `unreachable` (the bridge and the dummy interface are more specific)."""
    from tests.conftest import TEST_CLUSTER

    ranges = [ipaddress.ip_network(r) for r in CLUSTER_RANGES]
    for cfg in (ClusterConfig(Path("/a")), TEST_CLUSTER):
        for net in (cfg.pod_cidr, cfg.service_cidr, cfg.kwok_pod_cidr, f"{cfg.node_ip}/32"):
            assert any(ipaddress.ip_network(net).subnet_of(r) for r in ranges), net
    cmds = network.plan(ClusterConfig(Path("/a")))
    routes = [c[-1] for c in cmds if c[:4] == ["ip", "route", "replace", "unreachable"]]
    assert routes == [*CLUSTER_RANGES, "169.254.0.0/16"]
    assert cmds.index(["ip", "route", "replace", "unreachable", CLUSTER_RANGES[0]]) == 0, "routes come first"
    flat = [" ".join(c) for c in cmds]
    assert not any("default" in c or "-P " in c for c in flat), "never the default route or a chain's policy"
    assert not any(" -F " in c for c in flat), "the chain other clusters on this host use is never flushed"


def test_node_configs_for_this_machine() -> None:
    cfg = ClusterConfig(Path("/s"), simulated_gpus=2)
    kubelet = node.kubelet_config(cfg)
    assert kubelet["failCgroupV1"] is False and kubelet["oomScoreAdj"] == 0
    assert kubelet["address"] == cfg.node_ip and kubelet["clusterDNS"] == [cfg.dns_service_ip]
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    toml = node.containerd_config(cfg)
    assert "restrict_oom_score_adj = true" in toml and "oom_score = 0" in toml
    assert 'sandbox_image = "127.0.0.1:5000/moonhub/pause:3.10"' in toml
    bridge = node.cni_config(cfg)["plugins"][0]
    assert bridge["ipMasq"] is False and bridge["ipam"]["ranges"] == [
        [{"subnet": cfg.pod_cidr, "gateway": cfg.bridge_ip}]
    ]
    proxy = node.kube_proxy_config(cfg)
    assert proxy["nodePortAddresses"] == [f"{cfg.node_ip}/32"] and proxy["clusterCIDR"] == cfg.pod_cidr
    names = [c.name for c in node.components(cfg, Path("/bin"))]
    assert names == [
        "metadata-stand-in",
        "containerd",
        "kubelet",
        "kube-proxy",
        node.ENFORCER,
        "package-index",
        "node-registry",
        "node-registry-push",
        "gpu-plugin",
        "prometheus",
    ]
    assert "moonhub.io/simulated-gpu=true" in node.node_labels(cfg)
    assert "gpu-plugin" not in [c.name for c in node.components(ClusterConfig(Path("/s")), Path("/bin"))]


def test_cluster_dns_answers_only_cluster_names() -> None:
    cfg = ClusterConfig(Path("/s"))
    docs = {d["kind"]: d for d in addons.coredns_manifests(cfg, "v1.15.0")}
    assert docs["Service"]["spec"]["clusterIP"] == "10.96.0.10"
    assert "forward" not in docs["ConfigMap"]["data"]["Corefile"], "no query leaves the machine"
    ctr = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert ctr["securityContext"]["runAsNonRoot"] is True and ctr["securityContext"]["capabilities"] == {
        "drop": ["ALL"]
    }


def test_storage_classes_gluster_by_default_and_local_disk_beside_it() -> None:
    cfg = ClusterConfig(Path("/s"))
    docs = storage.manifests(cfg)
    classes = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StorageClass"}
    assert list(classes) == ["local-path"], "the Gluster class comes from the chart's template"
    local = classes["local-path"]
    gl = storage.chart_values(cfg, "sha256:" + "a" * 64)["storage"]["gluster"]
    assert gl["storageClass"] == "glusterfs" and gl["defaultClass"] is True and gl["enabled"] is True
    assert gl["mountPath"] == "/s/node/gluster" and gl["volume"] == gluster.volume_name(cfg)
    assert gl["agent"]["nodeSelector"] == {"moonhub.io/real-node": "true"}, "the node that is a Gluster peer"
    assert local["provisioner"] == "rancher.io/local-path"
    assert local["metadata"]["annotations"] == {"defaultVolumeType": "local"}
    assert local["volumeBindingMode"] == "WaitForFirstConsumer"
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    config = json.loads(cm["data"]["config.json"])["storageClassConfigs"]
    assert config["glusterfs"] == {"sharedFileSystemPath": "/s/node/gluster"}
    assert config["local-path"]["nodePathMap"][0]["paths"] == ["/s/node/volumes"]
    helper = json.loads(cm["data"]["helperPod.yaml"])
    env = {e["name"]: e["value"] for e in helper["spec"]["containers"][0]["env"]}
    assert env == {"GLUSTER_MOUNT": "/s/node/gluster", "GLUSTER_VOLUME": gluster.volume_name(cfg)}
    assert helper["spec"]["nodeSelector"] == {"moonhub.io/real-node": "true"}


def _helper(
    script: str, tmp: Path, vol_dir: Path | str, size: int = 1048576, group: str = "", user: str = ""
) -> list[str]:
    """Run the provisioner's script as its helper pod would, with a gluster CLI that records
    its arguments (the cluster tests run the real one)."""
    calls = tmp / "calls"
    fake = tmp / "bin" / "gluster"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    env = {
        "PATH": f"{fake.parent}:/usr/bin:/bin",
        "VOL_DIR": str(vol_dir),
        "VOL_SIZE_BYTES": str(size),
        "GLUSTER_MOUNT": str(tmp / "mnt"),
        "GLUSTER_VOLUME": "vol",
        "VOL_GROUP": group,
        "VOL_USER": user,
    }
    subprocess.run(["sh", "-c", script], env=env, check=True)
    return calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.skipif(os.geteuid() != 0, reason="the teardown is tested where it runs, as root")
def test_helper_scripts_make_local_folders_and_remove_gluster_ones_with_their_quota(tmp_path: Path) -> None:
    local = tmp_path / "disk" / "pvc-3"
    assert _helper(storage.SETUP, tmp_path, local) == [], "a local-disk folder: no quota call"
    assert local.is_dir()
    ws = tmp_path / "mnt" / "moonhub-users" / "claim-ann" / "pvc-1"
    ws.mkdir(parents=True)
    calls = _helper(storage.TEARDOWN, tmp_path, ws)
    assert calls[-1] == "--mode=script volume quota vol remove /moonhub-users/claim-ann/pvc-1" and not ws.exists()
    assert not ws.parent.exists(), "the claim's folder goes once empty"


def test_helper_scripts_refuse_folders_they_were_not_made_for(tmp_path: Path) -> None:
    """Whatever reaches the scripts (a pattern changed, an annotation): no folder outside the
    claim's (issue 32, item 9)."""
    keep = tmp_path / "mnt" / "keep"
    keep.mkdir(parents=True)
    for script in (storage.SETUP, storage.TEARDOWN):
        for bad in ("moonhub-users/claim-a/../../keep", "moonhub-users/claim-a/pvc-1/..", "a//b", "a/b c"):
            with pytest.raises(subprocess.CalledProcessError):
                _helper(script, tmp_path, f"{tmp_path}/mnt/{bad}")
        assert keep.is_dir()


def test_oci_layer_is_reproducible_and_manifest_names_its_blobs(tmp_path: Path) -> None:
    f = tmp_path / "tool"
    f.write_bytes(b"#!/bin/true\n")
    f.chmod(0o755)
    (a, diff_a), (b, diff_b) = oci.layer({"/tool": f}), oci.layer({"/tool": f})
    assert a.digest == b.digest and diff_a == diff_b, "same files, same digest"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(a.data))) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.mode, member.uid) == ("tool", 0o755, 0)
    config = oci.image_config(diff_a, ["/tool"], "65532")
    m = json.loads(oci.manifest(config, a).data)
    assert m["config"]["digest"] == config.digest and m["layers"][0]["digest"] == a.digest
    assert json.loads(config.data)["rootfs"]["diff_ids"] == [diff_a]


def test_host_run_hub_policy_lets_user_pods_reach_only_hub_jobs_package_index_and_dns() -> None:
    platform = PlatformConfig(
        hub=HubSection(api_url="http://10.85.0.1:8081"),
        spawner=SpawnerSection(namespace="users", package_index="http://10.85.0.1:3141/index/"),
        jobs=JobsSection(enabled=True, url="http://10.85.0.1:8090"),
        culling=CullingSection(url="http://10.85.0.1:8091"),
    )
    policy = user_pod_policy(platform)
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == "users" and spec["ingress"] == []
    blocks = [(r["to"][0].get("ipBlock", {}).get("cidr"), [p["port"] for p in r["ports"]]) for r in spec["egress"]]
    assert blocks == [
        ("10.85.0.1/32", [8081]),
        ("10.85.0.1/32", [8090]),
        ("10.85.0.1/32", [8091]),
        ("10.85.0.1/32", [3141]),
        (None, [53, 53]),
    ]
    yaml.safe_dump(policy)  # plain data


def test_build_pods_reach_the_index_and_the_registrys_doors_only_and_the_push_login_is_docker_config() -> None:
    """Image builds' pods (docs/environment-images.md): the package index, the registry's
    read-only door and its push door, DNS; nothing reaches them. The push's login is a
    Secret with Docker's config.json for the push door."""
    import base64
    import json

    from localcluster.hub import build_pod_policy, push_login_secret
    from moonhub_core.platform import BuildsSection

    platform = PlatformConfig(
        spawner=SpawnerSection(package_index="http://10.85.0.1:3141/index/"),
        builds=BuildsSection(
            enabled=True,
            builder_image="b",
            registry="127.0.0.1:5000",
            builder_registry="10.85.0.1:5000",
            push_registry="10.85.0.1:5001",
            push_secret="moonhub-builds/push",
        ),
    )
    policy = build_pod_policy(platform)
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == "moonhub-builds" and spec["ingress"] == []
    blocks = [(r["to"][0].get("ipBlock", {}).get("cidr"), [p["port"] for p in r["ports"]]) for r in spec["egress"]]
    assert blocks == [("10.85.0.1/32", [3141]), ("10.85.0.1/32", [5000]), ("10.85.0.1/32", [5001]), (None, [53, 53])]
    secret = push_login_secret(platform, "u", "p w")
    assert (secret["metadata"]["namespace"], secret["metadata"]["name"]) == ("moonhub-builds", "push")
    auths = json.loads(secret["stringData"]["config.json"])["auths"]
    assert list(auths) == ["10.85.0.1:5001"] and base64.b64decode(auths["10.85.0.1:5001"]["auth"]) == b"u:p w"


def test_kwok_also_completes_storage_helpers_on_simulated_nodes() -> None:
    complete = {
        "kind": "Stage",
        "metadata": {"name": "pod-complete"},
        "spec": {
            "selector": {
                "matchExpressions": [
                    {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                    {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]},
                ]
            },
            "next": {"statusTemplate": "phase: Succeeded"},
        },
    }
    ready = {"kind": "Stage", "metadata": {"name": "pod-ready"}, "spec": {}}
    stages = kwok_stages([ready, complete])
    assert stages[0] == ready, "kwok's own stages stay as they are"
    assert stages[1]["spec"]["selector"] == complete["spec"]["selector"]
    assert stages[1]["spec"]["delay"]["durationFrom"]["expressionFrom"] == f'.metadata.annotations["{RUN_FOR}"]'
    assert stages[1]["spec"]["delay"]["durationMilliseconds"] == 0, "without the annotation: at once"
    ours = stages[2]
    assert ours["metadata"]["name"] == "storage-helper-complete"
    assert ours["spec"]["selector"]["matchExpressions"] == [
        {"key": ".status.phase", "operator": "In", "values": ["Running"]},
        {"key": ".metadata.namespace", "operator": "In", "values": [storage.NAMESPACE]},
    ]
    assert ours["spec"]["next"] == complete["spec"]["next"]


def test_state_saved_by_an_earlier_version_still_loads(tmp_path: Path) -> None:
    cfg = ClusterConfig(tmp_path, port_offset=7)
    cfg.save()
    saved = json.loads((tmp_path / "cluster.json").read_text())
    (tmp_path / "cluster.json").write_text(json.dumps({**saved, "pod_ip_octet": 10, "agent_node": "moon-local-0"}))
    assert ClusterConfig.load(tmp_path) == cfg


def test_scale_tier_nodes_are_untainted_and_its_pod_range_is_local_only_there() -> None:
    """The scale tier: untainted simulated CPU nodes that take many pods, and kwok's pod range
    `local` (one stand-in answers for every pod); other clusters keep it unreachable."""
    from benchmarks.scale_tier import scale_config
    from localcluster.nodes import scale_fleet
    from tests.conftest import TEST_CLUSTER

    fleet = scale_fleet(3, 250)
    objs = [node_object(n) for n in fleet]
    assert [o["metadata"]["name"] for o in objs] == ["kwok-scale-0", "kwok-scale-1", "kwok-scale-2"]
    assert all(o["spec"]["taints"] == [] and o["status"]["capacity"]["pods"] == "250" for o in objs)
    assert node_object(FLEET[0])["spec"]["taints"] == [KWOK_TAINT], "the usual fleet keeps kwok's taint"
    cfg = scale_config(3)
    assert not cfg.real_node and cfg.scale_nodes == 3
    ranges = [ipaddress.ip_network(r) for r in CLUSTER_RANGES]
    for net in (cfg.pod_cidr, cfg.service_cidr, cfg.kwok_pod_cidr, f"{cfg.node_ip}/32"):
        assert any(ipaddress.ip_network(net).subnet_of(r) for r in ranges), net
    others = (ClusterConfig(Path("/a")), TEST_CLUSTER)
    assert all(
        not ipaddress.ip_network(cfg.kwok_pod_cidr).overlaps(ipaddress.ip_network(n))
        for o in others
        for n in (o.pod_cidr, o.service_cidr, o.kwok_pod_cidr)
    )
    local = ["ip", "route", "replace", "local", cfg.kwok_pod_cidr, "dev", "lo", "table", "local"]
    assert local in network.plan(cfg)
    assert network.scale_plan(TEST_CLUSTER) == [] and local not in network.plan(TEST_CLUSTER)


def test_helper_teardown_waits_out_another_quota_change(tmp_path: Path) -> None:
    """glusterd refuses a second quota change at once; the teardown tries again (a failed
    helper pod cost the provisioner's whole 120 s timeout), and on any other failure removes
    the folder without a second try (a folder made without its quota has none to remove)."""
    calls, fake = tmp_path / "calls", tmp_path / "bin" / "gluster"
    fake.parent.mkdir()
    fake.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\n'
        f'[ "$(wc -l < {calls})" -ge 3 ] && exit 0\n'
        'echo "quota command failed : Another transaction is in progress for vol. Please try again after some time."\n'
        "exit 1\n"
    )
    fake.chmod(0o755)
    ws = tmp_path / "mnt" / "moonhub-users" / "claim-ann" / "pvc-1"
    env = {
        "PATH": f"{fake.parent}:/usr/bin:/bin",
        "VOL_DIR": str(ws),
        "GLUSTER_MOUNT": str(tmp_path / "mnt"),
        "GLUSTER_VOLUME": "vol",
    }
    ws.mkdir(parents=True)
    subprocess.run(["sh", "-c", storage.TEARDOWN], env=env, check=True, timeout=30)
    assert len(calls.read_text().splitlines()) == 3, "two refusals, then the change"
    assert not ws.exists()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "quota: no such volume" >&2\nexit 1\n')
    calls.unlink()
    ws.mkdir(parents=True)
    subprocess.run(["sh", "-c", storage.TEARDOWN], env=env, check=True, timeout=30)
    assert len(calls.read_text().splitlines()) == 1, "any other failure: no second try"
    assert not ws.exists()
