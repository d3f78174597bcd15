"""The local cluster's supervisor: what a killed process left behind is found by its mark."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from localcluster.supervisor import MARK_ENV, Supervisor, marked

T = TypeVar("T")


def _soon(read: Callable[[], T], done: Callable[[T], bool], seconds: float = 10) -> T:
    """``read()`` until ``done`` says so (a busy machine starts and reaps processes late)."""
    deadline = time.monotonic() + seconds
    while not done(value := read()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def test_processes_left_by_a_killed_parent_are_found_by_their_mark_and_ended(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path / "run", tmp_path / "logs", tmp_path)
    # the "hub" starts a child in a session of its own (as JupyterHub starts its proxy and
    # services), then dies without stopping it
    script = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    pid = sup.start("hub", [sys.executable, "-c", script])
    child = int(_soon(lambda: "".join(sup.log_path("hub").read_text().split()[-1:]), str.isdigit))
    assert set(marked(sup.mark("hub"))) == {pid, child}
    subprocess.run(["kill", "-9", str(pid)], check=True)
    assert _soon(lambda: sup.pid("hub"), lambda p: p is None) is None
    assert marked(sup.mark("hub")) == [child], "the child outlives its parent"
    assert marked(sup.mark("other")) == []
    assert sup.end_left_behind("hub") == 1
    assert marked(sup.mark("hub")) == []
    # what starts again carries the same mark, and a running one is never ended
    again = sup.start("hub", [sys.executable, "-c", "import time; time.sleep(60)"])
    assert sup.end_left_behind("hub") == 0 and marked(sup.mark("hub")) == [again]
    sup.stop("hub", grace=5)
    assert marked(sup.mark("hub")) == []
    assert MARK_ENV == "MOONHUB_SUPERVISED"
