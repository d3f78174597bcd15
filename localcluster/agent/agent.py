"""The MoonHub node agent: a kubelet stand-in that runs pods as host processes.

It registers its Node (as ``system:node:<name>``, so the Node authorizer and NodeRestriction
apply), renews the node lease, watches the pods bound to it and runs each through a
:class:`~.pods.PodWorker`, and serves container logs on the kubelet endpoint.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import platform
import signal
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client, config, watch

from ..config import ClusterConfig
from .images import load_mapping
from .kubelet_api import make_app, server_ssl
from .pods import PodWorker
from .services import HostsFile, service_hosts
from .status import now
from .volumes import VolumeBuilder

log = logging.getLogger("moonhub.nodeagent")
TERMINAL = ("Succeeded", "Failed")


SIMULATED_GPU_LABEL = "moonhub.io/simulated-gpu"


def node_manifest(name: str, port: int, cpu: str, memory: str, gpus: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Node object and its status for this agent (pure). With ``gpus``, the node offers
    that many simulated ``nvidia.com/gpu`` (no ``nvidia.com/gpu.present`` label, so CPU
    workloads still land here)."""
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "moonhub.io/node-agent": "local",
            },
        },
    }
    capacity = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
        node["metadata"]["labels"][SIMULATED_GPU_LABEL] = "true"  # type: ignore[index]
    status = {
        "capacity": capacity,
        "allocatable": capacity,
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": name,
            "systemUUID": name,
            "bootID": "moonhub",
            "kernelVersion": platform.release(),
            "osImage": "MoonHub local node agent",
            "containerRuntimeVersion": "moonhub-local://1",
            "kubeletVersion": "v0.0.0-moonhub",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "conditions": [
            {
                "type": t,
                "status": "False",
                "reason": f"KubeletHas{r}",
                "lastHeartbeatTime": now(),
                "lastTransitionTime": now(),
            }
            for t, r in (
                ("MemoryPressure", "SufficientMemory"),
                ("DiskPressure", "NoDiskPressure"),
                ("PIDPressure", "SufficientPID"),
            )
        ]
        + [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "moonhub node agent is posting ready status",
                "lastHeartbeatTime": now(),
                "lastTransitionTime": now(),
            }
        ],
    }
    return node, status


class NodeAgent:
    def __init__(self, cfg: ClusterConfig, cpu: str = "16", memory: str = "64Gi") -> None:
        self.cfg = cfg
        self.name = cfg.agent_node
        self.state_dir = cfg.state_dir / "node-agent"
        #: bind-mounted at /etc/hosts in every pod: the host's entries plus Service names
        self.hosts = HostsFile(self.state_dir / "hosts")
        self.cpu, self.memory = cpu, memory
        self.images = load_mapping()
        self.workers: dict[str, PodWorker] = {}
        net = ipaddress.ip_network(f"127.{cfg.pod_ip_octet}.0.0/16")
        self._free_ips = (str(ip) for ip in net.hosts() if not str(ip).endswith((".0", ".1", ".255")))
        self._stop = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the agent is stopping."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background, keeping a reference until it ends."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- setup ----------------------------------------------------------------------
    async def connect(self) -> None:
        self.api = await config.new_client_from_config(str(self.cfg.kubeconfig(f"node-{self.name}")))
        self.core = client.CoreV1Api(self.api)
        self.coord = client.CoordinationV1Api(self.api)
        self.volumes = VolumeBuilder(self.core, self.api)

    async def register(self) -> None:
        node, status = node_manifest(self.name, self.cfg.kubelet_port, self.cpu, self.memory, self.cfg.simulated_gpus)
        try:
            await self.core.create_node(node)  # type: ignore[arg-type]  # dict bodies serialise as-is
            log.info("registered node %s", self.name)
        except client.ApiException as e:
            if e.status != 409:
                raise
        await self.core.patch_node_status(self.name, {"status": status})

    async def heartbeat(self) -> None:
        lease_ns = "kube-node-lease"
        while not self._stop.is_set():
            micro = now().replace("Z", ".000000Z")
            body: dict[str, Any] = {
                "metadata": {"name": self.name, "namespace": lease_ns},
                "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": micro},
            }
            try:
                try:
                    lease = await self.coord.read_namespaced_lease(self.name, lease_ns)
                    lease.spec.renew_time = micro  # type: ignore[assignment]  # sent as RFC 3339
                    lease.spec.holder_identity = self.name
                    await self.coord.replace_namespaced_lease(self.name, lease_ns, lease)
                except client.ApiException as e:
                    if e.status != 404:
                        raise
                    node = await self.core.read_node(self.name)
                    body["metadata"]["ownerReferences"] = [
                        {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": node.metadata.uid}
                    ]
                    await self.coord.create_namespaced_lease(lease_ns, body)  # type: ignore[arg-type]
                _, status = node_manifest(
                    self.name, self.cfg.kubelet_port, self.cpu, self.memory, self.cfg.simulated_gpus
                )
                await self.core.patch_node_status(self.name, {"status": {"conditions": status["conditions"]}})
            except Exception as e:
                log.warning("node %s: heartbeat failed: %s", self.name, e)
            await self._pause(10)

    async def resolve_services(self) -> None:
        """Keep the pods' hosts file in step with Services and this node's ready pods."""
        while not self._stop.is_set():
            try:
                ser = self.api.sanitize_for_serialization
                services = await self.core.list_service_for_all_namespaces()
                pods = await self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self.name}")
                lines = service_hosts([ser(x) for x in services.items], [ser(x) for x in pods.items])
                if self.hosts.write(lines):
                    log.info("service names: %d", len(lines))
            except Exception as e:
                log.warning("node %s: reading Services failed: %s", self.name, e)
            await self._pause(2)

    # ---- pods -----------------------------------------------------------------------
    def find(self, ns: str, name: str) -> PodWorker | None:
        return self.workers.get(f"{ns}/{name}")

    def _ip(self, pod: dict[str, Any]) -> str:
        old = (pod.get("status") or {}).get("podIP")
        taken = {w.pod_ip for w in self.workers.values()}
        if old and old.startswith(f"127.{self.cfg.pod_ip_octet}.") and old not in taken:
            return str(old)
        for ip in self._free_ips:
            if ip not in taken:
                return ip
        raise RuntimeError("no free pod IP left")

    async def event(self, pod: dict[str, Any], reason: str, message: str, kind: str = "Normal") -> None:
        meta = pod["metadata"]
        body = {
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "apiVersion": "v1",
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": self.name},
            "firstTimestamp": now(),
            "lastTimestamp": now(),
            "count": 1,
            "reportingComponent": "kubelet",
            "reportingInstance": self.name,
        }
        try:
            await self.core.create_namespaced_event(meta["namespace"], body)  # type: ignore[arg-type]
        except client.ApiException as e:
            log.debug("event for pod %s/%s not recorded: %s", meta["namespace"], meta["name"], e.reason)

    def _adopt(self, pod: dict[str, Any], at_start: bool) -> None:
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        worker = PodWorker(self, pod, self._ip(pod))
        self.workers[key] = worker
        phase = (pod.get("status") or {}).get("phase")
        if phase in TERMINAL:
            worker.final_phase = phase
            return
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        ran = any("running" in (s.get("state") or {}) or "terminated" in (s.get("state") or {}) for s in statuses)
        if at_start and ran and worker.policy == "Never":
            worker.final_phase = "Failed"
            for c in worker.main:
                c.exit(137, "NodeAgentRestarted", "the node agent restarted while this container ran")
            self._spawn(worker.push())
            return
        if at_start and ran:
            for c in worker.main:
                c.restart_count += 1
        worker.task = asyncio.create_task(worker.run())

    async def _finish_deletion(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        worker = self.workers.get(key)
        if worker is not None and worker.task is not None and not worker.task.done():
            grace = meta.get("deletionGracePeriodSeconds")
            await worker.stop(float(30 if grace is None else grace))
            await worker.push()
        try:
            await self.core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                grace_period_seconds=0,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])
                ),
            )
            log.info("pod %s deleted", key)
        except client.ApiException as e:
            if e.status not in (404, 409):
                log.warning("pod %s: final delete failed: %s", key, e.reason)

    def _forget(self, key: str) -> None:
        worker = self.workers.pop(key, None)
        if worker is not None:
            if worker.task and not worker.task.done():
                self._spawn(worker.stop(0))
            worker.cleanup()

    async def watch_pods(self) -> None:
        selector = f"spec.nodeName={self.name}"
        first = True
        while not self._stop.is_set():
            try:
                pods = await self.core.list_pod_for_all_namespaces(field_selector=selector)
                seen = set()
                for obj in pods.items:
                    pod = self.api.sanitize_for_serialization(obj)
                    seen.add(self._handle(pod, first))
                for key in set(self.workers) - seen:
                    self._forget(key)
                first = False
                rv = pods.metadata.resource_version
                async with watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=rv,
                    timeout_seconds=300,
                ) as stream:
                    async for ev in stream:
                        pod = self.api.sanitize_for_serialization(ev["object"])
                        if ev["type"] == "DELETED":
                            self._forget(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}")
                        elif ev["type"] in ("ADDED", "MODIFIED"):
                            self._handle(pod, False)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("node %s: pod watch interrupted (%s); relisting", self.name, e)
                await asyncio.sleep(1)

    def _handle(self, pod: dict[str, Any], at_start: bool) -> str:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        worker = self.workers.get(key)
        if worker is not None and worker.uid != meta["uid"]:
            self._forget(key)
            worker = None
        if meta.get("deletionTimestamp"):
            if worker is None or not worker.deleting:
                if worker is not None:
                    worker.deleting = True
                self._spawn(self._finish_deletion(pod))
            return key
        if worker is None:
            self._adopt(pod, at_start)
        return key

    # ---- main -----------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        await self.connect()
        await self.register()
        pki = self.cfg.pki
        runner = web.AppRunner(make_app(self.find))
        await runner.setup()
        site = web.TCPSite(
            runner,
            "127.0.0.1",
            self.cfg.kubelet_port,
            ssl_context=server_ssl(pki / "kubelet-serving.crt", pki / "kubelet-serving.key", pki / "ca.crt"),
        )
        await site.start()
        log.info(
            "node %s ready; kubelet endpoint https://127.0.0.1:%s; pod IPs 127.%s.x.y",
            self.name,
            self.cfg.kubelet_port,
            self.cfg.pod_ip_octet,
        )
        tasks = [
            asyncio.create_task(self.heartbeat()),
            asyncio.create_task(self.watch_pods()),
            asyncio.create_task(self.resolve_services()),
        ]
        await self._stop.wait()
        log.info("node %s stopping: stopping %d pods", self.name, len(self.workers))
        tasks[1].cancel()
        running = [w for w in self.workers.values() if w.task and not w.task.done()]
        await asyncio.gather(*(w.stop(10, "NodeAgentStopping") for w in running), return_exceptions=True)
        await asyncio.gather(*(w.push() for w in running), return_exceptions=True)
        tasks[0].cancel()
        await runner.cleanup()
        await self.api.close()


def main(state_dir: Path) -> None:
    logging.basicConfig(
        level=os.environ.get("MOONHUB_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    cfg = ClusterConfig.load(state_dir)
    asyncio.run(NodeAgent(cfg).run())
