"""A fresh local cluster for a benchmark run, apart from the developer's and the tests'
(its real node needs the machine's one node slot: stop the others first)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from localcluster import cli
from localcluster.config import REPO, ClusterConfig

STATE = REPO / ".state" / "bench-cluster"


@contextmanager
def fresh(cfg: ClusterConfig) -> Iterator[ClusterConfig]:
    """``cfg``'s cluster started from an empty state folder (an earlier one stopped and
    removed first), stopped at the end."""
    if cfg.state_dir.exists():
        cli.down(ClusterConfig.load(cfg.state_dir))
        shutil.rmtree(cfg.state_dir)
    cli.up(cfg)
    try:
        yield cfg
    finally:
        cli.down(cfg)


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
    with fresh(cfg):
        yield cfg


@contextmanager
def bench_hub(name: str, port: int) -> Iterator[tuple[ClusterConfig, Any]]:
    """A fresh benchmark cluster and a hub on it, made as the tests make theirs (the
    tests' platform document, the example catalog copied), its state in
    ``.state/<name>``, its jobs service on the cluster's node address (``port`` + 90)."""
    from localcluster.hub import dev_password
    from tests.conftest import Hub, platform_doc, start_hub

    state = REPO / ".state" / name
    with bench_cluster() as cfg:
        doc = platform_doc(state, port, cluster=cfg)
        doc["jobs"] |= {"url": f"http://{cfg.node_ip}:{port + 90}"}
        url, config, sup = start_hub(cfg, state, doc, name)
        hub = Hub(
            url=url, password=dev_password(config) or "", config=config, catalog=state / "catalog.yaml", mailbox=[]
        )
        try:
            yield cfg, hub
        finally:
            sup.stop(name)
