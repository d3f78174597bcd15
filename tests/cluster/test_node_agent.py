"""The local node agent behaves like a kubelet where the platform relies on it."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from localcluster.config import ClusterConfig
from tests.helpers import create_pvc, describe_pod, gone, pod_ended, wait_for


@pytest.fixture(autouse=True)
def _only_on_local_cluster(local_cluster: ClusterConfig | None) -> None:
    if local_cluster is None:
        pytest.skip("tests of MoonHub's local node agent (KUBECONFIG names another cluster)")


def _running(p: client.V1Pod) -> bool:
    return p.status.phase == "Running"


async def test_volumes_env_and_pod_ip(core: client.CoreV1Api, namespace: str) -> None:
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"greeting": "hi"}})
    await core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "creds"},
            "data": {"token": base64.b64encode(b"s3cret").decode()},
        },
    )
    script = (
        "cat /etc/settings/greeting; echo; cat /etc/creds/token; echo; echo $GREETING $TOKEN $POD_IP $PORT; "
        "cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo; "
        "test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo token-present; "
        "echo scratch > /scratch/f && cat /scratch/f; pwd"
    )
    await core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "env-volumes"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "command": ["sh", "-c", script],
                        "workingDir": "/scratch",
                        "env": [
                            {
                                "name": "GREETING",
                                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}},
                            },
                            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                            {"name": "PORT", "value": "ip=$(POD_IP)"},
                        ],
                        "volumeMounts": [
                            {"name": "settings", "mountPath": "/etc/settings"},
                            {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
                            {"name": "scratch", "mountPath": "/scratch"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "settings", "configMap": {"name": "settings"}},
                    {"name": "creds", "secret": {"secretName": "creds"}},
                    {"name": "scratch", "emptyDir": {}},
                ],
            },
        },
    )
    pod = await pod_ended(core, namespace, "env-volumes")
    assert pod.status.phase == "Succeeded", await describe_pod(core, namespace, "env-volumes")
    ip = pod.status.pod_ip
    assert ip.startswith("127.") and ip != "127.0.0.1"
    log = await core.read_namespaced_pod_log("env-volumes", namespace)
    assert log.splitlines() == [
        "hi",
        "s3cret",
        f"hi s3cret {ip} ip={ip}",
        namespace,
        "token-present",
        "scratch",
        "/scratch",
    ]


async def test_readiness_follows_the_listening_port(core: client.CoreV1Api, namespace: str) -> None:
    # the server starts listening only after 2 seconds: the pod is Running but not Ready first
    cmd = "sleep 2; exec python3 -m http.server 8080 --bind $(POD_IP)"
    await core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "busybox",
                        "command": ["sh", "-c", cmd],
                        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                        "ports": [{"containerPort": 8080}],
                    }
                ]
            },
        },
    )
    pod = await wait_for(
        lambda: core.read_namespaced_pod("web", namespace), _running, timeout=60, what="pod web Running"
    )
    ready = {c.type: c.status for c in pod.status.conditions}["Ready"]
    assert ready == "False", "not ready before the port listens"
    pod = await wait_for(
        lambda: core.read_namespaced_pod("web", namespace),
        lambda p: {c.type: c.status for c in p.status.conditions}["Ready"] == "True",
        timeout=30,
        what="pod web Ready",
    )
    assert pod.status.container_statuses[0].ready


async def test_graceful_deletion_sends_sigterm_then_kills(core: client.CoreV1Api, namespace: str) -> None:
    await create_pvc(core, namespace, "marks")
    trap = "trap 'echo got-term > /m/term; exit 0' TERM; echo started > /m/start; while true; do sleep 0.1; done"
    stubborn = "trap '' TERM; echo started > /m/stubborn; while true; do sleep 0.1; done"
    for name, script in (("polite", trap), ("stubborn", stubborn)):
        await core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": name},
                "spec": {
                    "terminationGracePeriodSeconds": 3,
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "command": ["sh", "-c", script],
                            "volumeMounts": [{"name": "m", "mountPath": "/m"}],
                        }
                    ],
                    "volumes": [{"name": "m", "persistentVolumeClaim": {"claimName": "marks"}}],
                },
            },
        )
    pvc = await wait_for(
        lambda: core.read_namespaced_persistent_volume_claim("marks", namespace),
        lambda c: c.status.phase == "Bound",
        timeout=60,
        what="PVC marks Bound",
    )
    folder = Path((await core.read_persistent_volume(pvc.spec.volume_name)).spec.host_path.path)
    for name, mark in (("polite", "start"), ("stubborn", "stubborn")):
        await wait_for(
            lambda n=name: core.read_namespaced_pod(n, namespace), _running, timeout=60, what=f"pod {name} Running"
        )
        await wait_for(lambda m=mark: _exists(folder / m), bool, timeout=20, what=f"{name} to start")
    t0 = time.monotonic()
    await core.delete_namespaced_pod("polite", namespace)
    await wait_for(
        lambda: gone(lambda: core.read_namespaced_pod("polite", namespace)), bool, timeout=30, what="pod polite deleted"
    )
    polite = time.monotonic() - t0
    assert (folder / "term").read_text() == "got-term\n", "the container saw SIGTERM"
    t0 = time.monotonic()
    await core.delete_namespaced_pod("stubborn", namespace)
    await wait_for(
        lambda: gone(lambda: core.read_namespaced_pod("stubborn", namespace)),
        bool,
        timeout=30,
        what="pod stubborn deleted",
    )
    stubborn_s = time.monotonic() - t0
    assert polite < 3 <= stubborn_s + 0.5, f"SIGKILL only after the grace period ({polite:.1f}s, {stubborn_s:.1f}s)"


async def test_restricted_namespace_rejects_root_pod(core: client.CoreV1Api, namespace: str) -> None:
    await core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    root_pod = {
        "metadata": {"name": "root"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox", "command": ["id"], "securityContext": {"runAsUser": 0}}]
        },
    }
    try:
        await core.create_namespaced_pod(namespace, root_pod)
    except client.ApiException as e:
        assert e.status == 403
        assert "violates PodSecurity" in e.body and "restricted" in e.body
    else:
        raise AssertionError("a root pod was admitted into a restricted namespace")


async def _exists(path: Path) -> bool:
    return path.exists()


async def test_service_account_token_authenticates_in_cluster(core: client.CoreV1Api, namespace: str) -> None:
    """The projected token (TokenRequest) and KUBERNETES_SERVICE_* let a pod call the API."""
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
    await core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "in-cluster"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "command": ["python3", "-c", script]}],
            },
        },
    )
    pod = await pod_ended(core, namespace, "in-cluster")
    assert pod.status.phase == "Succeeded", await describe_pod(core, namespace, "in-cluster")
    log = await core.read_namespaced_pod_log("in-cluster", namespace)
    # authenticated as the pod's service account, and refused by RBAC: 403, not 401
    assert log.startswith("403 ") and f"system:serviceaccount:{namespace}:default" in log, log


async def test_service_names_resolve_to_ready_endpoints(core: client.CoreV1Api, namespace: str) -> None:
    """No kube-proxy or cluster DNS here (and 127.x pod addresses can not be EndpointSlice
    endpoints): the agent maps Service names to a ready selected pod in the pods' /etc/hosts."""
    serve = "exec python3 -m http.server 8080 --bind $(POD_IP)"
    await core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "backend", "labels": {"app": "backend"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "busybox",
                        "command": ["sh", "-c", serve],
                        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                        "ports": [{"containerPort": 8080}],
                    }
                ]
            },
        },
    )
    await core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "backend"},
            "spec": {"selector": {"app": "backend"}, "ports": [{"port": 8080, "targetPort": 8080}]},
        },
    )
    backend = await wait_for(
        lambda: core.read_namespaced_pod("backend", namespace),
        lambda p: any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []),
        timeout=60,
        what="pod backend Ready",
    )
    # a client pod finds it by every name form and talks to it
    fqdn = f"backend.{namespace}.svc.cluster.local"
    probe = (
        f"for i in $(seq 60); do getent hosts backend >/dev/null && break; sleep 1; done; "
        f"getent hosts backend backend.{namespace} {fqdn}; "
        f"python3 -c \"import urllib.request as u; print(u.urlopen('http://{fqdn}:8080/').status)\""
    )
    await core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "client"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", probe]}],
            },
        },
    )
    pod = await pod_ended(core, namespace, "client", timeout=90)
    log = await core.read_namespaced_pod_log("client", namespace, _preload_content=False)
    text = (await log.text()).split()
    assert pod.status.phase == "Succeeded", (await describe_pod(core, namespace, "client"), " ".join(text))
    assert text.count(backend.status.pod_ip) == 3 and fqdn in text and text[-1] == "200"
