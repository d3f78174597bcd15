"""Pure builders of the status a pod reports: container states, conditions and phase."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerState:
    """What the agent knows of one container; rendered as a ``ContainerStatus``."""

    name: str
    image: str
    init: bool = False
    restart_count: int = 0
    ready: bool = False
    #: ("waiting", reason, message) | ("running", started_at) | ("terminated", ...)
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    container_id: str = ""

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def terminated(self) -> dict[str, Any] | None:
        return self.state.get("terminated")

    def wait(self, reason: str, message: str = "") -> None:
        self.ready = False
        self.state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}

    def start(self, container_id: str) -> None:
        if self.terminated:
            self.last_state = {"terminated": self.terminated}
        self.container_id = container_id
        self.state = {"running": {"startedAt": now()}}

    def exit(self, code: int, reason: str | None = None, message: str = "") -> None:
        started = self.state.get("running", {}).get("startedAt", now())
        self.ready = False
        term = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": started,
            "finishedAt": now(),
            "containerID": self.container_id,
        }
        if message:
            term["message"] = message
        self.state = {"terminated": term}

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": f"moonhub-local://{self.image}",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.running,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def _cond(kind: str, ok: bool, reason: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now()}
    if reason and not ok:
        c["reason"] = reason
    return c


def phase(containers: list[ContainerState], restart_policy: str, init_failed: bool) -> str:
    """Pending / Running / Succeeded / Failed from the main containers' states."""
    if init_failed:
        return "Failed"
    if any(c.running for c in containers):
        return "Running"
    terminated = [c.terminated for c in containers]
    if containers and all(terminated):
        codes = [t["exitCode"] for t in terminated if t]
        if restart_policy == "Always":
            return "Running"
        if all(code == 0 for code in codes):
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"  # OnFailure: the failed ones restart
    return "Pending"


def pod_status(
    *,
    containers: list[ContainerState],
    init_containers: list[ContainerState],
    restart_policy: str,
    pod_ip: str,
    host_ip: str,
    start_time: str,
    final_phase: str | None = None,
    sandbox_ready: bool = True,
) -> dict[str, Any]:
    initialized = all(c.terminated and c.terminated["exitCode"] == 0 for c in init_containers)
    ready = bool(containers) and all(c.ready for c in containers)
    ph = final_phase or phase(containers, restart_policy, False)
    if ph in ("Succeeded", "Failed"):
        ready = False
    not_ready = [c.name for c in containers if not c.ready]
    reason = "PodCompleted" if ph in ("Succeeded", "Failed") else "ContainersNotReady"
    return {
        "phase": ph,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "conditions": [
            _cond("PodReadyToStartContainers", sandbox_ready),
            _cond("Initialized", initialized, "ContainersNotInitialized"),
            _cond("ContainersReady", ready, reason),
            _cond("Ready", ready, reason),
            _cond("PodScheduled", True),
        ],
        "containerStatuses": [c.render() for c in containers],
        "initContainerStatuses": [c.render() for c in init_containers],
        **(
            {"message": f"containers with unready status: [{' '.join(not_ready)}]"}
            if not ready and not_ready and ph == "Running"
            else {}
        ),
    }
