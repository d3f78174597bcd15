"""The hub's shared view of GPU nodes: read at most every ttl seconds for forms, and read
now when a refusal is explained (a stale view said "8 of 8 are free" of GPUs another pod
had just taken)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from moonhub_core.gpuview import GpuView


class FakeCore:
    """The two reads the view makes, counted; what they answer can change between reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.pods: list[dict[str, Any]] = []
        self.api_client = SimpleNamespace(sanitize_for_serialization=lambda o: o)

    async def list_node(self, **_: Any) -> Any:
        self.reads += 1
        await asyncio.sleep(0.01)  # an API call: others run meanwhile
        return SimpleNamespace(items=[{"metadata": {"name": "gpu-0"}}])

    async def list_pod_for_all_namespaces(self, **_: Any) -> Any:
        return SimpleNamespace(items=list(self.pods))


def test_forms_share_a_read_and_refusals_read_now() -> None:
    async def go() -> None:
        core = FakeCore()
        view = GpuView(core, ttl=60)  # type: ignore[arg-type]
        assert (await view.read())[1] == []
        core.pods = [{"metadata": {"name": "hog"}, "spec": {"nodeName": "gpu-0", "containers": []}}]
        assert (await view.read())[1] == [] and core.reads == 1, "a form within ttl: the shared read"
        _, pods = await view.read(fresh=True)
        assert [p["metadata"]["name"] for p in pods] == ["hog"] and core.reads == 2, "a refusal: read now"
        # refusals at once share the read that started after they asked
        await asyncio.gather(view.read(fresh=True), view.read(fresh=True))
        assert core.reads == 3

    asyncio.run(go())
