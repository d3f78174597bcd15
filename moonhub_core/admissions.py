"""Reading Kueue's state back (pure): what a queue or cohort may hold and holds, what a
Workload asks for and holds, whether it is admitted, waiting or finished, why it does not
fit, in words for users and in the admins' view of teams. The objects themselves are built
by :mod:`.queue_objects`; :mod:`.kueue_api` reads them from the cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from .pods import GPU_RESOURCE, gpus
from .queue_objects import (
    BUDGET_RESOURCE,
    COMPUTE,
    DEFAULT_PREFIX,
    GROUP_ANNOTATION,
    UNBOUNDED,
    USER_ANNOTATION,
    user_local_queue,
)


def budget(spec: Mapping[str, Any]) -> tuple[int, int | None]:
    """(nominal quota, borrowing limit or None) of the budget resource in a ClusterQueue's or
    Cohort's spec (pure)."""
    for rg in spec.get("resourceGroups") or []:
        for fl in rg.get("flavors") or []:
            for r in fl.get("resources") or []:
                if r.get("name") == BUDGET_RESOURCE:
                    limit = r.get("borrowingLimit")
                    return int(str(r.get("nominalQuota") or "0")), None if limit is None else int(str(limit))
    return 0, None


def reserved(cq: Mapping[str, Any]) -> int:
    """GPUs a ClusterQueue holds now: its budget resource's reservation (pure)."""
    for fl in (cq.get("status") or {}).get("flavorsReservation") or []:
        for r in fl.get("resources") or []:
            if r.get("name") == BUDGET_RESOURCE:
                return int(str(r.get("total") or "0"))
    return 0


def standing_words(max_gpus: int, used: int, team: str | None, quota: int, team_used: int, may_borrow: int = 0) -> str:
    """``ml-research uses 16 of its 16; you use 1 of your 1`` (pure)."""
    mine = f"you use {used} of your {max_gpus}"
    if team is None:
        return mine
    borrowed = f" ({team_used - quota} borrowed, at most {may_borrow})" if team_used > quota else ""
    return f"{team} uses {team_used} of its {quota}{borrowed}; {mine}"


#: the catalog's key for each bound a user's queue holds
BOUND_KEYS = {
    BUDGET_RESOURCE: "max_gpus_per_user",
    "cpu": "max_per_user.cpu",
    "memory": "max_per_user.memory",
    "pods": "max_per_user.pods",
}


def blocked_by(kueue_says: str) -> list[str]:
    """The resources Kueue names in why a workload does not fit (``... quota for cpu in
    flavor ...``), in the order of :data:`BOUND_KEYS` (pure)."""
    named = set(re.findall(r"for (\S+) in flavor", kueue_says))
    if GPU_RESOURCE in named:
        named.add(BUDGET_RESOURCE)
    return [r for r in BOUND_KEYS if r in named]


def workload_usage(wl: Mapping[str, Any]) -> dict[str, float]:
    """What an admitted Workload holds per resource (Kueue's record of its admission; CPU
    in cores, memory in bytes), GPUs as :data:`BUDGET_RESOURCE` (pure)."""
    out: dict[str, float] = {}
    assignments = ((wl.get("status") or {}).get("admission") or {}).get("podSetAssignments") or []
    for psa in assignments:
        usage = psa.get("resourceUsage") or {}
        for name in COMPUTE:
            if name in usage:
                out[name] = out.get(name, 0.0) + float(parse_quantity(usage[name]))
        if "pods" not in usage:
            out["pods"] = out.get("pods", 0.0) + int(psa.get("count") or 1)
    out[BUDGET_RESOURCE] = float(workload_gpus(wl))
    return out


def _amount(resource: str, value: float) -> str:
    if resource == "memory":
        return f"{value / 2**30:.3g} GiB"
    if resource == "cpu":
        return f"{value:g} CPUs"
    noun = "GPU" if resource == BUDGET_RESOURCE else "pod"
    return f"{value:g} {noun}{'' if value == 1 else 's'}"


def bound_words(resource: str, used: float, bound: float, whose: str) -> str:
    """``you hold 20 of your 20 pods (max_per_user.pods)`` (pure)."""
    if whose == "you":
        return f"you hold {_amount(resource, used)} of your {_amount(resource, bound)} ({BOUND_KEYS[resource]})"
    return f"{whose} holds {_amount(resource, used)} of its {_amount(resource, bound)} (group_compute_quotas)"


def pod_request(pod_spec: Mapping[str, Any], count: int = 1) -> dict[str, float]:
    """CPU (cores), memory (bytes) and pods that ``count`` pods of ``pod_spec`` (an API dict)
    request, as Kueue counts them: the containers' sum, or an init container's if larger
    (pure)."""

    def total(containers: Iterable[Mapping[str, Any]], combine: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in containers:
            for name, v in ((c.get("resources") or {}).get("requests") or {}).items():
                if name in ("cpu", "memory"):
                    out[name] = combine(out.get(name, 0.0), float(parse_quantity(v)))
        return out

    main = total(pod_spec.get("containers") or [], lambda a, b: a + b)
    init = total(pod_spec.get("initContainers") or [], max)
    one = {r: max(main.get(r, 0.0), init.get(r, 0.0)) for r in ("cpu", "memory")}
    return {"cpu": one["cpu"] * count, "memory": one["memory"] * count, "pods": float(count)}


def compute_bounds(spec: Mapping[str, Any]) -> dict[str, float]:
    """The bounds on CPU, memory and pods in a queue's or cohort's spec: nominal quota plus
    borrowing limit, where there is a borrowing limit (pure; a resource without one, or
    bounded only by what the cluster lends, is unbounded: absent)."""
    out: dict[str, float] = {}
    for rg in spec.get("resourceGroups") or []:
        for fl in rg.get("flavors") or []:
            for r in fl.get("resources") or []:
                name = r.get("name")
                if name in COMPUTE and r.get("borrowingLimit") is not None:
                    nominal = str(r.get("nominalQuota") or "0")
                    if nominal == UNBOUNDED[name]:
                        continue
                    out[name] = float(parse_quantity(nominal) + parse_quantity(str(r["borrowingLimit"])))
    return out


#: the condition Kueue sets when a workload gets (or can not get) quota
QUOTA_RESERVED = "QuotaReserved"


def condition(wl: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in (wl.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def admitted(wl: Mapping[str, Any]) -> bool:
    c = condition(wl, QUOTA_RESERVED)
    return bool(c and c.get("status") == "True")


def finished(wl: Mapping[str, Any]) -> bool:
    return (condition(wl, "Finished") or {}).get("status") == "True"


def holds(wl: Mapping[str, Any]) -> bool:
    """Admitted and not finished: it holds its GPUs now (a finished Workload keeps its
    admission on record)."""
    return admitted(wl) and not finished(wl)


def waiting(wl: Mapping[str, Any]) -> bool:
    return not admitted(wl) and not finished(wl)


def workload_gpus(wl: Mapping[str, Any]) -> int:
    """The GPUs a Workload asks for: its pod sets' containers' requests times their count."""
    n = 0
    for ps in (wl.get("spec") or {}).get("podSets") or []:
        template = (ps.get("template") or {}).get("spec") or {}
        n += gpus({"spec": template}) * int(ps.get("count") or 1)
    return n


def queue_view(
    cohorts: Iterable[Mapping[str, Any]],
    cluster_queues: Iterable[Mapping[str, Any]],
    workloads: Iterable[Mapping[str, Any]],
    prefix: str = DEFAULT_PREFIX,
) -> list[dict[str, Any]]:
    """Each team, and the users in none, as admins see them (pure): quota, how much more it
    may borrow, GPUs held, borrowed, and the waiting workloads with their owners, oldest
    first. The arguments are one MoonHub's Kueue objects, as API dicts."""
    teams: dict[str, dict[str, Any]] = {}
    for c in cohorts:
        meta = c.get("metadata") or {}
        group = (meta.get("annotations") or {}).get(GROUP_ANNOTATION)
        if group is not None:
            quota, may_borrow = budget(c.get("spec") or {})
            teams[meta["name"]] = {"team": group, "quota": quota, "may_borrow": may_borrow or 0}
    pool = {"team": None, "quota": 0, "may_borrow": 0}
    rows: dict[str | None, dict[str, Any]] = {}
    owner_of: dict[str, tuple[str, str | None]] = {}
    for cq in cluster_queues:
        user = ((cq.get("metadata") or {}).get("annotations") or {}).get(USER_ANNOTATION)
        cohort = (cq.get("spec") or {}).get("cohortName")
        if user:
            owner_of[user_local_queue(user, prefix)] = (user, cohort if cohort in teams else None)
    for wl in sorted(workloads, key=lambda w: str((w.get("metadata") or {}).get("creationTimestamp") or "")):
        found = owner_of.get(str((wl.get("spec") or {}).get("queueName") or ""))
        if found is None or finished(wl) or not workload_gpus(wl):
            continue  # (this view is of GPUs: CPU-only servers and runs are queued too)
        owner, key = found
        row = rows.setdefault(key, {**(teams[key] if key else pool), "used": 0, "waiting": []})
        if admitted(wl):
            row["used"] += workload_gpus(wl)
        else:
            kinds = {o.get("kind") for o in (wl.get("metadata") or {}).get("ownerReferences") or []}
            kind = "server" if "Pod" in kinds else "job run"
            row["waiting"].append({"owner": owner, "gpus": workload_gpus(wl), "kind": kind})
    for key, team in teams.items():
        rows.setdefault(key, {**team, "used": 0, "waiting": []})
    out = list(rows.values())
    for r in out:
        r["borrowed"] = max(0, r["used"] - r["quota"]) if r["team"] else 0
    return sorted(out, key=lambda r: (r["team"] is None, r["team"] or ""))
