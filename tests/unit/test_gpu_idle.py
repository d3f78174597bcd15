"""GPU idleness from samples (the fake NVML source stands in for a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

from moonhub_lab.gpu import FileSource, IdleTracker, pick_source


def test_idle_only_while_every_gpu_is_idle() -> None:
    t = IdleTracker()
    t.observe([0, 0], now=100)
    t.observe([0, 0], now=160)
    assert t.idle_since == 100 and t.idle_seconds(now=400) == 300
    t.observe([0, 37], now=200)  # one busy GPU: the server is busy
    assert t.idle_since is None and t.idle_seconds(now=400) == 0
    t.observe([0, 0], now=260)
    assert t.idle_since == 260


def test_threshold_and_no_gpus() -> None:
    t = IdleTracker(threshold=2)
    t.observe([1, 2], now=10)
    assert t.idle_since == 10
    t.observe([], now=20)  # nothing visible: not "idle GPUs"
    assert t.idle_since is None


def test_fake_source_reads_the_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "gpus.json"
    f.write_text(json.dumps([0, 98]))
    assert FileSource(f).utilization() == [0, 98]
    f.write_text("garbage")
    assert FileSource(f).utilization() == []
    monkeypatch.setenv("MOONHUB_SIMULATED_GPU_FILE", str(f))
    src = pick_source()  # no NVIDIA driver on this machine: the simulated source
    assert src is not None and src.name == "simulated"
