"""What the scale fault tests share: the scale tier with MoonHub's hub on it, a bound
workspace claim for each user, and the hub as the other tests' helpers take it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from benchmarks.scale_tier import HubUnderTest, make_claims, moonhub_hub, scale_cluster
from localcluster.config import ClusterConfig
from tests.conftest import Hub

#: the states a run ends in
ENDED = ("succeeded", "failed", "timed_out", "cancelled")


@asynccontextmanager
async def moonhub_on_scale_tier(users: list[str]) -> AsyncIterator[tuple[ClusterConfig, HubUnderTest, Hub]]:
    if os.environ.get("KUBECONFIG"):
        pytest.skip("the scale tier runs its own control plane on this host")
    with scale_cluster(1) as cfg, moonhub_hub(cfg) as under:
        await make_claims(cfg, users)
        assert under.config is not None
        yield (
            cfg,
            under,
            Hub(url=under.url, password=under.password, config=under.config, catalog=under.config, mailbox=[]),
        )
