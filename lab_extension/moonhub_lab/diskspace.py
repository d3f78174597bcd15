"""The workspace's size and use, as the lab's status bar shows them, and the notices a
nearly full or full workspace gives the user.

On MoonHub's storage the workspace's ``df`` is its own quota (Gluster's
``quota-deem-statfs``): ``statvfs`` of the home folder gives the workspace's size and use,
not the whole volume's. A write past the size fails with "Disk quota exceeded", which
JupyterLab shows only as a failed save; the notices say what happened and what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .memory import human_bytes

#: the share of the workspace at which the user is warned, and at which it counts as full
WARN_AT = 0.9
FULL_AT = 0.99


@dataclass(frozen=True)
class Space:
    total: int
    used: int

    @property
    def free(self) -> int:
        return max(self.total - self.used, 0)

    @property
    def level(self) -> str:
        """``ok``, ``warn`` or ``full``."""
        if self.total <= 0:
            return "ok"
        share = self.used / self.total
        return "full" if share >= FULL_AT else "warn" if share >= WARN_AT else "ok"

    def as_dict(self) -> dict[str, object]:
        return {"total": self.total, "used": self.used, "free": self.free, "level": self.level}


def measure(path: str) -> Space:
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    return Space(total=total, used=total - st.f_bfree * st.f_frsize)


def notice_text(space: Space) -> str | None:
    """What the user reads at ``space``'s level (pure); None when all is well."""
    used, total = human_bytes(space.used), human_bytes(space.total)
    if space.level == "full":
        return (
            f"Your workspace is full ({used} of {total}): saving files and notebooks fails until you delete "
            "something (e.g. old outputs, checkpoints, datasets you can read from a shared folder) or start "
            "your server with a larger workspace size."
        )
    if space.level == "warn":
        return (
            f"Your workspace is almost full ({used} of {total}). When it is full, saves fail: delete files you "
            "no longer need, or start your server with a larger workspace size."
        )
    return None
