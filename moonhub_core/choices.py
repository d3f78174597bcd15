"""What a user may choose, and turning raw options (form or REST ``user_options``) into a
validated :class:`Choices`. Pure: no Kubernetes, no JupyterHub."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from .catalog import Catalog, Compute, Environment, GpuType, Size
from .errors import NotEntitled, OverQuota, UnknownChoice

FIELDS = ("environment", "size", "gpu_type", "gpu_count")
#: fields people try to pass that would bypass the catalog; refused with a pointer
RAW_FIELDS = {
    "image": "choose an environment instead",
    "volumes": "volumes come from the catalog",
    "volume_mounts": "volumes come from the catalog",
    "env": "environment variables can not be set at spawn",
    "environment_variables": "environment variables can not be set at spawn",
    "node_selector": "choose a GPU type instead",
    "tolerations": "choose a GPU type instead",
    "profile": "choose an environment, a size and GPUs instead",
}


@dataclass(frozen=True)
class Choices:
    environment: str
    size: str
    gpu_type: str | None = None
    gpu_count: int = 0

    def as_options(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "size": self.size,
            "gpu_type": self.gpu_type or "",
            "gpu_count": self.gpu_count,
        }


@dataclass(frozen=True)
class Allowed:
    """The part of the catalog a user is entitled to."""

    environments: list[Environment]
    sizes: list[Size]
    gpu_types: list[GpuType]
    max_gpus_per_user: int
    #: the groups with a GPU quota this user belongs to (the first is their team: moonhub_core.queue_objects)
    quota_groups: dict[str, int]
    #: the workspace sizes they may choose, smallest first (the catalog's default among them)
    workspace_sizes: list[str] = field(default_factory=list)
    #: CPU, memory and pods they may hold at once (their queue's bounds in Kueue)
    max_per_user: Compute = field(default_factory=Compute)

    def gpu_counts(self, gpu: GpuType) -> list[int]:
        """The counts of ``gpu`` this user may ask for: the type's counts within their limit."""
        return [n for n in gpu.counts if n <= self.max_gpus_per_user]


def allowed(catalog: Catalog, groups: Iterable[str], admin: bool = False) -> Allowed:
    """The union of the entitlements matching ``groups`` (``*`` matches everyone).

    Admins may use everything; their GPUs are limited only by the largest GPU type count.
    """
    groups = set(groups)
    envs = [e for e in catalog.environments if e.enabled]
    if admin:
        most = max((max(g.counts) for g in catalog.gpu_types), default=0)
        every = [s for ent in catalog.entitlements for s in ent.workspace_sizes]
        return Allowed(
            envs, list(catalog.sizes), list(catalog.gpu_types), most, {}, _sizes(catalog.storage.capacity, every)
        )
    matching = [ent for ent in catalog.entitlements if "*" in ent.groups or groups & set(ent.groups)]

    def names(attr: str) -> set[str]:
        return {n for ent in matching for n in getattr(ent, attr)}

    def pick(items: list[Any], attr: str) -> list[Any]:
        wanted = names(attr)
        return [x for x in items if ("*" in wanted or x.name in wanted) and (not x.groups or groups & set(x.groups))]

    quotas = {g: q for g, q in catalog.group_gpu_quotas.items() if g in groups}
    return Allowed(
        environments=pick(envs, "environments"),
        sizes=pick(list(catalog.sizes), "sizes"),
        gpu_types=pick(list(catalog.gpu_types), "gpu_types"),
        max_gpus_per_user=max((ent.max_gpus_per_user for ent in matching), default=0),
        quota_groups=quotas,
        workspace_sizes=_sizes(catalog.storage.capacity, [s for ent in matching for s in ent.workspace_sizes]),
        max_per_user=_largest([ent.max_per_user for ent in matching]),
    )


def _largest(bounds: list[Compute]) -> Compute:
    """The most generous of several entitlements' bounds, per resource (an unset one is no
    bound, so it wins); a user no entitlement matches may hold nothing."""
    if not bounds:
        return Compute(cpu=None, memory=None, pods=0)

    def most(values: list[Any], key: Any = None) -> Any:
        return None if any(v is None for v in values) else max(values, key=key)

    return Compute(
        cpu=most([b.cpu for b in bounds]),
        memory=most([b.memory for b in bounds], key=parse_quantity),
        pods=most([b.pods for b in bounds]),
    )


def never_fits(size: Size, bound: Compute) -> str | None:
    """Why one pod of ``size`` is more than ``bound`` holds in all (None: it can fit)."""
    if bound.cpu is not None and size.cpu_guarantee > bound.cpu:
        return f"it guarantees {size.cpu_guarantee:g} CPUs; you may hold at most {bound.cpu:g} at once"
    if bound.memory is not None and parse_quantity(size.memory_guarantee) > parse_quantity(bound.memory):
        return f"it guarantees {size.memory_guarantee} of memory; you may hold at most {bound.memory} at once"
    if bound.pods is not None and bound.pods < 1:
        return "you may not start servers or runs (no entitlement gives you any)"
    return None


def _sizes(default: str, more: Iterable[str]) -> list[str]:
    """``default`` and ``more``, one of each amount, smallest first."""
    by_bytes: dict[int, str] = {}
    for s in [default, *more]:
        by_bytes.setdefault(int(parse_quantity(s)), s)
    return [by_bytes[b] for b in sorted(by_bytes)]


def _first(raw: Mapping[str, Any], key: str) -> Any:
    value = raw.get(key)
    if isinstance(value, list):  # HTML forms give lists
        value = value[0] if value else None
    return value


def parse(raw: Mapping[str, Any], catalog: Catalog, ok: Allowed) -> Choices:
    """Validate raw options against the catalog and the user's entitlements."""
    for key in raw:
        if key in RAW_FIELDS:
            raise UnknownChoice(key, f"is not accepted: {RAW_FIELDS[key]}")
        if key not in FIELDS:
            raise UnknownChoice(key, f"unknown option (accepted: {', '.join(FIELDS)})")
    env_name = _first(raw, "environment") or catalog.default_environment.name
    size_name = _first(raw, "size") or catalog.default_size.name
    gpu_name = _first(raw, "gpu_type") or None
    count_raw = _first(raw, "gpu_count")
    for name, value in (("environment", env_name), ("size", size_name), ("gpu_type", gpu_name)):
        if value is not None and not isinstance(value, str):
            raise UnknownChoice(name, f"must be a name, not {value!r}")

    env = catalog.environment(env_name)
    if env is None:
        raise UnknownChoice(
            "environment",
            f"no environment named {env_name!r} in the catalog (an admin may have removed it): pick another",
        )
    if env not in ok.environments:
        raise NotEntitled("environment", f"your groups may not use {env.display_name!r}")
    size = catalog.size(size_name)
    if size is None:
        raise UnknownChoice(
            "size", f"no size named {size_name!r} in the catalog (an admin may have removed it): pick another"
        )
    if size not in ok.sizes:
        raise NotEntitled("size", f"your groups may not use size {size.display_name!r}")
    too_big = never_fits(size, ok.max_per_user)
    if too_big:
        raise OverQuota("size", f"size {size.display_name!r} can not start: {too_big}")

    try:
        count = int(count_raw) if count_raw not in (None, "") else (1 if gpu_name else 0)
    except (TypeError, ValueError):
        raise UnknownChoice("gpu_count", f"must be a whole number, not {count_raw!r}") from None
    if isinstance(count_raw, bool) or count < 0:
        raise UnknownChoice("gpu_count", f"must be a whole number, not {count_raw!r}")
    if gpu_name is None:
        if count:
            raise UnknownChoice("gpu_count", "choose a GPU type to ask for GPUs")
        return Choices(env.name, size.name)
    gpu = catalog.gpu_type(gpu_name)
    if gpu is None:
        raise UnknownChoice(
            "gpu_type", f"no GPU type named {gpu_name!r} in the catalog (an admin may have removed it): pick another"
        )
    if gpu not in ok.gpu_types:
        raise NotEntitled("gpu_type", f"your groups may not use {gpu.display_name} GPUs")
    if count == 0:
        return Choices(env.name, size.name)
    if count not in gpu.counts:
        raise UnknownChoice(
            "gpu_count", f"{gpu.display_name} comes in {', '.join(map(str, gpu.counts))} GPUs, not {count}"
        )
    if not env.cuda:
        raise UnknownChoice("environment", f"{env.display_name!r} has no CUDA: pick a GPU environment to use GPUs")
    if count > ok.max_gpus_per_user:
        # what the user may hold at all; whether it is free now is Kueue's to decide
        raise OverQuota("gpu_count", f"you may hold at most {ok.max_gpus_per_user} GPUs at once, not {count}")
    return Choices(env.name, size.name, gpu.name, count)
