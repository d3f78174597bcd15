"""The catalog admins curate: environments, sizes, GPU types, storage and who may use what.

One YAML document (``MoonSpawner.catalog_path``; a ConfigMap in the chart). It is
validated on load; errors name the file, the key path and the problem. :class:`CatalogStore`
re-reads it when it changes and keeps serving the last good version when an edit is broken.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from .typed import DocumentError, load_file

log = logging.getLogger("moonhub.catalog")

#: the example catalog: what a platform document without ``spawner.catalog`` uses
EXAMPLE = Path(__file__).resolve().parent / "examples" / "catalog.yaml"

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


class CatalogError(DocumentError):
    """A catalog that can not be used; the message names the file and the key path."""


@dataclass(frozen=True)
class Environment:
    name: str
    display_name: str
    image: str
    description: str = ""
    #: e.g. ``pytorch`` / ``tensorflow``; empty for a plain Python environment
    framework: str = ""
    framework_version: str = ""
    #: the CUDA version the image's frameworks were built for; empty for CPU-only images
    cuda: str = ""
    default: bool = False
    enabled: bool = True
    #: only members of these groups may use it (on top of the entitlements); empty: no limit
    groups: list[str] = field(default_factory=list)
    #: the image's manifest digest (``sha256:...``) as checked when an admin offered it in
    #: the console; pods then run exactly that image, whatever the tag points at later
    image_digest: str = ""

    @property
    def pinned_image(self) -> str:
        """What pods run: the image by its recorded digest (the tag kept for people), or
        the image as named when no digest is recorded."""
        return f"{self.image}@{self.image_digest}" if self.image_digest else self.image


@dataclass(frozen=True)
class Size:
    name: str
    display_name: str
    cpu_guarantee: float
    cpu_limit: float
    memory_guarantee: str
    memory_limit: str
    description: str = ""
    default: bool = False
    #: only members of these groups may use it (on top of the entitlements); empty: no limit
    groups: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GpuType:
    name: str
    display_name: str
    #: labels a node of this type carries, e.g. ``{nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}``
    node_selector: dict[str, str]
    counts: list[int] = field(default_factory=lambda: [1])
    tolerations: list[dict[str, Any]] = field(default_factory=lambda: [dict(GPU_TOLERATION)])
    description: str = ""
    #: only members of these groups may use it (on top of the entitlements); empty: no limit
    groups: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Dataset:
    """A shared dataset: an existing claim (filled by admins) mounted read-only into servers
    and job runs."""

    name: str
    claim: str
    mount_path: str
    #: only members of these groups get it; empty: everyone
    groups: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TeamFolder:
    """A folder the members of ``group`` share read-write (a ReadWriteMany claim MoonHub
    makes, owned by ``gid`` with mode 2770: other groups' processes can not enter it)."""

    group: str
    #: the Unix group id of the folder; members' pods get it as a supplementary group
    gid: int
    capacity: str = "100Gi"
    #: where it appears in servers and job runs; default ``<storage.mount_path>/teams/<group>``
    mount_path: str = ""


@dataclass(frozen=True)
class Storage:
    storage_class: str = "glusterfs"
    #: a new workspace's size (the storage enforces it); entitlements' ``workspace_sizes``
    #: let users choose larger ones
    capacity: str = "10Gi"
    access_mode: str = "ReadWriteOnce"
    mount_path: str = "/home/jovyan"
    #: ``per_server``: each named server gets its own volume; ``shared``: one per user
    named_servers: str = "shared"
    shm_size: str = "1Gi"
    datasets: list[Dataset] = field(default_factory=list)
    team_folders: list[TeamFolder] = field(default_factory=list)
    #: workspaces of users gone from the hub are archived (kept, marked); this many days
    #: later they are deleted. 0: archived workspaces are never deleted
    reclaim_delete_after_days: int = 30

    def team_folder_path(self, tf: TeamFolder) -> str:
        return tf.mount_path or f"{self.mount_path.rstrip('/')}/teams/{tf.group}"


@dataclass(frozen=True)
class Compute:
    """CPU, memory and pods held at once (what pods request: their guarantees); absent: no
    bound. Kueue admits every server and run against a user's and their team's
    (``docs/queues.md``)."""

    #: CPU cores
    cpu: float | None = None
    #: a Kubernetes quantity, e.g. ``64Gi``
    memory: str | None = None
    pods: int | None = None

    def items(self) -> list[tuple[str, str]]:
        """The bounds set, as Kueue's resource names and quantities."""
        out = [("cpu", _cores(self.cpu)) if self.cpu is not None else None]
        out.append(("memory", str(self.memory)) if self.memory is not None else None)
        out.append(("pods", str(self.pods)) if self.pods is not None else None)
        return [x for x in out if x]


def _cores(cpu: float) -> str:
    """``8`` or ``1500m`` (a quantity Kueue and the API server take)."""
    milli = round(cpu * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


#: a user's bounds when no entitlement says otherwise: 20 pods (servers and runs together),
#: CPU and memory unbounded (each pod is bounded by its size)
DEFAULT_USER_COMPUTE = Compute(pods=20)


@dataclass(frozen=True)
class Entitlement:
    """What members of ``groups`` may use (``*`` in a list means everything / everyone)."""

    groups: list[str]
    environments: list[str] = field(default_factory=lambda: ["*"])
    sizes: list[str] = field(default_factory=lambda: ["*"])
    gpu_types: list[str] = field(default_factory=list)
    #: the most GPUs one user may hold at once (all servers together)
    max_gpus_per_user: int = 0
    #: workspace sizes members may choose besides ``storage.capacity`` (e.g. ``[50Gi, 200Gi]``)
    workspace_sizes: list[str] = field(default_factory=list)
    #: what one user may hold at once, servers and every kind of job run together (a user
    #: matching several entitlements gets the largest of each; unset: no bound)
    max_per_user: Compute = DEFAULT_USER_COMPUTE


@dataclass(frozen=True)
class Catalog:
    environments: list[Environment]
    sizes: list[Size]
    gpu_types: list[GpuType] = field(default_factory=list)
    storage: Storage = field(default_factory=Storage)
    entitlements: list[Entitlement] = field(default_factory=lambda: [Entitlement(groups=["*"])])
    #: the GPUs (of any type) a group owns: its members' servers and job runs together. A
    #: user's work counts against the first group of this list they belong to (their team)
    group_gpu_quotas: dict[str, int] = field(default_factory=dict)
    #: of a group's quota, the GPUs of a given type it owns (e.g. ``{ml-research: {a100: 8}}``):
    #: when another team borrows them, the owners can take them back. A team's GPUs of types
    #: not listed here come from the cluster's shared ones, first come first served
    group_gpu_type_quotas: dict[str, dict[str, int]] = field(default_factory=dict)
    #: how many GPUs beyond its quota a group may borrow while other teams leave theirs idle
    #: (0 or absent: none); borrowed GPUs are given back when their owners need them
    group_gpu_borrowing_limits: dict[str, int] = field(default_factory=dict)
    #: whether a team reclaiming its GPUs may stop other teams' servers running on borrowed
    #: GPUs (by default only borrowed job runs are preempted; they are retried)
    preempt_borrowed_servers: bool = False
    #: CPU, memory and pods a group's members hold together (e.g. ``{ml-research: {cpu: 64,
    #: memory: 256Gi, pods: 100}}``). A user's team is the first group of
    #: ``group_gpu_quotas``, then of this, that they belong to
    group_compute_quotas: dict[str, Compute] = field(default_factory=dict)

    @property
    def teams(self) -> list[str]:
        """The groups with a quota of any kind, in the order that picks a user's team."""
        return [*self.group_gpu_quotas, *(g for g in self.group_compute_quotas if g not in self.group_gpu_quotas)]

    def environment(self, name: str) -> Environment | None:
        return next((e for e in self.environments if e.name == name and e.enabled), None)

    def size(self, name: str) -> Size | None:
        return next((s for s in self.sizes if s.name == name), None)

    def gpu_type(self, name: str) -> GpuType | None:
        return next((g for g in self.gpu_types if g.name == name), None)

    @property
    def default_environment(self) -> Environment:
        enabled = [e for e in self.environments if e.enabled]
        return next((e for e in enabled if e.default), enabled[0])

    @property
    def default_size(self) -> Size:
        return next((s for s in self.sizes if s.default), self.sizes[0])


def team_claim(group: str) -> str:
    """``team-<group>`` as a claim name (lower case, ``-`` for anything else). Groups that
    differ only in case or punctuation meet here: the catalog refuses two such team folders,
    and a claim found under the name must name its group (``claims.check_owner``)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", group.lower()).strip("-")[:50] or "x"
    return f"team-{slug}"


def _unique(items: list[Any], what: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.name in seen:
            raise CatalogError(f"{what}[{i}].name: {item.name!r} is used twice")
        seen.add(item.name)


def _quantity(value: str, path: str) -> None:
    try:
        parse_quantity(value)
    except ValueError:
        raise CatalogError(f"{path}: {value!r} is not a Kubernetes quantity (e.g. 4Gi, 500m)") from None


def _compute(c: Compute, path: str) -> None:
    if c.cpu is not None and not 0 < c.cpu <= 1_000_000:
        raise CatalogError(f"{path}.cpu: must be more than 0 cores (at most 1000000), not {c.cpu}")
    if c.memory is not None:
        _quantity(c.memory, f"{path}.memory")
        if parse_quantity(c.memory) <= 0:
            raise CatalogError(f"{path}.memory: must be more than 0")
    if c.pods is not None and not 0 < c.pods <= 1_000_000:
        raise CatalogError(f"{path}.pods: must be at least 1 (at most 1000000), not {c.pods}")


def validate(cat: Catalog) -> Catalog:
    """Checks across fields (types were checked while parsing); returns ``cat``."""
    if not [e for e in cat.environments if e.enabled]:
        raise CatalogError("environments: at least one enabled environment is needed")
    if not cat.sizes:
        raise CatalogError("sizes: at least one size is needed")
    for items, what in ((cat.environments, "environments"), (cat.sizes, "sizes"), (cat.gpu_types, "gpu_types")):
        _unique(items, what)
    for what, items in (("environments", cat.environments), ("sizes", cat.sizes)):
        if sum(1 for x in items if x.default) > 1:
            raise CatalogError(f"{what}: more than one is marked default")
    for i, e in enumerate(cat.environments):
        if e.image_digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", e.image_digest):
            raise CatalogError(f"environments[{i}].image_digest: {e.image_digest!r} is not a sha256 digest")
        if "@" in e.image and e.image_digest:
            raise CatalogError(f"environments[{i}].image: names a digest already; drop image_digest or the @digest")
    for i, s in enumerate(cat.sizes):
        p = f"sizes[{i}]"
        if not 0 < s.cpu_guarantee <= s.cpu_limit:
            raise CatalogError(f"{p}: needs 0 < cpu_guarantee <= cpu_limit ({s.cpu_guarantee} / {s.cpu_limit})")
        _quantity(s.memory_guarantee, f"{p}.memory_guarantee")
        _quantity(s.memory_limit, f"{p}.memory_limit")
        if parse_quantity(s.memory_guarantee) > parse_quantity(s.memory_limit):
            raise CatalogError(f"{p}: memory_guarantee is larger than memory_limit")
    for i, g in enumerate(cat.gpu_types):
        if not g.node_selector:
            raise CatalogError(f"gpu_types[{i}].node_selector: must name at least one node label")
        if not g.counts or any(c < 1 for c in g.counts):
            raise CatalogError(f"gpu_types[{i}].counts: must be a non-empty list of positive integers")
    st = cat.storage
    _quantity(st.capacity, "storage.capacity")
    _quantity(st.shm_size, "storage.shm_size")
    if st.access_mode not in ("ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"):
        raise CatalogError(f"storage.access_mode: {st.access_mode!r} is not a Kubernetes access mode")
    if st.named_servers not in ("shared", "per_server"):
        raise CatalogError(f"storage.named_servers: must be 'shared' or 'per_server', not {st.named_servers!r}")
    _storage_shares(st)
    known = {
        "environments": {e.name for e in cat.environments},
        "sizes": {s.name for s in cat.sizes},
        "gpu_types": {g.name for g in cat.gpu_types},
    }
    for i, ent in enumerate(cat.entitlements):
        for what, names in known.items():
            for j, name in enumerate(getattr(ent, what)):
                if name != "*" and name not in names:
                    raise CatalogError(f"entitlements[{i}].{what}[{j}]: unknown {what[:-1].replace('_', ' ')} {name!r}")
        if ent.max_gpus_per_user < 0:
            raise CatalogError(f"entitlements[{i}].max_gpus_per_user: must not be negative")
        for j, size in enumerate(ent.workspace_sizes):
            _quantity(size, f"entitlements[{i}].workspace_sizes[{j}]")
        _compute(ent.max_per_user, f"entitlements[{i}].max_per_user")
    for group, c in cat.group_compute_quotas.items():
        _compute(c, f"group_compute_quotas.{group}")
    for group, quota in cat.group_gpu_quotas.items():
        if quota < 0:
            raise CatalogError(f"group_gpu_quotas.{group}: must not be negative")
    types = {g.name for g in cat.gpu_types}
    for group, per_type in cat.group_gpu_type_quotas.items():
        path = f"group_gpu_type_quotas.{group}"
        if group not in cat.group_gpu_quotas:
            raise CatalogError(f"{path}: the group has no entry in group_gpu_quotas")
        for name, n in per_type.items():
            if name not in types:
                raise CatalogError(f"{path}.{name}: unknown GPU type {name!r}")
            if n < 0:
                raise CatalogError(f"{path}.{name}: must not be negative")
        if sum(per_type.values()) > cat.group_gpu_quotas[group]:
            raise CatalogError(f"{path}: {sum(per_type.values())} GPUs by type is more than the group's quota")
    for group, limit in cat.group_gpu_borrowing_limits.items():
        if limit < 0:
            raise CatalogError(f"group_gpu_borrowing_limits.{group}: must not be negative")
        if group not in cat.group_gpu_quotas:
            raise CatalogError(
                f"group_gpu_borrowing_limits.{group}: the group has no entry in group_gpu_quotas "
                "(give it one, 0 or more)"
            )
    return cat


#: group ids a team folder may not use: root's, and the notebook user's own group (100)
RESERVED_GIDS = (0, 100)


def _storage_shares(st: Storage) -> None:
    """Datasets and team folders: unique names, gids and paths outside each other."""
    _unique(st.datasets, "storage.datasets")
    paths: dict[str, str] = {st.mount_path.rstrip("/"): "storage.mount_path"}
    seen_groups: set[str] = set()
    seen_gids: set[int] = set()
    if st.reclaim_delete_after_days < 0:
        raise CatalogError("storage.reclaim_delete_after_days: must not be negative")
    claims: dict[str, str] = {}
    for i, tf in enumerate(st.team_folders):
        p = f"storage.team_folders[{i}]"
        if tf.group in seen_groups:
            raise CatalogError(f"{p}.group: {tf.group!r} has two team folders")
        other = claims.setdefault(team_claim(tf.group), tf.group)
        if other != tf.group:
            raise CatalogError(
                f"{p}.group: {tf.group!r} and {other!r} differ only in case or punctuation; "
                f"their folders would be one volume ({team_claim(tf.group)})"
            )
        if tf.gid in RESERVED_GIDS or not 0 < tf.gid < 2**31:
            raise CatalogError(f"{p}.gid: {tf.gid} can not be used (not 0, not 100, below 2^31)")
        if tf.gid in seen_gids:
            raise CatalogError(f"{p}.gid: {tf.gid} is used by another team folder")
        seen_groups.add(tf.group)
        seen_gids.add(tf.gid)
        _quantity(tf.capacity, f"{p}.capacity")
        if tf.mount_path and not tf.mount_path.startswith("/"):
            raise CatalogError(f"{p}.mount_path: must be an absolute path")
        paths.setdefault(st.team_folder_path(tf).rstrip("/"), f"{p}.mount_path")
    for i, ds in enumerate(st.datasets):
        p = f"storage.datasets[{i}].mount_path"
        if not ds.mount_path.startswith("/"):
            raise CatalogError(f"{p}: must be an absolute path")
        if ds.mount_path.rstrip("/") in paths:
            raise CatalogError(f"{p}: {ds.mount_path} is already {paths[ds.mount_path.rstrip('/')]}")
        paths[ds.mount_path.rstrip("/")] = p


def load(path: Path) -> Catalog:
    """Read and validate the catalog at ``path``."""
    try:
        cat = load_file(Catalog, path)
        return validate(cat)
    except CatalogError as e:
        if str(e).startswith(str(path)):
            raise
        raise CatalogError(f"{path}: {e}") from None
    except DocumentError as e:
        raise CatalogError(str(e)) from None


class CatalogStore:
    """The current catalog, re-read when the file changes; a broken edit keeps the last good.

    ``error`` holds the message of the last failed load (shown to admins) until a good
    version loads again. The first load must succeed: a hub without a catalog can not spawn.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._stat()
        self._catalog = load(path)
        self.error: str | None = None

    def _stat(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return st.st_mtime_ns, st.st_size

    def get(self) -> Catalog:
        try:
            stamp = self._stat()
        except OSError as e:
            self._fail(f"{self.path}: cannot read: {e.strerror}")
            return self._catalog
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._catalog = load(self.path)
            except CatalogError as e:
                self._fail(str(e))
            else:
                if self.error:
                    log.info("catalog %s is valid again", self.path)
                self.error = None
                log.info("catalog %s reloaded", self.path)
        return self._catalog

    def put(self, catalog: Catalog) -> None:
        """Use ``catalog`` now: one this process wrote where ``path`` will show it later (a
        ConfigMap the kubelet updates in the mounted file within a minute or so). The file
        is read again as soon as it changes."""
        self._catalog = catalog
        self.error = None

    def _fail(self, message: str) -> None:
        if message != self.error:
            log.error("catalog edit refused, the last good catalog stays in use: %s", message)
        self.error = message


_stores: dict[Path, CatalogStore] = {}
#: the same stores by the name callers give (spared the path resolution on every use)
_named: dict[str, CatalogStore] = {}


def shared_store(path: Path | str) -> CatalogStore:
    """The one store of ``path`` in this process, made on first use (every reader of the
    catalog in a process, e.g. the hub's spawners and its admin console, shares it). The
    first load raises :class:`CatalogError` when the catalog is broken; a later call tries
    again."""
    store = _named.get(str(path))
    if store is None:
        key = Path(path).resolve()
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = CatalogStore(key)
        _named[str(path)] = store
    return store
