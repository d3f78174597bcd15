"""The spawn form and the catalog behind it: the catalog the hub reloads, what the user is
entitled to, the form that offers it (with GPUs free now and the workspace's size), and what
a submitted form means. What is chosen is checked again at the spawn (``MoonSpawner``), for
the form and the REST API's ``user_options`` alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment as Jinja
from jinja2 import FileSystemLoader, select_autoescape
from traitlets import Unicode, default

from moonhub_core import choices as ch
from moonhub_core import claims, gpuview, image_builds, workspaces
from moonhub_core.capacity import GpuCapacity, gpu_capacity
from moonhub_core.catalog import EXAMPLE, Catalog, CatalogStore, shared_store
from moonhub_core.errors import ChoiceError

from . import queue_wait
from .workspace_claims import WorkspaceClaims

_TEMPLATES = Jinja(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape())


class SpawnForm(WorkspaceClaims):
    """The catalog and the spawn form of :class:`~spawner_ext.spawner.MoonSpawner`."""

    image_builds = Unicode(
        "",
        config=True,
        help="""
        The progress document of images still being built (spawner.image_builds): an
        environment whose image is not ready is shown with how far it is and can not be
        picked yet. Empty: every image is taken to be there.
        """,
    )

    def building(self, cat: Catalog) -> dict[str, str]:
        """Environment name -> how far its image's build is, for those not ready yet."""
        entries = image_builds.read(self.image_builds)
        out = {}
        for env in cat.environments:
            entry = image_builds.not_ready(env.image, entries) if entries else None
            if entry is not None:
                out[env.name] = image_builds.words(entry)
        return out

    catalog_path = Unicode(
        str(EXAMPLE),
        config=True,
        help="""
        The catalog YAML document (environments, sizes, GPU types, storage, entitlements).
        Re-read when it changes; a broken edit keeps the last good catalog in use.
        """,
    )

    # ---- catalog and entitlements ------------------------------------------------------
    @property
    def catalog_store(self) -> CatalogStore:
        """The hub's one reloading store of the catalog (the admin console shares it)."""
        return shared_store(self.catalog_path)

    @property
    def catalog(self) -> Catalog:
        return self.catalog_store.get()

    @property
    def catalog_error(self) -> str | None:
        return self.catalog_store.error

    def allowed(self) -> ch.Allowed:
        return ch.allowed(self.catalog, [g.name for g in self.user.groups], bool(self.user.admin))

    # ---- the form --------------------------------------------------------------------
    async def own_images(self) -> list[dict[str, Any]]:
        """The user's images built from environments, ready to run (:mod:`.own_images`)."""
        return []

    @default("options_form")
    def _default_options_form(self) -> Any:
        return SpawnForm.render_options_form

    async def render_options_form(self) -> str:
        cat, ok = self.catalog, self.allowed()
        last = dict(getattr(self.orm_spawner, "user_options", None) or {})
        try:
            selected = ch.parse({k: v for k, v in last.items() if k in ch.FIELDS}, cat, ok)
        except ChoiceError:
            selected = ch.Choices(
                ok.environments[0].name if ok.environments else "", ok.sizes[0].name if ok.sizes else ""
            )
        building = self.building(cat)
        if selected.environment in building:
            ready = [e.name for e in ok.environments if e.name not in building]
            selected = ch.Choices(ready[0] if ready else "", selected.size)
        capacity = await self.gpu_capacity(cat) if ok.gpu_types else {}
        workspace_now = await claims.size_of(self.api, self.namespace, self.pvc_name)
        counts = sorted({n for g in ok.gpu_types for n in ok.gpu_counts(g)} | {0})
        try:  # the user's images built from environments (none when the jobs service can not tell)
            own = [i for i in await self.own_images() if i["base"] in {e.name for e in ok.environments}]
        except ChoiceError:
            own = []
        return _TEMPLATES.get_template("options_form.html").render(
            environments=ok.environments,
            building=building,
            sizes=ok.sizes,
            gpu_types=ok.gpu_types,
            capacity=capacity,
            gpu_counts=counts,
            max_gpus=ok.max_gpus_per_user,
            selected=selected,
            wait_for_gpus=queue_wait.wants_to_wait(last.get(queue_wait.OPTION)),
            workspace_sizes=ok.workspace_sizes,
            workspace_now=workspace_now,
            workspace_default=cat.storage.capacity,
            bytes_of=workspaces.bytes_of,
            catalog_error=self.catalog_error if self.user.admin else None,
            own_images=own,
            selected_own_image=last.get("own_image"),
        )

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        return {k: v[0] for k, v in formdata.items() if v and k != "_xsrf"}

    # ---- cluster facts ---------------------------------------------------------------
    async def gpu_capacity(self, cat: Catalog, fresh: bool = False) -> dict[str, GpuCapacity]:
        nodes, pods = await gpuview.shared(self.api).read(fresh)
        return gpu_capacity(cat.gpu_types, nodes, pods)
