"""Removed builds' images, deleted from the registry (docs/environment-images.md).

A user's ``DELETE`` of an ended build with a pushed image marks it :data:`REMOVED`: on no
list, usable by nothing. After ``builds.removal_grace`` (time for an admin's promotion to
reach this service's copy of the catalog) a pod in the builds' namespace deletes the image
by its digest, with the push login (``moonhub_core.env_images.removal_pod``), unless the
catalog or another build uses it then. The service's loop calls :func:`sweep`.
"""

from __future__ import annotations

import datetime
import logging

from kubernetes_asyncio import client
from sqlalchemy import select

from moonhub_core import env_images as ei
from moonhub_core import pods

from .context import Context, gone_ok
from .db import EnvImageRow, utc, utcnow

log = logging.getLogger("moonhub.jobs")

#: a removed build whose image is still to be deleted from the registry: on no list, not
#: usable, not the owner's to see (moonhub_core.env_images.STATES are what users see)
REMOVED = "removed"


def removal_pod_name(build_id: int) -> str:
    return f"image-removal-{build_id}"


async def sweep(ctx: Context) -> None:
    """Removed builds' images, once ``builds.removal_grace`` has passed (long enough for an
    admin's promotion to reach this service's copy of the catalog): still used by the
    catalog or another build, the image stays and the row goes; otherwise a pod deletes it
    from the registry by digest, and when that pod ends, what it did goes to the log and the
    row and the pod go. A registry that refuses leaves the image to the operator's clean-up."""
    b = ctx.settings.builds
    try:
        listed = await ctx.core.list_namespaced_pod(b.namespace, label_selector=f"{pods.COMPONENT}={ei.REMOVAL}")
    except client.ApiException as e:
        log.warning("the image removal pods could not be listed (the next pass tries again): %s", e.reason)
        return
    running: set[int] = set()
    with ctx.db() as s:
        for p in listed.items:
            build = int((p.metadata.labels or {}).get(ei.BUILD_ID, "0") or 0)
            outcome = (
                None if p.metadata.deletion_timestamp else ei.removal_outcome(ctx.api.sanitize_for_serialization(p))
            )
            if outcome is None:
                running.add(build)
                continue
            removed, said = outcome
            if removed:
                log.info("image build %d: its image is deleted from the registry", build)
            else:
                log.warning(
                    "image build %d: the registry did not delete its image (left to its clean-up): %s", build, said
                )
            with gone_ok():
                await ctx.core.delete_namespaced_pod(p.metadata.name, b.namespace, grace_period_seconds=0)
            running.add(build)  # (its row goes below, with the pod)
            row = s.get(EnvImageRow, build)
            if row is not None and row.state == REMOVED:
                s.delete(row)
        s.commit()
        due = utcnow() - datetime.timedelta(seconds=b.removal_grace)
        removed_rows = s.scalars(select(EnvImageRow).where(EnvImageRow.state == REMOVED))
        ready = [
            r for r in removed_rows if r.id not in running and (r.finished_at is None or utc(r.finished_at) <= due)
        ]
        if not ready:
            return
        # what keeps an image: read once per pass (the builds not removed, the catalog)
        kept = list(s.scalars(select(EnvImageRow.digest).where(EnvImageRow.state != REMOVED)))
        catalog_images = [e.pinned_image for e in ctx.catalog.get().environments]
        for row in ready:
            why = ei.still_used(row.digest, catalog_images, kept)
            if why is not None:
                log.info("image build %d removed; its image stays in the registry: %s", row.id, why)
                s.delete(row)
                continue
            await _start(ctx, row)
        s.commit()


async def _start(ctx: Context, row: EnvImageRow) -> None:
    b = ctx.settings.builds
    repo = ei.repository(b.repository_prefix, row.owner, row.environment)
    ref = f"{b.push_host}/{repo}@{row.digest}"
    pod = ei.removal_pod(
        name=removal_pod_name(row.id),
        build_id=row.id,
        owner=row.owner,
        builder_image=b.builder_image,
        ref=ref,
        plain_http_registries=list(b.plain_http_registries),
        push_secret=b.push_secret,
    )
    try:
        await ctx.core.create_namespaced_pod(b.namespace, pod)  # type: ignore[arg-type]
    except client.ApiException as e:
        if e.status != 409:
            log.warning(
                "image build %d: deleting %s from the registry could not start (tried again): %s", row.id, ref, e.reason
            )
        return
    log.info("image build %d removed; deleting %s from the registry", row.id, ref)
