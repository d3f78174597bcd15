"""What to do about one running server: warn its user, reclaim its GPUs, or nothing. Pure.

Two clocks: activity (jupyterhub-idle-culler stops a server ``idle_timeout`` after its last
activity; this service only warns before that happens) and GPU idleness (a server holding
GPUs that have all shown 0% for ``gpu_idle_timeout`` is stopped by this service, even with
its browser tab open: an open tab keeps a server active but does not use its GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal


@dataclass(frozen=True)
class Settings:
    #: seconds of inactivity after which the idle culler stops a server (0: no culling)
    idle_timeout: int = 3600
    #: seconds at 0% on every GPU after which a GPU server is reclaimed (0: never)
    gpu_idle_timeout: int = 1800
    #: how long before either the user is warned in JupyterLab
    warn_before: int = 600


@dataclass(frozen=True)
class Server:
    user: str
    name: str
    last_activity: datetime | None
    gpu_count: int = 0
    #: seconds every GPU has been idle, as the server's own sampler reports it
    gpu_idle_seconds: float = 0.0


@dataclass(frozen=True)
class Action:
    kind: Literal["warn", "reclaim"]
    reason: Literal["idle", "gpu-idle"]
    #: when the server will be stopped
    deadline: datetime
    message: str


def _when(t: datetime) -> str:
    return t.strftime("%H:%M UTC")


def decide(s: Server, now: datetime, cfg: Settings) -> list[Action]:
    """The actions for ``s`` at ``now``: at most one per clock."""
    out: list[Action] = []
    if s.gpu_count and cfg.gpu_idle_timeout:
        left = cfg.gpu_idle_timeout - s.gpu_idle_seconds
        deadline = now + timedelta(seconds=max(0.0, left))
        if left <= 0:
            out.append(
                Action(
                    "reclaim",
                    "gpu-idle",
                    now,
                    f"stopped: its {s.gpu_count} GPU(s) were idle for {round(s.gpu_idle_seconds / 60)} min",
                )
            )
            return out  # stopping it answers the activity clock too
        if left <= cfg.warn_before:
            out.append(
                Action(
                    "warn",
                    "gpu-idle",
                    deadline,
                    f"Your GPUs have been idle for {round(s.gpu_idle_seconds / 60)} min. This server will be "
                    f"stopped at {_when(deadline)} to give them to others unless they get work. Your files are kept.",
                )
            )
    if cfg.idle_timeout and s.last_activity is not None:
        deadline = s.last_activity + timedelta(seconds=cfg.idle_timeout)
        if deadline - now <= timedelta(seconds=cfg.warn_before):
            out.append(
                Action(
                    "warn",
                    "idle",
                    deadline,
                    f"This server has been inactive since {_when(s.last_activity)} and will be stopped at "
                    f"{_when(deadline)}. Use it (run a cell, open a file) to keep it. Your files are kept.",
                )
            )
    return out
