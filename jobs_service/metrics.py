"""The jobs service's own Prometheus metrics about runs (docs/observability.md), served at
``/services/jobs/metrics`` beside the GPU-seconds and the notifications' counters.

- ``moonhub_job_runs_ended_total{status, kind}``: runs (``kind="run"``) and pipeline tasks
  (``kind="task"``) whose Job ended, by how (succeeded, failed, timed_out), counted as the
  service sees them end (a pipeline's own run is counted through its tasks);
- ``moonhub_job_runs_queued`` and ``moonhub_job_runs_queued_oldest_seconds``: runs waiting
  for Kueue to admit them (a GPU budget, a team's share) and how long the oldest has waited,
  read from the database at scrape time (so right after a restart).

Labels never name a user or a job: the counts stay small however many there are (the
per-user figures are the GPU-seconds' and, for resources, the kubelet's).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from .db import RunRow, utcnow

ENDED = Counter("moonhub_job_runs_ended", "Runs and pipeline tasks that ended, by status", ["status", "kind"])
#: statuses a run's Job ends in
END_STATUSES = ("succeeded", "failed", "timed_out")


def ended(status: str, kind: str) -> None:
    """Count one run (or task) that ended now with ``status``."""
    if status in END_STATUSES:
        ENDED.labels(status=status, kind=kind).inc()


class QueuedRuns(Collector):
    """The runs Kueue has not admitted yet, from the database of the service in this process."""

    def __init__(self) -> None:
        self.db: sessionmaker[Session] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.db is None:
            return
        with self.db() as s:
            count, oldest = s.execute(
                select(func.count(RunRow.id), func.min(RunRow.created)).where(RunRow.status == "queued")
            ).one()
        waited = 0.0
        if oldest is not None:
            now = utcnow()
            if oldest.tzinfo is None:  # (SQLite gives naive times: they are UTC)
                oldest = oldest.replace(tzinfo=datetime.UTC)
            waited = max(0.0, (now - oldest).total_seconds())
        yield GaugeMetricFamily(
            "moonhub_job_runs_queued", "Runs waiting to start (for Kueue to admit them)", value=count
        )
        yield GaugeMetricFamily(
            "moonhub_job_runs_queued_oldest_seconds", "How long the oldest waiting run has waited", value=waited
        )


QUEUED = QueuedRuns()
REGISTRY.register(QUEUED)
