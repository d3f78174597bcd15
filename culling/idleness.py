"""Since when a server's GPUs have all been idle, from utilization samples. Pure."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class IdleTracker:
    """Since when every GPU has been idle (at or below ``threshold`` percent)."""

    threshold: float = 0
    idle_since: float | None = None
    last: list[float] | None = None

    def observe(self, utilization: Sequence[float], now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.last = list(utilization)
        if utilization and all(u <= self.threshold for u in utilization):
            if self.idle_since is None:
                self.idle_since = now
        else:
            self.idle_since = None

    def idle_seconds(self, now: float | None = None) -> float:
        if self.idle_since is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.idle_since)
