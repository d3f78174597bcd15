import time
from pathlib import Path

from localcluster.supervisor import Supervisor, _alive, _descendants


def test_stop_ends_what_the_process_left_in_sessions_of_its_own(tmp_path: Path) -> None:
    """A hub starts its proxy and services in sessions of their own: stopping the hub must not
    leave them running (they hold ports the next run needs)."""
    sup = Supervisor(tmp_path / "run", tmp_path / "logs", tmp_path)
    pid = sup.start("parent", ["sh", "-c", "setsid sleep 60 & trap '' TERM; sleep 60 & wait"])
    deadline = time.monotonic() + 5
    while len(_descendants(pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    children = _descendants(pid)
    assert len(children) == 2
    assert sup.stop("parent", grace=1)
    time.sleep(0.2)
    assert not _alive(pid) and not any(_alive(c) for c in children)
