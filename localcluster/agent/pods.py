"""One pod on the local node: volumes, containers as processes, probes, status, deletion."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes_asyncio import client

from . import containers as ctr
from .images import ImageNotMapped, resolve
from .status import ContainerState, now, pod_status
from .volumes import VolumeNotReady, apply_fs_group

if TYPE_CHECKING:
    from .agent import NodeAgent

log = logging.getLogger("moonhub.nodeagent")
#: where a pod with simulated GPUs finds their utilization (read by moonhub_lab.gpu)
SIMULATED_GPU_ENV = "MOONHUB_SIMULATED_GPU_FILE"
RESTART_BACKOFF_MAX = 10.0


class PodWorker:
    """Runs one pod bound to this node until it ends or is deleted."""

    def __init__(self, agent: NodeAgent, pod: dict[str, Any], pod_ip: str) -> None:
        self.agent, self.pod = agent, pod
        meta = pod["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.key = f"{self.ns}/{self.name}"
        self.dir = agent.state_dir / "pods" / self.uid
        self.pod_ip = pod_ip
        status = pod.setdefault("status", {}) or {}
        pod["status"] = {**status, "podIP": pod_ip, "hostIP": "127.0.0.1"}
        self.start_time = (pod.get("status") or {}).get("startTime") or now()
        spec = pod["spec"]
        self.policy = spec.get("restartPolicy", "Always")
        old = {c["name"]: c for c in (pod.get("status") or {}).get("containerStatuses") or []}
        self.main = [
            ContainerState(c["name"], c["image"], restart_count=old.get(c["name"], {}).get("restartCount", 0))
            for c in spec["containers"]
        ]
        self.init = [ContainerState(c["name"], c["image"], init=True) for c in spec.get("initContainers") or []]
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.stopping = False
        self.deleting = False
        self.final_phase: str | None = None
        self.mounts: dict[str, Path] = {}
        self._push_lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None

    # ---- status ---------------------------------------------------------------------
    async def push(self) -> None:
        status = pod_status(
            containers=self.main,
            init_containers=self.init,
            restart_policy=self.policy,
            pod_ip=self.pod_ip,
            host_ip="127.0.0.1",
            start_time=self.start_time,
            final_phase=self.final_phase,
        )
        async with self._push_lock:
            try:
                await self.agent.core.patch_namespaced_pod_status(  # type: ignore[call-arg]
                    self.name, self.ns, {"status": status}, _content_type="application/merge-patch+json"
                )
            except client.ApiException as e:
                if e.status != 404:
                    log.warning("pod %s: status update failed: %s %s", self.key, e.status, e.reason)

    async def event(self, reason: str, message: str, kind: str = "Normal") -> None:
        await self.agent.event(self.pod, reason, message, kind)

    # ---- lifecycle ------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s: agent error", self.key)

    async def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        await self.push()
        if not await self._prepare_volumes():
            return
        for state, spec in zip(self.init, self.pod["spec"].get("initContainers") or [], strict=True):
            code = await self._run_container(state, spec, restartable=False)
            if self.stopping:
                return
            if code != 0:
                if self.policy == "Never":
                    self.final_phase = "Failed"
                    await self.push()
                    return
                log.info("pod %s: init container %s failed (%s)", self.key, spec["name"], code)
        specs = self.pod["spec"]["containers"]
        await asyncio.gather(
            *(self._run_container(s, c, restartable=True) for s, c in zip(self.main, specs, strict=True))
        )
        if not self.stopping:
            codes = [(c.terminated or {}).get("exitCode", 1) for c in self.main]
            self.final_phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
            await self.push()
            log.info("pod %s: %s (exit codes %s)", self.key, self.final_phase, codes)

    async def _prepare_volumes(self) -> bool:
        fs_group = (self.pod["spec"].get("securityContext") or {}).get("fsGroup")
        while not self.stopping:
            try:
                for vol in self.pod["spec"].get("volumes") or []:
                    path = await self.agent.volumes.host_path(self.pod, vol, self.dir)
                    if fs_group is not None and "hostPath" not in vol:
                        apply_fs_group(path, int(fs_group))
                    self.mounts[vol["name"]] = path
                return True
            except VolumeNotReady as e:
                for c in self.main:
                    c.wait("ContainerCreating", str(e))
                await self.push()
                await asyncio.sleep(1)
            except ctr.ConfigError as e:
                for c in self.main:
                    c.wait("CreateContainerConfigError", str(e))
                await self.push()
                await self.event("FailedMount", str(e), "Warning")
                await asyncio.sleep(5)
        return False

    async def _env_sources(self, spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The ConfigMaps and Secrets that ``spec``'s env and envFrom refer to."""
        cms: dict[str, Any] = {}
        secrets: dict[str, Any] = {}
        refs = [(v.get("valueFrom") or {}) for v in spec.get("env") or []] + list(spec.get("envFrom") or [])
        for ref in refs:
            for key, store, read in (
                ("configMapKeyRef", cms, self.agent.volumes.configmap),
                ("configMapRef", cms, self.agent.volumes.configmap),
                ("secretKeyRef", secrets, self.agent.volumes.secret),
                ("secretRef", secrets, self.agent.volumes.secret),
            ):
                if key in ref and ref[key]["name"] not in store:
                    obj = await read(self.ns, ref[key]["name"], optional=True)
                    if obj is not None:
                        store[ref[key]["name"]] = obj
        return cms, secrets

    def _simulated_gpus(self, count: int) -> Path:
        """The file this pod's simulated GPUs report their utilization from (what a real
        node's NVIDIA runtime provides through NVML); idle at first. Tests write it."""
        path = self.agent.state_dir / "simulated-gpus" / f"{self.ns}_{self.pod['metadata']['name']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o755)
        if not path.exists():
            path.write_text(json.dumps([0] * count))
        path.chmod(0o644)
        return path

    async def _process_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        image = resolve(spec["image"], self.agent.images)
        cms, secrets = await self._env_sources(spec)
        api_server = ("127.0.0.1", self.agent.cfg.apiserver_port)
        env = ctr.container_env(self.pod, spec, image, cms, secrets, api_server)
        gpus = int(((spec.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", "0"))
        if gpus and self.agent.cfg.simulated_gpus:
            env[SIMULATED_GPU_ENV] = str(self._simulated_gpus(gpus))
        who = ctr.identity(self.pod, spec, image)
        mounts = []
        for m in spec.get("volumeMounts") or []:
            src = self.mounts[m["name"]]
            if m.get("subPath"):
                src = src / m["subPath"]
                if not src.exists():
                    src.mkdir(parents=True)
            mounts.append({"source": str(src), "target": m["mountPath"], "readOnly": bool(m.get("readOnly"))})
        # Service names (no cluster DNS on this node): the agent's hosts file
        mounts.append({"source": str(self.agent.hosts.path), "target": "/etc/hosts", "readOnly": True})
        return {
            "argv": ctr.container_argv(spec, image, env),
            "env": env,
            "cwd": spec.get("workingDir") or image.workdir,
            "uid": who.uid,
            "gid": who.gid,
            "groups": list(who.groups),
            "home": image.home,
            "mounts": mounts,
            "hostname": self.pod["spec"].get("hostname") or self.name,
        }

    async def _run_container(self, state: ContainerState, spec: dict[str, Any], restartable: bool) -> int:
        backoff = 1.0
        while True:
            code = await self._run_once(state, spec)
            if self.stopping or code is None:
                return code if code is not None else 1
            again = restartable and (self.policy == "Always" or (self.policy == "OnFailure" and code != 0))
            if not again:
                return code
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX)
            if self.stopping:
                return code
            state.restart_count += 1

    async def _run_once(self, state: ContainerState, spec: dict[str, Any]) -> int | None:
        try:
            process_spec = await self._process_spec(spec)
        except ImageNotMapped as e:
            state.wait("ErrImageNeverPull", str(e))
            await self.push()
            await self.event("ErrImageNeverPull", str(e), "Warning")
            await asyncio.sleep(10)
            return -1 if not self.stopping else None
        except ctr.ConfigError as e:
            state.wait("CreateContainerConfigError", str(e))
            await self.push()
            await self.event("Failed", f"Error: {e}", "Warning")
            await asyncio.sleep(5)
            return -1 if not self.stopping else None
        logs = self.log_path(state.name, state.restart_count)
        logs.parent.mkdir(parents=True, exist_ok=True)
        spec_file = self.dir / f"{state.name}.json"
        spec_file.write_text(json.dumps(process_spec))
        spec_file.chmod(0o600)
        with logs.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                sys.executable,
                "-m",
                "localcluster.agent.podexec",
                str(spec_file),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                cwd=str(Path(__file__).resolve().parents[2]),
            )
        self.procs[state.name] = proc
        state.start(f"moonhub-local://{uuid.uuid4().hex[:16]}")
        await self.push()
        await self.event("Started", f"Started container {state.name} (pid {proc.pid})")
        log.info("pod %s: container %s started, pid %s, ip %s", self.key, state.name, proc.pid, self.pod_ip)
        probe = None if state.init else asyncio.create_task(self._probe(state, spec))
        code = await proc.wait()
        if probe:
            probe.cancel()
        self.procs.pop(state.name, None)
        exit_code = 128 - code if code < 0 else code  # killed by signal N: 128 + N
        state.exit(exit_code)
        await self.push()
        log.info("pod %s: container %s exited with %s", self.key, state.name, exit_code)
        return exit_code

    async def _probe(self, state: ContainerState, spec: dict[str, Any]) -> None:
        """Ready when the readiness probe passes, or when every declared port listens."""
        probe = spec.get("readinessProbe") or {}
        ports = [p["containerPort"] for p in spec.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
        await asyncio.sleep(probe.get("initialDelaySeconds", 0))
        period = probe.get("periodSeconds", 1 if not probe else 10)
        while state.running:
            try:
                ok = await self._check(probe, ports, spec)
            except ctr.ConfigError as e:  # the kubelet fails such a probe too
                log.warning("pod %s: %s", self.key, e)
                ok = False
            if ok != state.ready:
                state.ready = ok
                await self.push()
            await asyncio.sleep(min(period, 1) if not ok else period)

    async def _check(self, probe: dict[str, Any], ports: list[int], spec: dict[str, Any]) -> bool:
        if "httpGet" in probe:
            h = probe["httpGet"]
            return await _http_ok(self.pod_ip, ctr.probe_port(h["port"], spec), h.get("path", "/"))
        if "tcpSocket" in probe:
            return await _tcp_ok(self.pod_ip, ctr.probe_port(probe["tcpSocket"]["port"], spec))
        if "exec" in probe:
            p = await asyncio.create_subprocess_exec(
                *probe["exec"]["command"], stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            return await p.wait() == 0
        results = [await _tcp_ok(self.pod_ip, port) for port in ports]
        return all(results)

    def log_path(self, container: str, restart: int) -> Path:
        return self.dir / "logs" / container / f"{restart}.log"

    async def stop(self, grace: float, reason: str = "Killing") -> None:
        """Graceful stop: SIGTERM every container's process group, SIGKILL after ``grace``."""
        self.stopping = True
        if self.procs:
            await self.event(reason, f"Stopping containers with a grace period of {grace:g}s")
        for proc in list(self.procs.values()):
            _signal(proc, signal.SIGTERM)
        if self.task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=grace)
        except TimeoutError:
            for proc in list(self.procs.values()):
                _signal(proc, signal.SIGKILL)
            try:
                await asyncio.wait_for(asyncio.shield(self.task), timeout=5)
            except TimeoutError:
                self.task.cancel()
        for c in self.main:
            if c.running:
                c.exit(137)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


async def _tcp_ok(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _http_ok(host: str, port: int, path: str) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1)
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), timeout=2)
        writer.close()
        code = int(line.split()[1])
        return 200 <= code < 400
    except (OSError, TimeoutError, ValueError, IndexError):
        return False
