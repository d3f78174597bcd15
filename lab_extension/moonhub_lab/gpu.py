"""GPU utilization as the user's server sees it, for GPU-aware reclaim.

Sources: NVML (``nvidia-ml-py``) where an NVIDIA driver is present; the local cluster's
simulated GPUs (the node agent plays the NVIDIA runtime and names a file of utilizations in
``$MOONHUB_SIMULATED_GPU_FILE``); else none. :class:`IdleTracker` turns samples into "idle
since" (every GPU at or below the threshold). Users can not set either environment
variable (spawn options refuse ``env``), so they can not fake a busy GPU.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

SIMULATED_ENV = "MOONHUB_SIMULATED_GPU_FILE"


class GpuSource(Protocol):
    name: str

    def utilization(self) -> list[int]:
        """Percent busy of each GPU this server can see."""
        ...


class NvmlSource:
    """NVML through ``nvidia-ml-py`` (``pynvml``): the GPUs visible to this process."""

    name = "nvml"

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]

    def utilization(self) -> list[int]:
        return [int(self._nvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in self._handles]

    def names(self) -> list[str]:
        return [str(self._nvml.nvmlDeviceGetName(h)) for h in self._handles]


class FileSource:
    """Utilizations read from a JSON list in a file (the local cluster's simulated GPUs,
    and the tests' fake source)."""

    name = "simulated"

    def __init__(self, path: Path) -> None:
        self.path = path

    def utilization(self) -> list[int]:
        try:
            values = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return [int(v) for v in values] if isinstance(values, list) else []


def pick_source() -> GpuSource | None:
    """NVML when a driver answers, else the simulated GPUs when the node provides them."""
    try:
        return NvmlSource()
    except Exception:  # no library, no driver, no device: not a GPU server (as far as NVML knows)
        pass
    path = os.environ.get(SIMULATED_ENV)
    return FileSource(Path(path)) if path else None


@dataclass
class IdleTracker:
    """Since when every GPU has been idle (at or below ``threshold`` percent)."""

    threshold: int = 0
    idle_since: float | None = None
    last: list[int] | None = None

    def observe(self, utilization: list[int], now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.last = list(utilization)
        if utilization and all(u <= self.threshold for u in utilization):
            if self.idle_since is None:
                self.idle_since = now
        else:
            self.idle_since = None

    def idle_seconds(self, now: float | None = None) -> float:
        if self.idle_since is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.idle_since)
