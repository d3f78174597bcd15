"""Images still being built, and what that means for the environments that use them.

The local platform's first ``./moonhub up`` starts the hub once the images it needs are built
(the hub's, the base notebook's, the storage helper's) and builds the framework images (PyTorch,
TensorFlow: gigabytes each) afterwards, in the background (``python -m images.build
--progress FILE``). The build writes its progress to one JSON document; ``./moonhub status``
shows it and the spawn form reads it (``spawner.image_builds``): an environment whose image
is not ready yet says how far it is ("PyTorch: building, 1 of 2") and can not be picked,
instead of a server that waits for an image nobody has pushed.

The document: ``{"updated": <unix time>, "images": [{"name": "pytorch-notebook", "state":
"building", "position": 1, "of": 2, "message": ""}, ...]}``. A missing or unreadable
document means nothing is being built (every image is taken to be there).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: what a build goes through, in order; ``failed`` at any step
STATES = ("waiting", "building", "pushing", "pulling", "ready", "failed")
_WORDS = {
    "waiting": "waiting to be built",
    "building": "building",
    "pushing": "being pushed to the registry",
    "pulling": "being pulled onto the node",
}


def read(path: Path | str | None) -> list[dict[str, Any]]:
    """The build's entries (none: no document, or one that does not parse)."""
    if not path:
        return []
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    images = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(images, list):
        return []
    return [e for e in images if isinstance(e, dict) and isinstance(e.get("name"), str)]


def write(path: Path, entries: Iterable[Mapping[str, Any]]) -> None:
    """Replace the document at once (readers never see half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"updated": time.time(), "images": [dict(e) for e in entries]}, indent=1))
    tmp.replace(path)


def words(entry: Mapping[str, Any]) -> str:
    """``building, 1 of 2`` / ``failed: <why>`` (pure)."""
    state = str(entry.get("state", ""))
    if state == "failed":
        return f"its build failed: {entry.get('message') or 'see the build log'}"
    where = f", {entry['position']} of {entry['of']}" if entry.get("position") and entry.get("of") else ""
    return f"{_WORDS.get(state, state)}{where}"


def repository(image: str) -> str:
    """``127.0.0.1:5000/moonhub/pytorch-notebook:tag`` -> ``moonhub/pytorch-notebook`` (pure)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]  # the registry's host
    return "/".join(parts)


def not_ready(image: str, entries: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The entry of the build of ``image`` when that build has not finished (pure)."""
    repo = repository(image)
    for e in entries:
        if repo == f"moonhub/{e['name']}" and e.get("state") != "ready":
            return e
    return None
