"""What one user may hold in the jobs service, so that nobody can fill the cluster's etcd or
the database, or crowd the cluster with runs. Each cap answers a 4xx naming the field and
the limit; the operator sets them (``jobs.limits`` in the platform document)."""

from __future__ import annotations

from dataclasses import dataclass

from moonhub_core.errors import FieldError
from moonhub_core.platform import JobsLimits


class LimitReached(FieldError):
    """A per-user cap of the jobs service (what Kubernetes answers for a full
    ResourceQuota: 403)."""

    status = 403


@dataclass(frozen=True)
class Limits(JobsLimits):
    """The operator's limits (``jobs.limits``, declared with the platform document), and
    what the service fixes itself."""

    #: bytes of a run's log the service reads and returns at most
    log_bytes: int = 2 * 1024 * 1024


def check_count(field: str, what: str, have: int, cap: int) -> None:
    if have >= cap:
        raise LimitReached(field, f"you have {have} {what}; the limit is {cap} (delete some, or ask an admin)")
