from moonhub_core.capacity import GpuCapacity, gpu_capacity
from moonhub_core.choices import Choices
from moonhub_core.workload import build
from spawner_ext.failfast import container_problem, image_problem, unschedulable_message
from tests.helpers import example_catalog


def test_cpu_workload_stays_off_gpu_nodes_and_sees_no_gpu() -> None:
    w = build(example_catalog(), Choices("python", "medium"), "claim-alice")
    assert (w.image, w.cpu_guarantee, w.cpu_limit, w.mem_guarantee, w.mem_limit) == (
        "127.0.0.1:5000/moonhub/base-notebook:python-3.11-lab-4.6",
        0.5,
        4.0,
        "2Gi",
        "16Gi",
    )
    assert w.extra_resource_limits == {} and w.tolerations == [] and w.node_selector == {}
    assert w.node_affinity_required == [
        {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}]}
    ]
    assert w.env == {
        "HOME": "/home/jovyan",
        "USER": "jovyan",
        "LOGNAME": "jovyan",
        "NVIDIA_VISIBLE_DEVICES": "void",
        "MOONHUB_ENVIRONMENT": "python",
        "MOONHUB_SIZE": "medium",
        "MOONHUB_GPU_TYPE": "",
        "MOONHUB_GPU_COUNT": "0",
    }
    assert w.gpus == 0


def test_gpu_workload_targets_the_gpu_type() -> None:
    w = build(example_catalog(), Choices("pytorch", "small", "a100", 4), "claim-bob")
    assert w.extra_resource_limits == {"nvidia.com/gpu": "4"} == w.extra_resource_guarantees
    assert w.node_selector == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert w.tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "NVIDIA_VISIBLE_DEVICES" not in w.env and w.node_affinity_required == []
    assert w.labels["moonhub.io/gpu-count"] == "4" and w.labels["moonhub.io/gpu-type"] == "a100"


def test_volumes_workspace_shm_and_security() -> None:
    w = build(example_catalog(), Choices("python", "small"), "claim-carol")
    assert w.volumes[0] == {"name": "workspace", "persistentVolumeClaim": {"claimName": "claim-carol"}}
    assert w.volumes[1] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}
    assert {m["mountPath"] for m in w.volume_mounts} == {"/home/jovyan", "/dev/shm"}
    assert w.pod_security_context["runAsNonRoot"] and w.pod_security_context["seccompProfile"] == {
        "type": "RuntimeDefault"
    }
    assert w.container_security_context == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 100,
    }, "a workspace made before uids: the images' shared user"
    assert w.env["HOME"] == "/home/jovyan" and w.env["USER"] == "jovyan"


def test_a_workspace_with_a_uid_runs_as_its_owner_alone() -> None:
    """Issue 32, item 6: the owner's uid, a group of the same number (and fsGroup), the
    images' group and team folders' groups supplementary."""
    cat = example_catalog()
    w = build(cat, Choices("python", "small"), "claim-carol", ["ml-research"], uid=1000042)
    ctx = w.pod_security_context
    assert (ctx["runAsUser"], ctx["runAsGroup"], ctx["fsGroup"]) == (1000042, 1000042, 1000042)
    teams = [tf.gid for tf in cat.storage.team_folders if tf.group == "ml-research"]
    assert ctx["supplementalGroups"] == sorted({100, *teams})
    assert (w.container_security_context["runAsUser"], w.container_security_context["runAsGroup"]) == (1000042, 1000042)
    assert w.container_security_context["runAsNonRoot"] and not w.container_security_context["allowPrivilegeEscalation"]


def _node(name: str, product: str, gpus: int, ready: str = "True") -> dict:
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
        "spec": {},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}, "conditions": [{"type": "Ready", "status": ready}]},
    }


def _pod(node: str, gpus: int, phase: str = "Running") -> dict:
    return {
        "spec": {"nodeName": node, "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
        "status": {"phase": phase},
    }


def test_gpu_capacity_subtracts_live_requests() -> None:
    nodes = [
        _node("a", "NVIDIA-A100-SXM4-80GB", 8),
        _node("b", "NVIDIA-A100-SXM4-80GB", 8),
        _node("c", "NVIDIA-A100-SXM4-80GB", 8, ready="False"),
        _node("t", "Tesla-T4", 4),
    ]
    pods = [_pod("a", 6), _pod("b", 4), _pod("b", 2, phase="Succeeded"), _pod("t", 1)]
    cap = gpu_capacity(example_catalog().gpu_types, nodes, pods)
    assert cap["a100"] == GpuCapacity(total=16, free=6, largest_free=4)
    assert cap["t4"] == GpuCapacity(total=4, free=3, largest_free=3)
    assert cap["v100"] == GpuCapacity(0, 0, 0)


def test_failfast_reads_scheduler_and_image_errors() -> None:
    pvc_wait = {
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/6 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
                }
            ]
        }
    }
    assert unschedulable_message(pvc_wait) is None
    no_gpu = {
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/6 nodes are available: 1 Insufficient nvidia.com/gpu.",
                }
            ]
        }
    }
    assert "Insufficient nvidia.com/gpu" in (unschedulable_message(no_gpu) or "")
    bad_image = {
        "status": {
            "containerStatuses": [
                {"image": "x/y:1", "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}
            ]
        }
    }
    assert image_problem(bad_image) == ("x/y:1", "ErrImagePull: not found")
    assert image_problem({"status": {}}) is None


def test_failfast_explains_a_root_image_under_run_as_non_root() -> None:
    waiting = {
        "reason": "CreateContainerConfigError",
        "message": "container has runAsNonRoot and image will run as root (pod: x, container: notebook)",
    }
    pod = {"status": {"containerStatuses": [{"image": "r/root:1", "state": {"waiting": waiting}}]}}
    image, why = container_problem(pod) or ("", "")
    assert image == "r/root:1" and "runs as root" in why and "non-root USER" in why
    pulling = {"status": {"containerStatuses": [{"image": "x", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    assert container_problem(pulling) is None


def test_servers_and_runs_install_packages_from_the_platforms_index() -> None:
    """pip in a user's pod (server or run: the same workload) is pointed at the platform's
    package index; plain HTTP inside the cluster is named trusted (pip refuses it otherwise)."""
    cat, choice = example_catalog(), Choices("python", "medium")
    w = build(cat, choice, "claim-alice", package_index="http://10.85.0.1:3141/index/")
    assert w.env["PIP_INDEX_URL"] == "http://10.85.0.1:3141/index/"
    assert w.env["PIP_TRUSTED_HOST"] == "10.85.0.1:3141"
    tls = build(cat, choice, "claim-alice", package_index="https://pypi.example.com/simple/")
    assert tls.env["PIP_INDEX_URL"] == "https://pypi.example.com/simple/" and "PIP_TRUSTED_HOST" not in tls.env
    assert not {"PIP_INDEX_URL", "PIP_TRUSTED_HOST"} & set(build(cat, choice, "claim-alice").env)
