"""A fresh local cluster for a benchmark run, apart from the developer's and the tests'."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from localcluster import cli
from localcluster.config import REPO, ClusterConfig

STATE = REPO / ".state" / "bench-cluster"


@contextmanager
def bench_cluster() -> Iterator[ClusterConfig]:
    cfg = ClusterConfig(state_dir=STATE, port_offset=2000, pod_ip_octet=30, agent_node="moon-bench-0")
    if STATE.exists():
        cli.down(ClusterConfig.load(STATE))
        shutil.rmtree(STATE)
    cli.up(cfg)
    try:
        yield cfg
    finally:
        cli.down(cfg)
