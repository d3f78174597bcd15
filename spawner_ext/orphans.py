"""Server pods that no server of this hub stands for, found and removed.

A server's pod outlives its server when the stop that should have removed it failed: a
start that failed and whose clean-up gave up ("Could not delete pod", seen under a burst
when the API server answered late), a stop during an API server outage. Nothing else ever
removes such a pod: it keeps its CPU, memory and GPUs, and stock KubeSpawner leaves it too.

MoonSpawner labels each pod with this hub's id (``LABEL``: derived from the hub's public
URL, so hubs that share a namespace, such as a test hub beside another, never touch each
other's pods). Every ``every(grace)`` seconds the hub looks at the server pods it watches
anyway (KubeSpawner's pod reflector: no extra reads of the API server) and removes a pod
that

- carries this hub's label and is not being deleted already,
- is older than ``grace`` (a start in progress is never taken for one), and
- belongs to no server of this hub that is starting, running or stopping (the hub's
  database, and its servers in memory),

found so on two checks in a row. The delete names the pod's uid, so a pod made again under
the same name meanwhile (the user started their server again) is never the one removed.
The workspace claim stays.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from jupyterhub import orm
from kubernetes_asyncio import client

from moonhub_core import pods as podc

#: the label on a server pod naming the hub whose server it is (``moonhub_core.pods.hub_id``)
LABEL = podc.HUB
_KEEPERS: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = WeakKeyDictionary()


def every(grace: float) -> float:
    """Seconds between two checks: often enough that an orphan goes soon after ``grace``."""
    return max(5.0, min(60.0, grace / 4))


def candidates(
    pods: Iterable[Mapping[str, Any]], hub: str, claimed: set[tuple[str, str]], now: datetime.datetime, grace: float
) -> dict[str, tuple[str, tuple[str, str]]]:
    """Pure: uid -> (pod name, (user, server)) of each pod of ``hub`` older than ``grace``
    seconds, not being deleted, whose user and server (its annotations) are not in
    ``claimed`` (this hub's servers that are starting, running or stopping). A pod that
    does not say whose it is is never one."""
    found = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get(LABEL) != hub or meta.get("deletionTimestamp"):
            continue
        notes = meta.get("annotations") or {}
        name, uid, made, user = (
            meta.get("name"),
            meta.get("uid"),
            meta.get("creationTimestamp"),
            notes.get(podc.HUB_USER),
        )
        key = (user or "", notes.get(podc.HUB_SERVER) or "")
        if not name or not uid or not made or not user or key in claimed:
            continue
        if (now - datetime.datetime.fromisoformat(made.replace("Z", "+00:00"))).total_seconds() < grace:
            continue
        found[uid] = (name, key)
    return found


def claimed(db: Any, users: Mapping[Any, Any]) -> set[tuple[str, str]]:
    """(user, server) of every server of this hub that is starting, running or stopping:
    those with a server in the hub's database (JupyterHub records it before a start begins,
    and at start-up before it has looked at each), and those in memory with an action
    pending (a stop)."""
    rows = db.query(orm.User.name, orm.Spawner.name).join(orm.Spawner.user).filter(orm.Spawner.server_id.isnot(None))
    found = {(user, server or "") for user, server in rows}
    for user in list(users.values()):
        for name, spawner in list(getattr(user, "spawners", {}).items()):
            if spawner.active or spawner.pending:
                found.add((user.name, name or ""))
    return found


@dataclass
class Sweeper:
    hub: str
    namespace: str
    grace: float
    #: the hub's log (the spawner's)
    log: Any = field(default=logging.getLogger("moonhub.orphans"))
    #: uid -> when it was first found an orphan (monotonic)
    suspects: dict[str, float] = field(default_factory=dict)
    removed: int = 0

    async def check(self, pods: Iterable[Mapping[str, Any]], taken: set[tuple[str, str]], api: Any) -> list[str]:
        """One check against the servers ``taken`` (:func:`claimed`); the pods removed."""
        now = datetime.datetime.now(datetime.UTC)
        found = candidates(pods, self.hub, taken, now, self.grace)
        first_seen = {uid: self.suspects.get(uid, time.monotonic()) for uid in found}
        self.suspects = first_seen
        gone = []
        for uid, (name, (user, server)) in found.items():
            if time.monotonic() - first_seen[uid] < every(self.grace) * 0.9:
                continue  # found on this check only: the next decides
            try:
                await api.delete_namespaced_pod(
                    name, self.namespace, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
                )
            except client.ApiException as e:
                if e.status not in (404, 409):  # gone already, or another pod of that name now
                    self.log.warning("pod %s (no server of this hub) not removed: %s %s", name, e.status, e.reason)
                continue
            self.log.warning("removed pod %s: no server of this hub stands for it (%s/%s)", name, user, server)
            self.suspects.pop(uid, None)
            self.removed += 1
            gone.append(name)
        return gone


async def _keep(
    sweeper: Sweeper, reflectors: Mapping[Any, Any], key: Any, db: Any, users: Mapping[Any, Any], api: Any
) -> None:
    while True:
        await asyncio.sleep(every(sweeper.grace))
        reflector = reflectors.get(key)
        if reflector is None or not reflector.first_load_future.done():
            continue
        try:
            await sweeper.check(list(reflector.resources.values()), claimed(db, users), api)
        except Exception:  # never let the keeper itself end
            sweeper.log.exception("orphaned pod check failed")


def keep(
    sweeper: Sweeper, reflectors: Mapping[Any, Any], key: Any, db: Any, users: Mapping[Any, Any], api: Any
) -> None:
    """Check for orphans for the life of this event loop; idempotent. ``reflectors[key]``:
    KubeSpawner's pod reflector (looked up at each check: it may be replaced)."""
    loop = asyncio.get_running_loop()
    running = _KEEPERS.get(loop)
    if running is None or running.done():
        _KEEPERS[loop] = loop.create_task(_keep(sweeper, reflectors, key, db, users, api))
