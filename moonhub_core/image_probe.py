"""Checks that an image an admin offers starts as a notebook server, before it is offered:
a short pod in the users' namespace runs it (by the digest the registry gave) as servers
run, a non-root user with every capability dropped, and asks it for
``jupyterhub-singleuser --version``, the command every server starts with. The pod lands
where a CPU server would (never on a GPU node), carries no service-account token and
is removed afterwards, whatever happened.

An image that can not be pulled, runs as root, or lacks the command is refused, with what
the kubelet or the command said. A first pull that outlasts :data:`WAIT` (a large CUDA image
onto a node that never had it) is not a refusal of the image: the admin is asked to try
again once the node has it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiException

from . import pods as podc
from .errors import FieldError, Unavailable
from .security import container_security_context, pod_security_context, with_umask

#: what every server runs (``c.Spawner.cmd``), asked for its version
COMMAND = ["jupyterhub-singleuser", "--version"]
PROBE = "image-probe"
#: seconds a probe may take, its first pull included
WAIT = 120.0


def probe_pod(name: str, image: str) -> dict[str, Any]:
    """Pure: the probe's pod."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {podc.COMPONENT: PROBE}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "activeDeadlineSeconds": int(WAIT) + 60,
            "securityContext": pod_security_context(),
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": podc.GPU_NODE_LABEL, "operator": "DoesNotExist"}]}
                        ]
                    }
                }
            },
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "command": with_umask(COMMAND),
                    "securityContext": container_security_context(),
                    # a failure's output comes back in its status: the hub needs no pods/log
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "128Mi"},
                        "limits": {"cpu": "1", "memory": "512Mi"},
                    },
                }
            ],
        },
    }


def verdict(pod: dict[str, Any], log: str) -> tuple[bool, str] | None:
    """Pure: (started, what to say) once the pod tells, else None (still going)."""
    refused = podc.image_problem(pod) or podc.container_problem(pod)  # the kubelet's, as for spawns
    if refused:
        return False, refused[1]
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        done = (cs.get("state") or {}).get("terminated")
        if done:
            said = (log or done.get("message") or "").strip()[-500:]
            if done.get("exitCode") == 0:
                return True, said or f"`{' '.join(COMMAND)}` ran"
            return False, f"`{' '.join(COMMAND)}` exited with {done.get('exitCode')}: {said or done.get('reason')}"
    if status.get("phase") == "Failed":
        return False, status.get("message") or status.get("reason") or "the pod failed"
    return None


async def starts_as_server(core: client.CoreV1Api, namespace: str, image: str, wait: float = WAIT) -> str:
    """Runs the probe; returns what the image said (its jupyterhub-singleuser version).
    FieldError ``image`` (400) when it can not start as a server; Unavailable (503) when the
    probe could not tell in time."""
    name = f"moonhub-image-probe-{secrets.token_hex(4)}"
    try:
        await core.create_namespaced_pod(namespace, probe_pod(name, image))  # type: ignore[arg-type]
    except ApiException as e:
        raise Unavailable("image", f"the probe pod could not be made: {e.status} {e.reason}") from None
    try:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            ser = core.api_client.sanitize_for_serialization  # type: ignore[attr-defined]
            pod = ser(await core.read_namespaced_pod(name, namespace))
            log = ""
            if any(
                (cs.get("state") or {}).get("terminated")
                for cs in (pod.get("status") or {}).get("containerStatuses") or []
            ):
                try:  # what it printed (the version); a hub without pods/log goes on without
                    log = await core.read_namespaced_pod_log(name, namespace)
                except ApiException:
                    log = ""
            found = verdict(pod, log)
            if found is None:
                continue
            started, said = found
            if not started:
                raise FieldError("image", f"{image} does not start as a notebook server: {said}")
            return said
        raise Unavailable(
            "image",
            f"{image} was not ready to run within {wait:.0f} s (a first pull of a large image onto a node "
            "takes longer): try again in a few minutes",
        )
    finally:
        try:
            await core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException:
            pass
