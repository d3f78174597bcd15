"""The lab's GPU figures (lab_extension/moonhub_lab/gpus.py): nvidia-smi's CSV and the local
cluster's simulated GPUs' file, read without trusting either to be well formed."""

from __future__ import annotations

from pathlib import Path

import pytest
from moonhub_lab import gpus


def test_nvidia_smis_answer_gives_each_gpus_utilization_and_memory() -> None:
    text = "0, 97, 12288, 81559\n1, 3, 0, 81559\n"
    got = gpus.parse_smi(text)
    assert got == [gpus.Gpu(0, 97.0, 12288 * 2**20, 81559 * 2**20), gpus.Gpu(1, 3.0, 0, 81559 * 2**20)]
    assert got[0].as_dict() == {
        "index": 0,
        "utilization": 97.0,
        "memory_used": 12884901888,
        "memory_total": 81559 * 2**20,
    }


def test_what_nvidia_smi_can_not_say_is_left_out() -> None:
    text = "0, [N/A], 100, 200\n1, 50, [Not Supported], [Not Supported]\ngarbage\n\n"
    assert gpus.parse_smi(text) == [gpus.Gpu(1, 50.0, None, None)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[0, 97]", [gpus.Gpu(0, 0.0), gpus.Gpu(1, 97.0)]),
        ("{}", []),
        ("not json", []),
        ('[true, "x", 5]', [gpus.Gpu(2, 5.0)]),
    ],
)
def test_the_simulated_gpus_file(text: str, expected: list[gpus.Gpu]) -> None:
    assert gpus.parse_simulated(text) == expected


def test_a_server_without_gpus_reports_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NVIDIA_VISIBLE_DEVICES", raising=False)
    assert gpus.read() == []
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "void")
    assert gpus.read() == []
    sim = tmp_path / "simulated-gpus.json"
    sim.write_text("[42]")
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "gpu-0")
    monkeypatch.setenv("MOONHUB_SIMULATED_GPU_FILE", str(sim))
    assert gpus.read() == [gpus.Gpu(0, 42.0)]
