"""Fail-fast takes narrow inputs (a way to read the pod, the environment asked for, a way to
explain a shortage), so it is tested without a spawner."""

from __future__ import annotations

from typing import Any

from moonhub_core.capacity import GpuCapacity
from spawner_ext import failfast
from tests.helpers import example_catalog


def _pulling(reason: str) -> dict[str, Any]:
    waiting = {"reason": reason, "message": "not found"}
    return {"status": {"containerStatuses": [{"image": "reg/x:1", "state": {"waiting": waiting}}]}}


async def test_an_image_that_can_not_be_pulled_ends_the_wait() -> None:
    seen: list[dict[str, Any] | None] = [None, _pulling("ErrImagePull")]
    asked: list[str] = []

    async def shortage(says: str) -> str:
        asked.append(says)
        return "never"

    message = await failfast.first_failure(lambda: seen.pop(0) if len(seen) > 1 else seen[0], lambda: "torch", shortage)
    assert message == "the image reg/x:1 of environment 'torch' can not be pulled (ErrImagePull: not found)"
    assert asked == [], "no shortage is explained for an image problem"


def test_a_shortage_is_explained_with_the_free_gpus() -> None:
    a100 = example_catalog().gpu_type("a100")
    got = failfast.explain("0/3 nodes are available", a100, 4, GpuCapacity(total=8, free=2, largest_free=2))
    assert got.startswith("no NVIDIA A100 80GB node has 4 free GPUs right now: 2 of 8 are free, at most 2 on one node")
    assert got.endswith("(scheduler: 0/3 nodes are available)")
    cpu = failfast.explain("0/3 nodes are available", None, 0, None)
    assert cpu == "no node can take this server right now (scheduler: 0/3 nodes are available)"
