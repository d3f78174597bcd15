"""Two lanes for the whole suite (``pytest -n 2``, as ``./moonhub test`` runs it).

Most of the suite waits: for pods, for runs, for a culler's clock. It is run by two pytest-xdist
workers, and every test is given a lane; a lane stays on one worker (:class:`LaneScheduling`):

- ``node``: tests that use a hub run on the host (``hub``, the culling, OIDC and origins hubs)
  or the node's shared state (its simulated GPUs, its NetworkPolicy enforcer, which one test
  stops). They run one after another, as before.
- ``cluster``: tests that need the test cluster and nothing of the above (a namespace of their
  own, the Helm-installed release). They run beside the ``node`` lane on the same cluster.
- ``free``: tests that need no test cluster (unit, middle, database, images, the scale tier with
  control planes of its own).

A test says its lane with ``@pytest.mark.lane("node")`` where its fixtures do not show it (a
fixture chosen at run time, a test that changes the node for everyone).

Why not xdist's ``--dist loadgroup``: it groups by a suffix it writes into each test's
``_nodeid``, which pytest 9.2's nodes no longer read (their id is ``_id``), so every test
went to whichever worker was free, and both workers started the same hub. xdist's own way to
schedule otherwise is a scheduler of one's own (``pytest_xdist_make_scheduler``): the workers
write each test's lane to a file as they collect, and the controller's scheduler reads it.

The one test cluster is started by the first worker that needs it (under a file lock) and
reused by the other; the controller stops it when every worker is done. Run without xdist
(``./moonhub test tests/hub``), the fixture starts and stops it as before.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from localcluster.config import REPO

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


def assign(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A worker's collection: lanes in :data:`LANES` order (stable within), and each test's
    lane written where the controller's scheduler reads it (every worker writes the same)."""
    lanes = {id(item): lane_of(item) for item in items}
    items.sort(key=lambda item: LANES.index(lanes[id(item)]))
    path = lane_file(run_id(config))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({item.nodeid: lanes[id(item)] for item in items}))
    os.replace(tmp, path)


def lane_file(run: str) -> Path:
    return REPO / ".state" / "test-lanes" / f"{run}.json"


def scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scheduling by scope, a lane being the scope: each lane one work unit, given to
    one worker; units in collection order (``--no-loadscope-reorder``: the lanes' order)."""
    from xdist.scheduler import LoadScopeScheduling

    class LaneScheduling(LoadScopeScheduling):
        _lanes: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._lanes is None:
                self._lanes = json.loads(lane_file(run_id(config)).read_text())
            return self._lanes.get(nodeid, "free")

    config.option.loadscopereorder = False
    return LaneScheduling(config, log)


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
