"""The local cluster's real node (upstream kubelet, containerd, CNI bridge, kube-proxy,
CoreDNS): what the platform relies on, shown the way operators' nodes behave."""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes_asyncio import client

from localcluster.config import ClusterConfig
from tests.helpers import PYTHON_IMAGE, SHELL_IMAGE, describe_pod, pod_ended, pod_log, wait_for


@pytest.fixture(autouse=True)
def _only_on_local_cluster(local_cluster: ClusterConfig | None) -> None:
    if local_cluster is None:
        pytest.skip("tests of MoonHub's local node (KUBECONFIG names another cluster)")


async def _run_to_end(
    core: client.CoreV1Api, ns: str, name: str, command: list[str], **container: object
) -> tuple[client.V1Pod, str]:
    """Run a one-container pod of the notebook image to its end; (pod, log)."""
    spec = {"name": "c", "image": PYTHON_IMAGE, "command": command, **container}
    await core.create_namespaced_pod(
        ns, {"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": [spec]}}
    )
    pod = await pod_ended(core, ns, name, timeout=120)
    return pod, await pod_log(core, ns, name)


def _ready(p: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])


async def test_pods_get_their_own_address_dns_and_services(
    core: client.CoreV1Api, namespace: str, local_cluster: ClusterConfig
) -> None:
    """Pod addresses from the node's range, Service names from CoreDNS, Service addresses
    through kube-proxy; names outside the cluster do not resolve (no query leaves)."""
    await core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "backend", "labels": {"app": "backend"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": PYTHON_IMAGE,
                        "command": ["python3", "-m", "http.server", "8080"],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    }
                ]
            },
        },
    )
    svc = await core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "backend"},
            "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    backend = await wait_for(
        lambda: core.read_namespaced_pod("backend", namespace), _ready, timeout=120, what="pod backend Ready"
    )
    assert ipaddress.ip_address(backend.status.pod_ip) in ipaddress.ip_network(local_cluster.pod_cidr)
    assert backend.spec.node_name == local_cluster.node_name
    fqdn = f"backend.{namespace}.svc.cluster.local"
    probe = (
        "import socket, urllib.request as u\n"
        f"for n in ('backend', 'backend.{namespace}', '{fqdn}'):\n"
        "    print(n, socket.gethostbyname(n))\n"
        # the Service's rules may reach the node a little after the backend is Ready (kube-proxy
        # syncs on its own period; in a busy CI run it missed a single 10 s try)
        "import time\nfor i in range(6):\n    try:\n"
        "        print('status', u.urlopen('http://backend/', timeout=5).status)\n        break\n"
        "    except OSError as e:\n        print('retry', e)\n        time.sleep(3)\n"
        "else:\n    raise SystemExit('the Service never answered')\n"
        "try:\n    socket.gethostbyname('pypi.org')\n    print('pypi.org resolved')\n"
        "except OSError:\n    print('pypi.org unresolved')\n"
    )
    pod, log = await _run_to_end(core, namespace, "client", ["python3", "-c", probe])
    assert pod.status.phase == "Succeeded", (await describe_pod(core, namespace, "client"), log)
    ip = svc.spec.cluster_ip
    assert [line for line in log.splitlines() if not line.startswith("retry ")] == [
        f"backend {ip}",
        f"backend.{namespace} {ip}",
        f"{fqdn} {ip}",
        "status 200",
        "pypi.org unresolved",
    ]


async def test_service_account_token_authenticates_through_the_kubernetes_service(
    core: client.CoreV1Api, namespace: str
) -> None:
    """The projected token and KUBERNETES_SERVICE_* (the `kubernetes` Service, through
    kube-proxy to the API server on the node address) let a pod call the API."""
    script = (
        "import os, ssl, urllib.request, urllib.error\n"
        "d = '/var/run/secrets/kubernetes.io/serviceaccount/'\n"
        "ctx = ssl.create_default_context(cafile=d + 'ca.crt')\n"
        "url = 'https://%s:%s/api/v1/namespaces/kube-system/secrets' % ("
        "os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT'])\n"
        "req = urllib.request.Request(url, headers={'Authorization': 'Bearer ' + open(d + 'token').read()})\n"
        "try:\n    urllib.request.urlopen(req, context=ctx)\n"
        "except urllib.error.HTTPError as e:\n    print(e.code, e.read().decode())\n"
    )
    pod, log = await _run_to_end(core, namespace, "in-cluster", ["python3", "-c", script])
    assert pod.status.phase == "Succeeded", (await describe_pod(core, namespace, "in-cluster"), log)
    # authenticated as the pod's service account, and refused by RBAC: 403, not 401
    assert log.startswith("403 ") and f"system:serviceaccount:{namespace}:default" in log, log


async def test_memory_limit_kills_and_cpu_limit_is_in_the_cgroup(core: client.CoreV1Api, namespace: str) -> None:
    """Limits are enforced by the kernel: a container allocating past its memory limit is
    OOM-killed (the kubelet reports it), and the CPU limit is its CFS quota."""
    script = (
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
        "/sys/fs/cgroup/memory/memory.limit_in_bytes; "
        "python3 -c 'x = bytearray(300 * 2**20); print(\"survived\")'"
    )
    limits = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "250m", "memory": "128Mi"}}
    pod, log = await _run_to_end(core, namespace, "hungry", ["sh", "-c", script], resources=limits)
    term = pod.status.container_statuses[0].state.terminated
    assert (pod.status.phase, term.reason, term.exit_code) == ("Failed", "OOMKilled", 137), await describe_pod(
        core, namespace, "hungry"
    )
    assert log.split()[:3] == ["25000", "100000", str(128 * 2**20)], log
    assert "survived" not in log


async def test_kubelet_refuses_a_root_image_under_run_as_non_root(core: client.CoreV1Api, namespace: str) -> None:
    """Pod Security at run time: the image's user is root and the pod says runAsNonRoot
    without a user: admission can not know, the kubelet refuses to start the container."""
    await core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "rooted"},
            "spec": {
                "securityContext": {"runAsNonRoot": True},
                "containers": [{"name": "c", "image": SHELL_IMAGE, "command": ["sleep", "60"]}],
            },
        },
    )
    pod = await wait_for(
        lambda: core.read_namespaced_pod("rooted", namespace),
        lambda p: (
            bool(p.status.container_statuses and p.status.container_statuses[0].state.waiting)
            and p.status.container_statuses[0].state.waiting.reason == "CreateContainerConfigError"
        ),
        timeout=120,
        what="the kubelet to refuse the container",
    )
    assert "runAsNonRoot" in pod.status.container_statuses[0].state.waiting.message


async def test_restricted_namespace_rejects_root_pod(core: client.CoreV1Api, namespace: str) -> None:
    await core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    root_pod = {
        "metadata": {"name": "root"},
        "spec": {
            "containers": [{"name": "c", "image": SHELL_IMAGE, "command": ["id"], "securityContext": {"runAsUser": 0}}]
        },
    }
    try:
        await core.create_namespaced_pod(namespace, root_pod)
    except client.ApiException as e:
        assert e.status == 403
        assert "violates PodSecurity" in e.body and "restricted" in e.body
    else:
        raise AssertionError("a root pod was admitted into a restricted namespace")
