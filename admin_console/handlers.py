"""The admin console's hub handlers: the page, the usage API, the usage report (asked of the
jobs service) and the catalog API. Every route needs the ``admin-ui`` scope (hub admins);
others get 403.

The console reads the catalog through the hub's one reloading store (the spawners share it):
a broken edit of the file is shown here, with the last good catalog still in use, instead
of failing the page an admin opens to find out what is wrong."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import url_path_join
from kubernetes_asyncio import client
from kubespawner.clients import load_config, shared_client
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from moonhub_core import claims, gpuview, image_check, image_probe, workspaces
from moonhub_core import pods as podc
from moonhub_core.catalog import Catalog, CatalogError, shared_store
from moonhub_core.errors import Conflict, FieldError, NotFound, ReadOnly
from moonhub_core.jsonhttp import JsonResponses, read_json
from moonhub_core.kueue_api import Queues
from moonhub_core.platform import HUB_SETTING, Document

from . import catalog_source, edits
from .catalog_source import CatalogSource, ConfigMapSource, FileSource
from .revisions import FileRevisions
from .usage import usage

TEMPLATES = Path(__file__).with_name("templates")


class ConsoleHandler(JsonResponses, BaseHandler):
    @property
    def platform(self) -> Document:
        """The platform document the hub read (typed; its settings, declared there)."""
        doc: Document = self.settings[HUB_SETTING]
        return doc

    @property
    def catalog_path(self) -> Path:
        return self.platform.catalog

    @property
    def managed_by(self) -> str:
        """Where the catalog is edited when not here (empty: here)."""
        return self.platform.config.spawner.catalog_managed_by

    @property
    def source(self) -> CatalogSource:
        """Where edits go: the catalog file, or (a Helm install) its ConfigMap."""
        ref = self.platform.config.spawner.catalog_configmap
        if ref:
            self._kube()
            return ConfigMapSource(shared_client("CoreV1Api"), ref, self.catalog_path)
        return FileSource(self.catalog_path)

    @property
    def revisions(self) -> FileRevisions:
        return FileRevisions(self.platform.catalog_history)

    async def catalog_doc(self) -> dict[str, Any]:
        """The catalog as written (what admins edit); ReadOnly (409) when it is not a YAML
        mapping."""
        source = self.source
        return catalog_source.parse(await source.read(), source.where)

    def catalog(self) -> tuple[Catalog | None, str | None]:
        """The catalog the hub uses (None when it never loaded) and the error of the file
        as it is now (None: it is the one in use)."""
        try:
            store = shared_store(self.catalog_path)
        except CatalogError as e:
            return None, str(e)
        return store.get(), store.error

    def running_servers(self) -> list[dict[str, Any]]:
        out = []
        for user in self.users.values():
            for name, sp in user.spawners.items():
                if not sp.active:
                    continue
                opts = sp.user_options or {}
                reflector = getattr(sp, "pod_reflector", None)
                pod = reflector.pods.get(f"{sp.namespace}/{sp.pod_name}") if reflector else None
                out.append(
                    {
                        "user": user.name,
                        "name": name,
                        "environment": opts.get("environment", ""),
                        "size": opts.get("size", ""),
                        "gpu_type": opts.get("gpu_type") or None,
                        # what the pod holds (none before it exists)
                        "gpu_count": podc.gpus(pod) if pod else 0,
                        "started": sp.orm_spawner.started.isoformat() + "Z" if sp.orm_spawner.started else None,
                        "ready": sp.ready,
                    }
                )
        return out

    def _kube(self) -> None:
        if not self.settings.get("moonhub_kube_loaded"):
            load_config()  # as KubeSpawner does (in-cluster, else the kubeconfig)
            self.settings["moonhub_kube_loaded"] = True

    async def usage(self) -> dict[str, Any]:
        self._kube()
        core: client.CoreV1Api = shared_client("CoreV1Api")
        ser = core.api_client.sanitize_for_serialization  # type: ignore[attr-defined]
        # capacity from the hub's shared GPU view; running job pods from the user namespace
        nodes, gpu_pods = await gpuview.shared(core).read()
        jobs = await core.list_namespaced_pod(
            self.platform.config.spawner.namespace, label_selector=f"{podc.COMPONENT}={podc.NOTEBOOK_JOB}"
        )
        cat, error = self.catalog()
        out = usage(cat.gpu_types if cat else [], self.running_servers(), nodes, gpu_pods, [ser(p) for p in jobs.items])
        out["catalog_error"] = error
        claims = await core.list_namespaced_persistent_volume_claim(self.platform.config.spawner.namespace)
        spaces = sorted((workspaces.usage(ser(c)) for c in claims.items), key=lambda u: (u.kind, u.user))
        out["workspaces"] = {"claims": [u.as_dict() for u in spaces], "total": workspaces.summary(spaces)}
        kueue = Queues(core.api_client, self.platform.config.spawner.queue_prefix)  # type: ignore[attr-defined]
        try:
            out["queues"] = await kueue.view(self.platform.config.spawner.namespace)
        except client.ApiException as e:  # Kueue missing or unreachable: the rest of the page still helps
            out["queues"], out["queues_error"] = [], f"Kueue's queues can not be read: {e.status} {e.reason}"
        return out

    def json_body(self) -> Any:
        """The request's JSON body; FieldError ``body`` (400) when it is not JSON."""
        return read_json(self.request.body)

    def json_errors(self) -> bool:
        """The API routes answer errors as JSON; the page as the hub's HTML error page."""
        return not self.request.path.rstrip("/").endswith("moonhub-admin")


class PageHandler(ConsoleHandler):
    @web.authenticated
    @needs_scope("admin-ui")
    async def get(self) -> None:
        try:
            doc = await self.catalog_doc()
        except FieldError:
            doc = {}
        use = await self.usage()
        history = self.revisions.entries()
        html = await self.render_template(
            "moonhub-admin.html",
            catalog=doc,
            revision=history[0].revision if history else -1,
            history=history[:30],
            usage=use,
            catalog_error=use["catalog_error"],
            catalog_path=self.source.where,
            managed_by=self.managed_by,
            usage_url=url_path_join(self.hub.base_url, "moonhub-admin/api/usage-report")
            if self.platform.config.jobs.enabled
            else "",
        )
        self.finish(html)


class UsageHandler(ConsoleHandler):
    @web.authenticated
    @needs_scope("admin-ui")
    async def get(self) -> None:
        self.send(await self.usage())


class CatalogHandler(ConsoleHandler):
    """``GET``: the catalog document and its revision. ``PATCH``: one edit (``edits``), or
    ``{"op": "restore", "revision": N}``; an optional ``base_revision`` refuses the edit
    (409) when the catalog changed since the admin loaded it. Images an edit offers are
    checked in their registry and pinned by digest first; the answer says which running
    servers use what was removed or changed."""

    @web.authenticated
    @needs_scope("admin-ui")
    async def get(self) -> None:
        try:
            self.send({"catalog": await self.catalog_doc(), "revision": self.revisions.current()})
        except FieldError as e:
            self.send_field_error(e)

    @web.authenticated
    @needs_scope("admin-ui")
    async def patch(self) -> None:
        try:
            edit = self.json_body()
            if self.managed_by:
                raise ReadOnly("catalog", f"read-only here: it is managed by {self.managed_by}")
            if not isinstance(edit, dict):
                raise FieldError("body", "must be a JSON object")
            # one catalog edit at a time in this hub (read, check, write and record as one step)
            async with self.settings.setdefault("moonhub_catalog_editing", asyncio.Lock()):
                answer = await self._edit(dict(edit))
        except FieldError as e:
            self.send_field_error(e)
            return
        self.send(answer)

    async def _edit(self, edit: dict[str, Any]) -> dict[str, Any]:
        revs = self.revisions
        base = edit.pop("base_revision", None)
        latest = revs.latest()
        if base is not None and base != (latest.revision if latest else -1):
            since = f"revision {latest.revision} by {latest.by}: {latest.summary}" if latest else "its history is new"
            raise Conflict("base_revision", f"the catalog changed since you loaded it ({since}); reload and edit again")
        source = self.source
        before_text = await source.read()
        before = catalog_source.parse(before_text, source.where)
        if edit.get("op") == "restore":
            n = edit.get("revision")
            if isinstance(n, bool) or not isinstance(n, int):
                raise FieldError("revision", "must be the number of a revision in the history")
            doc = yaml.safe_load(revs.document(n)) or {}
        else:
            doc = edits.apply(before, edit)
        digests, probes = {}, {}
        for env, image in edits.offered_images(before, doc, edit):
            digests[env] = await image_check.digest_of(image, self.platform.config.spawner.insecure_registries)
            self._kube()
            pinned = image if "@" in image else f"{image}@{digests[env]}"
            probes[env] = await image_probe.starts_as_server(
                shared_client("CoreV1Api"), self.platform.config.spawner.namespace, pinned
            )
        doc = edits.pin(doc, digests)
        written = await source.write(doc)
        rev = revs.record(before_text, written, self.current_user.name, edits.describe(edit), edit)
        self.log.info("catalog revision %d by %s: %s", rev.revision, rev.by, rev.summary)
        return {
            "catalog": doc,
            "revision": rev.revision,
            "summary": rev.summary,
            "checked_images": digests,
            "started_as_server": probes,
            "in_use": edits.in_use(before, doc, self.running_servers()),
        }


class HistoryHandler(ConsoleHandler):
    """``GET``: the catalog's revisions, newest first (who, when, what); ``?revision=N``: the
    document as it was after revision N (YAML)."""

    @web.authenticated
    @needs_scope("admin-ui")
    async def get(self) -> None:
        revs = self.revisions
        wanted = self.get_argument("revision", None)
        try:
            if wanted is not None:
                if not wanted.isdigit():
                    raise FieldError("revision", "must be a revision number")
                self.set_header("Content-Type", "application/yaml; charset=utf-8")
                self.finish(revs.document(int(wanted)))
                return
            self.send({"revisions": [r.as_dict() for r in revs.entries()]})
        except FieldError as e:
            self.send_field_error(e)


class WorkspaceHandler(ConsoleHandler):
    """``PATCH {"size": "50Gi"}``: grow a workspace or team folder (never shrink); the
    storage grows it and the next server start sees the new size."""

    @web.authenticated
    @needs_scope("admin-ui")
    async def patch(self, claim: str) -> None:
        try:
            body = self.json_body()
            size = body.get("size") if isinstance(body, dict) else None
            if not isinstance(size, str) or not size:
                raise FieldError("size", "give the new size, e.g. 50Gi")
            try:
                want = workspaces.bytes_of(size)
            except ValueError:
                raise FieldError("size", f"{size!r} is not a size (e.g. 50Gi)") from None
            if want <= 0:
                raise FieldError("size", "must be larger than 0")
            core: client.CoreV1Api = shared_client("CoreV1Api")
            ns = self.platform.config.spawner.namespace
            current = await claims.size_of(core, ns, claim)
            if current is None:
                raise NotFound("claim", f"no workspace or team folder named {claim!r}")
            if want < workspaces.bytes_of(current):
                raise FieldError("size", f"{claim} is {current}: workspaces can grow, not shrink")
            grown = await claims.grow(core, ns, claim, size, current)
        except FieldError as e:
            self.send_field_error(e)
            return
        if grown:
            self.log.info("workspace %s grown from %s to %s by %s", claim, current, size, self.current_user.name)
        self.send({"claim": claim, "size": size if grown else current, "was": current})


class JobsForward(ConsoleHandler):
    """A read of the jobs service's API, asked by the hub for the admin on the console. A page
    of the hub can not call the service from the browser: the service's sign-in cookie
    answers only navigations or requests carrying the service's own XSRF token, which the
    hub's page can not read. So the hub asks, with a short-lived token of the admin's that
    opens the jobs service only, kept by the hub and never sent to the browser; the service
    decides what the admin may see, as for any caller."""

    #: seconds a token lives; one is made again when less than MARGIN is left
    LIFETIME, MARGIN = 3600, 300

    def _token(self) -> str:
        user = self.current_user
        kept: dict[str, tuple[str, float]] = self.settings.setdefault("moonhub_console_tokens", {})
        token, until = kept.get(user.name, ("", 0.0))
        if time.time() > until - self.MARGIN:
            token = user.new_api_token(
                note="MoonHub admin console: reads of the jobs service",
                expires_in=self.LIFETIME,
                scopes=["access:services!service=jobs"],
            )
            kept[user.name] = (token, time.time() + self.LIFETIME)
        return token

    async def forward(self, path: str, query: dict[str, str], off: str) -> None:
        jobs = self.platform.config.jobs
        if not jobs.enabled:
            raise web.HTTPError(404, f"the jobs service is off (jobs.enabled): {off}")
        url = url_path_join(jobs.url, "services/jobs/api/v1", path) + (f"?{urlencode(query)}" if query else "")
        req = HTTPRequest(
            url, headers={"Authorization": f"token {self._token()}"}, request_timeout=60, follow_redirects=False
        )
        resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        if resp.code == 599:
            raise web.HTTPError(502, f"the jobs service did not answer: {resp.error}")
        self.set_status(resp.code)
        for name in ("Content-Type", "Content-Disposition"):
            if name in resp.headers:
                self.set_header(name, resp.headers[name])
        self.finish(resp.body or b"")


class UsageReportHandler(JobsForward):
    """The jobs service's usage report (``GET /api/v1/usage``)."""

    #: the report's query arguments passed on (nothing else is)
    ARGUMENTS = ("days", "user", "team", "format", "rows")

    @web.authenticated
    @needs_scope("admin-ui")
    async def get(self) -> None:
        query = {k: self.get_argument(k) for k in self.ARGUMENTS if self.get_argument(k, None) is not None}
        await self.forward("usage", query, "nothing samples usage")


class UserImagesHandler(JobsForward):
    """Every user's images built from environments (``GET /api/v1/images?everyone=1``): what
    an admin may promote into the catalog (an environment added with the image, by digest,
    checked again like any image offered)."""

    @web.authenticated
    @needs_scope("admin-ui")
    async def get(self) -> None:
        await self.forward("images", {"everyone": "1"}, "nothing builds images")


def handlers() -> list[tuple[str, type[BaseHandler]]]:
    """For ``JupyterHub.extra_handlers`` (mounted under /hub/)."""
    return [
        (r"/moonhub-admin/?", PageHandler),
        (r"/moonhub-admin/api/usage", UsageHandler),
        (r"/moonhub-admin/api/usage-report", UsageReportHandler),
        (r"/moonhub-admin/api/user-images", UserImagesHandler),
        (r"/moonhub-admin/api/catalog", CatalogHandler),
        (r"/moonhub-admin/api/catalog/history", HistoryHandler),
        (r"/moonhub-admin/api/workspaces/([a-z0-9][-a-z0-9.]{0,252})", WorkspaceHandler),
    ]
