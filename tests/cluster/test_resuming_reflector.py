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
