"""The admin console's hub handlers: the page, the usage API and the catalog API. Every
route needs the ``admin-ui`` scope (hub admins); others get 403."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import needs_scope
from kubernetes_asyncio import client
from kubespawner.clients import load_config, shared_client
from tornado import web

from spawner_ext import gpuview
from spawner_ext.catalog import load
from spawner_ext.errors import FieldError, ReadOnly

from . import edits
from .usage import usage

TEMPLATES = Path(__file__).with_name("templates")


class ConsoleHandler(BaseHandler):
    @property
    def catalog_path(self) -> Path:
        return Path(self.settings["moonhub_catalog"])

    @property
    def managed_by(self) -> str:
        """Where the catalog is edited when not here (empty: here)."""
        return str(self.settings.get("moonhub_catalog_managed_by") or "")

    def catalog_doc(self) -> dict[str, Any]:
        return dict(yaml.safe_load(self.catalog_path.read_text()) or {})

    def running_servers(self) -> list[dict[str, Any]]:
        out = []
        for user in self.users.values():
            for name, sp in user.spawners.items():
                if not sp.active:
                    continue
                opts = sp.user_options or {}
                out.append(
                    {
                        "user": user.name,
                        "name": name,
                        "environment": opts.get("environment", ""),
                        "size": opts.get("size", ""),
                        "gpu_type": opts.get("gpu_type") or None,
                        "gpu_count": int(opts.get("gpu_count") or 0),
                        "started": sp.orm_spawner.started.isoformat() + "Z" if sp.orm_spawner.started else None,
                        "ready": sp.ready,
                    }
                )
        return out

    async def usage(self) -> dict[str, Any]:
        if not self.settings.get("moonhub_kube_loaded"):
            load_config()  # as KubeSpawner does (in-cluster, else the kubeconfig)
            self.settings["moonhub_kube_loaded"] = True
        core: client.CoreV1Api = shared_client("CoreV1Api")
        ser = core.api_client.sanitize_for_serialization  # type: ignore[attr-defined]
        # capacity from the hub's shared GPU view; running job pods from the user namespace
        nodes, gpu_pods = await gpuview.shared(core).read()
        jobs = await core.list_namespaced_pod(
            self.settings["moonhub_user_namespace"], label_selector="moonhub.io/component=notebook-job"
        )
        return usage(load(self.catalog_path), self.running_servers(), nodes, gpu_pods, [ser(p) for p in jobs.items])

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if not self.request.path.rstrip("/").endswith("moonhub-admin"):
            exc = kwargs.get("exc_info", (None, None, None))[1]
            msg = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else self._reason
            self.send({"status": status_code, "message": msg}, status_code)
            return
        super().write_error(status_code, **kwargs)


class PageHandler(ConsoleHandler):
    @web.authenticated
    @needs_scope("admin-ui")
    async def get(self) -> None:
        doc = self.catalog_doc()
        html = await self.render_template(
            "moonhub-admin.html",
            catalog=doc,
            usage=await self.usage(),
            catalog_path=str(self.catalog_path),
            managed_by=self.managed_by,
        )
        self.finish(html)


class UsageHandler(ConsoleHandler):
    @web.authenticated
    @needs_scope("admin-ui")
    async def get(self) -> None:
        self.send(await self.usage())


class CatalogHandler(ConsoleHandler):
    @web.authenticated
    @needs_scope("admin-ui")
    async def get(self) -> None:
        self.send(self.catalog_doc())

    @web.authenticated
    @needs_scope("admin-ui")
    async def patch(self) -> None:
        try:
            edit = json.loads(self.request.body or b"null")
        except json.JSONDecodeError as e:
            self.send({"status": 400, "field": "body", "message": f"body: not JSON ({e.msg})"}, 400)
            return
        try:
            if self.managed_by:
                raise ReadOnly("catalog", f"read-only here: it is managed by {self.managed_by}")
            doc = edits.apply(self.catalog_doc(), edit)
            edits.write(self.catalog_path, doc)
        except FieldError as e:
            self.send({"status": e.status, "field": e.field, "message": str(e)}, e.status)
            return
        self.log.info("catalog edited by %s: %s", self.current_user.name, edit)
        self.send(doc)


def handlers() -> list[tuple[str, type[BaseHandler]]]:
    """For ``JupyterHub.extra_handlers`` (mounted under /hub/)."""
    return [
        (r"/moonhub-admin/?", PageHandler),
        (r"/moonhub-admin/api/usage", UsageHandler),
        (r"/moonhub-admin/api/catalog", CatalogHandler),
    ]
