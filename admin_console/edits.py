"""Admin edits to the catalog document, written back only when the result validates as a
catalog (the same checks as the hub's own load). Pure (``catalog_source`` writes).

Two kinds of edit:

- the quick ones a row of the console saves: ``{"op": "environment" | "size" | "gpu_type",
  "name", "enabled"?, "default"?, "groups"?}`` and ``{"op": "gpu_quota", "group", "gpus"}``;
- curation: ``{"op": "add", "kind", "item"}``, ``{"op": "update", "kind", "name", "set"}``
  and ``{"op": "remove", "kind", "name"}`` for environments, sizes and GPU types. A removed
  item's name also goes from the entitlements and per-type quotas that named it.

A refusal names the field (the item's key itself, e.g. ``image`` or ``cpu_limit``) and
changes nothing. Images are checked by the caller (``images_check``) before an edit that
offers a new one is written.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from moonhub_core.errors import Conflict, FieldError, NotFound

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
    if op in CURATION:
        return CURATION[op](out, edit)
    raise FieldError("op", f"must be one of {', '.join([*ITEMS, 'gpu_quota', *CURATION])}")


#: kind -> (the catalog list, the keys an item has: required, optional)
KINDS: dict[str, tuple[str, set[str], set[str]]] = {
    "environment": (
        "environments",
        {"name", "display_name", "image"},
        {"description", "framework", "framework_version", "cuda", "enabled", "default", "groups", "image_digest"},
    ),
    "size": (
        "sizes",
        {"name", "display_name", "cpu_guarantee", "cpu_limit", "memory_guarantee", "memory_limit"},
        {"description", "default", "groups"},
    ),
    "gpu_type": ("gpu_types", {"name", "display_name", "node_selector"}, {"counts", "description", "groups"}),
}
#: what an entitlement lists, per kind
_ENTITLEMENT_KEY = {"environment": "environments", "size": "sizes", "gpu_type": "gpu_types"}
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
_TEXT = {"display_name", "description", "image", "framework", "framework_version", "cuda", "image_digest"}


def _kind(edit: dict[str, Any]) -> tuple[str, str, set[str], set[str]]:
    """The edit's kind, its catalog list's key, and its items' required and optional keys."""
    kind = edit.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise FieldError("kind", f"must be one of {', '.join(KINDS)}")
    key, required, optional = KINDS[kind]
    return kind, key, required, optional


def _check_value(kind: str, key: str, value: Any) -> Any:
    """One item value, checked on its own (the whole catalog is checked on writing)."""
    if key in _TEXT:
        if not isinstance(value, str) or (key in ("display_name", "image") and not value.strip()):
            raise FieldError(key, "must be text" + (", not empty" if key in ("display_name", "image") else ""))
        value = value.strip()
        if key == "image" and any(c.isspace() for c in value):
            raise FieldError(key, f"{value!r} is not an image reference")
        return value
    if key in ("enabled", "default"):
        if not isinstance(value, bool):
            raise FieldError(key, "must be true or false")
        return value
    if key == "groups":
        return _groups(value)
    if key in ("cpu_guarantee", "cpu_limit"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise FieldError(key, "must be a number of CPU cores larger than 0")
        return value
    if key in ("memory_guarantee", "memory_limit"):
        try:
            if not isinstance(value, str) or parse_quantity(value) <= 0:
                raise ValueError
        except ValueError:
            raise FieldError(key, f"{value!r} is not an amount of memory (e.g. 4Gi)") from None
        return value
    if key == "node_selector":
        if (
            not isinstance(value, dict)
            or not value
            or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in value.items())
        ):
            raise FieldError(key, "must map node labels to values, at least one")
        return value
    if key == "counts":
        if not isinstance(value, list) or not value or not all(type(c) is int and c > 0 for c in value):
            raise FieldError(key, "must be a list of GPU counts, each 1 or more")
        return sorted(set(value))
    raise FieldError(key, f"is not a {kind.replace('_', ' ')} setting")  # pragma: no cover (keys are checked first)


def _checked_item(
    kind: str, item: dict[str, Any], required: set[str], optional: set[str], given: set[str]
) -> dict[str, Any]:
    """``item`` with the ``given`` keys (those the admin sent) checked; the rest were in
    the catalog already (the whole catalog is checked again on writing)."""
    unknown = given - required - optional
    if unknown:
        raise FieldError(sorted(unknown)[0], f"is not a {kind.replace('_', ' ')} setting")
    missing = required - set(item)
    if missing:
        raise FieldError(sorted(missing)[0], "is needed")
    out = {k: _check_value(kind, k, v) if k in given and k != "name" else v for k, v in item.items()}
    if kind == "size":  # a limit below its guarantee: named here, not as the whole catalog
        if out["cpu_limit"] < out["cpu_guarantee"]:
            raise FieldError("cpu_limit", f"must be at least the guarantee ({out['cpu_guarantee']})")
        if parse_quantity(out["memory_limit"]) < parse_quantity(out["memory_guarantee"]):
            raise FieldError("memory_limit", f"must be at least the guarantee ({out['memory_guarantee']})")
    if not out.get("groups", True):
        out.pop("groups")
    return out


def _add(doc: dict[str, Any], edit: dict[str, Any]) -> dict[str, Any]:
    kind, key, required, optional = _kind(edit)
    item = edit.get("item")
    if not isinstance(item, dict):
        raise FieldError("item", f"must be a JSON object with the {kind.replace('_', ' ')}'s settings")
    name = item.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise FieldError("name", "must be 1-40 lower-case letters, digits and dashes, starting and ending alphanumeric")
    items = doc.setdefault(key, []) or []
    doc[key] = items
    if any(i.get("name") == name for i in items):
        raise Conflict("name", f"a {kind.replace('_', ' ')} named {name!r} exists")
    new = _checked_item(kind, item, required, optional, set(item))
    if new.get("default"):
        for other in items:
            other.pop("default", None)
    items.append(new)
    return doc


def _find(doc: dict[str, Any], kind: str, key: str, name: Any) -> dict[str, Any]:
    item = next((i for i in doc.get(key) or [] if i.get("name") == name), None)
    if item is None:
        raise NotFound("name", f"no {kind.replace('_', ' ')} named {name!r}")
    return item


def _update(doc: dict[str, Any], edit: dict[str, Any]) -> dict[str, Any]:
    kind, key, required, optional = _kind(edit)
    item = _find(doc, kind, key, edit.get("name"))
    changes = edit.get("set")
    if not isinstance(changes, dict) or not changes:
        raise FieldError("set", "must be a JSON object of the settings to change")
    if "name" in changes:
        raise FieldError("name", "can not be changed (remove the item and add it under the new name)")
    if kind == "environment" and "image" in changes and "image_digest" not in changes:
        item.pop("image_digest", None)  # a new image: its old digest is not its
    merged = {k: v for k, v in {**item, **changes}.items() if v is not None or k in required}
    new = _checked_item(kind, merged, required, optional, set(changes))
    if new.get("default"):
        for other in doc[key]:
            other.pop("default", None)
    item.clear()
    item.update(new)
    return doc


def _remove(doc: dict[str, Any], edit: dict[str, Any]) -> dict[str, Any]:
    kind, key, _, _ = _kind(edit)
    name = edit.get("name")
    item = _find(doc, kind, key, name)
    doc[key] = [i for i in doc[key] if i is not item]
    for ent in doc.get("entitlements") or []:
        listed = ent.get(_ENTITLEMENT_KEY[kind])
        if isinstance(listed, list) and name in listed:
            ent[_ENTITLEMENT_KEY[kind]] = [n for n in listed if n != name]
    if kind == "gpu_type":
        for per_type in (doc.get("group_gpu_type_quotas") or {}).values():
            if isinstance(per_type, dict):
                per_type.pop(name, None)
    return doc


CURATION = {"add": _add, "update": _update, "remove": _remove}


def offered_images(before: dict[str, Any], after: dict[str, Any], edit: dict[str, Any]) -> list[tuple[str, str]]:
    """Pure: the (environment, image) pairs to check before ``after`` is written: those
    ``before`` did not offer, and an environment whose image an ``update`` names (checked
    again, even if unchanged: that is how an admin pins an image already offered)."""
    old = {(e.get("name"), e.get("image")) for e in before.get("environments") or []}
    again = edit.get("name") if edit.get("op") == "update" and "image" in (edit.get("set") or {}) else None
    return [
        (str(e.get("name")), str(e.get("image")))
        for e in after.get("environments") or []
        if (e.get("name"), e.get("image")) not in old or e.get("name") == again
    ]


def in_use(before: dict[str, Any], after: dict[str, Any], servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pure: the running ``servers`` (the console's view of them) that use an item the edit
    removed or disabled, or an environment given another image, with what that means for
    them (they keep running; their next start is what changes)."""
    changed: dict[tuple[str, str], str] = {}
    for kind, (key, _, _) in KINDS.items():
        now = {i.get("name"): i for i in after.get(key) or []}
        for item in before.get(key) or []:
            name, new = item.get("name"), now.get(item.get("name"))
            label = kind.replace("_", " ")
            if new is None:
                changed[kind, name] = f"{label} {name} was removed: its next start needs another {label}"
            elif kind == "environment" and new.get("enabled", True) is False and item.get("enabled", True):
                changed[kind, name] = f"{label} {name} was disabled: its next start needs another {label}"
            elif kind == "environment" and (new.get("image"), new.get("image_digest")) != (
                item.get("image"),
                item.get("image_digest"),
            ):
                changed[kind, name] = f"{label} {name} has a new image: its next start runs that image"
    out = []
    for server in servers:
        for (kind, name), what in changed.items():
            if server.get(kind) == name:
                out.append({"user": server.get("user"), "server": server.get("name") or "", kind: name, "what": what})
    return out


def pin(doc: dict[str, Any], digests: dict[str, str]) -> dict[str, Any]:
    """Pure: ``doc`` with each environment's checked digest recorded (``image_digest``)."""
    for e in doc.get("environments") or []:
        if e.get("name") in digests and "@" not in str(e.get("image")):  # (one naming its digest is pinned)
            e["image_digest"] = digests[e["name"]]
    return doc


def describe(edit: dict[str, Any]) -> str:
    """Pure: what an (applied) edit did, in words, for the history."""
    op, kind = edit.get("op"), str(edit.get("kind") or edit.get("op") or "").replace("_", " ")
    if op == "add":
        return f"added {kind} {(edit.get('item') or {}).get('name')}"
    if op == "update":
        return f"changed {kind} {edit.get('name')}: {', '.join(sorted(edit.get('set') or {}))}"
    if op == "remove":
        return f"removed {kind} {edit.get('name')}"
    if op == "gpu_quota":
        return f"GPU quota of {edit.get('group')}: {edit.get('gpus')}"
    if op == "restore":
        return f"restored revision {edit.get('revision')}"
    changed = ", ".join(f"{k}={json.dumps(v)}" for k, v in edit.items() if k not in ("op", "name"))
    return f"{kind} {edit.get('name')}: {changed}"
