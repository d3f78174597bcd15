"""What every part of the jobs service works with: the caller, and the service's context
(database, catalog, Kubernetes clients, the hub, settings). Parts are modules by concept
(``definitions``, ``runs``, ``sync``, ``reconcile``, ...) that take a :class:`Context`."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubernetes_asyncio import client
from sqlalchemy.orm import Session, sessionmaker

from hubclient.users import HubUsers
from moonhub_core import identity
from moonhub_core.catalog import CatalogStore
from moonhub_core.errors import NotFound
from moonhub_core.kueue_api import Queues

from . import manifests
from .db import DefinitionRow, RunRow
from .outbox import Outbox
from .settings import Settings

if TYPE_CHECKING:
    from .outputs import OutputStore
    from .snapshots import SnapshotStore

#: the states a run does not leave
ENDED = ("succeeded", "failed", "timed_out", "cancelled")


@dataclass(frozen=True)
class Caller:
    name: str
    groups: tuple[str, ...] = ()
    #: sees and manages every user's jobs (hub admins and the job-admin groups)
    admin: bool = False
    #: may use the whole catalog (hub admins); everyone else's jobs follow their groups
    hub_admin: bool = False
    #: which account of the name (the hub's ``created``, :mod:`moonhub_core.identity`); ""
    #: when not known (a caller as the API request gave it)
    created: str = ""
    #: the uid their workspace belongs to, which their runs run as (:mod:`moonhub_core.uids`);
    #: None for a workspace made before uids, or one not read (a caller as a request gave it)
    uid: int | None = None

    @classmethod
    def from_model(cls, model: dict[str, Any], admin_groups: Iterable[str]) -> Caller:
        """The caller a JupyterHub user model describes."""
        groups = tuple(str(g) for g in model.get("groups") or ())
        hub_admin = bool(model.get("admin"))
        admin = hub_admin or bool(set(groups) & set(admin_groups))
        return cls(str(model["name"]), groups, admin, hub_admin, identity.stamp(model.get("created")))


#: MoonHub itself, acting on a job (a departed owner's job removed, say)
MOONHUB = Caller("moonhub", admin=True)


@dataclass
class Context:
    db: sessionmaker[Session]
    catalog: CatalogStore
    api: client.ApiClient
    #: everything the service is told (:mod:`jobs_service.settings`, from the platform document)
    settings: Settings
    #: the hub, asked for owners' groups (entitlements) and who has left; None: no hub
    #: (every owner has no groups, and nobody ever counts as departed)
    hub: HubUsers | None
    #: notebook versions, outside etcd (``snapshots``)
    snapshots: SnapshotStore = field(kw_only=True)
    #: runs' executed notebooks and files (``outputs``)
    outputs: OutputStore = field(kw_only=True)
    #: the signing key of the launch routes runs' pods reach (``launch``)
    launch_key: bytes = field(kw_only=True, default=b"")
    #: one writer at a time. SQLite (the service's default store) locks the whole database
    #: from a transaction's first write until its commit; a second writer waiting for that
    #: lock blocks the event loop, so the first, suspended at an await (a Kubernetes call),
    #: never commits, and both fail after the busy timeout ("database is locked"). Every
    #: operation that writes holds this: ``JobsService``'s changes, each step of the sync
    #: loop, the launch routes' writes.
    writes: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)
    #: job id -> (its last change, whether it runs after other jobs) (``upstream``)
    after_index: dict[int, tuple[datetime.datetime, bool]] = field(init=False, default_factory=dict)
    #: the definitions' count and newest change when ``after_index`` was last brought up to date
    after_seen: tuple[Any, ...] = field(init=False, default=())
    #: notifications being sent, beside run tracking (``outbox``)
    outbox: Outbox = field(init=False, default_factory=Outbox)
    core: client.CoreV1Api = field(init=False)
    batch: client.BatchV1Api = field(init=False)
    #: Kueue's objects (GPU runs wait in their owner's queue: ``gpu_queues``)
    queues: Queues = field(init=False)
    #: the catalog the queues were last reconciled from (``gpu_queues.follow_catalog``)
    queues_from: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.core, self.batch = client.CoreV1Api(self.api), client.BatchV1Api(self.api)
        self.queues = Queues(self.api, self.settings.queue_prefix)


@contextmanager
def gone_ok() -> Iterator[None]:
    """Around a delete or patch of a Kubernetes object: one that is already gone is fine."""
    try:
        yield
    except client.ApiException as e:
        if e.status != 404:
            raise


def visible(row: DefinitionRow, caller: Caller) -> bool:
    """Whether ``caller`` may see ``row`` at all: their own personal job, a job of a team of
    theirs (as their login lists its groups: ``teams`` checks their role for changes), or
    anything for a job admin."""
    if caller.admin:
        return True
    if row.team is not None:
        return row.team in caller.groups
    return row.owner == caller.name


def own(s: Session, caller: Caller, job_id: int) -> DefinitionRow:
    """The definition ``job_id`` when ``caller`` may see it; another user's id (or another
    team's) looks like a missing one (404)."""
    row = s.get(DefinitionRow, job_id)
    if row is None or not visible(row, caller):
        raise NotFound("id", f"no job {job_id}")
    return row


def names(row: DefinitionRow) -> manifests.Names:
    return manifests.Names(row.owner, row.name, stored=row.cronjob, team=row.team or "")


def runner_name(row: DefinitionRow) -> str:
    """Whom ``row``'s runs run as (whose secrets they use): its team's principal, or its owner."""
    return names(row).runner


def new_run(defn: DefinitionRow, job_name: str, trigger: str, version: int | None = None) -> RunRow:
    """A run of the definition's current version (or ``version``); its output lands in the
    owner's workspace."""
    output = f"{manifests.OUTPUT_DIR}/{defn.name}/{job_name}.ipynb"
    number = defn.version if version is None else version
    return RunRow(definition_id=defn.id, job_name=job_name, version=number, trigger=trigger, output=output)
