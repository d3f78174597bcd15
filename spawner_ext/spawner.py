"""``MoonSpawner``: registered as the ``moon`` entry point of ``jupyterhub.spawners``.

KubeSpawner plus the catalog: the spawn form offers separate choices filtered by the user's
entitlements; the same validation guards the form and the REST API's ``user_options``; the
workload builder turns the choices into the pod; unschedulable or unpullable pods fail
fast with a message a person understands.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any, NoReturn, TypeVar, cast

import aiohttp
from kubernetes.utils.quantity import parse_quantity
from kubernetes_asyncio.client import ApiException
from tornado import web
from traitlets import Integer, Unicode, default

from moonhub_core import choices as ch
from moonhub_core import claims, queue_objects, unread, workspaces
from moonhub_core.catalog import Catalog
from moonhub_core.errors import ChoiceError, NotReady
from moonhub_core.kueue_api import Queues
from moonhub_core.workload import Workload, build

from . import (
    failfast,
    metrics,
    orphans,
    own_images,
    queue_wait,
    readiness,
    reflector_watch,
    server_secrets,
    workload_watch,
)
from .resuming_reflector import ResumingEventReflector, ResumingPodReflector
from .spawn_form import SpawnForm
from .workload_watch import ResumingWorkloadReflector


class MoonSpawner(SpawnForm):
    """KubeSpawner with MoonHub's catalog, entitlements, quotas and security defaults: the
    spawn (choices checked, the workload applied, the user's queue, secrets) and the start
    (why a pod does not start, in words). The form and the catalog are :class:`SpawnForm`'s,
    the workspace claim :class:`WorkspaceClaims`'s."""

    #: the user's queue, written by load_user_options (every server is queued), which then
    #: sets ``_queue_known`` (the start's watch for Kueue's refusal waits for it)
    user_queue: queue_objects.UserQueue | None = None
    _queue_known: asyncio.Event | None = None

    queue_prefix = Unicode(
        queue_objects.DEFAULT_PREFIX,
        config=True,
        help="""
        The prefix of this MoonHub's Kueue objects (cluster-wide names: flavors, cohorts,
        users' queues), so that two MoonHubs can share a cluster (spawner.queue_prefix).
        """,
    )
    package_index = Unicode(
        "",
        config=True,
        help="""
        The PyPI-style simple index users' servers install packages from (their pip's
        PIP_INDEX_URL: the platform's caching proxy; spawner.package_index). Empty: none.
        """,
    )
    storage_class_override = Unicode(
        "",
        config=True,
        help="Use this StorageClass instead of the catalog's (e.g. `local-path` on the local cluster).",
    )
    hub_id = Unicode(
        "",
        config=True,
        help="""
        This hub's id, put on its server pods (label moonhub.io/hub) so that it finds the pods
        none of its servers stands for and removes them (spawner_ext/orphans.py), and never
        touches another hub's. The hub's configuration derives it from hub.public_url.
        Empty: pods are not labelled and none is removed.
        """,
    )
    orphan_pod_grace = Integer(
        600,
        config=True,
        help="""
        Seconds a labelled server pod must have existed before it can be taken for an orphan
        (no server of this hub starting, running or stopping for its user and name); it is
        removed when found so on two checks in a row. 0: never.
        """,
    )
    server_claim_key = Unicode(
        "",
        config=True,
        help="""
        The key (hex) that signs the hub's claim when it asks the jobs service for the secrets
        a user gives to their server (moonhub_core.server_claim); the hub's configuration
        derives it from the jobs service's API token. Empty: ask with the server's token, which
        the service checks with the hub (one more hub request per spawn).
        """,
    )

    # ---- spawning ----------------------------------------------------------------------
    async def load_user_options(self) -> None:
        """Validate ``user_options`` (form or REST) and apply the workload; nothing is
        created when this raises. A cluster that does not answer is a 503 that says so
        (not a bare 500)."""
        try:
            await self._load_user_options()
        except (aiohttp.ClientError, OSError, TimeoutError, ApiException) as e:
            if isinstance(e, ApiException) and not _cluster_is_away(e):
                raise
            raise web.HTTPError(503, _cluster_away(e)) from None

    async def _load_user_options(self) -> None:
        cat, ok = self.catalog, self.allowed()
        raw = dict(self.user_options or {})  # type: ignore[has-type]
        wait = queue_wait.wants_to_wait(raw.pop(queue_wait.OPTION, None))
        raw_size = raw.pop(workspaces.SIZE_OPTION, None)
        groups = [g.name for g in self.user.groups]
        took = Stopwatch()
        own = None
        try:
            own_id = own_images.parse(raw.pop(own_images.OPTION, None))
            if own_id is not None:  # an image the user built: on the environment it was built on
                own = own_images.pick(await took.time("images", self.own_images()), own_id, raw.get("environment"))
                raw["environment"] = own["base"]
            choice = ch.parse(raw, cat, ok)
            building = self.building(cat).get(choice.environment)
            if building:
                env = cat.environment(choice.environment)
                shown = env.display_name if env else choice.environment
                raise NotReady("environment", f"{shown} is not ready: {building}; pick it once it is")
        except ChoiceError as e:
            self._refused(e)
        # the two reads a spawn may wait for go out together: the secrets from the jobs
        # service (they do not depend on the choices) and, only when a size is asked for, the
        # workspace's size now (a workspace grows, never shrinks)
        secrets = asyncio.ensure_future(took.time("secrets", self.wanted_secrets()))
        try:
            current = None
            try:
                if raw_size not in (None, "", []):
                    current = await took.time("workspace", claims.size_of(self.api, self.namespace, self.pvc_name))
                size = workspaces.parse_size(raw_size, ok.workspace_sizes, current)
            except ChoiceError as e:
                self._refused(e)
            self.user_options = {
                **choice.as_options(),
                **({own_images.OPTION: own["id"]} if own else {}),
                **({queue_wait.OPTION: True} if wait else {}),
                **({workspaces.SIZE_OPTION: size} if size else {}),
            }
            self.apply_workload(build(cat, choice, self.pvc_name, groups, package_index=self.package_index), cat)
            if own:  # everything of its environment but the image, which is the build's, by digest
                self.image = own["image"]
                self.extra_labels = {**self.extra_labels, own_images.LABEL: str(own["id"])}  # type: ignore[has-type]
            # who the pod runs as is the workspace's uid, known once the claim exists
            self._chosen = (cat, choice, groups)
            self.apply_secrets(await secrets)
        finally:
            secrets.cancel()  # (when the workspace read failed: not left running)
        if size:  # a new workspace is made at this size; an existing one grows to it
            self.storage_capacity = size
            if await took.time("grow", claims.grow(self.api, self.namespace, self.pvc_name, size, current)):
                self.log.info("%s: workspace grows from %s to %s", self._log_name, current, size)
        await took.time(
            "team folders",
            claims.ensure_team_folders(self.api, self.namespace, cat.storage, groups, str(self.storage_class)),  # type: ignore[has-type]
        )
        # every server is admitted by Kueue, in the user's queue: their GPU maximum, their
        # CPU, memory and pods bounds and their team's quotas hold atomically however many
        # spawns and job runs arrive at once
        self.queue_message = ""
        self.user_queue = await took.time(
            "queue", self.queues.ensure_user(cat, self.user.name, groups, bool(self.user.admin), self.namespace)
        )
        if self._queue_known is not None:
            self._queue_known.set()
        labels: dict[str, str] = dict(self.extra_labels)
        self.extra_labels = {
            **labels,
            **queue_objects.queue_labels(self.user.name, server=True, prefix=self.queue_prefix),
        }
        self.log.info("spawning %s with %s (checks: %s)", self._log_name, choice, took)

    def _refused(self, e: ChoiceError) -> NoReturn:
        self.log.warning("spawn of %s refused: %s", self._log_name, e)
        metrics.SPAWN_FAILURES.labels(reason=_reason(e)).inc()
        raise web.HTTPError(e.status, str(e)) from None

    @property
    def queues(self) -> Queues:
        """Kueue's objects through the spawner's API client (one per hub)."""
        api_client = self.api.api_client
        found = _QUEUES.get((id(api_client), self.queue_prefix))
        if found is None:
            found = _QUEUES[(id(api_client), self.queue_prefix)] = Queues(api_client, self.queue_prefix)
        return found

    def apply_workload(self, w: Workload, cat: Catalog) -> None:
        """Set the traits the workload decides. The configured env and labels are kept aside
        once, so that a later spawn with other choices starts again from them."""
        env, labels = self._configured_traits()
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
        self.extra_labels = {**labels, **w.labels, **({orphans.LABEL: self.hub_id} if self.hub_id else {})}
        self.pod_security_context = dict(w.pod_security_context)
        self.container_security_context = dict(w.container_security_context)
        st = cat.storage
        self.storage_class = self.storage_class_override or st.storage_class
        self.storage_capacity = st.capacity
        self.storage_access_modes = [st.access_mode]

    def _configured_traits(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The configured environment and labels, kept aside at the first spawn (each spawn
        then starts again from them, whatever the last one added)."""
        if not hasattr(self, "_configured"):
            self._configured = (dict(self.environment), dict(self.extra_labels))
        return self._configured

    async def wanted_secrets(self) -> list[Any]:
        """The secrets the user gives to their server (read from the jobs service)."""
        jobs_url = str(self._configured_traits()[0].get("MOONHUB_JOBS_URL", ""))
        token = str(self.api_token or "")
        return await server_secrets.wanted(jobs_url, self.user.name, self.server_claim_key, token, self.log)

    async def own_images(self) -> list[dict[str, Any]]:
        """The user's images built from their environments that are ready to run."""
        jobs_url = str(self._configured_traits()[0].get("MOONHUB_JOBS_URL", ""))
        token = str(self.api_token or "")
        return await own_images.ready(jobs_url, self.user.name, self.server_claim_key, token, self.log)

    def apply_secrets(self, uses: list[Any]) -> None:
        """Give the pod the secrets ``uses`` names, by reference (never their values)."""
        env, volumes, mounts = server_secrets.pod_parts(uses, self.user.name)
        self.environment = {**self.environment, **env}
        self.volumes, self.volume_mounts = [*self.volumes, *volumes], [*self.volume_mounts, *mounts]

    # ---- the shared reflectors ---------------------------------------------------------
    async def _start_watching_pods(self, replace: bool = False) -> Any:
        # KubeSpawner's pod reflector (the same selector), resuming its watch rather than
        # listing every server pod again each 10 s (``resuming_reflector``)
        found = await self._start_reflector(
            kind="pods",
            reflector_class=ResumingPodReflector,
            labels={"component": self.component_label},
            omit_namespace=self.enable_user_namespaces,
            replace=replace,
        )
        reflector_watch.keep(self.__class__.reflectors, self.log)  # through API server outages
        if self.hub_id and self.orphan_pod_grace > 0:  # pods no server of this hub stands for
            sweeper = orphans.Sweeper(self.hub_id, self.namespace, self.orphan_pod_grace, self.log)
            users = self.user.settings.get("users", {})
            key = self._get_reflector_key("pods")
            orphans.keep(sweeper, self.__class__.reflectors, key, self.user.db, users, self.api)
        return found

    async def _start_watching_events(self, replace: bool = False) -> Any:
        found = await self._start_reflector(
            kind="events",
            reflector_class=ResumingEventReflector,
            fields={"involvedObject.kind": "Pod"},
            omit_namespace=self.enable_user_namespaces,
            replace=replace,
        )
        reflector_watch.keep(self.__class__.reflectors, self.log)
        return found

    async def _watch_workloads(self) -> ResumingWorkloadReflector:
        """The namespace's Kueue Workloads, watched from the first spawn Kueue gates on
        (``workload_watch``), and kept through API server outages as the pods are."""
        key = ("workloads", self.namespace)  # Workloads live in their pod's namespace

        def make() -> ResumingWorkloadReflector:
            return ResumingWorkloadReflector(parent=self, namespace=self.namespace)

        found = await workload_watch.shared(self.__class__.reflectors, key, make)
        reflector_watch.keep(self.__class__.reflectors, self.log)
        return found

    async def _make_create_pod_request(self, pod: Any, request_timeout: float) -> bool:
        """Create the server's pod; False asks KubeSpawner's back-off for another try.

        As KubeSpawner's, but the created pod that the API server sends back is not decoded
        into client models (nothing reads it: the pod reflector sees the pod), which was
        2-3 % of the hub's CPU a spawn at 1,000 spawns (docs/performance.md), and a refusal
        is logged by its reason, not with the whole pod (whose environment holds the
        server's hub token)."""
        name = pod.metadata.name
        self.log.info("%s: creating pod %s (timeout %s s)", self._log_name, name, request_timeout)
        call = self.api.create_namespaced_pod(self.namespace, pod, _preload_content=False)
        try:
            await asyncio.wait_for(unread.body(call), request_timeout)
            return True
        except TimeoutError:
            return False  # asked again
        except ApiException as e:
            if e.status != 409:
                self.log.error("%s: pod %s refused: %s %s", self._log_name, name, e.status, e.reason)
                raise
        # a pod of that name is left from before: remove it, then try again
        self.log.info("%s: pod %s exists already; deleting it before another try", self._log_name, name)
        await self.stop(True)
        return False

    async def _start(self) -> Any:
        """KubeSpawner's start, raced against a watch for failures that will not resolve and
        a prompt check that the server answers (``readiness``)."""
        await self._start_watching_pods()
        self.user_queue = None  # set by load_user_options, which then sets this
        self._queue_known = asyncio.Event()
        key = f"{self.namespace}/{self.pod_name}"
        old = self.pod_reflector.pods.get(key)
        stale = {old["metadata"]["uid"]} if old else set()
        start = asyncio.ensure_future(super()._start())
        guard = asyncio.ensure_future(
            queue_wait.first_failure(
                failfast.first_failure(
                    lambda: self.pod_reflector.pods.get(key),
                    lambda: str((self.user_options or {}).get("environment", "?")),
                    self._gpu_shortage,
                ),
                self._not_admitted(key),
            )
        )
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
                if _cluster_is_away(e):  # what the user is told: a 503 that says so, not a bare 500
                    raise web.HTTPError(503, _cluster_away(e)) from None
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
        over_quota = message.startswith(queue_wait.REFUSALS)
        if not over_quota:
            metrics.SPAWN_FAILURES.labels(reason="image" if "image" in message.lower() else "unschedulable").inc()
        self.log.warning("spawn of %s failed fast: %s", self._log_name, message)
        await self.stop(now=True)
        # over quota: the same status as any refused choice; otherwise the cluster can not now
        raise web.HTTPError(403 if over_quota else 503, message)

    async def _not_admitted(self, key: str) -> str:
        """Ends with the refusal when Kueue can not admit the server now and the user did not
        choose to wait; while it waits, its place is shown on the spawn page."""
        # the options are validated (and the queue written) after this watch starts
        known = self._queue_known
        if known is not None:
            await known.wait()
        uq = self.user_queue
        while uq is None:  # (load_user_options always writes it before it says so)
            await asyncio.Event().wait()
        wait = bool((self.user_options or {}).get(queue_wait.OPTION))
        message = await queue_wait.refusal(
            self.queues,
            self.namespace,
            lambda: self.pod_reflector.pods.get(key),
            uq,
            wait,
            self._queued,
            self._watch_workloads,
            lambda timeout: self.pod_reflector.next_change(timeout),  # (the reflector in use then)
        )
        metrics.SPAWN_FAILURES.labels(reason="over_quota").inc()
        return message

    def _queued(self, text: str) -> None:
        self.queue_message = text
        self.log.info("%s waits in its queue: %s", self._log_name, text)

    async def progress(self) -> Any:
        """KubeSpawner's progress, with the server's place in its GPU queue while it waits."""
        async for event in queue_wait.with_queue_messages(
            super().progress(), lambda: getattr(self, "queue_message", "")
        ):
            yield event

    async def _gpu_shortage(self, scheduler_says: str) -> str:
        """Why the pod can not be placed, with the free GPUs of the type asked for."""
        opts, cat = self.user_options or {}, self.catalog
        gpu = cat.gpu_type(opts.get("gpu_type") or "")
        want = int(opts.get("gpu_count") or 0)
        capacity = (await self.gpu_capacity(cat, fresh=True)).get(gpu.name) if gpu and want else None
        return failfast.explain(scheduler_says, gpu, want, capacity)

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

    # ---- defaults: storage, service account, networking --------------------------------
    # (the security context is the workload's: ``moonhub_core.security``, applied per spawn)
    @default("pvc_name_template")
    def _default_pvc_name_template(self) -> str:
        per_server = self.catalog.storage.named_servers == "per_server"
        return "claim-{user_server}" if per_server else "claim-{username}"

    @default("automount_service_account_token")
    def _default_automount(self) -> bool:
        return False

    @default("storage_pvc_ensure")
    def _default_pvc_ensure(self) -> bool:
        return True

    @default("ip")
    def _default_ip(self) -> str:
        # the server listens in its pod's own network namespace; the hub reaches it at the pod IP
        return "0.0.0.0"


_QUEUES: dict[tuple[int, str], Queues] = {}
T = TypeVar("T")


class Stopwatch:
    """How long each of a spawn's checks took, for its log line (``workspace 12 ms, ...``)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    async def time(self, what: str, call: Awaitable[T]) -> T:
        t0 = time.monotonic()
        try:
            return await call
        finally:
            self.ms[what] = (time.monotonic() - t0) * 1000

    def __str__(self) -> str:
        return ", ".join(f"{what} {ms:.0f} ms" for what, ms in self.ms.items()) or "none"


def _cluster_is_away(e: BaseException) -> bool:
    """The API server could not be reached or failed (not a refusal, not a slow start)."""
    if isinstance(e, ApiException):
        return not e.status or e.status >= 500
    return isinstance(e, (aiohttp.ClientError, ConnectionError)) or (
        isinstance(e, OSError) and not isinstance(e, TimeoutError)
    )


def _cluster_away(e: Exception) -> str:
    what = getattr(e, "reason", None) or str(e) or type(e).__name__
    return f"The cluster does not answer now ({what}); nothing was started. Try again in a minute."


def _reason(e: ChoiceError) -> str:
    """``NotEntitled`` -> ``not_entitled``: the failure reason label."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in type(e).__name__).lstrip("_")
