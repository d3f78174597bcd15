"""Notifications never hold up run tracking or other owners' notifications (issue 32, item 3)."""

from __future__ import annotations

import asyncio
import time

from jobs_service import notify
from jobs_service.outbox import Outbox, Rate


async def test_a_receiver_that_never_answers_holds_only_its_owners_share() -> None:
    box = Outbox(workers=4, per_owner_at_once=2, deadline=0.5)
    told: dict[str, float] = {}
    t0 = time.monotonic()

    async def hang() -> None:
        await asyncio.sleep(3600)

    async def answer(owner: str) -> None:
        told[owner] = time.monotonic() - t0

    put = [await box.put("mallory", f"hook {i}", hang) for i in range(10)]
    for owner in ("ann", "bob", "cat"):
        put.append(await box.put(owner, "hook", lambda o=owner: answer(o)))  # type: ignore[misc]
    assert all(put)
    assert time.monotonic() - t0 < 0.1, "putting never waits on sending"
    await asyncio.sleep(0.2)
    assert set(told) == {"ann", "bob", "cat"} and max(told.values()) < 0.2, told
    assert box.pending() == 10, "mallory's wait, two at a time"
    await box.drained(timeout=5)
    assert box.sent == 3
    box.close()


async def test_what_does_not_fit_is_dropped_not_queued_forever() -> None:
    box = Outbox(workers=1, waiting=5, per_owner_waiting=3, deadline=1)
    gate = asyncio.Event()

    async def wait() -> None:
        await gate.wait()

    results = [await box.put("mallory", "x", wait) for _ in range(5)]
    await asyncio.sleep(0)
    assert results.count(False) >= 1, "an owner's waiting items are bounded"
    more = [await box.put(f"u{i}", "x", wait) for i in range(10)]
    assert more.count(False) >= 5, "the outbox is bounded"
    gate.set()
    await box.drained(timeout=5)
    box.close()


def test_rates_are_per_owner_over_a_sliding_hour() -> None:
    r = Rate(per_hour=2)
    assert r.take("ann", now=0) and r.take("ann", now=10) and not r.take("ann", now=20)
    assert r.take("bob", now=20), "another owner's own"
    assert r.take("ann", now=3601), "the first has left the hour"
    policy = notify.WebhookPolicy(per_hour=1)
    assert policy.take("ann") and not policy.take("ann")
