"""MoonHub's pod reflector against the real API server: it follows pods made, changed and
deleted across many watches without listing them again, and lists again when the version
it would go on from is gone (spawner_ext.resuming_reflector; the loop's answers to a gone
version and a failed watch: tests/unit/test_reflector_watch.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio import config as kconfig

from moonhub_core.security import container_security_context, pod_security_context
from spawner_ext.resuming_reflector import ResumingPodReflector
from tests.helpers import SHELL_IMAGE, wait_for

LABEL = {"component": "resume-test"}


def _pod(name: str) -> dict[str, Any]:
    # never scheduled (no node has the label): an object to watch, nothing runs
    return {
        "metadata": {"name": name, "labels": dict(LABEL)},
        "spec": {
            "nodeSelector": {"moonhub.io/no-such-node": "true"},
            "securityContext": pod_security_context(),
            "containers": [
                {
                    "name": "c",
                    "image": SHELL_IMAGE,
                    "command": ["true"],
                    "securityContext": container_security_context(),
                }
            ],
        },
    }


async def test_the_reflector_follows_pods_across_watches_without_listing_again(
    core: client.CoreV1Api, namespace: str, kubeconfig: Path
) -> None:
    await kconfig.load_kube_config(str(kubeconfig))  # KubeSpawner's shared client reads the default
    reflector = ResumingPodReflector(namespace=namespace, labels=LABEL, timeout_seconds=1)
    await reflector.start()
    try:
        key = f"{namespace}/a"
        await core.create_namespaced_pod(namespace, _pod("a"))
        await core.create_namespaced_pod(namespace, {**_pod("other"), "metadata": {"name": "other"}})
        await wait_for(lambda: key in reflector.pods, bool, timeout=30, what="the new pod seen")
        # several watches end (1 s each) with nothing happening: each goes on from where it was
        await asyncio.sleep(4)
        await core.patch_namespaced_pod("a", namespace, {"metadata": {"labels": {"changed": "yes"}}})
        await wait_for(
            lambda: reflector.pods.get(key, {}).get("metadata", {}).get("labels", {}).get("changed"),
            lambda v: v == "yes",
            timeout=30,
            what="the change seen",
        )
        await core.delete_namespaced_pod("a", namespace, grace_period_seconds=0)
        await wait_for(lambda: key not in reflector.pods, bool, timeout=30, what="the deletion seen")
        assert f"{namespace}/other" not in reflector.pods, "only pods the selector names"
        assert reflector.lists == 1, f"listed {reflector.lists} times: a watch that ended was not resumed"
        assert not reflector.watch_task.done()
    finally:
        await reflector.stop()


async def test_the_workload_watch_sees_kueue_workloads_and_wakes_its_waiters(
    api: client.ApiClient, namespace: str, kubeconfig: Path
) -> None:
    """The spawner's view of the namespace's Kueue Workloads (spawner_ext.workload_watch):
    what a waiting spawn reads instead of asking the API server each second."""
    from moonhub_core import queue_objects as q
    from spawner_ext.workload_watch import OWNER_UID_LABEL, ResumingWorkloadReflector, owned_by

    custom = client.CustomObjectsApi(api)
    await kconfig.load_kube_config(str(kubeconfig))
    reflector = ResumingWorkloadReflector(namespace=namespace, timeout_seconds=1)
    await reflector.start()
    workload = {
        "apiVersion": f"{q.GROUP}/{q.VERSION}",
        "kind": "Workload",
        "metadata": {"name": "watched", "labels": {OWNER_UID_LABEL: "owner-1"}},
        "spec": {
            "queueName": "no-such-queue",
            "podSets": [{"name": "main", "count": 1, "template": _pod("x")}],
        },
    }
    try:
        woken = asyncio.ensure_future(reflector.next_change(30))
        await custom.create_namespaced_custom_object(q.GROUP, q.VERSION, namespace, "workloads", workload)
        assert await woken, "the new Workload woke the waiter"
        await wait_for(lambda: owned_by(reflector.workloads, "owner-1"), bool, timeout=30, what="the Workload seen")
        assert owned_by(reflector.workloads, "owner-2") is None

        def kueue_says() -> str:
            wl = owned_by(reflector.workloads, "owner-1") or {}
            found = [c for c in (wl.get("status") or {}).get("conditions") or [] if c.get("type") == "QuotaReserved"]
            return str(found[0].get("message")) if found else ""

        # Kueue's answer (its queue does not exist) reaches the view: what a waiting spawn reads
        await wait_for(kueue_says, lambda m: "no-such-queue" in m, timeout=60, what="Kueue's condition seen")
        woken = asyncio.ensure_future(reflector.next_change(30))
        await custom.delete_namespaced_custom_object(q.GROUP, q.VERSION, namespace, "workloads", "watched")
        assert await woken
        await wait_for(lambda: owned_by(reflector.workloads, "owner-1"), lambda v: v is None, timeout=30, what="gone")
        assert reflector.lists == 1 and not reflector.watch_task.done()
    finally:
        await reflector.stop()
