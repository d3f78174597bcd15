"""values.schema.json from values.yaml, the chart's one documented source.

Types come from the defaults, descriptions from the comment lines above each key; a
comment with ``@map`` makes a free-form mapping (its content is validated elsewhere, e.g.
the platform document by the hub at start). Every other mapping refuses unknown keys, so a
misspelt value fails ``helm install`` naming the key.

    python -m helm.schema          # rewrite helm/moonhub/values.schema.json
    python -m helm.schema --check  # exit 1 when it is not up to date
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent / "moonhub"
KEY = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*):")


def comments(text: str) -> dict[tuple[str, ...], str]:
    """The comment block above each key, by key path (indentation gives the nesting)."""
    out: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        m = KEY.match(line)
        if not m:
            pending = [] if not stripped else pending
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        if pending:
            out[tuple(k for _, k in stack)] = " ".join(pending)
        pending = []
    return out


def schema_of(value: Any, path: tuple[str, ...], docs: dict[tuple[str, ...], str]) -> dict[str, Any]:
    doc = docs.get(path, "")
    if path and not doc:
        raise SystemExit(f"values.yaml: {'.'.join(path)} has no description comment")
    out: dict[str, Any] = {}
    if doc:
        out["description"] = doc.replace("@map", "").strip()
    if isinstance(value, dict):
        out["type"] = "object"
        if "@map" in doc:
            return out
        out["additionalProperties"] = False
        out["properties"] = {k: schema_of(v, (*path, k), docs) for k, v in value.items()}
    elif isinstance(value, bool):
        out["type"] = "boolean"
    elif isinstance(value, int):
        out["type"] = "integer"
    elif isinstance(value, float):
        out["type"] = "number"
    elif isinstance(value, list):
        out["type"] = "array"
    else:
        out["type"] = "string"
    return out


def generate(values: Path = CHART / "values.yaml") -> str:
    text = values.read_text()
    docs = comments(text)
    root = schema_of(yaml.safe_load(text), (), docs)
    root = {"$schema": "http://json-schema.org/draft-07/schema#", "title": "MoonHub chart values", **root}
    return json.dumps(root, indent=2) + "\n"


def main() -> None:
    target = CHART / "values.schema.json"
    text = generate()
    if "--check" in sys.argv[1:]:
        if not target.exists() or target.read_text() != text:
            raise SystemExit(f"{target} is out of date: run python -m helm.schema")
        return
    target.write_text(text)


if __name__ == "__main__":
    main()
