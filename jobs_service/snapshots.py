"""Notebook versions: each is kept in the database and, while a run may still mount it, as
an immutable ConfigMap in the cluster (the snapshot a run executes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from moonhub_core import pods

from . import manifests
from .context import ENDED, Context, gone_ok, names
from .db import DefinitionRow


async def create(ctx: Context, n: manifests.Names, version: int, notebook: dict[str, Any]) -> None:
    cm = manifests.snapshot_configmap(n, version, notebook, ctx.namespace)
    await ctx.core.create_namespaced_config_map(ctx.namespace, cm)  # type: ignore[arg-type]


async def delete(ctx: Context, name: str) -> None:
    with gone_ok():
        await ctx.core.delete_namespaced_config_map(name, ctx.namespace)


async def listed(ctx: Context, job: str | None = None) -> list[Any]:
    """The snapshot ConfigMaps of every job (or of the definition named ``job``)."""
    selector = f"{pods.COMPONENT}={pods.NOTEBOOK_JOB}" + (f",{pods.JOB}={job}" if job else "")
    return list((await ctx.core.list_namespaced_config_map(ctx.namespace, label_selector=selector)).items)


async def prune(ctx: Context, s: Session, row: DefinitionRow, maps: list[Any] | None = None) -> None:
    """Keep the newest ``versions_per_job`` versions in the database (and any a run that
    has not ended uses), and in the cluster only the snapshots a run may still mount:
    the current and previous versions, and those of runs that have not ended. ``maps``:
    the snapshot ConfigMaps when the caller has listed them already."""
    busy = {r.version for r in row.runs if r.status not in ENDED}
    newest = sorted(row.versions, key=lambda v: v.number, reverse=True)
    for v in newest[ctx.limits.versions_per_job :]:
        if v.number not in busy:
            row.versions.remove(v)
    n = names(row)
    keep = busy | {row.version, row.version - 1}
    for cm in await listed(ctx, row.name) if maps is None else maps:
        number = (cm.metadata.labels or {}).get(pods.VERSION, "")
        if not cm.metadata.name.startswith(f"{n.cronjob}-v") or not number.isdigit():
            continue
        if int(number) not in keep:
            await delete(ctx, cm.metadata.name)
