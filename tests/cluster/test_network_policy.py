"""NetworkPolicy is enforced on the real node (kube-router's firewall), from a user's server
and from a job pod, and each check fails once the enforcer is stopped: the policy is what
blocks, not a missing route."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubernetes_asyncio import client

from localcluster import cli, node
from localcluster.config import METADATA_IP, REPO, ClusterConfig
from localcluster.hub import user_pod_policy
from localcluster.supervisor import Supervisor
from moonhub_core.platform import HubSection, JobsSection, PlatformConfig, SpawnerSection
from tests.helpers import PYTHON_IMAGE, describe_pod, pod_ended, pod_log, wait_for

# it stops the node's NetworkPolicy enforcer, which every other test relies on: tests/lanes.py
pytestmark = pytest.mark.lane("node")

#: host services on the node address: the hub API and jobs service stand-ins (allowed) and
#: something else on the host (the proxy's API, say: refused)
HUB_PORT, JOBS_PORT, OTHER_PORT = 19181, 19190, 19101


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def host_services(local_cluster: ClusterConfig | None) -> Iterator[None]:
    if local_cluster is None:
        pytest.skip("needs the local cluster's real node")
    servers = [ThreadingHTTPServer((local_cluster.node_ip, p), _Hello) for p in (HUB_PORT, JOBS_PORT, OTHER_PORT)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
async def victim(core: client.CoreV1Api) -> AsyncIterator[str]:
    """Another user's server, in a namespace of its own; yields its pod IP."""
    ns = f"t-victim-{uuid.uuid4().hex[:5]}"
    await core.create_namespace({"metadata": {"name": ns, "labels": {"moonhub.io/test": "true"}}})
    await wait_for(
        lambda: core.list_namespaced_service_account(ns), lambda r: bool(r.items), timeout=30, what="a ServiceAccount"
    )
    await core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "server"},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": PYTHON_IMAGE,
                        "command": ["python3", "-m", "http.server", "8888"],
                        "readinessProbe": {"tcpSocket": {"port": 8888}, "periodSeconds": 1},
                    }
                ]
            },
        },
    )
    pod = await wait_for(
        lambda: core.read_namespaced_pod("server", ns),
        lambda p: any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []),
        timeout=120,
        what="the victim's server Ready",
    )
    yield str(pod.status.pod_ip)
    await core.delete_namespace(ns)


def _probe_script(cfg: ClusterConfig, victim_ip: str) -> str:
    targets = {
        "hub-api": (cfg.node_ip, HUB_PORT),
        "jobs-service": (cfg.node_ip, JOBS_PORT),
        # the node's package index (a component of the local cluster, like on a real one the
        # chart's proxy): pods' pip installs from it
        "package-index": (cfg.node_ip, cfg.package_index_port),
        "other-host-port": (cfg.node_ip, OTHER_PORT),
        "kubernetes-service": (cfg.kubernetes_service_ip, 443),
        "apiserver-on-node": (cfg.node_ip, cfg.apiserver_port),
        "metadata": (METADATA_IP, 80),
        "other-user-server": (victim_ip, 8888),
    }
    # the enforcer learns a new pod's address from the API: give it a moment first
    return (
        "import socket, time\ntime.sleep(4)\n"
        f"targets = {targets!r}\n"
        "for name, addr in targets.items():\n"
        "    try:\n"
        "        socket.create_connection(addr, timeout=3).close(); print(name, 'open')\n"
        "    except OSError:\n"
        "        print(name, 'blocked')\n"
        "try:\n    socket.gethostbyname('kubernetes.default'); print('dns open')\n"
        "except OSError:\n    print('dns blocked')\n"
    )


async def _probe(api: client.ApiClient, core: client.CoreV1Api, ns: str, script: str, as_job: bool) -> dict[str, str]:
    name = f"probe-{uuid.uuid4().hex[:5]}"
    container = {"name": "probe", "image": PYTHON_IMAGE, "command": ["python3", "-c", script]}
    pod_spec = {"restartPolicy": "Never", "containers": [container]}
    if as_job:
        await client.BatchV1Api(api).create_namespaced_job(
            ns, {"metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}}}
        )
        pods = await wait_for(
            lambda: core.list_namespaced_pod(ns, label_selector=f"job-name={name}"),
            lambda r: bool(r.items),
            timeout=60,
            what=f"the pod of job {name}",
        )
        pod_name = pods.items[0].metadata.name
    else:
        await core.create_namespaced_pod(ns, {"metadata": {"name": name}, "spec": pod_spec})
        pod_name = name
    pod = await pod_ended(core, ns, pod_name, timeout=120)
    log = await pod_log(core, ns, pod_name)
    assert pod.status.phase == "Succeeded", (await describe_pod(core, ns, pod_name), log)
    return dict(line.split() for line in log.splitlines())


ALLOWED = {"hub-api", "jobs-service", "package-index", "dns"}


async def test_user_pods_reach_only_the_hub_jobs_service_package_index_and_dns(
    api: client.ApiClient,
    core: client.CoreV1Api,
    namespace: str,
    local_cluster: ClusterConfig,
    host_services: None,
    victim: str,
) -> None:
    cfg = local_cluster
    platform = PlatformConfig(
        hub=HubSection(api_url=f"http://{cfg.node_ip}:{HUB_PORT}"),
        spawner=SpawnerSection(namespace=namespace, package_index=cfg.package_index_url),
        jobs=JobsSection(enabled=True, url=f"http://{cfg.node_ip}:{JOBS_PORT}"),
    )
    policy = user_pod_policy(platform)
    await client.NetworkingV1Api(api).create_namespaced_network_policy(namespace, policy)
    script = _probe_script(cfg, victim)

    for as_job in (False, True):
        seen = await _probe(api, core, namespace, script, as_job)
        expected = {name: "open" if name in ALLOWED else "blocked" for name in seen}
        assert seen == expected, f"from a {'job pod' if as_job else 'server pod'}"

    # without the enforcer (stopped, its rules removed) the same probe reaches everything:
    # the policy did the blocking, not a missing route
    sup = Supervisor(cfg.run, cfg.logs, REPO)
    bin_dir = cli.build()
    enforcer = next(c for c in node.components(cfg, bin_dir) if c.name == node.ENFORCER)
    sup.stop(enforcer.name)
    cleanup = [str(bin_dir / "kube-router"), "--cleanup-config"]
    await asyncio.to_thread(subprocess.run, cleanup, capture_output=True, timeout=60)
    try:
        seen = await _probe(api, core, namespace, script, as_job=False)
        assert set(seen.values()) == {"open"}, seen
    finally:
        sup.start(enforcer.name, enforcer.argv)
        sup.wait_healthy(enforcer.name, enforcer.health)
