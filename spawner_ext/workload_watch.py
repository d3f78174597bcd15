"""The hub's view of the Kueue Workloads of its user namespace, kept by a watch.

A server that waits for Kueue (for GPUs, or for the user's other work to end) is told its
place in the queue, or refused when the user did not choose to wait. That used to read the
server's Workload, and every pending Workload of the namespace, from the API server once a
second for each such spawn. One shared watch now keeps every Workload of the namespace, as
KubeSpawner's pod reflector keeps the pods, and a spawn looks again only when a Workload
changes (``ResumingReflector.next_change``).

It is started on the first spawn that Kueue gates, not with the hub: a cluster without
Kueue has no Workloads to watch, and its spawns never ask.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, MutableMapping
from typing import Any

from kubernetes_asyncio import client
from kubespawner.clients import shared_client
from kubespawner.reflector import NamespacedResourceReflector

from moonhub_core import queue_objects as q

from .resuming_reflector import ResumingReflector

#: the label Kueue puts on a Workload with its owner's UID (the pod's, for a server)
OWNER_UID_LABEL = "kueue.x-k8s.io/job-uid"


class _WorkloadsApi:
    """``list_namespaced_workload``, as the reflectors call a list method, over the custom
    objects API (the reflector needs one method that lists and, with ``watch``, watches)."""

    def __init__(self, api: client.CustomObjectsApi) -> None:
        self._api = api

    def list_namespaced_workload(self, namespace: str, **kwargs: Any) -> Any:
        """Lists or watches the namespace's Workloads.

        :return: object
        """
        return self._api.list_namespaced_custom_object(q.GROUP, q.VERSION, namespace, "workloads", **kwargs)


class ResumingWorkloadReflector(ResumingReflector, NamespacedResourceReflector):
    kind = "workloads"
    list_method_name = "list_namespaced_workload"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = _WorkloadsApi(shared_client("CustomObjectsApi"))

    @property
    def workloads(self) -> Iterable[dict[str, Any]]:
        return list(self.resources.values())


def owned_by(workloads: Iterable[dict[str, Any]], owner_uid: str) -> dict[str, Any] | None:
    """Pure: the Workload Kueue made for the object with ``owner_uid`` (None: not yet)."""
    for wl in workloads:
        if ((wl.get("metadata") or {}).get("labels") or {}).get(OWNER_UID_LABEL) == owner_uid:
            return wl
    return None


_STARTING: dict[Any, asyncio.Future[ResumingWorkloadReflector]] = {}


async def shared(reflectors: MutableMapping[Any, Any], key: Any, make: Any) -> ResumingWorkloadReflector:
    """The one reflector under ``key`` in ``reflectors`` (KubeSpawner's class-wide map, so
    that ``reflector_watch`` starts it again after an API server outage), made with
    ``make()`` and started by the first caller; later callers wait for that start. A start
    that fails raises to every waiter, and the next call tries again."""
    found = reflectors.get(key)
    if found is not None:
        await found.first_load_future
        return found
    starting = _STARTING.get(key)
    if starting is None:
        starting = _STARTING[key] = asyncio.get_running_loop().create_future()
        try:
            reflector = make()
            await reflector.start()
        except BaseException as e:
            del _STARTING[key]
            starting.set_exception(e)
            starting.exception()  # read: a start nobody else waited for is not "never retrieved"
            raise
        reflectors[key] = reflector
        del _STARTING[key]
        starting.set_result(reflector)
    return await asyncio.shield(starting)
