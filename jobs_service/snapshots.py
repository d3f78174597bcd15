"""Notebook versions, frozen outside etcd: each version's notebook is a file in the snapshot
store (a folder of the service's own volume), named by the SHA-256 of its JSON, written
once and never changed. The database records which file a version is; a run's pod fetches
its version's file from the service (``launch``) and checks the digest before it runs it.

What is kept is the notebook without its outputs: papermill executes every cell again, so
outputs (tens of MB of plots in real notebooks) would be stored for nothing. Code, markdown,
attachments and metadata are kept as they were sent.

Files are per owner (``<store>/<owner digest>/<sha256>.ipynb.gz``, gzip), so removing one
user's version never touches another's, and each owner's total is capped
(``jobs.limits.snapshot_bytes_per_user``).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, undefer

from moonhub_core import pods

from .context import ENDED, Context, gone_ok
from .db import DefinitionRow, SnapshotRow, TaskSnapshotRow, VersionRow
from .limits import LimitReached

log = logging.getLogger("moonhub.jobs")


def strip_outputs(notebook: dict[str, Any]) -> dict[str, Any]:
    """The notebook as a run needs it: code cells without outputs and execution counts
    (pure; the notebook given is not changed)."""
    cells = []
    for cell in notebook.get("cells", []):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            cell = {**cell, "outputs": [], "execution_count": None}
        cells.append(cell)
    return {**notebook, "cells": cells}


@dataclass(frozen=True)
class Frozen:
    """A notebook ready to store: its canonical JSON and what identifies it."""

    data: bytes
    sha256: str
    cells: int

    @classmethod
    def of(cls, notebook: dict[str, Any]) -> Frozen:
        """Outputs stripped, keys sorted, no spaces: one notebook, one digest (pure)."""
        stripped = strip_outputs(notebook)
        data = json.dumps(stripped, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(data, hashlib.sha256(data).hexdigest(), len(stripped.get("cells", [])))


class SnapshotStore:
    """Content-addressed notebook files under ``root``, one folder per owner."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, owner: str, sha256: str) -> Path:
        folder = hashlib.sha256(owner.encode()).hexdigest()[:20]
        return self.root / folder / f"{sha256}.ipynb.gz"

    def put(self, owner: str, frozen: Frozen) -> None:
        """Write the file once (a second put of the same content changes nothing): written
        beside its place, flushed to disk, made read-only, then renamed into place."""
        final = self.path(owner, frozen.sha256)
        if final.exists():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
                gz.write(frozen.data)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def open(self, owner: str, sha256: str) -> Any:
        """The stored (gzip) file for reading; FileNotFoundError when it is not there."""
        return self.path(owner, sha256).open("rb")

    def read(self, owner: str, sha256: str) -> dict[str, Any]:
        with self.open(owner, sha256) as f:
            data = gzip.decompress(f.read())
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"snapshot {sha256} of {owner} does not match its digest")
        return dict(json.loads(data))

    def remove(self, owner: str, sha256: str) -> None:
        self.path(owner, sha256).unlink(missing_ok=True)


def stored_bytes(s: Session, owner: str) -> int:
    """What ``owner``'s versions take in the store (stripped JSON, before compression)."""
    total = 0
    for table in (SnapshotRow, TaskSnapshotRow):
        q = (
            select(func.coalesce(func.sum(table.size), 0))
            .join(VersionRow, VersionRow.id == table.version_id)
            .join(DefinitionRow, DefinitionRow.id == VersionRow.definition_id)
            .where(DefinitionRow.owner == owner)
        )
        total += int(s.scalar(q) or 0)
    return total


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _check_cap(ctx: Context, s: Session, owner: str, adding: int, field: str) -> None:
    used = stored_bytes(s, owner)
    cap = ctx.settings.limits.snapshot_bytes_per_user
    if used + adding > cap:
        raise LimitReached(
            field,
            f"your jobs' notebook versions take {_mib(used)}; this one ({_mib(adding)} without outputs) "
            f"would pass the limit of {_mib(cap)} (delete old jobs, or ask an admin)",
        )


async def freeze(ctx: Context, s: Session, owner: str, number: int, frozen: Frozen, sent: int) -> VersionRow:
    """Version ``number`` of a job of ``owner``: its file written to the store (checked
    against the owner's cap first), and the rows that say so (the caller adds them)."""
    _check_cap(ctx, s, owner, len(frozen.data), "notebook_content")
    await asyncio.to_thread(ctx.snapshots.put, owner, frozen)
    version = VersionRow(number=number, notebook={})
    version.stored = SnapshotRow(sha256=frozen.sha256, size=len(frozen.data), cells=frozen.cells, sent_size=sent)
    return version


async def freeze_tasks(
    ctx: Context, s: Session, owner: str, number: int, frozen: dict[str, tuple[Frozen, int]]
) -> VersionRow:
    """Version ``number`` of a pipeline: one file per task (``frozen``: task -> notebook
    and the size it was sent at), all within the owner's cap."""
    _check_cap(ctx, s, owner, sum(len(f.data) for f, _ in frozen.values()), "notebook_contents")
    version = VersionRow(number=number, notebook={})
    for task, (f, sent) in frozen.items():
        await asyncio.to_thread(ctx.snapshots.put, owner, f)
        version.tasks.append(
            TaskSnapshotRow(task=task, sha256=f.sha256, size=len(f.data), cells=f.cells, sent_size=sent)
        )
    return version


def task_file(row: DefinitionRow, number: int, task: str) -> TaskSnapshotRow | None:
    """Task ``task``'s notebook in version ``number`` of a pipeline (None: not there)."""
    v = next((v for v in row.versions if v.number == number), None)
    return next((t for t in v.tasks if t.task == task), None) if v is not None else None


def kept(row: DefinitionRow, number: int) -> bool:
    """Version ``number`` of ``row`` is kept (with its notebook, or its tasks' notebooks)."""
    v = next((v for v in row.versions if v.number == number), None)
    return v is not None and (v.stored is not None or bool(v.tasks))


def sha_of(row: DefinitionRow, number: int) -> str | None:
    """The digest of version ``number`` of ``row`` (None: not kept, or not yet moved)."""
    v = next((v for v in row.versions if v.number == number), None)
    return v.stored.sha256 if v is not None and v.stored is not None else None


def cells_of(row: DefinitionRow, number: int) -> int:
    v = next((v for v in row.versions if v.number == number), None)
    return v.stored.cells if v is not None and v.stored is not None else 0


def forget_files(ctx: Context, s: Session, owner: str, digests: Iterable[str]) -> None:
    """Remove the files of ``digests`` that no version of ``owner`` refers to any more
    (after the versions' rows are gone from the session)."""
    s.flush()
    for sha in set(digests):
        still = sum(
            s.scalar(
                select(func.count())
                .select_from(table)
                .join(VersionRow, VersionRow.id == table.version_id)
                .join(DefinitionRow, DefinitionRow.id == VersionRow.definition_id)
                .where(DefinitionRow.owner == owner, table.sha256 == sha)
            )
            or 0
            for table in (SnapshotRow, TaskSnapshotRow)
        )
        if not still:
            ctx.snapshots.remove(owner, sha)


def prune(ctx: Context, s: Session, row: DefinitionRow) -> None:
    """Keep the newest ``versions_per_job`` versions, the current and previous ones (a Job
    its CronJob made just before an edit fetches the previous one) and any a run that has
    not ended uses; the files of the others go when no other version of the owner shares
    them."""
    if len(row.versions) <= ctx.settings.limits.versions_per_job:
        return  # nothing to prune (most jobs): their runs are not read
    busy = {r.version for r in row.runs if r.status not in ENDED} | {row.version, row.version - 1}
    newest = sorted(row.versions, key=lambda v: v.number, reverse=True)
    gone: list[str] = []
    for v in newest[ctx.settings.limits.versions_per_job :]:
        if v.number not in busy:
            gone += _digests(v)
            row.versions.remove(v)
    forget_files(ctx, s, row.owner, gone)


def _digests(v: VersionRow) -> list[str]:
    return ([v.stored.sha256] if v.stored is not None else []) + [t.sha256 for t in v.tasks]


def files_of(row: DefinitionRow) -> list[str]:
    return [sha for v in row.versions for sha in _digests(v)]


async def move_into_store(ctx: Context) -> int:
    """Versions frozen by MoonHub before the snapshot store (their notebook in the
    database, a ConfigMap in the cluster) are moved into the store; returns how many.
    Done at start; the ConfigMaps go once no run that may mount them is left
    (:func:`drop_old_configmaps`)."""
    moved = 0
    with ctx.db() as s:
        q = (
            select(VersionRow)
            .options(undefer(VersionRow.notebook))
            .where(~select(SnapshotRow.version_id).where(SnapshotRow.version_id == VersionRow.id).exists())
            .where(~select(TaskSnapshotRow.version_id).where(TaskSnapshotRow.version_id == VersionRow.id).exists())
        )
        for v in s.scalars(q):
            frozen = Frozen.of(v.notebook or {"cells": []})
            await asyncio.to_thread(ctx.snapshots.put, v.definition.owner, frozen)
            sent = len(json.dumps(v.notebook))
            v.stored = SnapshotRow(sha256=frozen.sha256, size=len(frozen.data), cells=frozen.cells, sent_size=sent)
            v.notebook = {}
            moved += 1
        s.commit()
    if moved:
        log.info("moved %d notebook version(s) from the database into the snapshot store", moved)
    return moved


async def drop_old_configmaps(ctx: Context) -> list[str]:
    """Delete the snapshot ConfigMaps older versions of MoonHub made, except those a run
    that has not ended may still mount."""
    selector = f"{pods.COMPONENT}={pods.NOTEBOOK_JOB}"
    maps = (await ctx.core.list_namespaced_config_map(ctx.settings.namespace, label_selector=selector)).items
    if not maps:
        return []
    with ctx.db() as s:
        busy = {
            (row.cronjob, r.version)
            for row in s.scalars(select(DefinitionRow))
            for r in row.runs
            if r.status not in ENDED
        }
    dropped = []
    for cm in maps:
        name = cm.metadata.name
        cron, _, number = name.rpartition("-v")
        if number.isdigit() and (cron, int(number)) in busy:
            continue
        with gone_ok():
            await ctx.core.delete_namespaced_config_map(name, ctx.settings.namespace)
        dropped.append(name)
    return dropped
