"""Images built from users' environments (issue 35, item 3; docs/environment-images.md).

A user asks for an image of one of their environments (``POST /api/v1/images``: its name, its
packages frozen, and the catalog environment to build on, one they may use). The request
waits in turn (``queued``): one build of each user at a time, ``builds.at_once`` of all users
together, at most ``builds.queued_per_user`` of a user waiting or running. Its turn come, a
build pod runs in ``builds.namespace`` (``moonhub_core.env_images.build_pod``: rootless
BuildKit, then skopeo) bounded by ``builds.cpu``, ``memory``, ``disk`` and ``timeout``.
Pushed, it is checked (``checking``) as an image an admin offers is: its config must name a
non-root user, and it must start as a notebook server (a probe pod). Only then is it
``ready``: its owner may spawn a server and schedule jobs with it; others only once an admin
promotes it into the catalog (the console's "Add environment" with its image).

The build's output is read from the pod while it runs and kept here when it ends; the pod is
then removed. Nothing is half-made: a build that fails or is cancelled leaves no image
offered, and says why.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from sqlalchemy import func, select

from moonhub_core import choices as ch
from moonhub_core import env_images as ei
from moonhub_core import image_check, image_probe, unread
from moonhub_core.errors import (
    Conflict,
    FieldError,
    NotEntitled,
    NotFound,
    TooLarge,
    Unavailable,
    UnknownChoice,
)

from .context import Caller, Context, gone_ok
from .db import EnvImageRow, utcnow
from .image_removals import REMOVED, sweep

log = logging.getLogger("moonhub.jobs")

#: bytes of a build's output kept with it once its pod is gone (the end of it, where the
#: reason of a failure is)
LOG_BYTES = 256 * 1024
#: lines of a running build's output read at most, each container's (its end)
LOG_LINES = 5000
#: checks of built images in flight (build id -> task); one each. And when each began
#: (a check that can not tell, a first pull outlasting the probe, is tried again until
#: ``builds.timeout``)
_checking: dict[int, asyncio.Task[None]] = {}
_check_began: dict[int, float] = {}


def _enabled(ctx: Context) -> None:
    if not ctx.settings.builds.enabled:
        raise NotFound("images", "building images from environments is not enabled on this platform (builds.enabled)")


def view(row: EnvImageRow) -> dict[str, Any]:
    def when(t: datetime.datetime | None) -> str | None:
        return t.isoformat() if t else None

    return {
        "id": row.id,
        "owner": row.owner,
        "environment": row.environment,
        "base": row.base,
        "base_image": row.base_image,
        "packages": list(row.packages or []),
        "state": row.state,
        "message": row.message,
        "image": pinned(row) if row.state == "ready" else "",
        "size_bytes": row.size_bytes,
        "added_bytes": row.added_bytes,
        "created_at": when(row.created_at),
        "started_at": when(row.started_at),
        "finished_at": when(row.finished_at),
    }


def pinned(row: EnvImageRow) -> str:
    """The image as pods run it: its name (the tag kept for people) and its digest."""
    return f"{row.image}@{row.digest}"


def _visible(row: EnvImageRow | None, caller: Caller) -> bool:
    return row is not None and row.state != REMOVED and (row.owner == caller.name or caller.admin)


def _readable(ctx: Context, image: str) -> str:
    """``image`` as the service reaches its registry: where build pods reach it, when the
    platform names that differently (the local cluster: the node's address)."""
    b = ctx.settings.builds
    if b.builder_registry and image.startswith(f"{b.registry}/"):
        return f"{b.builder_registry}/{image[len(b.registry) + 1 :]}"
    return image


def _plain_http(ctx: Context) -> list[str]:
    """Registries the service asks over plain HTTP: those the platform names so (loopback
    ones always are: ``image_check.plain_http``); every other over HTTPS."""
    return list(ctx.settings.builds.plain_http_registries)


def pod_name(build_id: int) -> str:
    return f"moonhub-image-build-{build_id}"


async def create(ctx: Context, caller: Caller, body: Any) -> dict[str, Any]:
    """Queue a build; 400 naming the field of a bad request, 403 for a base the caller may not
    use, 409/413 past the caller's limits. Nothing is written on a refusal. The base's digest
    is asked of the registry before the service's writer lock is taken (other writes do not
    wait on a registry); the limits are counted and the row written under it."""
    _enabled(ctx)
    req = ei.check_request(body)
    catalog = ctx.catalog.get()
    base = next((e for e in catalog.environments if e.name == req.base), None)
    if base is None or not base.enabled:
        raise FieldError("base", f"no environment {req.base!r} in the catalog")
    allowed = ch.allowed(catalog, caller.groups, caller.hub_admin)
    if base.name not in {e.name for e in allowed.environments}:
        raise FieldError("base", f"you may not use the environment {req.base!r}, so not build on it")
    base_image = base.pinned_image
    if "@" not in base_image:  # a catalog without a recorded digest: the build is FROM one anyway
        try:
            digest = await image_check.digest_of(_readable(ctx, base_image), _plain_http(ctx))
        except FieldError as e:
            raise Unavailable("base", f"the image of {base.name!r} can not be read now: {e.message}") from None
        base_image = f"{base_image}@{digest}"
    async with ctx.writes:
        return _queue(ctx, caller, req, base.name, base_image)


def _queue(ctx: Context, caller: Caller, req: ei.Request, base: str, base_image: str) -> dict[str, Any]:
    b = ctx.settings.builds
    with ctx.db() as s:
        waiting = s.scalar(
            select(func.count()).where(
                EnvImageRow.owner == caller.name, EnvImageRow.state.in_(("queued", "building", "checking"))
            )
        )
        if (waiting or 0) >= b.queued_per_user:
            raise Conflict("images", f"you have {waiting} builds waiting or running; at most {b.queued_per_user}")
        kept = s.scalar(select(func.count()).where(EnvImageRow.owner == caller.name, EnvImageRow.state == "ready"))
        if (kept or 0) >= b.images_per_user:
            raise TooLarge("images", f"you keep {kept} images, the most one user may; remove one first")
        row = EnvImageRow(
            owner=caller.name,
            environment=req.environment,
            base=base,
            base_image=base_image,
            packages=list(req.packages),
            state="queued",
            message="waiting for its turn",
            log="",
        )
        s.add(row)
        s.commit()
        log.info("image build %d queued: %s's %s on %s", row.id, row.owner, row.environment, row.base)
        return view(row)


def listing(ctx: Context, caller: Caller, everyone: bool = False) -> list[dict[str, Any]]:
    """The caller's builds, newest first (an admin's ``everyone``: all users')."""
    _enabled(ctx)
    with ctx.db() as s:
        q = select(EnvImageRow).where(EnvImageRow.state != REMOVED).order_by(EnvImageRow.id.desc())
        if not (everyone and caller.admin):
            q = q.where(EnvImageRow.owner == caller.name)
        return [view(r) for r in s.scalars(q)]


def get(ctx: Context, caller: Caller, build_id: int) -> dict[str, Any]:
    _enabled(ctx)
    with ctx.db() as s:
        row = s.get(EnvImageRow, build_id)
        if row is None or not _visible(row, caller):
            raise NotFound("id", f"no image build {build_id}")
        return view(row)


def usable(ctx: Context, owner: str) -> list[dict[str, Any]]:
    """``owner``'s images that passed their checks (what their spawn form and jobs offer)."""
    if not ctx.settings.builds.enabled:
        return []
    with ctx.db() as s:
        q = select(EnvImageRow).where(EnvImageRow.owner == owner, EnvImageRow.state == "ready")
        return [view(r) for r in s.scalars(q.order_by(EnvImageRow.id.desc()))]


@dataclass(frozen=True)
class OwnImage:
    """An image a job runs: the catalog environment it was built on, and it by digest."""

    base: str
    image: str


def for_job(ctx: Context, build_id: int | None, runner: str, environment: str | None) -> OwnImage | None:
    """The image ``build_id`` for a job that ``runner`` runs (its owner; a team's job runs as
    the team, whose images none are): NotEntitled naming ``own_image`` when it is not one of
    the runner's ready images (someone else's, removed, failed), UnknownChoice when the job
    names another environment than the one it was built on."""
    if build_id is None:
        return None
    with ctx.db() as s:
        row = s.get(EnvImageRow, build_id)
        if row is None or row.owner != runner or row.state != "ready" or not ctx.settings.builds.enabled:
            raise NotEntitled("own_image", f"image {build_id} is not one of {runner}'s images ready to run")
        if environment not in (None, "", row.base):
            raise UnknownChoice(
                "own_image", f"image {build_id} is built on {row.base!r}: the job's environment must be that, or none"
            )
        return OwnImage(row.base, pinned(row))


async def remove(ctx: Context, caller: Caller, build_id: int) -> dict[str, Any]:
    """Cancel a build that has not ended (its pod removed), or remove one that has: it is
    off every list at once. A pushed image is deleted from the registry after
    ``builds.removal_grace`` (by a pod with the push login: :mod:`.image_removals`),
    unless by then the catalog or another build uses it; the registry's own clean-up then
    frees its layers."""
    _enabled(ctx)
    with ctx.db() as s:
        row = s.get(EnvImageRow, build_id)
        if row is None or not _visible(row, caller):
            raise NotFound("id", f"no image build {build_id}")
        if row.state in ei.ENDED:
            if row.digest:  # kept, hidden, until its image is deleted from the registry
                row.state, row.message, row.finished_at = REMOVED, f"removed by {caller.name}", utcnow()
            else:
                s.delete(row)
            s.commit()
            return {"id": build_id, "state": "removed"}
        if row.state == "building":
            row.log = await _read_log(ctx, build_id) or row.log
            with gone_ok():
                await ctx.core.delete_namespaced_pod(pod_name(build_id), ctx.settings.builds.namespace)
        task = _checking.pop(build_id, None)
        if task is not None:
            task.cancel()
        row.state, row.message, row.finished_at = "cancelled", f"cancelled by {caller.name}", utcnow()
        s.commit()
        return view(row)


async def log_of(ctx: Context, caller: Caller, build_id: int) -> dict[str, Any]:
    """The build's output: live from its pod while it runs, else as kept."""
    _enabled(ctx)
    with ctx.db() as s:
        row = s.get(EnvImageRow, build_id)
        if row is None or not _visible(row, caller):
            raise NotFound("id", f"no image build {build_id}")
        state, kept = row.state, row.log
    if state == "building":
        live = await _read_log(ctx, build_id)
        if live is not None:
            return {"id": build_id, "state": state, "log": live}
    return {"id": build_id, "state": state, "log": kept}


async def _read_log(ctx: Context, build_id: int) -> str | None:
    """Both containers' output (the build's, then the push's), the end of it; None without
    a pod."""
    parts = []
    for container in ("build", "push"):
        call = ctx.core.read_namespaced_pod_log(
            pod_name(build_id),
            ctx.settings.builds.namespace,
            container=container,
            limit_bytes=4 * LOG_BYTES,  # (a page of it is kept: the end, where a failure's reason is)
            tail_lines=LOG_LINES,
            _preload_content=False,
        )
        try:
            data = await unread.body(call)
        except client.ApiException as e:
            if e.status == 404 and container == "build":
                return None
            if e.status in (400, 404):  # not started yet
                continue
            raise
        parts.append(data.decode("utf-8", "replace"))
    text = "".join(parts)
    return text[-LOG_BYTES:]


async def advance(ctx: Context) -> None:
    """One pass: follow running builds to their end, start checks, start queued builds in
    their turn. Called from the service's loop (the writer lock held)."""
    if not ctx.settings.builds.enabled:
        return
    await sweep(ctx)
    with ctx.db() as s:
        building = list(s.scalars(select(EnvImageRow).where(EnvImageRow.state == "building")))
        for row in building:
            await _follow(ctx, row)
        s.commit()
        for row in s.scalars(select(EnvImageRow).where(EnvImageRow.state == "checking")):
            if row.id not in _checking or _checking[row.id].done():
                _checking[row.id] = asyncio.create_task(_check(ctx, row.id))
        busy = s.scalar(select(func.count()).where(EnvImageRow.state.in_(("building", "checking")))) or 0
        owners_busy = set(s.scalars(select(EnvImageRow.owner).where(EnvImageRow.state.in_(("building", "checking")))))
        for row in s.scalars(select(EnvImageRow).where(EnvImageRow.state == "queued").order_by(EnvImageRow.id)):
            if busy >= ctx.settings.builds.at_once:
                break
            if row.owner in owners_busy:
                continue
            await _start(ctx, row)
            s.commit()
            if row.state == "building":
                busy += 1
                owners_busy.add(row.owner)


async def _start(ctx: Context, row: EnvImageRow) -> None:
    b = ctx.settings.builds
    repo = ei.repository(b.repository_prefix, row.owner, row.environment)
    push_to = f"{b.push_host}/{repo}:{ei.tag(row.id)}"
    # the base as build pods reach its registry (the local cluster: the node's address)
    base = _readable(ctx, row.base_image)
    index = ctx.settings.package_index
    host = index.split("/")[2].split(":")[0] if index.startswith("http://") else ""
    pod = ei.build_pod(
        name=pod_name(row.id),
        build_id=row.id,
        owner=row.owner,
        builder_image=b.builder_image,
        dockerfile_text=ei.dockerfile(base, row.owner, row.environment, index or "https://pypi.org/simple", host),
        packages=tuple(row.packages or ()),
        push_to=push_to,
        plain_http_registries=list(b.plain_http_registries),
        push_secret=b.push_secret,
        bounds=ei.Bounds(b.cpu, b.memory, b.disk, b.timeout, b.max_image_bytes),
    )
    try:
        await ctx.core.create_namespaced_pod(b.namespace, pod)  # type: ignore[arg-type]
    except client.ApiException as e:
        if e.status == 409:  # made by an earlier pass that did not record it: follow that one
            pass
        else:
            log.warning("image build %d: its pod could not be made: %s %s", row.id, e.status, e.reason)
            row.message = f"waiting: the build pod could not be made ({e.status} {e.reason}); trying again"
            return
    row.state, row.started_at = "building", utcnow()
    row.image = f"{b.registry}/{repo}:{ei.tag(row.id)}"
    row.message = "building"
    log.info("image build %d started: %s", row.id, push_to)


async def _follow(ctx: Context, row: EnvImageRow) -> None:
    ns = ctx.settings.builds.namespace
    try:
        pod = ctx.api.sanitize_for_serialization(await ctx.core.read_namespaced_pod(pod_name(row.id), ns))
    except client.ApiException as e:
        if e.status != 404:
            raise
        row.state, row.finished_at = "failed", utcnow()
        row.message = "the build pod is gone (removed outside MoonHub, or its node was lost)"
        return
    outcome = ei.pod_outcome(pod)
    if outcome is None:
        return
    state, said, told = outcome
    row.log = (await _read_log(ctx, row.id) or "")[-LOG_BYTES:]
    if state == "pushed":
        row.state, row.digest = "checking", str(told["digest"])
        row.size_bytes = int(told.get("bytes") or 0)
        row.message = "built and pushed; checking it starts as a notebook server"
    else:
        row.state, row.message, row.finished_at = "failed", said, utcnow()
    log.info("image build %d: %s %s", row.id, row.state, said)
    with gone_ok():
        await ctx.core.delete_namespaced_pod(pod_name(row.id), ns, grace_period_seconds=0)


async def _check(ctx: Context, build_id: int) -> None:
    """The checks every catalog image passes, on the pushed image: its config, then a start."""
    b = ctx.settings.builds
    with ctx.db() as s:
        row = s.get(EnvImageRow, build_id)
        if row is None or row.state != "checking":
            return
        image, digest, base_image = row.image, row.digest, row.base_image
    run_as = f"{image}@{digest}"
    state, message, added = "ready", "", 0
    try:
        manifest, config = await image_check.manifest_and_config(_readable(ctx, run_as), _plain_http(ctx))
        problems = ei.config_problems(config)
        if problems:
            raise FieldError("image", "; ".join(problems))
        try:
            base_manifest, _ = await image_check.manifest_and_config(_readable(ctx, base_image), _plain_http(ctx))
            added = ei.added_bytes(manifest, base_manifest)
        except FieldError:
            added = 0  # the base's registry may not be the service's to read; the size stays
        said = await image_probe.starts_as_server(ctx.core, b.namespace, run_as)
        message = f"ready: starts as a notebook server ({said.strip()[:200]})"
    except Unavailable as e:
        if time.monotonic() - _check_began.setdefault(build_id, time.monotonic()) < b.timeout:
            log.info("image build %d: its check could not tell yet: %s", build_id, e.message)
            return  # the next pass tries again
        state, message = "failed", f"the image could not be checked within builds.timeout: {e.message}"
    except FieldError as e:
        state, message = "failed", f"the image failed its checks: {e.message}"
    except Exception as e:  # a check that breaks must not leave it checking forever
        log.exception("image build %d: its check failed", build_id)
        state, message = "failed", f"the image could not be checked: {e}"
    _check_began.pop(build_id, None)
    async with ctx.writes:
        with ctx.db() as s:
            row = s.get(EnvImageRow, build_id)
            if row is None or row.state != "checking":
                return
            row.state, row.message, row.finished_at = state, message, utcnow()
            row.added_bytes = added
            s.commit()
    log.info("image build %d: %s: %s", build_id, state, message)
