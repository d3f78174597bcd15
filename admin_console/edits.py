"""Admin edits to the catalog document, written back only when the result validates as a
catalog (the same checks as the hub's own load). Pure but for :func:`write`."""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from moonhub_core.catalog import CatalogError, load
from moonhub_core.errors import FieldError

#: op -> (the catalog list it edits, the keys an edit may set)
ITEMS = {
    "environment": ("environments", {"enabled", "default", "groups"}),
    "size": ("sizes", {"default", "groups"}),
    "gpu_type": ("gpu_types", {"groups"}),
}


def _groups(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(g, str) and g.strip() for g in value):
        raise FieldError("groups", "must be a list of group names ([] lifts the restriction)")
    return sorted({g.strip() for g in value})


def apply(doc: dict[str, Any], edit: Any) -> dict[str, Any]:
    """A new catalog document with ``edit`` applied; 400 naming the field when it is bad."""
    if not isinstance(edit, dict):
        raise FieldError("body", "must be a JSON object")
    out = copy.deepcopy(doc)
    op = edit.get("op")
    if op in ITEMS:
        key, settable = ITEMS[op]
        items = out.get(key) or []
        name = edit.get("name")
        item = next((i for i in items if i.get("name") == name), None)
        if item is None:
            raise FieldError("name", f"no {op.replace('_', ' ')} named {name!r}")
        unknown = set(edit) - settable - {"op", "name"}
        if unknown:
            sets = ", ".join(sorted(settable))
            raise FieldError(sorted(unknown)[0], f"can not be changed here (a {op} edit sets {sets})")
        for field in ("enabled", "default"):
            if field in edit and not isinstance(edit[field], bool):
                raise FieldError(field, "must be true or false")
        if "enabled" in edit:
            item["enabled"] = edit["enabled"]
        if edit.get("default") is True:
            for other in items:
                other.pop("default", None)
            item["default"] = True
        elif edit.get("default") is False:
            item.pop("default", None)
        if "groups" in edit:
            groups = _groups(edit["groups"])
            if groups:
                item["groups"] = groups
            else:
                item.pop("groups", None)
        return out
    if op == "gpu_quota":
        group, gpus = edit.get("group"), edit.get("gpus")
        if not isinstance(group, str) or not group.strip():
            raise FieldError("group", "must name a group")
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
            raise FieldError("gpus", "must be a whole number, 0 or more (0 removes the quota)")
        quotas = out.setdefault("group_gpu_quotas", {}) or {}
        out["group_gpu_quotas"] = quotas
        if gpus:
            quotas[group.strip()] = gpus
        else:
            quotas.pop(group.strip(), None)
        return out
    raise FieldError("op", f"must be one of {', '.join([*ITEMS, 'gpu_quota'])}")


def write(path: Path, doc: dict[str, Any]) -> None:
    """Replace the catalog at ``path`` with ``doc`` if it validates; else 400, file kept."""
    fd, tmp = tempfile.mkstemp(prefix=".catalog-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("# edited in the MoonHub admin console\n")
            yaml.safe_dump(doc, f, sort_keys=False)
        try:
            load(Path(tmp))
        except CatalogError as e:
            raise FieldError("catalog", str(e).replace(f"{tmp}: ", "")) from None
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
