"""The choices the "Schedule" dialog offers follow the catalog's entitlements."""

from __future__ import annotations

from jobs_service.options import entitled
from tests.helpers import example_catalog


def test_everyone_gets_one_t4_at_most() -> None:
    got = entitled(example_catalog(), (), admin=False)
    assert [g["name"] for g in got["gpu_types"]] == ["t4"]
    assert got["gpu_types"][0]["counts"] == [1] and got["max_gpus"] == 1
    assert {e["name"] for e in got["environments"]} == {"python", "pytorch", "tensorflow"}
    assert [s["name"] for s in got["sizes"] if s["default"]] == ["small"]


def test_research_group_gets_every_gpu_type() -> None:
    got = entitled(example_catalog(), ("ml-research",), admin=False)
    assert [g["name"] for g in got["gpu_types"]] == ["a100", "v100", "t4"]
    assert max(got["gpu_types"][0]["counts"]) == 8 == got["max_gpus"]
