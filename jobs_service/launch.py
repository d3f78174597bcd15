"""What a run's pod fetches from the service as it starts: its notebook version and its
parameters (templates resolved for the time the run stands for).

A pod has no hub token and no Kubernetes credentials. What it may fetch is named by its
CronJob's template: the job (its CronJob's name) and the version, and a key that signs
exactly that pair (HMAC-SHA256 with the service's own secret, made at first start and kept
in its database). The key opens that one version of that one job and the parameters of that
job's runs; it is no use for anything else. The pod checks the notebook's SHA-256 (also in
its template) before it runs it.

Routes (beside the API, not under it: no JupyterHub login):

- ``GET <prefix>launch/<cronjob>/<version>/notebook``: the version's stored file (gzip);
- ``GET <prefix>launch/<cronjob>/<version>/runs/<job name>``: the run's parameters, resolved
  once and kept (a retried pod gets the same ones), and the time it stands for.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import logging
import secrets
from pathlib import Path
from typing import IO, Any

from kubernetes_asyncio import client
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tornado import web

from moonhub_core import numbers, pods
from moonhub_core.errors import FieldError
from moonhub_core.jsonhttp import read_json

from . import bodies, runcontext
from .context import Context
from .db import DefinitionRow, RunContextRow, RunRow, ServiceKeyRow, TaskRunRow, utc, utcnow
from .manifests import SCHEDULED, TASK, Launch, Names
from .validation import check_parameters

log = logging.getLogger("moonhub.jobs")

HEADER = "X-MoonHub-Launch-Key"
#: Kubernetes' record of the tick a CronJob's Job was made for (1.28 and later)
CRONJOB_SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"
CHUNK = 1024 * 1024


def service_key(s: Session) -> bytes:
    """The service's signing key, made once."""
    row = s.get(ServiceKeyRow, "launch")
    if row is None:
        row = ServiceKeyRow(name="launch", value=secrets.token_hex(32))
        s.add(row)
        try:
            s.commit()
        except IntegrityError:  # another replica made it first
            s.rollback()
            row = s.get(ServiceKeyRow, "launch")
            assert row is not None
    return bytes.fromhex(row.value)


def sign(key: bytes, cronjob: str, version: int, task: str = "") -> str:
    message = f"{cronjob}\0{version}" + (f"\0{task}" if task else "")
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def for_version(ctx: Context, cronjob: str, version: int, sha256: str, task: str = "") -> Launch:
    """What the template of ``cronjob``'s version ``version`` (of its task ``task``, in a
    pipeline) says to its pods."""
    url = f"{ctx.settings.launch_url.rstrip('/')}/{cronjob}/{version}" + (f"/tasks/{task}" if task else "")
    return Launch(url, sign(ctx.launch_key, cronjob, version, task), sha256)


def scheduled_time(job: client.V1Job) -> datetime.datetime:
    """The time a run stands for: Kubernetes' tick for a CronJob's Job, ours for the Jobs
    MoonHub makes, else when the Job was made."""
    notes = job.metadata.annotations or {}
    for key in (CRONJOB_SCHEDULED, SCHEDULED):
        if notes.get(key):
            try:
                return utc(datetime.datetime.fromisoformat(notes[key].replace("Z", "+00:00")))
            except ValueError:
                log.warning("job %s: unreadable %s %r", job.metadata.name, key, notes[key])
    return utc(job.metadata.creation_timestamp)


def last_success(s: Session, definition_id: int, before: str) -> datetime.datetime | None:
    """The time the newest succeeded run of the definition (not ``before``) stood for."""
    q = (
        select(RunRow, RunContextRow.scheduled_for)
        .outerjoin(RunContextRow, RunContextRow.job_name == RunRow.job_name)
        .where(RunRow.definition_id == definition_id, RunRow.status == "succeeded", RunRow.job_name != before)
        .order_by(RunRow.id.desc())
        .limit(1)
    )
    found = s.execute(q).first()
    if found is None:
        return None
    run, at = found
    t = at or run.started or run.created
    return utc(t) if t else None


class LaunchHandler(web.RequestHandler):
    """A run's pod asking for what it runs; answers JSON errors and never more than the key opens."""

    @property
    def ctx(self) -> Context:
        return self.settings["jobs"].ctx

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish({"status": status_code, "message": self._reason})

    def definition(self, s: Session, cronjob: str, version: str, task: str | None) -> DefinitionRow:
        given = self.request.headers.get(HEADER, "")
        number = int(version) if numbers.is_whole(version) else -1
        if not given or not hmac.compare_digest(given, sign(self.ctx.launch_key, cronjob, number, task or "")):
            raise web.HTTPError(403, reason="the launch key does not open this job's version")
        row = s.scalar(select(DefinitionRow).where(DefinitionRow.cronjob == cronjob))
        if row is None:
            raise web.HTTPError(404, reason=f"no job {cronjob} (deleted?)")
        return row


class NotebookHandler(LaunchHandler):
    async def get(self, cronjob: str, version: str, task: str | None) -> None:
        with self.ctx.db() as s:
            row = self.definition(s, cronjob, version, task)
            v = next((v for v in row.versions if v.number == int(version)), None)
            found = (v.stored if not task else next((t for t in v.tasks if t.task == task), None)) if v else None
            if found is None:
                what = f"version {version}" + (f" of task {task}" if task else "")
                raise web.HTTPError(404, reason=f"{what} of job {row.name} is no longer kept")
            owner, sha = row.owner, found.sha256
        try:
            f = self.ctx.snapshots.open(owner, sha)
        except FileNotFoundError:
            log.error("job %s: the snapshot file of version %s (%s) is missing", cronjob, version, sha)
            raise web.HTTPError(404, reason=f"the notebook of version {version} is missing from the store") from None
        self.set_header("Content-Type", "application/gzip")
        self.set_header("X-MoonHub-SHA256", sha)
        with f:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish()


class RunParametersHandler(LaunchHandler):
    async def get(self, cronjob: str, version: str, task: str | None, job_name: str) -> None:
        ctx = self.ctx
        with ctx.db() as s:
            row = self.definition(s, cronjob, version, task)
            defn_id, name, owner, spec = row.id, row.name, row.owner, dict(row.spec)
        try:
            job = await ctx.batch.read_namespaced_job(job_name, ctx.settings.namespace)
        except client.ApiException as e:
            if e.status == 404:
                raise web.HTTPError(404, reason=f"no run {job_name}") from None
            raise web.HTTPError(503, reason=f"Kubernetes did not answer ({e.reason}); try again") from None
        labels = job.metadata.labels or {}
        mine = Names(owner, name, stored=cronjob).labels()
        if any(labels.get(k) != v for k, v in mine.items()) or labels.get(TASK) != task:
            raise web.HTTPError(403, reason=f"run {job_name} is not a run of this job")
        async with ctx.writes:  # the run's parameters are fixed at its first ask
            with ctx.db() as s:
                found = s.get(RunContextRow, job_name)
                if found is None or found.parameters is None:
                    found = found or RunContextRow(job_name=job_name, definition_id=defn_id)
                    found.scheduled_for = found.scheduled_for or scheduled_time(job)
                    facts = runcontext.RunFacts(
                        job=name,
                        owner=owner,
                        run=job_name,
                        trigger=labels.get(pods.TRIGGER) or "schedule",
                        scheduled=utc(found.scheduled_for),
                        timezone=spec.get("timezone") or "UTC",
                        last_success=last_success(s, defn_id, job_name),
                    )
                    given = found.given if found.given is not None else spec.get("parameters") or {}
                    found.parameters = runcontext.resolve(given, facts)
                    s.merge(found)
                    s.commit()
                at = utc(found.scheduled_for) if found.scheduled_for else None
                self.finish({"run": job_name, "parameters": found.parameters, "scheduled_time": at and at.isoformat()})


class BodyHandler(LaunchHandler):
    """A run's pod sending something: the key is checked before any of the body is read (a
    wrong one is answered at once; the server reads no more than :data:`bodies.SMALL_BODY`
    of it), then the body goes to ``self._sink`` as it arrives, within the run's cap and its
    owner's share of the bodies in flight. Past the cap it is read to its end and dropped,
    then refused with 413."""

    async def cap(self) -> int:
        raise NotImplementedError

    def check_run(self, s: Session, row: DefinitionRow, job_name: str) -> None:
        """404 unless ``job_name`` is a run of ``row``'s (checked again where it is used); 403
        once it ended more than :data:`SEND_AFTER_END` ago: a launch key sends only for runs
        that are going (their pods send as they end), not for old ones."""
        ended = s.scalar(select(RunRow.finished).where(RunRow.job_name == job_name))
        if ended is None:
            ended = s.scalar(select(TaskRunRow.finished).where(TaskRunRow.job_name == job_name))
        if ended is not None and utcnow() - utc(ended) > SEND_AFTER_END:
            raise web.HTTPError(403, reason=f"run {job_name} ended at {utc(ended).isoformat()}; nothing more is kept")

    def open_sink(self) -> IO[bytes]:
        return bodies.Spool(self._cap).file

    async def prepare(self) -> None:
        self._sink: IO[bytes] | None = None
        self._size = self._held = 0
        self._refused: web.HTTPError | None = None
        cronjob, version, task, job_name = self.path_args[:4]
        with self.ctx.db() as s:
            row = self.definition(s, cronjob, version, task)
            self.check_run(s, row, job_name)
            self._owner = row.owner
        self._cap = await self.cap()
        bodies.allow(self.request, 2 * self.ctx.settings.limits.run_output_bytes)
        length = self.request.headers.get("Content-Length", "")
        declared = int(length) if numbers.is_whole(length) else 0
        if declared > self._cap:
            self._refused = self._too_large()
        elif self._take(declared):
            self._sink = self.open_sink()

    def _too_large(self) -> web.HTTPError:
        return web.HTTPError(413, reason=self.too_large_reason())

    def too_large_reason(self) -> str:
        raise NotImplementedError

    def _take(self, n: int) -> bool:
        try:
            self.in_flight.take(self._owner, n)
        except bodies.TooMuch as e:
            self._refused = web.HTTPError(e.status, reason=e.message)
            return False
        self._held += n
        return True

    @property
    def in_flight(self) -> bodies.InFlight:
        if "in_flight" not in self.settings:  # an app that set none (a test's): the platform's limits
            limits = self.ctx.settings.limits
            self.settings["in_flight"] = bodies.InFlight(
                limits.body_bytes_in_flight_per_user, limits.body_bytes_in_flight
            )
        return self.settings["in_flight"]

    def data_received(self, chunk: bytes) -> None:
        if self._sink is None:
            return
        self._size += len(chunk)
        if self._size > self._cap:
            self._refused = self._too_large()
            self._drop()
            return
        more = self._size - self._held
        if more > 0 and not self._take(more):
            self._drop()
            return
        self._sink.write(chunk)

    def _drop(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None
            self.dropped()
        if self._held:
            self.in_flight.give_back(self._owner, self._held)
            self._held = 0

    def dropped(self) -> None:
        """What to do when the sink is given up (its file removed, say)."""

    def on_finish(self) -> None:
        self._drop()

    def on_connection_close(self) -> None:
        self._drop()
        super().on_connection_close()

    def received(self) -> IO[bytes]:
        """The body's sink, rewound (the refusal if there is one)."""
        if self._refused is not None:
            raise self._refused
        if self._sink is None:  # no body at all
            self._sink = self.open_sink()
        self._sink.flush()
        self._sink.seek(0)
        return self._sink


#: how long after a run ended its pod may still send (a retried upload, a slow last write)
SEND_AFTER_END = datetime.timedelta(minutes=15)


@web.stream_request_body
class OutputHandler(BodyHandler):
    """A run's pod sending what it made: ``.../runs/<run>/output`` (the executed notebook,
    gzip) or ``.../runs/<run>/files/<path>`` (a file of its run folder). What one run keeps
    is bounded (``jobs.limits.run_output_bytes``); past that the request is refused. The
    body is written to a file in the run's folder as it arrives, never held in memory."""

    def check_run(self, s: Session, row: DefinitionRow, job_name: str) -> None:
        found = s.get(RunContextRow, job_name)
        if found is None or found.definition_id != row.id:
            raise web.HTTPError(404, reason=f"no run {job_name} of this job asked for its parameters")
        super().check_run(s, row, job_name)

    async def cap(self) -> int:
        """What the run may still keep: within its own limit and its owner's, all runs together."""
        job_name, limits, store = self.path_args[3], self.ctx.settings.limits, self.ctx.outputs
        with self.ctx.db() as s:
            owners = s.scalars(
                select(RunContextRow.job_name)
                .join(DefinitionRow, DefinitionRow.id == RunContextRow.definition_id)
                .where(DefinitionRow.owner == self._owner)
            ).all()

        def left() -> tuple[int, int]:
            return (
                int(limits.run_output_bytes) - store.used(job_name),
                int(limits.output_bytes_per_user) - sum(store.used(n) for n in owners),
            )

        self._run_left, self._owner_left = await asyncio.to_thread(left)
        return max(0, min(self._run_left, self._owner_left))

    def too_large_reason(self) -> str:
        limits = self.ctx.settings.limits
        if self._owner_left < self._run_left:
            return (
                f"{self._owner}'s runs keep at most {limits.output_bytes_per_user / 2**30:.1f} GiB of outputs "
                "in all (delete old runs or jobs, or keep fewer runs)"
            )
        return f"a run keeps at most {limits.run_output_bytes // 2**20} MiB of outputs"

    _incoming: Path | None = None

    def open_sink(self) -> IO[bytes]:
        f, self._incoming = self.ctx.outputs.incoming(self.path_args[3])
        return f

    def dropped(self) -> None:
        if self._incoming is not None:
            self._incoming.unlink(missing_ok=True)
            self._incoming = None

    async def post(self, cronjob: str, version: str, task: str | None, job_name: str, path: str = "") -> None:
        ctx = self.ctx
        self.received().close()
        incoming, self._incoming = self._incoming, None
        assert incoming is not None
        try:
            if path:
                await asyncio.to_thread(ctx.outputs.put_file_from, job_name, path, incoming)
            else:
                # unpacked at most as large as a notebook may be sent (a small gzip can unpack to GiBs)
                limit = int(ctx.settings.limits.notebook_bytes)
                size = await asyncio.to_thread(ctx.outputs.put_notebook_from, job_name, incoming, limit)
        except FieldError as e:
            raise web.HTTPError(400, reason=e.message) from None
        except OSError as e:
            raise web.HTTPError(400, reason=f"not kept: {e}") from None
        finally:
            incoming.unlink(missing_ok=True)
        async with ctx.writes:
            with ctx.db() as s:
                found = s.get(RunContextRow, job_name)
                assert found is not None
                if path:
                    found.files = len(ctx.outputs.files(job_name))
                else:
                    found.output_bytes = size
                s.commit()
        self.set_status(201)
        self.finish({"kept": self._size})


#: what a task may publish for the tasks after it (names as parameters, JSON values)
PUBLISHED_BYTES = 16 * 1024


@web.stream_request_body
class PublishHandler(BodyHandler):
    """A pipeline task's pod sending the values its notebook published (``moonhub.publish``);
    the tasks that depend on it receive them as parameters."""

    async def cap(self) -> int:
        return PUBLISHED_BYTES

    def too_large_reason(self) -> str:
        return f"a task publishes at most {PUBLISHED_BYTES // 1024} KiB of values"

    async def post(self, cronjob: str, version: str, task: str | None, job_name: str) -> None:
        data = self.received().read()
        try:
            values = read_json(data or b"{}")
        except FieldError:
            raise web.HTTPError(400, reason="published values must be a JSON object") from None
        if not isinstance(values, dict):
            raise web.HTTPError(400, reason="published values must be a JSON object")
        try:
            values = check_parameters(values)
        except FieldError as e:
            raise web.HTTPError(400, reason=f"published values: {e.message}") from None
        async with self.ctx.writes:
            self._publish(cronjob, version, task, job_name, values)
        self.set_status(201)
        self.finish({"published": sorted(values)})

    def _publish(self, cronjob: str, version: str, task: str | None, job_name: str, values: dict[str, Any]) -> None:
        with self.ctx.db() as s:
            row = self.definition(s, cronjob, version, task)
            found = s.scalar(select(TaskRunRow).where(TaskRunRow.job_name == job_name))
            run = s.get(RunRow, found.run_id) if found is not None else None
            if not task or found is None or found.task != task or run is None or run.definition_id != row.id:
                raise web.HTTPError(404, reason=f"no task run {job_name} of this task")
            found.published = values
            s.commit()


def routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    # a pipeline's task fetches under .../<version>/tasks/<task>/ with a key for that task
    base = rf"{prefix}launch/([a-z0-9-]{{1,63}})/([0-9]+)(?:/tasks/([a-z0-9-]{{1,20}}))?"
    run = rf"{base}/runs/([a-z0-9-]{{1,63}})"
    return [
        (f"{base}/notebook", NotebookHandler),
        (run, RunParametersHandler),
        (f"{run}/output", OutputHandler),
        (f"{run}/files/(.+)", OutputHandler),
        (f"{run}/published", PublishHandler),
    ]
