"""What a notebook can tell MoonHub while it runs as a job.

``moonhub.publish("model_path", path)`` in a pipeline task hands a small value to the tasks
that depend on it: they receive it as a parameter of that name. Values are JSON (a string,
number, boolean, list or object), 16 KiB at most for all of a task's values together; they
are sent when the notebook ends. Outside a pipeline task (in JupyterLab, say) nothing is
sent and a note says so.
"""

from __future__ import annotations

import json
import keyword
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["publish"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: all of a task's published values, as JSON (the jobs service refuses more)
MAX_BYTES = 16 * 1024


def publish(name: str, value: Any) -> None:
    """Give ``value`` to the tasks that run after this one, as parameter ``name``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ValueError(f"{name!r} is not a usable parameter name (a Python variable name)")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: the value must be JSON (str, int, float, bool, list, dict): {e}") from None
    where = os.environ.get("MOONHUB_PUBLISH_FILE")
    if not where:
        print(f"moonhub.publish: not running as a pipeline task; {name} is not sent anywhere")
        return
    path = Path(where)
    values = json.loads(path.read_text()) if path.exists() else {}
    values[name] = value
    data = json.dumps(values)
    if len(data.encode()) > MAX_BYTES:
        raise ValueError(f"a task publishes at most {MAX_BYTES // 1024} KiB of values; {name} would pass that")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(data)
    tmp.replace(path)
