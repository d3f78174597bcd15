"""GPU idleness from utilization samples, and the samples from DCGM exporter's format."""

from __future__ import annotations

from culling.gpu_metrics import parse
from culling.idleness import IdleTracker


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
    t.observe([], now=20)  # nothing reported: no evidence of idleness
    assert t.idle_since is None


# the exporter's lines, as long as it writes them
EXPORTER = """# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100",Hostname="n1",container="notebook",namespace="moonhub-users",pod="jupyter-ada"} 0
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-b",device="nvidia1",modelName="NVIDIA A100",Hostname="n1",container="notebook",namespace="moonhub-users",pod="jupyter-ada"} 37
DCGM_FI_DEV_GPU_UTIL{gpu="2",UUID="GPU-c",device="nvidia2",modelName="NVIDIA A100",Hostname="n1",container="",namespace="",pod=""} 0
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a",namespace="moonhub-users",pod="jupyter-ada"} 1024
DCGM_FI_DEV_GPU_UTIL{gpu="3",namespace="moonhub-users",pod="jupyter-bo",instance="10.0.0.4:9400",job="dcgm"} 99 1733100000000
"""  # noqa: E501


def test_exporter_lines_become_per_pod_utilization() -> None:
    assert parse(EXPORTER) == {("moonhub-users", "jupyter-ada"): [0.0, 37.0], ("moonhub-users", "jupyter-bo"): [99.0]}


def test_garbage_is_skipped_not_fatal() -> None:
    junk = "\n".join(
        [
            'DCGM_FI_DEV_GPU_UTIL{pod="x",namespace="n"} not-a-number',
            'DCGM_FI_DEV_GPU_UTIL{pod="x",namespace="n"} 250',
            'DCGM_FI_DEV_GPU_UTIL{pod="x",namespace="n"} NaN',
            'DCGM_FI_DEV_GPU_UTIL{pod="x,namespace="n"} 5',
            "DCGM_FI_DEV_GPU_UTIL 5",
            "\x00\x01 {}}",
            'DCGM_FI_DEV_GPU_UTIL{pod="y",namespace="n"} 3',
        ]
    )
    assert parse(junk) == {("n", "y"): [3.0]}
