"""KubeSpawner's pod and event reflectors, resuming their watch instead of listing again.

KubeSpawner's reflector ends each watch after ``timeout_seconds`` (10 s) without an event,
and after ``restart_seconds`` (30 s) in any case, and then lists every object again before
it watches anew. At 2,000 server pods that list is about a megabyte of JSON the hub decodes
every 10 s: 9-10 % of a core, nearly all of an idle hub's CPU, in MoonHub and in stock
JupyterHub + KubeSpawner alike (py-spy over the idle window of ``benchmarks.hub_scale``:
``ResourceReflector._list_and_update`` -> ``json.loads``). The same list stalled hubs with
10,000 pods (kubespawner#753).

The Kubernetes API lets a watch go on from the ``resourceVersion`` the last one reached, as
client-go's informers do; with bookmarks (``allowWatchBookmarks``) the API server keeps
that version fresh while nothing changes, so it does not fall out of the watch cache's
window. These reflectors do so, and list again only

- at the start,
- when the API server says the version is too old (410 Gone) or a watch fails (then with
  a doubling back-off as KubeSpawner's, and its ``on_failure`` once the wait passes 30 s), and
- every ``RELIST_EVERY`` seconds in any case (a safety net: KubeSpawner's authors do not
  trust a watch to yield every event, and neither need we).

Everything else is KubeSpawner's: the same shared reflectors, keys, ``resources`` and
``first_load_future`` (``reflector_watch`` and ``orphans`` read them as before).
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiException
from kubespawner.reflector import ResourceReflector
from kubespawner.spawner import EventReflector, PodReflector

#: seconds after which a reflector lists everything again even when its watch went well
RELIST_EVERY = 600.0
#: the longest wait between two failed watches before the reflector gives up
GIVE_UP_AFTER = 30.0


class Gone(Exception):
    """The API server no longer has the version the watch was to go on from (410)."""


class ResumingReflector(ResourceReflector):
    #: lists made (the first load included); read by tests
    lists = 0
    #: the version the last list reached, and when it was made (monotonic)
    listed: tuple[str, float] | None = None
    #: set (and replaced) whenever the view changes; see :meth:`next_change`
    _change: asyncio.Event | None = None

    async def _list_and_update(self, resource_version: str | None = None) -> str:
        version = str(await super()._list_and_update(resource_version))
        self.lists += 1
        self.listed = (version, time.monotonic())
        self._changed()
        return version

    def _changed(self) -> None:
        if self._change is not None:
            self._change.set()
            self._change = None

    async def next_change(self, timeout: float) -> bool:
        """Waits until the view changes (an object added, modified or deleted, or a list
        made), at most ``timeout`` seconds; whether it changed."""
        if self._change is None:
            self._change = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._change.wait()
            return True
        except TimeoutError:
            return False

    async def _watch_and_update(self) -> None:
        # go on from the list ``start`` just made
        version: str | None = self.listed[0] if self.listed else None
        delay = 0.1
        self.log.info("watching for %s (%s), resuming each watch where it ended", self.kind, self._where())
        while not self._stopping:
            try:
                if version is None:
                    version = await self._list_and_update("0")
                elif self.listed is None or time.monotonic() - self.listed[1] >= RELIST_EVERY:
                    version = await self._list_and_update(version)
                version = await self._follow(version)
                delay = 0.1
            except asyncio.CancelledError:
                if self._stopping:
                    break  # stop() cancels and waits for the task to end, not to raise
                raise
            except Gone:
                self.log.info("%s: the watch's version is gone from the API server; listing again", self.kind)
                version = None  # nothing failed: list again at once
            except Exception:
                version = None
                delay *= 2
                if delay > GIVE_UP_AFTER:
                    self.log.exception("Watching %s never recovered, giving up", self.kind)
                    if self.on_failure:
                        self.on_failure()
                    return
                self.log.exception("Watching %s failed; listing and watching again in %.1f s", self.kind, delay)
                await asyncio.sleep(delay)
        self.log.info("%s watcher stopped", self.kind)

    async def _follow(self, version: str) -> str:
        """One watch from ``version``; applies its events and returns the version it reached."""
        args: dict[str, Any] = {
            "label_selector": self.label_selector,
            "field_selector": self.field_selector,
            "resource_version": version,
            "allow_watch_bookmarks": True,
        }
        if not self.omit_namespace:
            args["namespace"] = self.namespace
        if self.request_timeout:
            args["_request_timeout"] = self.request_timeout
        if self.timeout_seconds:
            args["timeout_seconds"] = self.timeout_seconds
        method = partial(getattr(self.api, self.list_method_name), _preload_content=False)
        w = watch.Watch()
        try:
            async with w.stream(method, **args) as stream:
                async for event in stream:
                    version = apply(self.resources, event, version)
                    if event.get("type") != "BOOKMARK":
                        self._changed()
                    if self._stopping:
                        break
        except ApiException as e:
            if e.status == 410:
                raise Gone() from None
            raise
        finally:
            w.stop()
            await w.close()  # each Watch has a client (and connections) of its own
        return version

    def _where(self) -> str:
        found = [f"label selector {self.label_selector!r}"] if self.label_selector else []
        found += [f"field selector {self.field_selector!r}"] if self.field_selector else []
        found.append("all namespaces" if self.omit_namespace else f"namespace {self.namespace}")
        return ", ".join(found)


def apply(resources: dict[str, Any], event: dict[str, Any], version: str) -> str:
    """Pure: one watch event applied to ``resources`` (``namespace/name`` -> object); the
    version the watch has reached after it."""
    obj = event.get("raw_object") or {}
    meta = obj.get("metadata") or {}
    if event.get("type") == "BOOKMARK":
        return str(meta.get("resourceVersion") or version)
    key = f"{meta.get('namespace')}/{meta.get('name')}"
    if event.get("type") == "DELETED":
        resources.pop(key, None)
    else:
        resources[key] = obj
    return str(meta.get("resourceVersion") or version)


class ResumingPodReflector(ResumingReflector, PodReflector):
    pass


class ResumingEventReflector(ResumingReflector, EventReflector):
    pass
