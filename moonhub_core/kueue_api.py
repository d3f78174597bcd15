"""Kueue's API in the cluster: writing the catalog's queues (built by :mod:`.queue_objects`)
and reading admissions back (understood by :mod:`.admissions`).

The hub (for servers) and the jobs service (for runs) call :func:`ensure_user` before they
create a workload (every server and run is queued): it writes the catalog's shared objects
when they changed and the user's ClusterQueue and LocalQueue (their groups now: a user who left a team has their next
workload counted in the right place). :func:`reconcile` rewrites everything, users' queues
included, after a catalog edit or when nodes change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from . import admissions
from . import queue_objects as q
from .admissions import QUOTA_RESERVED, admitted, condition, holds, waiting
from .capacity import gpu_capacity
from .catalog import Catalog
from .errors import Conflict

__all__ = ["Admission", "Queues", "admission"]

log = logging.getLogger("moonhub.queues")

_PLURALS = {
    "ResourceFlavor": "resourceflavors",
    "WorkloadPriorityClass": "workloadpriorityclasses",
    "Cohort": "cohorts",
    "ClusterQueue": "clusterqueues",
    "LocalQueue": "localqueues",
    "Workload": "workloads",
}
#: how long a user's queue written by this process is taken as still there
WRITTEN_FOR = 300.0
#: what reconcile may delete when the catalog no longer has it (never a user's queue)
_PRUNABLE = ("ResourceFlavor", "Cohort")


def physical_gpus(catalog: Catalog, nodes: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """GPUs per catalog type that the cluster's usable nodes have (pure)."""
    return {name: c.total for name, c in gpu_capacity(catalog.gpu_types, list(nodes), []).items()}


def _contains(have: Any, want: Any) -> bool:
    """Whether ``have`` says everything ``want`` says (the API server adds defaults)."""
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(_contains(have.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(map(_contains, have, want))
    return bool(have == want)


def _same(current: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    for key in ("spec", "value", "description"):
        if key in want and not _contains(current.get(key), want[key]):
            return False
    meta, have = want["metadata"], current.get("metadata") or {}
    for key in ("labels", "annotations"):
        if any((have.get(key) or {}).get(k) != v for k, v in (meta.get(key) or {}).items()):
            return False
    return True


def _check_ours(current: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    """Refuse to change an object that is not what ``want`` stands for: another MoonHub's
    (its label names another prefix, or none: not a MoonHub's at all), or another user's
    queue under the same name (the name is checked against the stored owner, not only
    derived)."""
    kind, name = want["kind"], want["metadata"]["name"]
    have_meta, want_meta = current.get("metadata") or {}, want["metadata"]
    have = (have_meta.get("labels") or {}).get(q.MANAGED)
    mine = (want_meta.get("labels") or {}).get(q.MANAGED)
    if have != mine:
        whose = f"labelled {q.MANAGED}={have}" if have else f"without MoonHub's {q.MANAGED} label"
        raise Conflict(
            "spawner.queue_prefix",
            f"Kueue {kind} {name} exists {whose}: it is not this MoonHub's ({mine}); "
            "give this MoonHub a queue_prefix of its own",
        )
    user = (have_meta.get("annotations") or {}).get(q.USER_ANNOTATION)
    wanted = (want_meta.get("annotations") or {}).get(q.USER_ANNOTATION)
    if user and wanted and user != wanted:
        raise Conflict("user", f"Kueue {kind} {name} is the queue of user {user!r}, not of {wanted!r}")


class Queues:
    """Kueue objects through one API client; remembers what it wrote to skip no-op writes."""

    def __init__(self, api_client: client.ApiClient, prefix: str = q.DEFAULT_PREFIX) -> None:
        #: this MoonHub's objects' name prefix and label value (``spawner.queue_prefix``)
        self.prefix = prefix
        # typed loosely: the calls below pass the group/version/(namespace)/plural prefix as one tuple
        self.api: Any = client.CustomObjectsApi(api_client)
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self._shared_key: Any = None
        self._lock = asyncio.Lock()
        #: users' queues as last written, and when: a spawn or run of a user whose queue is
        #: unchanged reads nothing (every server and run is queued: at 2,000 spawns that is
        #: 4,000 reads saved); re-read after :data:`WRITTEN_FOR` seconds, or a reconcile
        self._written: dict[tuple[str, str], tuple[str, float]] = {}

    # ---- generic ---------------------------------------------------------------------
    def _args(self, kind: str, namespace: str | None) -> tuple[Any, ...]:
        return (q.GROUP, q.VERSION, *((namespace,) if namespace else ()), _PLURALS[kind])

    async def _get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        fn = self.api.get_namespaced_custom_object if namespace else self.api.get_cluster_custom_object
        try:
            return dict(await fn(*self._args(kind, namespace), name))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def apply(self, obj: dict[str, Any]) -> None:
        """Create ``obj`` or bring the existing one to it (a conflicting write is retried)."""
        kind, meta = obj["kind"], obj["metadata"]
        ns = meta.get("namespace")
        for _ in range(5):
            current = await self._get(kind, meta["name"], ns)
            if current is not None:
                _check_ours(current, obj)
            try:
                if current is None:
                    create = self.api.create_namespaced_custom_object if ns else self.api.create_cluster_custom_object
                    await create(*self._args(kind, ns), obj)
                elif not _same(current, obj):
                    body = {**current, **{k: v for k, v in obj.items() if k != "metadata"}}
                    body["metadata"] = {
                        **current["metadata"],
                        "labels": {**(current["metadata"].get("labels") or {}), **(meta.get("labels") or {})},
                        "annotations": {
                            **(current["metadata"].get("annotations") or {}),
                            **(meta.get("annotations") or {}),
                        },
                    }
                    replace = (
                        self.api.replace_namespaced_custom_object if ns else self.api.replace_cluster_custom_object
                    )
                    await replace(*self._args(kind, ns), meta["name"], body)
                return
            except ApiException as e:
                if e.status != 409:
                    raise
        raise RuntimeError(f"{kind} {meta['name']}: kept conflicting with other writers")

    async def objects(self, kind: str, namespace: str | None = None, selector: str = "") -> list[dict[str, Any]]:
        if namespace:
            got = await self.api.list_namespaced_custom_object(*self._args(kind, namespace), label_selector=selector)
        else:
            got = await self.api.list_cluster_custom_object(*self._args(kind, None), label_selector=selector)
        return list(got.get("items") or [])

    # ---- MoonHub's objects -------------------------------------------------------------
    async def physical(self, catalog: Catalog) -> dict[str, int]:
        nodes = await self.core.list_node()
        ser = self.api_client.sanitize_for_serialization
        return physical_gpus(catalog, [ser(n) for n in nodes.items])

    async def ensure_shared(self, catalog: Catalog, physical: Mapping[str, int] | None = None) -> None:
        """The flavors, priorities and cohorts, written when the catalog or the nodes changed."""
        physical = dict(physical if physical is not None else await self.physical(catalog))
        key = (id(catalog), tuple(sorted(physical.items())))
        async with self._lock:
            if key == self._shared_key:
                return
            for obj in q.shared_objects(catalog, physical, self.prefix):
                await self.apply(obj)
            self._shared_key = key

    async def ensure_user(
        self, catalog: Catalog, user: str, groups: Iterable[str], admin: bool, namespace: str
    ) -> q.UserQueue:
        await self.ensure_shared(catalog)
        uq = q.user_queue(catalog, user, groups, admin, namespace, self.prefix)
        for obj in (uq.cluster_queue, uq.local_queue):
            key = (obj["kind"], f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}")
            text = json.dumps(obj, sort_keys=True)
            done = self._written.get(key)
            if done and done[0] == text and time.monotonic() - done[1] < WRITTEN_FOR:
                continue
            await self.apply(obj)
            self._written[key] = (text, time.monotonic())
        return uq

    async def reconcile(self, catalog: Catalog) -> int:
        """Everything from the catalog: shared objects, every user's queue (with the groups
        recorded on it), and no flavor or team cohort the catalog dropped. Returns the number
        of users' queues rewritten."""
        self._shared_key = None
        self._written.clear()
        physical = await self.physical(catalog)
        await self.ensure_shared(catalog, physical)
        want = {(o["kind"], o["metadata"]["name"]) for o in q.shared_objects(catalog, physical, self.prefix)}
        for kind in _PRUNABLE:
            for obj in await self.objects(kind, selector=f"{q.MANAGED}={self.prefix}"):
                if (kind, obj["metadata"]["name"]) not in want:
                    log.info("catalog no longer has %s %s: deleting it", kind, obj["metadata"]["name"])
                    try:
                        await self.api.delete_cluster_custom_object(*self._args(kind, None), obj["metadata"]["name"])
                    except ApiException as e:
                        if e.status != 404:
                            raise
        n = 0
        for cq in await self.objects("ClusterQueue", selector=f"{q.MANAGED}={self.prefix}"):
            ann = cq["metadata"].get("annotations") or {}
            user = ann.get(q.USER_ANNOTATION)
            if not user:
                continue
            groups = [g for g in ann.get(q.GROUPS_ANNOTATION, "").split(",") if g]
            admin = ann.get(q.ADMIN_ANNOTATION) == "True"
            want_cq = q.user_queue(catalog, user, groups, admin, "-", self.prefix).cluster_queue
            await self.apply(want_cq)
            n += 1
        return n

    async def _where(self, user: str, namespace: str) -> _Where:
        """The user's queue, what they and their team hold now (from the admitted Workloads:
        their admission is written at once; the queues' status lags behind it)."""
        cq = await self._get("ClusterQueue", q.user_cluster_queue(user, self.prefix)) or {}
        held: dict[str, dict[str, float]] = {}
        for wl in await self.objects("Workload", namespace):
            if holds(wl):
                sums = held.setdefault(str((wl.get("spec") or {}).get("queueName")), {})
                for name, n in admissions.workload_usage(wl).items():
                    sums[name] = sums.get(name, 0.0) + n
        w = _Where(cq, held.get(q.user_local_queue(user, self.prefix), {}))
        team_slug = ((cq.get("metadata") or {}).get("labels") or {}).get(q.TEAM_LABEL)
        if team_slug:
            w.cohort = await self._get("Cohort", (cq.get("spec") or {}).get("cohortName", "")) or {}
            w.team = ((w.cohort.get("metadata") or {}).get("annotations") or {}).get(q.GROUP_ANNOTATION, team_slug)
            for m in await self.objects("ClusterQueue", selector=f"{q.TEAM_LABEL}={team_slug}"):
                member = (m["metadata"].get("annotations") or {}).get(q.USER_ANNOTATION, "")
                for name, n in held.get(q.user_local_queue(member, self.prefix), {}).items() if member else ():
                    w.team_used[name] = w.team_used.get(name, 0.0) + n
        return w

    async def standing(self, user: str, namespace: str, blocked: Iterable[str] = (q.BUDGET_RESOURCE,)) -> str:
        """Where the user and their team stand now on the ``blocked`` resources (GPUs by
        default; :func:`queues.blocked_by` reads them from Kueue's message)."""
        blocked = list(blocked) or [q.BUDGET_RESOURCE]
        w = await self._where(user, namespace)
        parts = []
        if q.BUDGET_RESOURCE in blocked:
            max_gpus = admissions.budget(w.cq.get("spec") or {})[1] or 0
            used = int(w.mine.get(q.BUDGET_RESOURCE, 0))
            if w.team is None:
                parts.append(admissions.standing_words(max_gpus, used, None, 0, 0))
            else:
                quota, may_borrow = admissions.budget(w.cohort.get("spec") or {})
                t_used = int(w.team_used.get(q.BUDGET_RESOURCE, 0))
                parts.append(admissions.standing_words(max_gpus, used, w.team, quota, t_used, may_borrow or 0))
        for r in (r for r in blocked if r in q.COMPUTE):
            parts.extend(w.words(r))
        return "; ".join(parts)

    async def over_bounds(self, user: str, namespace: str, request: Mapping[str, float]) -> str | None:
        """Why a workload asking ``request`` (:func:`queues.pod_request`) does not fit the
        user's or their team's CPU, memory and pods bounds now (None: it fits)."""
        w = await self._where(user, namespace)
        mine, team = (
            admissions.compute_bounds(w.cq.get("spec") or {}),
            admissions.compute_bounds(w.cohort.get("spec") or {}),
        )
        for r in q.COMPUTE:
            want = request.get(r, 0.0)
            if r in mine and w.mine.get(r, 0.0) + want > mine[r] + 1e-9:
                return "; ".join(w.words(r))
            if w.team and r in team and w.team_used.get(r, 0.0) + want > team[r] + 1e-9:
                return "; ".join(w.words(r))
        return None

    async def view(self, namespace: str) -> list[dict[str, Any]]:
        """Each team's queue as admins see it (``queues.queue_view``)."""
        selector = f"{q.MANAGED}={self.prefix}"
        cohorts = await self.objects("Cohort", selector=selector)
        cqs = await self.objects("ClusterQueue", selector=selector)
        return admissions.queue_view(cohorts, cqs, await self.objects("Workload", namespace), self.prefix)

    # ---- admissions --------------------------------------------------------------------
    async def workload_of(self, namespace: str, owner_uid: str) -> dict[str, Any] | None:
        """The Workload Kueue made for a Job or Pod (by the owner's UID)."""
        found = await self.objects("Workload", namespace, f"kueue.x-k8s.io/job-uid={owner_uid}")
        return found[0] if found else None


@dataclass
class _Where:
    """A user's queue and what they (and their team) hold now, per resource."""

    cq: dict[str, Any]
    mine: dict[str, float]
    team: str | None = None
    cohort: dict[str, Any] = field(default_factory=dict)
    team_used: dict[str, float] = field(default_factory=dict)

    def words(self, resource: str) -> list[str]:
        """The user's and their team's standing on one of CPU, memory and pods (its bounds)."""
        out = []
        mine = admissions.compute_bounds(self.cq.get("spec") or {})
        if resource in mine:
            out.append(admissions.bound_words(resource, self.mine.get(resource, 0.0), mine[resource], "you"))
        team = admissions.compute_bounds(self.cohort.get("spec") or {})
        if self.team and resource in team:
            out.append(admissions.bound_words(resource, self.team_used.get(resource, 0.0), team[resource], self.team))
        return out


@dataclass(frozen=True)
class Admission:
    """Where a workload stands in its queue (pure view of a Workload)."""

    admitted: bool
    #: Kueue's reason it waits (its QuotaReserved condition), or ""
    message: str
    #: 1 = next; 0 when admitted or unknown
    position: int


def _order(wl: Mapping[str, Any]) -> tuple[int, str]:
    prio = int((wl.get("spec") or {}).get("priority") or 0)
    return (-prio, str(wl["metadata"].get("creationTimestamp") or ""))


def admission(wl: Mapping[str, Any], peers: Iterable[Mapping[str, Any]]) -> Admission:
    """``wl``'s state; ``peers``: the pending Workloads it competes with (its team's), whose
    order (priority, then age: Kueue's) gives its position (pure)."""
    if admitted(wl):
        return Admission(True, "", 0)
    c = condition(wl, QUOTA_RESERVED) or {}
    pending = {str(p["metadata"].get("uid")): p for p in [*peers, wl] if waiting(p)}
    order = sorted(pending.values(), key=_order)
    uid = str(wl["metadata"].get("uid"))
    position = next((i + 1 for i, p in enumerate(order) if str(p["metadata"].get("uid")) == uid), 0)
    return Admission(False, str(c.get("message") or "waiting for Kueue"), position)
