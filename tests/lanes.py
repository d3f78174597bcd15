"""Two lanes for the whole suite (``pytest -n 2 --dist loadgroup``, as ``./moonhub test`` runs it).

Most of the suite waits: for pods, for runs, for a culler's clock. It is run by two pytest-xdist
workers, and every test is given a lane (an xdist group, so a lane stays on one worker):

- ``node``: tests that use a hub run on the host (``hub``, the culling, OIDC and origins hubs)
  or the node's shared state (its simulated GPUs, its NetworkPolicy enforcer, which one test
  stops). They run one after another, as before.
- ``cluster``: tests that need the test cluster and nothing of the above (a namespace of their
  own, the Helm-installed release). They run beside the ``node`` lane on the same cluster.
- ``free``: tests that need no test cluster (unit, middle, database, images, the scale tier with
  control planes of its own).

A test says its lane with ``@pytest.mark.lane("node")`` where its fixtures do not show it (a
fixture chosen at run time, a test that changes the node for everyone).

The one test cluster is started by the first worker that needs it (under a file lock) and
reused by the other; the controller stops it when every worker is done. Run without xdist
(``./moonhub test tests/hub``), the fixture starts and stops it as before.
"""

from __future__ import annotations

import fcntl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

#: lanes in the order the workers take them (the longest first)
LANES = ("node", "cluster", "free")
#: fixtures that start a hub on the host against the test cluster
HOST_HUBS = frozenset({"hub", "cull_hub", "oidc_hub", "origins_hub"})
#: the fixture of the test cluster
CLUSTER = "local_cluster"
#: what a worker is told of the run (the cluster it may reuse was started by this run)
RUN_KEY = "moonhub_run"


def lane_of(item: pytest.Item) -> str:
    """The lane of one test: its ``lane`` mark, else what its fixtures need."""
    mark = item.get_closest_marker("lane")
    if mark is not None:
        lane = str(mark.args[0])
        if lane not in LANES:
            raise pytest.UsageError(f"{item.nodeid}: lane {lane!r} is not one of {LANES}")
        return lane
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & HOST_HUBS:
        return "node"
    if CLUSTER in fixtures:
        return "cluster"
    return "free"


def assign(items: list[pytest.Item]) -> None:
    """Put each test in its lane's xdist group, lanes in :data:`LANES` order (stable within)."""
    lanes = {id(item): lane_of(item) for item in items}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(lanes[id(item)]))
    items.sort(key=lambda item: LANES.index(lanes[id(item)]))


def run_id(config: pytest.Config) -> str:
    """This run's id: the controller's (handed to its workers), or a process's own."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and RUN_KEY in workerinput:
        return str(workerinput[RUN_KEY])
    if not hasattr(config, "_moonhub_run"):
        config._moonhub_run = uuid.uuid4().hex  # type: ignore[attr-defined]
    return str(config._moonhub_run)  # type: ignore[attr-defined]


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold ``lock`` (a file) against the other workers of this machine."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def started_by(state: Path) -> str:
    """The run that started the cluster in ``state`` ("" when none says so)."""
    try:
        return (state / "started-by-run").read_text().strip()
    except OSError:
        return ""


def mark_started(state: Path, run: str) -> None:
    (state / "started-by-run").write_text(run + "\n")
