"""The hub image's exact Python packages (``images/hub/constraints.txt``), resolved for the
images' interpreter (Debian bookworm's Python 3.11.2 and glibc 2.36, :func:`build.target_flags`)
rather than this machine's, so that an image built tomorrow installs what CI passed with today.

    python -m images.lock            # rewrite images/hub/constraints.txt

pip resolves the hub's requirements and MoonHub's own wheel (its ``pyproject.toml``
dependencies) as the image would (``pip install --dry-run --report``, binary wheels only);
the wheelhouse download and the image's install both take the file with ``-c``
(images/build.py, images/hub/Dockerfile). Run it after changing either; a unit test says when
a dependency is missing from it (tests/unit/test_python_locks.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import build

HUB = build.HERE / "hub"
LOCK = HUB / "constraints.txt"
HEADER = """\
# The hub image's Python packages, exactly: resolved for the images' Python (Debian bookworm's
# 3.11.2, glibc 2.36) from requirements.txt and MoonHub's own wheel by `python -m images.lock`
# (images/lock.py); the wheelhouse and the image's pip install take it with -c. Regenerate it
# after changing either (a unit test names a dependency it lacks). Generated: do not edit.
"""


def resolved(report: dict[str, Any]) -> list[str]:
    """``name==version`` of every package a pip report installs, but MoonHub's own (pure)."""
    out = []
    for item in report.get("install", []):
        meta = item["metadata"]
        if meta["name"].lower() not in ("moonhub", "moonhub-lab"):
            out.append(f"{meta['name']}=={meta['version']}")
    return sorted(out, key=str.lower)


def lock() -> Path:
    spec = build.load_spec()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        build.own_wheel(build.REPO, where)
        wheel = next(where.glob("moonhub-*.whl"))
        report = where / "report.json"
        subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
                "--report", str(report), "--target", str(where / "target"), *build.target_flags(spec.os),
                "-r", str(HUB / "requirements.txt"), str(wheel),
            ],
            check=True,
        )  # fmt: skip
        pins = resolved(json.loads(report.read_text()))
    LOCK.write_text(HEADER + "\n".join(pins) + "\n")
    build.say(f"{LOCK.relative_to(build.REPO)}: {len(pins)} packages for Python {spec.os['python']}")
    return LOCK


if __name__ == "__main__":
    lock()
