"""What the shared-server guard (``moonhub_lab/sharing.py``) adds to each request a server
answers, against what JupyterHub's own identity provider already does on every request (the
baseline: checking the user's scopes against the server's access scope, once the user is
known). Both run in-process on the same user model; printed: microseconds per request,
medians of ``--repeat`` rounds of ``--requests`` requests, for the owner, a reader and a
user shared with in full, over a mix of JupyterLab's requests; and what the filter of a
reader's document websocket (editing together) costs per Yjs message, against handing the
message on unlooked-at.

    .venv/bin/python -m benchmarks.share_guard [--requests 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from jupyterhub.services.auth import check_scopes

from moonhub_core import sharing

# the server extension's package, as the tests import it (it is installed in the images)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lab_extension"))
from moonhub_lab import sharing as guard

OWNER = "ola"
ACCESS = {f"access:servers!server={OWNER}/", f"access:servers!user={OWNER}"}
#: what JupyterLab asks of a server while someone works in it (reads, a save, a kernel's socket)
MIX = [
    ("GET", "api/contents/data/report.ipynb", False),
    ("GET", "api/kernels", False),
    ("GET", "api/sessions", False),
    ("GET", "lab/api/workspaces/default", False),
    ("PUT", "api/contents/data/report.ipynb", False),
    ("GET", "api/kernels/0b5e/channels", True),
    ("GET", "static/lab/main.js", False),
    ("GET", "api/metrics/v1", False),
    ("PUT", "api/collaboration/session/data/report.ipynb", False),  # editing together
    ("GET", "api/collaboration/room/json:notebook:0c1d", True),
]
#: what a document's websocket carries while people type: updates, awareness, sync step 1
MESSAGES = [bytes([0, 2, 40]) + bytes(40), bytes([1, 60]) + bytes(60), bytes([0, 0, 3, 1, 2, 3])]


def _user(name: str, access: str | None) -> dict[str, list[str]]:
    """A user model as the hub answers it for a login token to the server."""
    scopes = [f"read:users:name!user={name}", f"users:activity!user={name}", "read:users:groups!user=" + name]
    if name == OWNER:
        scopes.append(f"access:servers!user={OWNER}")
    if access:
        scopes += sharing.scopes(OWNER, access)
    return {"name": name, "scopes": scopes}  # type: ignore[dict-item]


def _round(n: int, call: Callable[[str, str, bool], object]) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        method, path, ws = MIX[i % len(MIX)]
        call(method, path, ws)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    print(f"{'who':8} {'baseline (JupyterHub) µs':>26} {'with the guard µs':>19} {'ratio':>6}")
    for who, access in ((OWNER, None), ("rudi", "read"), ("wren", "full")):
        user = _user(who, access)
        scopes = user["scopes"]

        def baseline(method: str, path: str, ws: bool, scopes: list[str] = scopes) -> object:
            return check_scopes(ACCESS, set(scopes))

        def guarded(method: str, path: str, ws: bool, who: str = who, scopes: list[str] = scopes) -> object:
            return baseline(method, path, ws) and guard.refusal(method, path, ws, OWNER, "", who, scopes)

        base = statistics.median(_round(a.requests, baseline) for _ in range(a.repeat))
        with_guard = statistics.median(_round(a.requests, guarded) for _ in range(a.repeat))
        print(f"{who:8} {base:26.2f} {with_guard:19.2f} {with_guard / base:6.2f}")

    def _messages(n: int, call: Callable[[bytes], object]) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            call(MESSAGES[i % len(MESSAGES)])
        return (time.perf_counter() - t0) / n * 1e6

    def hand_on(message: bytes) -> object:
        return message

    def filtered(message: bytes) -> object:
        return guard.reader_may_send(message) and message

    base = statistics.median(_messages(a.requests, hand_on) for _ in range(a.repeat))
    with_filter = statistics.median(_messages(a.requests, filtered) for _ in range(a.repeat))
    print(f"\n{'a reader':8} {'per Yjs message, unfiltered µs':>26} {'filtered µs':>19} {'ratio':>6}")
    print(f"{'':8} {base:26.2f} {with_filter:19.2f} {with_filter / base:6.2f}")


if __name__ == "__main__":
    main()
