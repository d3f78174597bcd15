"""Where a spawn's time goes, read from a hub's log (MoonHub's or stock KubeSpawner's).

JupyterHub and KubeSpawner log each step of a spawn at INFO with a millisecond clock; the
request's own line gives its duration, so its arrival is known too. For each user this
takes the first time each step is logged and prints the time between the steps:

- ``request -> claim``: from the POST's arrival to the workspace claim's creation (JupyterHub
  accepting the spawn, then the spawner's options: MoonHub checks the choices and reads the
  user's secrets here);
- ``claim -> pod``: the claim, then the pod's creation;
- ``pod -> started``: the pod made, until JupyterHub says the server started (the pod
  runs and the server answers);
- ``started -> answered``: the proxy route, then the REST answer.

    .venv/bin/python -m benchmarks.spawn_phases .state/scale-cluster/logs/scale-moonhub.log [--users 1000]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from .hub_load import pct

#: (step, pattern whose groups are the time and the user); the first line of each counts
STEPS = (
    ("claim", re.compile(r"^\[I (\S+ \S+) JupyterHub spawner:\d+\] Attempting to create pvc claim-(\S+?),")),
    # KubeSpawner's line, or MoonHub's (it creates the pod itself: docs/spawner.md)
    (
        "pod",
        re.compile(
            r"^\[I (\S+ \S+) JupyterHub spawner:\d+\] (?:Attempting to create|\S+: creating) pod "
            r"(?:jupyter-|base-)([^\s,]+)"
        ),
    ),
    ("started", re.compile(r"^\[I (\S+ \S+) JupyterHub base:\d+\] User (\S+) took [\d.]+ seconds to start")),
)
#: the spawn request's access-log line: time, status, user, milliseconds
ANSWER = re.compile(
    r"^\[I (\S+ \S+) JupyterHub log:\d+\] (20[12]) POST /hub/api/users/([^/\s]+)/server \(.*\) ([\d.]+)ms"
)
PHASES = (
    ("request -> claim", "request", "claim"),
    ("claim -> pod", "claim", "pod"),
    ("pod -> started", "pod", "started"),
    ("started -> answered", "started", "answered"),
    ("request -> answered", "request", "answered"),
)


def _when(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def steps(lines: Iterable[str], since: float = 0.0) -> dict[str, dict[str, float]]:
    """Pure: user -> step -> when (seconds), the first of each step per user logged at
    ``since`` or later (a log that earlier runs appended to)."""
    found: dict[str, dict[str, float]] = {}
    for line in lines:
        m = ANSWER.match(line)
        if m:
            at = _when(m.group(1))
            if at < since:
                continue
            mine = found.setdefault(m.group(3), {})
            if "answered" not in mine:
                mine["answered"], mine["request"] = at, at - float(m.group(4)) / 1000
            continue
        for step, pattern in STEPS:
            m = pattern.match(line)
            if m:
                if (at := _when(m.group(1))) >= since:
                    found.setdefault(m.group(2), {}).setdefault(step, at)
                break
    return found


def phases(found: dict[str, dict[str, float]], users: Iterable[str] | None = None) -> dict[str, list[float]]:
    """Pure: phase -> the seconds it took, for each user (of ``users``) whose log shows both ends."""
    chosen = list(found) if users is None else [u for u in users if u in found]
    out: dict[str, list[float]] = {}
    for name, a, b in PHASES:
        out[name] = [found[u][b] - found[u][a] for u in chosen if a in found[u] and b in found[u]]
    return out


def table(rows: dict[str, dict[str, list[float]]]) -> str:
    """One line per phase: p50 / p95 ms for each log."""
    names = list(rows)
    out = [f"{'phase (p50 / p95 ms)':24}" + "".join(f"{n:>24}" for n in names)]
    for phase, _, _ in PHASES:
        cells = []
        for n in names:
            values = rows[n].get(phase) or []
            cells.append(f"{1000 * pct(values, 50):.0f} / {1000 * pct(values, 95):.0f} (n={len(values)})")
        out.append(f"{phase:24}" + "".join(f"{c:>24}" for c in cells))
    return "\n".join(out)


def read(log: Path, users: Iterable[str] | None = None, since: float = 0.0) -> dict[str, list[float]]:
    """The phases of ``users``' spawns logged in ``log`` at ``since`` (epoch seconds) or later."""
    try:
        with log.open(errors="replace") as f:
            return phases(steps(f, since), users)
    except OSError:
        return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--users", type=int, help="only the first N users (u00000 ...): the burst's")
    args = parser.parse_args()
    users = [f"u{i:05d}" for i in range(args.users)] if args.users else None
    print(table({log.stem: read(log, users) for log in args.logs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
