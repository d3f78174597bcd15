"""The catalog's GPU budgets as Kueue objects (pure): who may hold how many GPUs is decided
by Kueue's admission, atomically, for servers and job runs alike.

The tree (Kueue's hierarchical cohorts; ``docs/queues.md`` says why this shape)::

    Cohort moonhub                     the cluster: every GPU type's physical count, and
    │                                  the GPUs no team owns (a pool anyone may borrow)
    ├── Cohort moonhub-team-<group>    a team: its quota of GPUs of any type, and how many
    │   │                              more it may borrow from idle ones elsewhere
    │   └── ClusterQueue moonhub-user-<user>    one per user: nothing of its own; it may
    │                                           borrow up to the user's maximum
    └── ClusterQueue moonhub-user-<user>        a user in no team

Two resources are counted. ``nvidia.com/gpu`` per GPU type (one ResourceFlavor per catalog
GPU type, with its node labels), so nothing is admitted that no node could hold; and
``moonhub.io/gpus``, every GPU whatever its type (Kueue's resource transformation copies
the request, :data:`KUEUE_CONFIGURATION`), which carries the budgets: a team's quota and a
user's maximum hold across GPU types, as the catalog says. A user's queue lists only the GPU
types they are entitled to.

CPU, memory and pods are counted too, for every server and every run (CPU or GPU): one
ResourceFlavor without node labels (:func:`compute_flavor`) in every queue and cohort. The
cluster cohort lends them without a practical bound (the scheduler places pods on nodes);
what binds are a user's bounds (the catalog's ``max_per_user``: their queue's borrowing
limit) and their team's (``group_compute_quotas``: the team cohort's own quota, which it
never exceeds by borrowing).

Servers and job runs have their own priority (:data:`SERVER_PRIORITY` above
:data:`JOB_PRIORITY`). By default a queue reclaims borrowed GPUs only from lower priorities
(Kueue's ``LowerPriority``): a team's server takes its GPUs back from other teams' borrowed
job runs (the Job is suspended and runs again when admitted), and no server is ever
preempted. With ``preempt_borrowed_servers`` the catalog asks for ``Any``: whatever runs on
borrowed GPUs gives them back, lowest priority first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubespawner.slugs import safe_slug

from .catalog import Catalog, Compute
from .choices import allowed
from .pods import GPU_RESOURCE, PREFIX

API = "kueue.x-k8s.io/v1beta2"
GROUP, VERSION = API.split("/")
#: every GPU whatever its type: the budgets' resource (Kueue adds it from nvidia.com/gpu)
BUDGET_RESOURCE = f"{PREFIX}gpus"
#: the names of one MoonHub's Kueue objects start with its prefix (``spawner.queue_prefix``):
#: they are cluster-wide, and two MoonHubs may share a cluster
DEFAULT_PREFIX = "moonhub"
#: what Kueue counts for every workload besides GPUs (a pod counts 1 of ``pods``)
COMPUTE = ("cpu", "memory", "pods")
#: what the cluster cohort lends: more than any cluster has; the scheduler places the pods
UNBOUNDED = {"cpu": "1000000", "memory": "1000000Gi", "pods": "1000000"}
#: labels Kueue reads on a Job or Pod
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
#: the label on every Kueue object a MoonHub manages (its value: that MoonHub's prefix)
MANAGED = f"{PREFIX}queue"
#: on a user's ClusterQueue: the hub user and their groups when it was last written
USER_ANNOTATION = f"{PREFIX}user"
GROUPS_ANNOTATION = f"{PREFIX}groups"
ADMIN_ANNOTATION = f"{PREFIX}admin"
TEAM_LABEL = f"{PREFIX}team"
#: on a team's Cohort: the group's name as the catalog spells it
GROUP_ANNOTATION = f"{PREFIX}group"

SERVER_PRIORITY = "moonhub-server"
JOB_PRIORITY = "moonhub-job"

#: what Kueue's own configuration must say for MoonHub (the local cluster writes it into
#: Kueue's ConfigMap; operators merge it into theirs, docs/queues.md): Jobs and plain Pods
#: are managed when they name a queue; local storage and huge pages are left to the
#: scheduler (CPU, memory and pods are counted); every GPU also counts as a ``moonhub.io/gpus``
KUEUE_CONFIGURATION: dict[str, Any] = {
    "manageJobsWithoutQueueName": False,
    "integrations": {"frameworks": ["batch/job", "pod"]},
    "resources": {
        "excludeResourcePrefixes": ["ephemeral-storage", "hugepages-"],
        "transformations": [{"input": GPU_RESOURCE, "strategy": "Retain", "outputs": {BUDGET_RESOURCE: "1"}}],
    },
}


def root_cohort_name(prefix: str = DEFAULT_PREFIX) -> str:
    return prefix


def budget_flavor(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-gpus"


def compute_flavor(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-compute"


def flavor_name(gpu_type: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-gpu-{safe_slug(gpu_type, max_length=30)}"


def team_cohort(group: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-team-{safe_slug(group, max_length=30)}"


def user_cluster_queue(user: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-user-{safe_slug(user, max_length=30)}"


def user_local_queue(user: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The LocalQueue (in the users' namespace) a user's GPU pods and Jobs name."""
    return f"{prefix}-gpus-{safe_slug(user, max_length=30)}"


def team_of(catalog: Catalog, groups: Iterable[str]) -> str | None:
    """The group whose quotas a user's work counts against: the first of
    ``group_gpu_quotas``, then of ``group_compute_quotas``, they belong to (admins order
    those lists), or None (the shared pool)."""
    mine = set(groups)
    return next((g for g in catalog.teams if g in mine), None)


def _meta(name: str, prefix: str, **extra: str) -> dict[str, Any]:
    return {"name": name, "labels": {MANAGED: prefix, **extra}}


def _quota(resource: str, nominal: int, borrowing: int | None = None) -> dict[str, Any]:
    q: dict[str, Any] = {"name": resource, "nominalQuota": str(max(0, nominal))}
    if borrowing is not None:
        q["borrowingLimit"] = str(max(0, borrowing))
    return q


def _budget_group(prefix: str, nominal: int, borrowing: int | None = None) -> dict[str, Any]:
    return {
        "coveredResources": [BUDGET_RESOURCE],
        "flavors": [{"name": budget_flavor(prefix), "resources": [_quota(BUDGET_RESOURCE, nominal, borrowing)]}],
    }


def _compute_group(prefix: str, nominal: Mapping[str, str], borrowing: Compute | None) -> dict[str, Any]:
    """CPU, memory and pods in the compute flavor: ``nominal`` of each (0 when absent), and
    no more borrowed than ``borrowing`` sets (None, or a resource it leaves unset: no bound)."""
    limits = dict(borrowing.items()) if borrowing else {}
    resources = []
    for name in COMPUTE:
        r: dict[str, Any] = {"name": name, "nominalQuota": nominal.get(name, "0")}
        if name in limits:
            r["borrowingLimit"] = limits[name]
        resources.append(r)
    return {"coveredResources": list(COMPUTE), "flavors": [{"name": compute_flavor(prefix), "resources": resources}]}


def flavors(catalog: Catalog, prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """One ResourceFlavor per GPU type (its node labels and tolerations), the budget's and
    the compute one (no node labels: any node)."""
    budget = {"apiVersion": API, "kind": "ResourceFlavor", "metadata": _meta(budget_flavor(prefix), prefix)}
    compute = {"apiVersion": API, "kind": "ResourceFlavor", "metadata": _meta(compute_flavor(prefix), prefix)}
    out = [{**budget, "spec": {}}, {**compute, "spec": {}}]
    for g in catalog.gpu_types:
        spec: dict[str, Any] = {"nodeLabels": dict(g.node_selector)}
        if g.tolerations:
            spec["tolerations"] = [dict(t) for t in g.tolerations]
        meta = _meta(flavor_name(g.name, prefix), prefix)
        out.append({"apiVersion": API, "kind": "ResourceFlavor", "metadata": meta, "spec": spec})
    return out


def priority_classes() -> list[dict[str, Any]]:
    """Shared by every MoonHub of a cluster (the same names and values)."""
    return [
        {
            "apiVersion": API,
            "kind": "WorkloadPriorityClass",
            "metadata": _meta(name, "shared"),
            "value": value,
            "description": text,
        }
        for name, value, text in (
            (SERVER_PRIORITY, 1000, "MoonHub's interactive servers"),
            (JOB_PRIORITY, 100, "MoonHub's job runs: preempted first when a team takes its GPUs back"),
        )
    ]


def root_cohort(catalog: Catalog, physical: Mapping[str, int], prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """The cluster: each GPU type's count (``physical``: type name -> GPUs the nodes have),
    and the GPUs no team's quota claims, as a pool anyone may borrow."""
    owned = {g.name: sum(t.get(g.name, 0) for t in catalog.group_gpu_type_quotas.values()) for g in catalog.gpu_types}
    per_type = {
        "coveredResources": [GPU_RESOURCE],
        "flavors": [
            {
                "name": flavor_name(g.name, prefix),
                # what no team owns by type; the teams' own are their cohorts' nominal quota
                "resources": [_quota(GPU_RESOURCE, physical.get(g.name, 0) - owned[g.name])],
            }
            for g in catalog.gpu_types
        ],
    }
    pool = sum(physical.values()) - sum(catalog.group_gpu_quotas.values())
    pooled = _budget_group(prefix, pool)
    groups = [per_type, pooled] if catalog.gpu_types else [pooled]
    groups.append(_compute_group(prefix, UNBOUNDED, None))
    meta = _meta(root_cohort_name(prefix), prefix)
    return {"apiVersion": API, "kind": "Cohort", "metadata": meta, "spec": {"resourceGroups": groups}}


def team_cohorts(catalog: Catalog, prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """One Cohort per group with a quota: it owns its GPU quota and may borrow up to its
    limit; it owns its CPU, memory and pods (``group_compute_quotas``) and borrows none. A
    group with no GPU quota borrows GPUs from the pool like a user in no team."""
    return [
        {
            "apiVersion": API,
            "kind": "Cohort",
            "metadata": {
                **_meta(team_cohort(group, prefix), prefix, **{TEAM_LABEL: safe_slug(group, max_length=60)}),
                "annotations": {GROUP_ANNOTATION: group},
            },
            "spec": {
                "parentName": root_cohort_name(prefix),
                "resourceGroups": [
                    _team_budget(catalog, group, prefix),
                    *_owned_types(catalog, group, prefix),
                    _team_compute(catalog.group_compute_quotas.get(group), prefix),
                ],
            },
        }
        for group in catalog.teams
    ]


def _team_compute(bound: Compute | None, prefix: str) -> dict[str, Any]:
    """A team's CPU, memory and pods are its own (nominal quota: its bound, or what the
    cluster lends when it has none), and it borrows none: a team's member that reclaims its
    GPUs from another team is then not borrowing anything else, which Kueue requires of a
    preemptor (``borrowWithinCohort`` is never set)."""
    own = {**UNBOUNDED, **dict(bound.items())} if bound else dict(UNBOUNDED)
    return _compute_group(prefix, own, Compute(cpu=0, memory="0", pods=0))


def _team_budget(catalog: Catalog, group: str, prefix: str) -> dict[str, Any]:
    if group not in catalog.group_gpu_quotas:
        return _budget_group(prefix, 0)  # no GPU quota: the pool's, first come first served
    return _budget_group(prefix, catalog.group_gpu_quotas[group], catalog.group_gpu_borrowing_limits.get(group, 0))


def _owned_types(catalog: Catalog, group: str, prefix: str) -> list[dict[str, Any]]:
    """The GPUs of given types a team owns (``group_gpu_type_quotas``): Kueue lets the team
    take them back from borrowers, because its part of the tree holds them."""
    per_type = catalog.group_gpu_type_quotas.get(group) or {}
    if not per_type:
        return []
    return [
        {
            "coveredResources": [GPU_RESOURCE],
            "flavors": [
                {"name": flavor_name(name, prefix), "resources": [_quota(GPU_RESOURCE, n)]}
                for name, n in per_type.items()
            ],
        }
    ]


def shared_objects(catalog: Catalog, physical: Mapping[str, int], prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """Everything that depends on the catalog and the nodes only (not on users)."""
    return [
        *flavors(catalog, prefix),
        *priority_classes(),
        root_cohort(catalog, physical, prefix),
        *team_cohorts(catalog, prefix),
    ]


@dataclass(frozen=True)
class UserQueue:
    cluster_queue: dict[str, Any]
    local_queue: dict[str, Any]
    team: str | None
    max_gpus: int
    max_per_user: Compute = field(default_factory=Compute)


def user_queue(
    catalog: Catalog, user: str, groups: Iterable[str], admin: bool, namespace: str, prefix: str = DEFAULT_PREFIX
) -> UserQueue:
    """A user's ClusterQueue (their GPU maximum and GPU types, their CPU, memory and pods
    bounds, in their team's cohort) and the LocalQueue all their pods and Jobs name."""
    groups = sorted(set(groups))
    ok = allowed(catalog, groups, admin)
    team = team_of(catalog, groups)
    per_type = {
        "coveredResources": [GPU_RESOURCE],
        "flavors": [
            {"name": flavor_name(g.name, prefix), "resources": [_quota(GPU_RESOURCE, 0)]} for g in ok.gpu_types
        ],
    }
    resource_groups = [per_type, _budget_group(prefix, 0, ok.max_gpus_per_user)] if ok.gpu_types else []
    resource_groups.append(_compute_group(prefix, {}, ok.max_per_user))
    name = user_cluster_queue(user, prefix)
    meta = _meta(name, prefix, **({TEAM_LABEL: safe_slug(team, max_length=60)} if team else {}))
    meta["annotations"] = {USER_ANNOTATION: user, GROUPS_ANNOTATION: ",".join(groups), ADMIN_ANNOTATION: str(admin)}
    cq = {
        "apiVersion": API,
        "kind": "ClusterQueue",
        "metadata": meta,
        "spec": {
            "cohortName": team_cohort(team, prefix) if team else root_cohort_name(prefix),
            # LocalQueues are made by the platform only (users have no API access)
            "namespaceSelector": {},
            # every waiting workload is looked at (and told why it waits): with StrictFIFO
            # only the head is, and a spawn behind it could not be refused at once; a
            # smaller request may start before a larger one that does not fit yet
            "queueingStrategy": "BestEffortFIFO",
            "preemption": {
                "reclaimWithinCohort": "Any" if catalog.preempt_borrowed_servers else "LowerPriority",
                "withinClusterQueue": "Never",
            },
            "resourceGroups": resource_groups,
        },
    }
    lq = {
        "apiVersion": API,
        "kind": "LocalQueue",
        "metadata": {**_meta(user_local_queue(user, prefix), prefix), "namespace": namespace},
        "spec": {"clusterQueue": name},
    }
    return UserQueue(cq, lq, team, ok.max_gpus_per_user, ok.max_per_user)


def queue_labels(user: str, server: bool, prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """The labels that put a server's pod or a run's Job in the user's queue."""
    return {QUEUE_LABEL: user_local_queue(user, prefix), PRIORITY_LABEL: SERVER_PRIORITY if server else JOB_PRIORITY}
