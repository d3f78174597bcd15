"""Sampling a process with py-spy, and reading what its samples say.

py-spy's raw output has one line per distinct stack: its frames (``function (file:line)``,
outermost first, joined by ``;``) and how many samples showed it. py-spy samples only a
thread that runs, so the counts split the CPU the process used.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: the packages of this repository (their frames name the work, not the library under them)
OUR_CODE = ("jobs_service/", "moonhub_core/", "spawner_ext/", "hubclient/", "hub_config/")


@contextmanager
def py_spy(pid: int, out: Path) -> Iterator[None]:
    """py-spy samples process ``pid`` (50 a second, collapsed stacks into ``out``) while
    the block runs."""
    spy = Path(sys.executable).parent / "py-spy"
    proc = subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "50", "--nonblocking", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def stacks(path: Path) -> list[tuple[list[str], int]]:
    """Pure (reads one file): each sampled stack's frames and count; none when the file is
    missing (no py-spy) or holds nothing."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        frames, _, count = line.rpartition(" ")
        if count.isdigit():
            out.append((frames.split(";"), int(count)))
    return out


def top_frames(path: Path, within: str, n: int = 12) -> tuple[float, list[tuple[str, float]]]:
    """Pure (reads one file): the share of the sampled CPU whose stack holds ``within`` (a
    substring of a frame), and, of that time, the ``n`` functions that held the CPU
    themselves most often (the innermost frame of this repository's code, or of any code
    when the stack holds none of it), each with its share of the ``within`` time."""
    total = inside = 0
    own: dict[str, int] = {}
    for frames, count in stacks(path):
        total += count
        if not any(within in f for f in frames):
            continue
        inside += count
        ours = [f for f in frames if any(m in f for m in OUR_CODE)]
        leaf = (ours or frames)[-1]
        own[leaf] = own.get(leaf, 0) + count
    if not inside:
        return 0.0, []
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:n]
    return inside / total, [(f, c / inside) for f, c in ranked]
