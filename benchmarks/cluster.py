"""A fresh local cluster for a benchmark run, apart from the developer's and the tests'
(its real node needs the machine's one node slot: stop the others first)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from localcluster import cli
from localcluster.config import REPO, ClusterConfig

STATE = REPO / ".state" / "bench-cluster"


@contextmanager
def bench_cluster() -> Iterator[ClusterConfig]:
    cfg = ClusterConfig(
        state_dir=STATE,
        port_offset=2000,
        node_name="moon-bench-0",
        node_ip="10.85.0.3",
        pod_cidr="10.92.0.0/24",
        service_cidr="10.98.0.0/16",
        kwok_pod_cidr="10.93.0.0/16",
    )
    if STATE.exists():
        cli.down(ClusterConfig.load(STATE))
        shutil.rmtree(STATE)
    cli.up(cfg)
    try:
        yield cfg
    finally:
        cli.down(cfg)
