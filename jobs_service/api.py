"""The REST API (v1): JupyterHub-authenticated handlers, each ending in the route list.

Every route but ``/health`` needs a JupyterHub login (the browser's OAuth cookie) or a
token with access to this service (e.g. the user's server token). Errors are JSON:
``{"status": 400, "field": "schedule", "message": "..."}``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from kubernetes_asyncio import client
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import web

from moonhub_core import numbers, server_claim, unread
from moonhub_core.errors import FieldError, Forbidden, NotFound, TooLarge, Unprocessable
from moonhub_core.jsonhttp import JsonResponses

from . import accounts, bodies, outputs, usage_report
from .options import entitled
from .preview import preview
from .service import Caller, JobsService

MAX_BODY = 1024 * 1024


@web.stream_request_body
class APIHandler(JsonResponses, HubOAuthenticated, web.RequestHandler):
    """A route of the API. The caller is known before any of a body is read (the server
    reads at most :data:`bodies.SMALL_BODY` of an unknown caller's, and drops it); a known
    caller's body is spooled as it arrives, within their share of the bodies in flight, and
    never kept past ``max_body``: a larger one is read to its end and dropped (answering
    before the sender is done makes proxies report an error instead of the 413), then
    refused with 413."""

    @property
    def max_body(self) -> int:
        """Bytes of a request body this route keeps at most."""
        return MAX_BODY

    async def prepare(self) -> None:
        self._spool: bodies.Spool | None = None
        self._held = 0
        self._refused: bodies.TooMuch | None = None
        self._too_large = False
        # who asks (a token, or the login cookie), asked of the hub without blocking: HubAuth's
        # own ``current_user`` waits for the hub's answer with the event loop stopped (every
        # other request waits with it), so it is only left the answer this caches. For a body
        # it comes before the body: an unknown caller's stays within the server's small limit
        # and is dropped; the method answers 403
        await self.hub_auth.get_user(self, sync=False)
        if self.request.method not in ("POST", "PUT", "PATCH") or not self.current_user:
            return
        # read to the end what is refused below (dropped as it arrives), a bounded amount
        bodies.allow(self.request, max(2 * self.max_body, bodies.DROP_AT_MOST))
        length = self.request.headers.get("Content-Length", "")
        declared = int(length) if numbers.is_whole(length) else 0
        if declared > self.max_body:
            self._too_large = True
            return
        if self._take(declared):
            self._spool = bodies.Spool(self.max_body)

    def _take(self, n: int) -> bool:
        """Reserve ``n`` more bytes of the caller's share; False (and the refusal kept) if taken."""
        try:
            self.settings["in_flight"].take(self.current_user["name"], n)
        except bodies.TooMuch as e:
            self._refused = e
            return False
        self._held += n
        return True

    def _give_back(self) -> None:
        if self._held:
            self.settings["in_flight"].give_back(self.current_user["name"], self._held)
            self._held = 0
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def data_received(self, chunk: bytes) -> None:
        spool = self._spool
        if spool is None:  # an unknown caller's, or refused: dropped
            return
        more = spool.size + len(chunk) - self._held
        if more > 0 and not self._take(more):  # sent without a Content-Length, past the share
            self._give_back()
            return
        spool.write(chunk)
        if spool.too_large:
            self._too_large = True
            self._give_back()

    def on_finish(self) -> None:
        self._give_back()

    def on_connection_close(self) -> None:
        self._give_back()
        super().on_connection_close()

    @property
    def jobs(self) -> JobsService:
        return self.settings["jobs"]

    def caller(self) -> Caller:
        model = self.current_user or {}
        if model.get("kind") == "service":
            # a hub service's token (Prometheus's metrics-scraper) is nobody's: it may read
            # /metrics, and owns, sees and starts nothing
            raise Forbidden("token", f"the service {model.get('name')!r} is not a user: its token reads /metrics only")
        return Caller.from_model(model, self.settings["admin_groups"])

    def _credential(self) -> str:
        """A digest of what the caller authenticated with (a new account brings a new one)."""
        headers = self.request.headers
        raw = (
            headers.get("Authorization")
            or headers.get(server_claim.HEADER)
            or self.get_cookie(self.hub_auth.cookie_name)
            or ""
        )
        return accounts.fingerprint(raw)

    def _task(self) -> str | None:
        """``?task=``: which task of a pipeline run a log or output is asked of."""
        return self.get_argument("task", None) or None

    # XSRF: JupyterHub's HubOAuth checks it for every request authenticated by the cookie and
    # skips it only for requests that a valid token authenticated (a bare or bogus
    # ``Authorization`` header does not turn the check off). Do not override check_xsrf_cookie.

    def body_refusal(self) -> None:
        """Raise what the body got while it arrived: over the caller's share, or too large."""
        if self._refused is not None:
            raise web.HTTPError(self._refused.status, self._refused.message)
        if self._too_large:
            size = f"{self.max_body // 2**20} MiB" if self.max_body >= 2**20 else f"{self.max_body // 1024} KiB"
            raise web.HTTPError(413, f"request body larger than {size}")

    async def body(self) -> Any:
        """The request's JSON body (large ones parsed off the event loop)."""
        self.body_refusal()
        if self._spool is None:
            return None
        try:
            return await self._spool.json()
        finally:
            self._give_back()

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, FieldError):
            return
        super().log_exception(typ, value, tb)


def _id(field: str, text: str) -> int:
    if not numbers.is_whole(text):
        raise NotFound(field, f"no {field} {text[:24]}{'...' if len(text) > 24 else ''}")
    return int(text)


def _guard(handler: Any) -> Any:
    """Turn domain errors raised in a handler method into their JSON response."""

    async def wrapper(self: APIHandler, *args: Any, **kwargs: Any) -> None:
        self.body_refusal()  # a body refused is refused whether or not the route reads one
        try:
            # a new account under an earlier one's name touches none of what it left (a
            # service is no account: what it may call refuses it, caller())
            if (self.current_user or {}).get("kind") != "service":
                await accounts.check(self.jobs.ctx, self.caller().name, self._credential())
            await handler(self, *args, **kwargs)
        except FieldError as e:
            self.send_field_error(e)
        except client.ApiException as e:
            self.send({"status": 502, "message": f"Kubernetes refused: {unread.message(e)}"}, 502)
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as e:
            # the API server away (a restart, an outage): nothing was changed; say so
            what = str(e) or type(e).__name__
            self.send({"status": 503, "message": f"Kubernetes does not answer now ({what}); try again"}, 503)

    return web.authenticated(wrapper)


class NotebookBodies(APIHandler):
    """A route whose body may carry a notebook (``notebook_content``): up to
    ``jobs.limits.notebook_bytes``."""

    @property
    def max_body(self) -> int:
        return int(self.jobs.ctx.settings.limits.notebook_bytes)


class JobsHandler(NotebookBodies):
    @_guard
    async def get(self) -> None:
        self.send({"jobs": self.jobs.list_jobs(self.caller())})

    @_guard
    async def post(self) -> None:
        self.send(await self.jobs.create(self.caller(), await self.body()), 201)


class JobHandler(NotebookBodies):
    @_guard
    async def get(self, job_id: str) -> None:
        self.send(self.jobs.get(self.caller(), _id("id", job_id)))

    @_guard
    async def patch(self, job_id: str) -> None:
        self.send(await self.jobs.update(self.caller(), _id("id", job_id), await self.body()))

    @_guard
    async def delete(self, job_id: str) -> None:
        await self.jobs.delete(self.caller(), _id("id", job_id))
        self.set_status(204)
        self.finish()


class VersionsHandler(APIHandler):
    @_guard
    async def get(self, job_id: str) -> None:
        self.send({"versions": self.jobs.versions(self.caller(), _id("id", job_id))})


class RunNowHandler(APIHandler):
    @_guard
    async def post(self, job_id: str) -> None:
        self.send(await self.jobs.run_now(self.caller(), _id("id", job_id)), 201)


class RunsHandler(APIHandler):
    @_guard
    async def get(self, job_id: str) -> None:
        self.send({"runs": self.jobs.runs(self.caller(), _id("id", job_id))})


class RunHandler(APIHandler):
    @_guard
    async def delete(self, job_id: str, run_id: str) -> None:
        """Cancel a queued or running run."""
        self.send(await self.jobs.cancel(self.caller(), _id("id", job_id), _id("run", run_id)))


class RerunHandler(APIHandler):
    @_guard
    async def post(self, job_id: str, run_id: str) -> None:
        """Run an ended run again as it was (``parameters`` may change some)."""
        self.send(await self.jobs.rerun(self.caller(), _id("id", job_id), _id("run", run_id), await self.body()), 201)


class RepairHandler(APIHandler):
    @_guard
    async def post(self, job_id: str, run_id: str) -> None:
        """Run a pipeline run's failed tasks again, and the tasks after them."""
        self.send(await self.jobs.repair(self.caller(), _id("id", job_id), _id("run", run_id)), 201)


class BackfillHandler(APIHandler):
    @_guard
    async def post(self, job_id: str) -> None:
        """Runs for the schedule's ticks from one day to another."""
        self.send(await self.jobs.backfill(self.caller(), _id("id", job_id), await self.body()), 201)


class ClaimReadable(APIHandler):
    """A list the hub reads as a server of a user starts: it signs a claim for that user
    instead of sending a token (``moonhub_core.server_claim``), which opens the list of the
    user's own secrets and of their ready images, and only for reading. A claim that does not
    check out is refused, never taken for no claim."""

    def get_current_user(self) -> Any:
        claim = self.request.headers.get(server_claim.HEADER)
        if claim is None:
            return super().get_current_user()
        if self.request.method != "GET":
            raise web.HTTPError(403, f"{server_claim.HEADER} opens only the lists of secrets and images")
        try:
            user = server_claim.check(self.settings.get("server_claim_key", ""), claim)
        except server_claim.ClaimError as e:
            raise web.HTTPError(403, str(e)) from None
        return {"name": user, "groups": [], "admin": False, "claim": True}


class SecretsHandler(ClaimReadable):
    @_guard
    async def get(self) -> None:
        """Your secrets and your groups' team secrets: names and how they are delivered, never values."""
        self.send({"secrets": await self.jobs.secrets(self.caller())})


class SecretHandler(APIHandler):
    """A user's own secret (``/secrets/<name>``) or, for job admins, a team's
    (``/team-secrets/<team>/<name>``)."""

    @_guard
    async def put(self, name: str, team: str = "") -> None:
        view, made = await self.jobs.put_secret(self.caller(), name, await self.body(), team)
        self.send(view, 201 if made else 200)

    @_guard
    async def delete(self, name: str, team: str = "") -> None:
        await self.jobs.delete_secret(self.caller(), name, team)
        self.set_status(204)
        self.finish()


class ImagesHandler(ClaimReadable):
    @_guard
    async def get(self) -> None:
        """Your images built from environments, newest first (admins: ``?everyone=1`` for all
        users'); the hub's claim as your server starts: only those ready to run."""
        if (self.current_user or {}).get("claim"):
            self.send({"images": self.jobs.usable_images(self.caller().name)})
            return
        everyone = self.get_argument("everyone", "") in ("1", "true")
        self.send({"images": self.jobs.images(self.caller(), everyone)})

    @_guard
    async def post(self) -> None:
        """Build an image of one of your environments (its packages, frozen) on a catalog
        environment you may use; it waits in turn."""
        self.send(await self.jobs.build_image(self.caller(), await self.body()), 202)


class ImageHandler(APIHandler):
    @_guard
    async def get(self, build_id: str) -> None:
        self.send(self.jobs.image(self.caller(), _id("image build", build_id)))

    @_guard
    async def delete(self, build_id: str) -> None:
        """Cancel a build that has not ended, or remove an ended one from your images."""
        self.send(await self.jobs.remove_image(self.caller(), _id("image build", build_id)))


class ImageLogHandler(APIHandler):
    @_guard
    async def get(self, build_id: str) -> None:
        """The build's output: live while it runs, kept once it ended."""
        self.send(await self.jobs.image_log(self.caller(), _id("image build", build_id)))


class SharesHandler(APIHandler):
    @_guard
    async def get(self) -> None:
        """What your server is shared with, and the servers shared with you (job admins:
        ``?owner=`` for another user's server)."""
        self.send(await self.jobs.shares(self.caller(), self.get_argument("owner", None)))

    @_guard
    async def post(self) -> None:
        """Share your server with a user or a team, to read or to work in, for some hours."""
        self.send(await self.jobs.share(self.caller(), await self.body(), self.get_argument("owner", None)), 201)


class ShareHandler(APIHandler):
    @_guard
    async def delete(self, kind: str, name: str) -> None:
        """End a share of your server now."""
        await self.jobs.unshare(self.caller(), kind, name, self.get_argument("owner", None))
        self.set_status(204)
        self.finish()


class RunSharesHandler(APIHandler):
    @_guard
    async def get(self, job_id: str, run_id: str) -> None:
        """The teams this run's output page is shared with (the job's owner)."""
        self.send({"shares": self.jobs.output_shares(self.caller(), _id("id", job_id), _id("run", run_id))})

    @_guard
    async def post(self, job_id: str, run_id: str) -> None:
        """Share this run's output page with a team of yours, for some hours."""
        shared = await self.jobs.share_output(self.caller(), _id("id", job_id), _id("run", run_id), await self.body())
        self.send(shared, 201)


class RunShareHandler(APIHandler):
    @_guard
    async def delete(self, job_id: str, run_id: str, team: str) -> None:
        """Stop sharing this run's output page with a team."""
        await self.jobs.unshare_output(self.caller(), _id("id", job_id), _id("run", run_id), team)
        self.set_status(204)
        self.finish()


class RunOutputHandler(APIHandler):
    @_guard
    async def get(self, job_id: str, run_id: str) -> None:
        """The executed notebook, rendered and sanitised; ``?format=ipynb`` for the notebook."""
        data = await self.jobs.output(self.caller(), _id("id", job_id), _id("run", run_id), self._task())
        self.set_header("Content-Security-Policy", outputs.CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        if self.get_argument("format", "html") == "ipynb":
            self.set_header("Content-Type", "application/x-ipynb+json")
            self.set_header("Content-Disposition", "attachment; filename=output.ipynb")
            self.finish(data)
            return
        if len(data) > outputs.RENDER_BYTES:
            raise TooLarge(
                "format",
                f"the executed notebook is {len(data) / 2**20:.0f} MiB, more than the "
                f"{outputs.RENDER_BYTES // 2**20} MiB shown as a page; download it with ?format=ipynb",
            )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        async with RENDERS:  # each takes several times the notebook's size in memory
            try:
                page = await asyncio.to_thread(outputs.render, data)
            except Exception as e:  # the run's notebook is hostile: nested past the parser, not one
                self.log.warning("output of run %s not rendered: %s: %s", run_id, type(e).__name__, e)
                raise Unprocessable(
                    "format",
                    f"the executed notebook can not be shown as a page ({type(e).__name__}); "
                    "download it with ?format=ipynb",
                ) from None
        self.finish(page)


#: output pages rendered at once
RENDERS = asyncio.Semaphore(2)


class RunFilesHandler(APIHandler):
    @_guard
    async def get(self, job_id: str, run_id: str) -> None:
        """The files the run kept from its run folder."""
        self.send({"files": self.jobs.run_files(self.caller(), _id("id", job_id), _id("run", run_id), self._task())})


class RunFileHandler(APIHandler):
    @_guard
    async def get(self, job_id: str, run_id: str, path: str) -> None:
        """One kept file, as a download (never rendered)."""
        name, data = await self.jobs.run_file(self.caller(), _id("id", job_id), _id("run", run_id), path, self._task())
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.set_header("Content-Security-Policy", outputs.CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(data)


class RunResourcesHandler(APIHandler):
    @_guard
    async def get(self, job_id: str, run_id: str) -> None:
        """What the run (or ``?task=``) used: memory and CPU over the run against its limits."""
        self.send(await self.jobs.resources(self.caller(), _id("id", job_id), _id("run", run_id), self._task()))


class RunLogHandler(APIHandler):
    @_guard
    async def get(self, job_id: str, run_id: str) -> None:
        found = await self.jobs.log(self.caller(), _id("id", job_id), _id("run", run_id), self._task())
        if found is None:
            raise NotFound("run", "has no pod (not started yet, or its pod was cleaned up)")
        self.send(found)


class AuditHandler(APIHandler):
    @_guard
    async def get(self) -> None:
        """Who did what to whose jobs, newest first: job admins see everyone's (or one
        owner's, ``?owner=``), users what was done to their own."""
        limit = numbers.whole("limit", self.get_argument("limit", "200"))
        self.send({"entries": self.jobs.audit(self.caller(), self.get_argument("owner", None), limit)})


class GpuUsageHandler(APIHandler):
    @_guard
    async def get(self) -> None:
        """GPU-hours per user and per team over the last ``?days=`` days (job admins)."""
        days = numbers.whole("days", self.get_argument("days", "7"), 1, 366)
        self.send(self.jobs.gpu_usage(self.caller(), days))


class UsageHandler(APIHandler):
    @_guard
    async def get(self) -> None:
        """CPU-, memory-, GPU-hours and storage by day over the last ``?days=`` days: the
        caller's own and their teams' totals, or (job admins) everyone's, one ``?user=``'s
        or one ``?team=``'s. ``?format=csv`` answers the rows as a CSV file; ``?rows=false``
        leaves them out of the JSON."""
        days = numbers.whole("days", self.get_argument("days", "30"), 1, usage_report.MAX_DAYS)
        form = self.get_argument("format", "json")
        if form not in ("json", "csv"):
            raise FieldError("format", "must be json or csv")
        rows = self.get_argument("rows", "true")
        if rows not in ("true", "false"):
            raise FieldError("rows", "must be true or false")
        found = await asyncio.to_thread(
            self.jobs.usage_report,
            self.caller(),
            days,
            self.get_argument("user", None) or None,
            self.get_argument("team", None) or None,
            rows == "true" or form == "csv",
        )
        if form == "json":
            self.send(found)
            return
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        name = f"moonhub-usage-{found['since']}-to-{found['until']}.csv"
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.finish(usage_report.as_csv(found))


class WorkspaceReclaimHandler(APIHandler):
    @_guard
    async def get(self) -> None:
        """The dry run of reclaim: departed users' workspaces it would archive, delete or
        restore now (job admins)."""
        self.send(await self.jobs.workspace_reclaim(self.caller()))


class MetricsHandler(APIHandler):
    @_guard
    async def get(self) -> None:
        """Prometheus metrics (runs, GPU-seconds per user and team, the service's own), for
        job admins and tokens with JupyterHub's ``read:metrics`` (the ``metrics-scraper``
        service: Prometheus)."""
        scopes = (self.current_user or {}).get("scopes") or []
        if "read:metrics" not in scopes and not self.caller().admin:
            raise Forbidden("metrics", "metrics are for job admins and tokens with read:metrics")
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest())


class SchedulePreviewHandler(APIHandler):
    @_guard
    async def get(self) -> None:
        """A schedule in words and its next runs; the same field errors as saving a job."""
        self.send(preview(self.get_argument("schedule", None), self.get_argument("timezone", "UTC")))


class OptionsHandler(APIHandler):
    @_guard
    async def get(self) -> None:
        """The environments, sizes and GPUs the caller's jobs may use."""
        caller = self.caller()
        self.send(entitled(self.jobs.catalog.get(), caller.groups, caller.hub_admin))


OPENAPI = Path(__file__).with_name("openapi.yaml")


class OpenAPIHandler(APIHandler):
    @web.authenticated
    async def get(self) -> None:
        self.send(yaml.safe_load(OPENAPI.read_text()))


class HealthHandler(web.RequestHandler):
    def get(self) -> None:
        """Answers while the service serves (a liveness and readiness probe); says
        ``"status": "behind"`` when run tracking has fallen behind (an alert, not a restart)."""
        self.finish(self.settings["jobs"].health())


def routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    api = f"{prefix}api/v1"
    return [
        (f"{api}/jobs", JobsHandler),
        (rf"{api}/jobs/([0-9]+)", JobHandler),
        (rf"{api}/jobs/([0-9]+)/run", RunNowHandler),
        (rf"{api}/jobs/([0-9]+)/runs", RunsHandler),
        (rf"{api}/jobs/([0-9]+)/runs/([0-9]+)", RunHandler),
        (rf"{api}/jobs/([0-9]+)/runs/([0-9]+)/log", RunLogHandler),
        (rf"{api}/jobs/([0-9]+)/runs/([0-9]+)/resources", RunResourcesHandler),
        (rf"{api}/jobs/([0-9]+)/runs/([0-9]+)/rerun", RerunHandler),
        (rf"{api}/jobs/([0-9]+)/runs/([0-9]+)/output", RunOutputHandler),
        (rf"{api}/jobs/([0-9]+)/runs/([0-9]+)/shares", RunSharesHandler),
        (rf"{api}/jobs/(?P<job_id>[0-9]+)/runs/(?P<run_id>[0-9]+)/shares/(?P<team>[^/]+)", RunShareHandler),
        (rf"{api}/jobs/([0-9]+)/runs/([0-9]+)/files", RunFilesHandler),
        (rf"{api}/jobs/(?P<job_id>[0-9]+)/runs/(?P<run_id>[0-9]+)/files/(?P<path>.+)", RunFileHandler),
        (rf"{api}/jobs/([0-9]+)/runs/([0-9]+)/repair", RepairHandler),
        (rf"{api}/jobs/([0-9]+)/backfill", BackfillHandler),
        (rf"{api}/jobs/([0-9]+)/versions", VersionsHandler),
        (f"{api}/secrets", SecretsHandler),
        (rf"{api}/secrets/(?P<name>[^/]+)", SecretHandler),
        (rf"{api}/team-secrets/(?P<team>[^/]+)/(?P<name>[^/]+)", SecretHandler),
        (f"{api}/images", ImagesHandler),
        (rf"{api}/images/(?P<build_id>[0-9]+)", ImageHandler),
        (rf"{api}/images/(?P<build_id>[0-9]+)/log", ImageLogHandler),
        (f"{api}/shares", SharesHandler),
        (rf"{api}/shares/(?P<kind>user|group)/(?P<name>[^/]+)", ShareHandler),
        (f"{api}/audit", AuditHandler),
        (f"{api}/gpu-usage", GpuUsageHandler),
        (f"{api}/usage", UsageHandler),
        (f"{api}/workspace-reclaim", WorkspaceReclaimHandler),
        (f"{prefix}metrics", MetricsHandler),
        (f"{api}/schedule-preview", SchedulePreviewHandler),
        (f"{api}/options", OptionsHandler),
        (f"{api}/openapi.json", OpenAPIHandler),
        (f"{prefix}oauth_callback", HubOAuthCallbackHandler),
        (f"{prefix}health", HealthHandler),
    ]
