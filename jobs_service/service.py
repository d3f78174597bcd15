"""The jobs service's operations, one entry point for the API: each is implemented in the
module of its concept (``definitions``, ``runs``, ``sync``, ``reconcile``, ``retention``,
``audit``), all working on one :class:`~jobs_service.context.Context`.

Every operation takes the caller (:class:`Caller`) and enforces ownership: users see and
change only their own definitions; job admins see all.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kubernetes_asyncio import client
from prometheus_client import Gauge
from sqlalchemy.orm import Session, sessionmaker

from hubclient.users import HubUsers
from moonhub_core.catalog import CatalogStore
from moonhub_core.errors import Forbidden

from . import (
    audit,
    definitions,
    env_images,
    gpu_queues,
    gpu_usage,
    launch,
    metrics,
    outputs,
    pipelines,
    reclaim,
    reconcile,
    retention,
    runs,
    secrets,
    shares,
    snapshots,
    sync,
    usage,
    usage_report,
    workspaces,
)
from .context import Caller, Context
from .settings import Settings

__all__ = ["Caller", "JobsService"]

log = logging.getLogger("moonhub.jobs")
SINCE_PASS = Gauge("moonhub_jobs_seconds_since_tracking_pass", "Seconds since run tracking last completed a pass")

_Op = TypeVar("_Op", bound=Callable[..., Awaitable[Any]])


def _writes(op: _Op) -> _Op:
    """An operation that changes the database: one at a time (``Context.writes``)."""

    @functools.wraps(op)
    async def one_writer(self: JobsService, *args: Any, **kwargs: Any) -> Any:
        async with self.ctx.writes:
            return await op(self, *args, **kwargs)

    return one_writer  # type: ignore[return-value]


class JobsService:
    def __init__(
        self,
        db: sessionmaker[Session],
        catalog: CatalogStore,
        api: client.ApiClient,
        settings: Settings,
        *,
        hub: HubUsers | None = None,
    ) -> None:
        self.settings = settings
        self.ctx = Context(
            db,
            catalog,
            api,
            settings,
            hub,
            snapshots=snapshots.SnapshotStore(settings.snapshot_dir),
            outputs=outputs.OutputStore(settings.snapshot_dir / "runs"),
        )
        with db() as s:
            self.ctx.launch_key = launch.service_key(s)

        self.usage = usage.Sampler()
        #: when the last tracking pass ended (monotonic) and how often one is due (``health``)
        self.last_pass = time.monotonic()
        self.interval = float(settings.sync_interval)
        SINCE_PASS.set_function(lambda: time.monotonic() - self.last_pass)
        metrics.QUEUED.db = db

    # ---- secrets -----------------------------------------------------------------------
    async def secrets(self, caller: Caller) -> list[dict[str, Any]]:
        return await secrets.listed(self.ctx, caller)

    @_writes
    async def put_secret(self, caller: Caller, name: str, body: Any, team: str = "") -> tuple[dict[str, Any], bool]:
        return await secrets.put(self.ctx, caller, name, body, team)

    @_writes
    async def delete_secret(self, caller: Caller, name: str, team: str = "") -> None:
        await secrets.delete(self.ctx, caller, name, team)

    # ---- shared servers ------------------------------------------------------------------
    async def shares(self, caller: Caller, owner: str | None = None) -> dict[str, Any]:
        return await shares.listing(self.ctx, caller, owner)

    @_writes
    async def share(self, caller: Caller, body: Any, owner: str | None = None) -> dict[str, Any]:
        return await shares.grant(self.ctx, caller, body, owner)

    @_writes
    async def unshare(self, caller: Caller, kind: str, name: str, owner: str | None = None) -> None:
        await shares.revoke(self.ctx, caller, kind, name, owner)

    @_writes
    async def share_output(self, caller: Caller, job_id: int, run_id: int, body: Any) -> dict[str, Any]:
        return await shares.share_output(self.ctx, caller, job_id, run_id, body)

    def output_shares(self, caller: Caller, job_id: int, run_id: int) -> list[dict[str, Any]]:
        return shares.output_shares(self.ctx, caller, job_id, run_id)

    @_writes
    async def unshare_output(self, caller: Caller, job_id: int, run_id: int, team: str) -> None:
        shares.unshare_output(self.ctx, caller, job_id, run_id, team)

    async def workspace_reclaim(self, caller: Caller) -> dict[str, Any]:
        if not caller.admin:
            raise Forbidden("workspace-reclaim", "what reclaim would do is for job admins")
        return await reclaim.dry_run(self.ctx)

    def gpu_usage(self, caller: Caller, days: int) -> dict[str, Any]:
        return gpu_usage.report(self.ctx, caller, days)

    def usage_report(
        self, caller: Caller, days: int, user: str | None = None, team: str | None = None, rows: bool = True
    ) -> dict[str, Any]:
        return usage_report.report(self.ctx, caller, days, user, team, rows)

    @property
    def catalog(self) -> CatalogStore:
        return self.ctx.catalog

    # ---- images built from environments --------------------------------------------------
    async def build_image(self, caller: Caller, body: Any) -> dict[str, Any]:  # takes the writer lock itself
        return await env_images.create(self.ctx, caller, body)

    def images(self, caller: Caller, everyone: bool = False) -> list[dict[str, Any]]:
        return env_images.listing(self.ctx, caller, everyone)

    def image(self, caller: Caller, build_id: int) -> dict[str, Any]:
        return env_images.get(self.ctx, caller, build_id)

    def usable_images(self, owner: str) -> list[dict[str, Any]]:
        return env_images.usable(self.ctx, owner)

    @_writes
    async def remove_image(self, caller: Caller, build_id: int) -> dict[str, Any]:
        return await env_images.remove(self.ctx, caller, build_id)

    async def image_log(self, caller: Caller, build_id: int) -> dict[str, Any]:
        return await env_images.log_of(self.ctx, caller, build_id)

    # ---- definitions -------------------------------------------------------------------
    @_writes
    async def create(self, caller: Caller, body: Any) -> dict[str, Any]:
        return await definitions.create(self.ctx, caller, body)

    @_writes
    async def update(self, caller: Caller, job_id: int, body: Any) -> dict[str, Any]:
        return await definitions.update(self.ctx, caller, job_id, body)

    def versions(self, caller: Caller, job_id: int) -> list[dict[str, Any]]:
        return definitions.versions(self.ctx, caller, job_id)

    def list_jobs(self, caller: Caller) -> list[dict[str, Any]]:
        return definitions.list_jobs(self.ctx, caller)

    def get(self, caller: Caller, job_id: int) -> dict[str, Any]:
        return definitions.get(self.ctx, caller, job_id)

    @_writes
    async def delete(self, caller: Caller, job_id: int, why: str = "") -> None:
        await definitions.delete(self.ctx, caller, job_id, why)

    async def ensure_workspace(self, owner: str) -> None:
        await workspaces.ensure(self.ctx, owner)

    def audit(self, caller: Caller, owner: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        return audit.entries(self.ctx, caller, owner, limit)

    # ---- runs --------------------------------------------------------------------------
    @_writes
    async def run_now(self, caller: Caller, job_id: int) -> dict[str, Any]:
        return await runs.run_now(self.ctx, caller, job_id)

    @_writes
    async def rerun(self, caller: Caller, job_id: int, run_id: int, body: Any) -> dict[str, Any]:
        return await runs.rerun(self.ctx, caller, job_id, run_id, body)

    @_writes
    async def backfill(self, caller: Caller, job_id: int, body: Any) -> dict[str, Any]:
        return await runs.backfill(self.ctx, caller, job_id, body)

    @_writes
    async def repair(self, caller: Caller, job_id: int, run_id: int) -> dict[str, Any]:
        return await pipelines.repair(self.ctx, caller, job_id, run_id)

    async def output(self, caller: Caller, job_id: int, run_id: int, task: str | None = None) -> bytes:
        return await runs.output(self.ctx, caller, job_id, run_id, task)

    def run_files(self, caller: Caller, job_id: int, run_id: int, task: str | None = None) -> list[dict[str, Any]]:
        return runs.files(self.ctx, caller, job_id, run_id, task)

    async def run_file(
        self, caller: Caller, job_id: int, run_id: int, path: str, task: str | None = None
    ) -> tuple[str, bytes]:
        return await runs.file(self.ctx, caller, job_id, run_id, path, task)

    def runs(self, caller: Caller, job_id: int) -> list[dict[str, Any]]:
        return runs.listed(self.ctx, caller, job_id)

    @_writes
    async def cancel(self, caller: Caller, job_id: int, run_id: int) -> dict[str, Any]:
        return await runs.cancel(self.ctx, caller, job_id, run_id)

    async def log(self, caller: Caller, job_id: int, run_id: int, task: str | None = None) -> dict[str, Any] | None:
        return await runs.log(self.ctx, caller, job_id, run_id, task)

    async def resources(self, caller: Caller, job_id: int, run_id: int, task: str | None = None) -> dict[str, Any]:
        return await runs.resources(self.ctx, caller, job_id, run_id, task)

    # ---- following the cluster ---------------------------------------------------------
    async def sync_runs(self) -> None:
        async with self.ctx.writes:
            notices = await sync.sync_runs(self.ctx)
        await sync.tell_all(self.ctx, notices)  # outside the lock: mail and webhooks may be slow

    def health(self) -> dict[str, Any]:
        """Whether run tracking keeps up: ``behind`` when no pass ended for ten intervals (at
        least 30 s), and how many notifications wait to be sent."""
        since = time.monotonic() - self.last_pass
        behind = since > max(30.0, 10 * self.interval)
        return {
            "status": "behind" if behind else "ok",
            "seconds_since_tracking_pass": round(since, 1),
            "notifications_pending": self.ctx.outbox.pending(),
        }

    async def reconcile(self) -> dict[str, list[str]]:  # takes the writer lock chunk by chunk
        return await reconcile.reconcile(self.ctx)

    def trim_history(self) -> int:
        return retention.trim_history(self.ctx)

    async def sync_forever(self, interval: float = 2.0, reconcile_every: float = 300.0) -> None:
        """Follow runs every ``interval`` seconds; reconcile (entitlements and departed
        users included) every ``reconcile_every`` seconds."""
        last = time.monotonic()
        sampled = trimmed = shared = 0.0
        self.interval = interval
        while True:
            reconciled = False
            try:
                await self.sync_runs()
                self.last_pass = time.monotonic()
                if time.monotonic() - trimmed >= retention.EVERY:
                    trimmed = time.monotonic()
                    async with self.ctx.writes:
                        self.trim_history()
                if time.monotonic() - last >= reconcile_every:
                    last, reconciled = time.monotonic(), True
                    t0 = time.monotonic()
                    await self.reconcile()
                    log.info("reconcile pass: %.1f s", time.monotonic() - t0)
            except Exception:
                log.exception("syncing runs failed")
            try:  # the GPU queues: their own failures (Kueue away, say) do not stop the runs'
                if reconciled or self.ctx.catalog.get() is not self.ctx.queues_from:
                    await gpu_queues.follow_catalog(self.ctx)  # an edit; at reconcile, nodes may have changed
                if time.monotonic() - sampled >= usage.EVERY:
                    sampled = time.monotonic()
                    async with self.ctx.writes:
                        await self.usage.sample(self.ctx)
            except Exception:
                log.exception("following the GPU queues failed")
            try:  # image builds: follow, check, start in turn (a cluster away: the next pass)
                async with self.ctx.writes:
                    await env_images.advance(self.ctx)
            except Exception:
                log.exception("following image builds failed")
            try:  # shares whose time is up: the hub revokes them (a hub away: the next pass)
                if time.monotonic() - shared >= shares.EVERY:
                    shared = time.monotonic()
                    async with self.ctx.writes:
                        ended = await shares.expire(self.ctx)
                    if ended:
                        log.info("%d shared server(s) expired and revoked", ended)
            except Exception:
                log.exception("expiring shares failed")
            await asyncio.sleep(interval)
