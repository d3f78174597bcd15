"""``MoonSpawner``: registered as the ``moon`` entry point of ``jupyterhub.spawners``.

KubeSpawner plus the catalog: the spawn form offers separate choices filtered by the user's
entitlements; the same validation guards the form and the REST API's ``user_options``; the
workload builder turns the choices into the pod; unschedulable or unpullable pods fail
fast with a message a person understands.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, ClassVar, cast

from jinja2 import Environment as Jinja
from jinja2 import FileSystemLoader, select_autoescape
from jupyterhub import orm
from kubernetes.utils.quantity import parse_quantity
from kubespawner import KubeSpawner
from tornado import web
from traitlets import Unicode, default

from . import choices as ch
from . import gpuview, metrics, readiness
from .capacity import gpu_capacity
from .catalog import Catalog, CatalogStore
from .errors import ChoiceError
from .failfast import FailFast
from .security import NB_GID, NB_UID, container_security_context, pod_security_context
from .workload import LABEL_PREFIX, Workload, build

_TEMPLATES = Jinja(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape())


class MoonSpawner(KubeSpawner):
    """KubeSpawner with MoonHub's catalog, entitlements, quotas and security defaults."""

    catalog_path = Unicode(
        str(Path(__file__).parent / "examples" / "catalog.yaml"),
        config=True,
        help="""
        The catalog YAML document (environments, sizes, GPU types, storage, entitlements).
        Re-read when it changes; a broken edit keeps the last good catalog in use.
        """,
    )
    storage_class_override = Unicode(
        "",
        config=True,
        help="Use this StorageClass instead of the catalog's (e.g. `local-path` on the local cluster).",
    )

    _stores: ClassVar[dict[str, CatalogStore]] = {}

    # ---- catalog and entitlements ------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        store = self._stores.get(self.catalog_path)
        if store is None:
            store = self._stores[self.catalog_path] = CatalogStore(Path(self.catalog_path))
        return store.get()

    @property
    def catalog_error(self) -> str | None:
        store = self._stores.get(self.catalog_path)
        return store.error if store else None

    def allowed(self) -> ch.Allowed:
        return ch.allowed(self.catalog, [g.name for g in self.user.groups], bool(self.user.admin))

    # ---- the form --------------------------------------------------------------------
    @default("options_form")
    def _default_options_form(self) -> Any:
        return MoonSpawner.render_options_form

    async def render_options_form(self) -> str:
        cat, ok = self.catalog, self.allowed()
        last = dict(getattr(self.orm_spawner, "user_options", None) or {})
        try:
            selected = ch.parse({k: v for k, v in last.items() if k in ch.FIELDS}, cat, ok)
        except ChoiceError:
            selected = ch.Choices(
                ok.environments[0].name if ok.environments else "", ok.sizes[0].name if ok.sizes else ""
            )
        capacity = await self.gpu_capacity(cat) if ok.gpu_types else {}
        counts = sorted({n for g in ok.gpu_types for n in g.counts if n <= ok.max_gpus_per_user} | {0})
        return _TEMPLATES.get_template("options_form.html").render(
            environments=ok.environments,
            sizes=ok.sizes,
            gpu_types=ok.gpu_types,
            capacity=capacity,
            gpu_counts=counts,
            max_gpus=ok.max_gpus_per_user,
            selected=selected,
            catalog_error=self.catalog_error if self.user.admin else None,
        )

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        return {k: v[0] for k, v in formdata.items() if v and k != "_xsrf"}

    # ---- cluster facts ---------------------------------------------------------------
    async def gpu_capacity(self, cat: Catalog) -> dict[str, Any]:
        nodes, pods = await gpuview.shared(self.api).read()
        return gpu_capacity(cat.gpu_types, nodes, pods)

    async def gpus_in_use(self) -> tuple[int, dict[str, int]]:
        """GPUs held by this user's other servers, and by each of the user's quota groups."""
        await self._start_watching_pods()  # the shared pod reflector (a no-op once running)
        members: dict[str, set[str]] = {}
        for group in self.allowed().quota_groups:
            g = orm.Group.find(self.user.db, group)
            members[group] = {u.name for u in g.users} if g else set()
        mine, groups = 0, dict.fromkeys(members, 0)
        for pod in self.pod_reflector.pods.values():
            meta = pod["metadata"]
            if meta["name"] == self.pod_name or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            n = int((meta.get("labels") or {}).get(f"{LABEL_PREFIX}gpu-count", "0"))
            owner = (meta.get("annotations") or {}).get("hub.jupyter.org/username")
            if owner == self.user.name:
                mine += n
            for group, names in members.items():
                if owner in names:
                    groups[group] += n
        return mine, groups

    # ---- spawning ----------------------------------------------------------------------
    async def load_user_options(self) -> None:
        """Validate ``user_options`` (form or REST) and apply the workload; nothing is
        created when this raises."""
        # the GPU gauge reads the shared pod reflector (registered once per hub)
        metrics.watch_gpus(lambda: list(self.pod_reflector.pods.values()) if self.pod_reflector else [])
        cat, ok = self.catalog, self.allowed()
        try:
            choice = ch.parse(self.user_options or {}, cat, ok)  # type: ignore[has-type]
            mine, groups = await self.gpus_in_use()
            ch.check_quota(choice, ok, mine, groups)
        except ChoiceError as e:
            self.log.warning("spawn of %s refused: %s", self._log_name, e)
            metrics.SPAWN_FAILURES.labels(reason=_reason(e)).inc()
            raise web.HTTPError(e.status, str(e)) from None
        self.user_options = choice.as_options()
        self.apply_workload(build(cat, choice, self.pvc_name), cat)
        self.log.info("spawning %s with %s", self._log_name, choice)

    def apply_workload(self, w: Workload, cat: Catalog) -> None:
        """Set the traits the workload decides. The configured env and labels are kept aside
        once, so that a later spawn with other choices starts again from them."""
        if not hasattr(self, "_configured"):
            self._configured = (dict(self.environment), dict(self.extra_labels))  # type: ignore[has-type]
        env, labels = self._configured
        self.image = w.image
        self.cpu_guarantee, self.cpu_limit = w.cpu_guarantee, w.cpu_limit
        # JupyterHub's byte traits do not take Kubernetes suffixes (Gi): give them bytes
        self.mem_guarantee = int(parse_quantity(w.mem_guarantee))
        self.mem_limit = int(parse_quantity(w.mem_limit))
        self.extra_resource_limits = dict(w.extra_resource_limits)
        self.extra_resource_guarantees = dict(w.extra_resource_guarantees)
        self.node_selector = dict(w.node_selector)
        self.tolerations = list(w.tolerations)
        self.node_affinity_required = list(w.node_affinity_required)
        self.volumes = list(w.volumes)
        self.volume_mounts = list(w.volume_mounts)
        self.environment = {**env, **w.env}
        self.extra_labels = {**labels, **w.labels}
        self.pod_security_context = dict(w.pod_security_context)
        self.container_security_context = dict(w.container_security_context)
        st = cat.storage
        self.storage_class = self.storage_class_override or st.storage_class
        self.storage_capacity = st.capacity
        self.storage_access_modes = [st.access_mode]

    async def _start(self) -> Any:
        """KubeSpawner's start, raced against a watch for failures that will not resolve and
        a prompt check that the server answers (``readiness``)."""
        watch = FailFast(self)
        await self._start_watching_pods()
        key = f"{self.namespace}/{self.pod_name}"
        old = self.pod_reflector.pods.get(key)
        stale = {old["metadata"]["uid"]} if old else set()
        start = asyncio.ensure_future(super()._start())
        guard = asyncio.ensure_future(watch.first_failure())
        # KubeSpawner has more to do after the pod is made when these are set: let it finish
        prompt = not (self.internal_ssl or self.services_enabled or self.after_pod_created_hook)
        ready = asyncio.ensure_future(
            readiness.first_answer(
                lambda: self.pod_reflector.pods.get(key),
                lambda pod: f"{self._get_pod_url(pod)}{self.server.base_url if self.server else '/'}api",
                stale,
            )
            if prompt
            else asyncio.Event().wait()
        )
        done, _ = await asyncio.wait({start, guard, ready}, return_when=asyncio.FIRST_COMPLETED)
        if start in done or ready in done:
            guard.cancel()
            try:
                if ready in done:
                    result = await self._started_early(start, cast(dict[str, Any], ready.result()))
                else:
                    result = start.result()
                    if prompt:  # the pod runs: wait here for the server's first answer, which
                        # JupyterHub would otherwise poll for with its back-off
                        await asyncio.wait({ready}, timeout=readiness.GRACE)
            except Exception as e:
                reason = "timeout" if isinstance(e, TimeoutError) else "error"
                metrics.SPAWN_FAILURES.labels(reason=reason).inc()
                raise
            finally:
                ready.cancel()
            opts = self.user_options or {}
            env, gpu = opts.get("environment", ""), opts.get("gpu_type") or "none"
            metrics.SPAWNS.labels(environment=env, gpu_type=gpu).inc()
            return result
        start.cancel()
        ready.cancel()
        message = guard.result()
        metrics.SPAWN_FAILURES.labels(reason="image" if "image" in message.lower() else "unschedulable").inc()
        self.log.warning("spawn of %s failed fast: %s", self._log_name, message)
        await self.stop(now=True)
        raise web.HTTPError(503, message)

    async def _started_early(self, start: asyncio.Future[Any], pod: dict[str, Any]) -> str:
        """The server answered while KubeSpawner was still in its backoff, waiting for the
        pod to run (its last step, as MoonHub configures it: no Service, no internal TLS,
        no post-create hook): end that wait and finish as it would."""
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await start
        self.pod_id = pod["metadata"]["uid"]
        url = str(self._get_pod_url(pod))
        self.log.info("%s answers at %s", self._log_name, url)
        return url

    # ---- defaults: security, storage, networking ---------------------------------------
    @default("pvc_name_template")
    def _default_pvc_name_template(self) -> str:
        per_server = self.catalog.storage.named_servers == "per_server"
        return "claim-{user_server}" if per_server else "claim-{username}"

    @default("uid")
    def _default_uid(self) -> int:
        return NB_UID

    @default("gid")
    def _default_gid(self) -> int:
        return NB_GID

    @default("fs_gid")
    def _default_fs_gid(self) -> int:
        return NB_GID

    @default("automount_service_account_token")
    def _default_automount(self) -> bool:
        return False

    @default("allow_privilege_escalation")
    def _default_ape(self) -> bool:
        return False

    @default("pod_security_context")
    def _default_pod_sc(self) -> dict[str, Any]:
        return pod_security_context(NB_UID, NB_GID)

    @default("container_security_context")
    def _default_container_sc(self) -> dict[str, Any]:
        return container_security_context()

    @default("storage_pvc_ensure")
    def _default_pvc_ensure(self) -> bool:
        return True

    @default("ip")
    def _default_ip(self) -> str:
        # the server listens in its pod's own network namespace; the hub reaches it at the pod IP
        return "0.0.0.0"


def _reason(e: ChoiceError) -> str:
    """``NotEntitled`` -> ``not_entitled``: the failure reason label."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in type(e).__name__).lstrip("_")
