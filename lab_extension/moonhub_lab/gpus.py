"""The server's own GPUs, for the status bar: how busy each is and how much of its memory is
in use, live.

On a GPU node the NVIDIA container runtime gives the container ``nvidia-smi`` (the
``utility`` capability), which reads NVML as NVIDIA's DCGM exporter does; on the local
cluster's simulated GPUs, the device plugin mounts a read-only file of their utilizations
(``$MOONHUB_SIMULATED_GPU_FILE``) and there is no GPU memory to report. A server without
GPUs reports none. These figures are the user's own, shown only to them: the platform's
decisions (GPU reclaim, the run figures) read the exporter, which the user can not write.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: what nvidia-smi is asked (CSV, no units): index, utilization %, memory used and total (MiB)
QUERY = "index,utilization.gpu,memory.used,memory.total"
#: seconds nvidia-smi may take
TIMEOUT = 5


@dataclass(frozen=True)
class Gpu:
    index: int
    #: percent busy over the driver's last sample period
    utilization: float
    #: bytes of its memory in use and in all (None where not known: simulated GPUs)
    memory_used: int | None = None
    memory_total: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def parse_smi(text: str) -> list[Gpu]:
    """nvidia-smi's ``--format=csv,noheader,nounits`` answer to :data:`QUERY` (pure); lines it
    can not read are skipped."""
    out: list[Gpu] = []
    for line in text.splitlines():
        cells = line.split(",")
        if len(cells) != 4:
            continue
        index, util, used, total = (_number(c) for c in cells)
        if index is None or util is None:
            continue
        mib = 2**20
        out.append(
            Gpu(
                int(index),
                util,
                int(used * mib) if used is not None else None,
                int(total * mib) if total is not None else None,
            )
        )
    return out


def parse_simulated(text: str) -> list[Gpu]:
    """The simulated GPUs' file: a JSON list of utilizations in percent (pure)."""
    try:
        values = json.loads(text)
    except ValueError:
        return []
    if not isinstance(values, list):
        return []
    return [Gpu(i, float(v)) for i, v in enumerate(values) if isinstance(v, int | float) and not isinstance(v, bool)]


def read() -> list[Gpu]:
    """This server's GPUs now (none: a server without GPUs, or one whose GPUs can not be
    read)."""
    visible = os.environ.get("NVIDIA_VISIBLE_DEVICES", "")
    if not visible or visible in ("void", "none"):
        return []
    simulated = os.environ.get("MOONHUB_SIMULATED_GPU_FILE")
    if simulated:
        try:
            return parse_simulated(Path(simulated).read_text())
        except OSError:
            return []
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        done = subprocess.run(
            [smi, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_smi(done.stdout) if done.returncode == 0 else []
