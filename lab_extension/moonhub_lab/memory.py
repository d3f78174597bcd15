"""Out-of-memory kills in this server's container, as notices for the user.

The kernel enforces the memory limit of the user's size: when the container reaches it, the
OOM killer stops its largest process (usually a kernel), and JupyterLab only says that the
kernel died. :class:`OomWatch` reads the container's cgroup counter of OOM kills (cgroup v2
``memory.events``, v1 ``memory.oom_control``) and turns each new kill into a notice naming
the limit, so the user knows why and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def oom_kills(text: str) -> int | None:
    """The ``oom_kill`` count of a ``memory.events`` / ``memory.oom_control`` file (pure)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def human_bytes(n: int) -> str:
    """``4294967296`` -> ``4 GiB`` (pure)."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def message(kills: int, limit: int | None) -> str:
    """What the user reads (pure)."""
    what = "A process" if kills == 1 else f"{kills} processes"
    limit_text = f" (limit {human_bytes(limit)})" if limit else ""
    return (
        f"{what} in this server ran out of memory{limit_text} and the kernel's OOM killer stopped it; "
        "a notebook kernel that died was probably it. Use less memory, or start the server with a larger size."
    )


@dataclass
class OomWatch:
    """Reports OOM kills since the server started."""

    root: Path = CGROUP
    seen: int | None = None

    def _read(self) -> tuple[int | None, int | None]:
        v2_events, v1 = self.root / "memory.events", self.root / "memory"
        try:
            if v2_events.exists():
                limit_text = (self.root / "memory.max").read_text().strip()
                return oom_kills(v2_events.read_text()), int(limit_text) if limit_text.isdigit() else None
            limit = int((v1 / "memory.limit_in_bytes").read_text().strip())
            # an unlimited cgroup v1 reports a huge number
            return oom_kills((v1 / "memory.oom_control").read_text()), limit if limit < 2**60 else None
        except (OSError, ValueError):
            return None, None

    def new_kills(self) -> tuple[int, int | None]:
        """(kills since the last call, the memory limit); the first call only sets the baseline."""
        count, limit = self._read()
        if count is None:
            return 0, limit
        if self.seen is None:
            self.seen = count
            return 0, limit
        new, self.seen = count - self.seen, count
        return max(new, 0), limit
