"""The GPU idle tracker on a real GPU: what NVML (the library DCGM reads from) reports idle
and under load, and what the reclaim service's idle tracker concludes. Run on a machine
with an NVIDIA driver, nvidia-ml-py and PyTorch:

    python -m benchmarks.gpu_idle_sampler

Prints utilization figures (percent) for an idle phase, a load phase (a matmul loop in
PyTorch) and a cool-down, and the tracker's idle time at the end of each phase.
"""

from __future__ import annotations

import statistics
import threading
import time

from culling.idleness import IdleTracker


class NvmlSource:
    """NVML through ``nvidia-ml-py`` (``pynvml``): the GPUs visible to this process."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]

    def utilization(self) -> list[int]:
        return [int(self._nvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in self._handles]

    def names(self) -> list[str]:
        return [str(self._nvml.nvmlDeviceGetName(h)) for h in self._handles]


def sample(src: NvmlSource, tracker: IdleTracker, seconds: float, every: float = 0.5) -> list[int]:
    out: list[int] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        util = src.utilization()
        tracker.observe(util)
        out.extend(util)
        time.sleep(every)
    return out


def load(stop: threading.Event) -> None:
    import torch

    a = torch.randn(8192, 8192, device="cuda")
    b = torch.randn(8192, 8192, device="cuda")
    while not stop.is_set():
        for _ in range(20):
            a = (a @ b).clamp_(-1, 1)
        torch.cuda.synchronize()


def figures(name: str, values: list[int]) -> str:
    return (
        f"{name}: median {statistics.median(values):.0f}%  mean {statistics.mean(values):.1f}%  "
        f"min {min(values)}%  max {max(values)}%  (n={len(values)})"
    )


def main() -> None:
    src = NvmlSource()
    tracker = IdleTracker()
    print(f"GPUs (NVML): {src.names()}")
    idle = sample(src, tracker, 10)
    print(figures("idle", idle), f"| tracker idle for {tracker.idle_seconds():.1f}s")
    stop = threading.Event()
    worker = threading.Thread(target=load, args=(stop,), daemon=True)
    worker.start()
    time.sleep(5)  # let the load ramp up (CUDA context, first kernels)
    busy = sample(src, tracker, 12)
    print(figures("under load (matmul loop)", busy), f"| tracker idle for {tracker.idle_seconds():.1f}s")
    stop.set()
    worker.join()
    time.sleep(2)
    after = sample(src, tracker, 8)
    print(figures("after the load", after), f"| tracker idle for {tracker.idle_seconds():.1f}s")


if __name__ == "__main__":
    main()
