"""The image builder on the real node (docs/environment-images.md): rootless BuildKit in an
unprivileged pod (uid 1000, no capability added) pulls its base from the node's registry,
runs a step, and is held to the pod's disk bound: a build that writes more than it may is
stopped by the kubelet and the build's outcome says so (``env_images.pod_outcome``). The
whole path (the jobs service's queue, the push, the checks, spawns and jobs with the image)
is tests/hub/test_env_images.py."""

from __future__ import annotations

import time

from kubernetes_asyncio import client

from localcluster.config import ClusterConfig
from localcluster.registry import ref
from moonhub_core import env_images as ei
from tests.helpers import describe_pod, wait_for


async def test_a_build_past_its_disk_bound_is_stopped_and_says_so(
    core: client.CoreV1Api, namespace: str, local_cluster: ClusterConfig | None, timings: dict[str, float]
) -> None:
    assert local_cluster is not None, "the builder's image is the local registry's"
    registry = local_cluster.node_registry
    base = f"{registry}/moonhub/debian:bookworm"
    # 2 GB written in a step, 1 GiB allowed (a "10 GB build", scaled to the test's disk)
    dockerfile = f"FROM {base}\nRUN dd if=/dev/zero of=/fill bs=1M count=2048 && sync && sleep 10\n"
    pod = ei.build_pod(
        name="moonhub-image-build-disk",
        build_id=1,
        owner="tester",
        builder_image=ref("moonhub/image-builder", "latest"),
        dockerfile_text=dockerfile,
        packages=("unused==1",),
        push_to=f"{registry}/moonhub-test/disk:build-1",
        plain_http_registries=[registry],
        push_secret="",
        bounds=ei.Bounds("1", "1Gi", "1Gi", 600, 10**9),
    )
    t0 = time.monotonic()
    await core.create_namespaced_pod(namespace, pod)  # type: ignore[arg-type]
    name = pod["metadata"]["name"]

    async def ended() -> tuple[str, str, dict] | None:
        return ei.pod_outcome(
            core.api_client.sanitize_for_serialization(await core.read_namespaced_pod(name, namespace))
        )

    outcome = await wait_for(ended, bool, timeout=420, interval=2, what="the build to be stopped")
    timings["a build past its disk bound: start to stopped"] = time.monotonic() - t0
    state, said, _ = outcome
    assert state == "failed" and "more disk than it may (builds.disk)" in said, said + await describe_pod(
        core, namespace, name
    )
    # who stopped it: the build's own watch (within seconds, its words in the termination
    # message), or the kubelet's eviction (its backstop, every 10 s or more)
    by = "the build's watch" if "MiB of disk" in said else "the kubelet's eviction"
    print(f"stopped by {by}: {said}")
    assert "MiB of disk" in said or "ephemeral" in said.lower() or "emptydir" in said.lower(), said
