"""Notifications sent beside run tracking, never in its way (issue 32, item 3).

Run tracking finds what to tell (a run failed, one is overdue) and puts it here; a few
workers send. A receiver that answers slowly, or never, holds one worker of its owner's at
most (each owner has at most :attr:`Outbox.per_owner_at_once` being sent), each send has a
deadline, and nothing waits on the sending: the next tracking pass starts on time. What does
not fit (an owner with many waiting, a full outbox, an owner's webhooks past their hourly
rate) is dropped with a warning and counted (``moonhub_jobs_notifications_dropped_total``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

log = logging.getLogger("moonhub.jobs")

DROPPED = Counter("moonhub_jobs_notifications_dropped", "Notifications not sent (limits, a full outbox)", ["why"])
WAITING = Gauge("moonhub_jobs_notifications_waiting", "Notifications waiting to be sent")

Send = Callable[[], Awaitable[None]]


class Rate:
    """At most ``per_hour`` events per owner in any hour (a sliding window)."""

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._at: dict[str, list[float]] = {}

    def take(self, owner: str, count: int = 1, now: float | None = None) -> bool:
        """Whether ``owner`` may have ``count`` more now (and count them if so)."""
        now = time.time() if now is None else now
        recent = [t for t in self._at.get(owner, []) if now - t < 3600]
        if len(recent) + count > self.per_hour:
            self._at[owner] = recent
            return False
        self._at[owner] = recent + [now] * count
        return True


@dataclass
class _Item:
    owner: str
    what: str
    send: Send


class Outbox:
    def __init__(
        self,
        workers: int = 8,
        waiting: int = 1000,
        per_owner_at_once: int = 2,
        per_owner_waiting: int = 50,
        deadline: float = 20.0,
    ) -> None:
        self.workers, self.waiting, self.deadline = workers, waiting, deadline
        self.per_owner_at_once, self.per_owner_waiting = per_owner_at_once, per_owner_waiting
        self._queue: dict[str, deque[_Item]] = defaultdict(deque)
        self._busy: dict[str, int] = defaultdict(int)
        self._count = 0
        self._wake: asyncio.Condition | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.sent = 0

    def _start(self) -> asyncio.Condition:
        if self._wake is None:
            self._wake = asyncio.Condition()
            self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        return self._wake

    async def put(self, owner: str, what: str, send: Send) -> bool:
        """Queue ``send`` (``what`` names it in logs); False when it was dropped."""
        wake = self._start()
        why = ""
        if self._count >= self.waiting:
            why = "outbox full"
        elif len(self._queue[owner]) >= self.per_owner_waiting:
            why = "owner has too many waiting"
        if why:
            DROPPED.labels(why).inc()
            log.warning("%s of %s not sent: %s", what, owner, why)
            return False
        async with wake:
            self._queue[owner].append(_Item(owner, what, send))
            self._count += 1
            WAITING.set(self._count)
            wake.notify()
        return True

    def _next(self) -> _Item | None:
        """The oldest waiting item of an owner who has room to send one more."""
        for owner, items in self._queue.items():
            if items and self._busy[owner] < self.per_owner_at_once:
                item = items.popleft()
                if not items:
                    del self._queue[owner]
                return item
        return None

    async def _work(self) -> None:
        assert self._wake is not None
        wake = self._wake
        while True:
            async with wake:
                item = self._next()
                while item is None:
                    await wake.wait()
                    item = self._next()
                self._busy[item.owner] += 1
                self._count -= 1
                WAITING.set(self._count)
            try:
                await asyncio.wait_for(item.send(), self.deadline)
                self.sent += 1
            except TimeoutError:
                DROPPED.labels("deadline").inc()
                log.warning("%s of %s not sent: no answer within %.0f s", item.what, item.owner, self.deadline)
            except Exception as e:
                log.warning("%s of %s failed: %s", item.what, item.owner, e)
            finally:
                async with wake:
                    self._busy[item.owner] -= 1
                    if not self._busy[item.owner]:
                        del self._busy[item.owner]
                    wake.notify_all()

    def pending(self) -> int:
        """Waiting and being sent."""
        return self._count + sum(self._busy.values())

    async def drained(self, timeout: float = 60.0) -> None:
        """Until nothing waits or is being sent (tests, shutdown)."""
        wake = self._start()
        async with wake:
            await asyncio.wait_for(wake.wait_for(lambda: not self.pending()), timeout)

    def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._tasks, self._wake = [], None
