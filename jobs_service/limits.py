"""What one user may hold in the jobs service, so that nobody can fill the cluster's etcd or
the database, or crowd the cluster with runs. Each cap answers a 4xx naming the field and
the limit; the operator sets them (``jobs.limits`` in the platform document)."""

from __future__ import annotations

from dataclasses import dataclass

from spawner_ext.errors import FieldError


class LimitReached(FieldError):
    """A per-user cap of the jobs service (what Kubernetes answers for a full
    ResourceQuota: 403)."""

    status = 403


class TooMany(FieldError):
    """Too many requests of one kind open at once (retry later)."""

    status = 429


@dataclass(frozen=True)
class Limits:
    #: job definitions per user
    jobs_per_user: int = 50
    #: notebook versions kept per job (the oldest are pruned unless a run still uses them)
    versions_per_job: int = 10
    #: runs of one user's jobs queued or running at once that "run now" may add to
    active_runs_per_user: int = 10
    #: live-log streams one user may hold open at once
    log_streams_per_user: int = 4
    #: bytes of a run's log the service reads and returns (the newest part)
    log_bytes: int = 2 * 1024 * 1024


def check_count(field: str, what: str, have: int, cap: int) -> None:
    if have >= cap:
        raise LimitReached(field, f"you have {have} {what}; the limit is {cap} (delete some, or ask an admin)")
