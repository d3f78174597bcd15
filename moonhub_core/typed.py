"""Typed YAML documents: dataclasses in, errors that name the key path out.

Shared by the platform config (:mod:`moonhub_core.platform`) and the spawner's catalog:
unknown keys are refused with a suggestion, types are checked, and the error names the
dotted path of the field (``sizes[2].cpu_limit: must be a number, not 'two'``).
"""

from __future__ import annotations

import difflib
import types
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class DocumentError(ValueError):
    """A bad document; the message names the file (when known) and the key path."""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check(value: Any, hint: Any, path: str) -> Any:
    """``value`` converted to / checked against the type ``hint``; raises DocumentError."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        return check(value, inner[0], path)
    if is_dataclass(hint):
        return build(hint, value, path)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in get_args(hint):
            raise DocumentError(f"{path}: must be one of {', '.join(map(repr, get_args(hint)))}, not {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise DocumentError(f"{path}: must be a list, not {type(value).__name__}")
        return [check(v, get_args(hint)[0], f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise DocumentError(f"{path}: must be a mapping, not {type(value).__name__}")
        kt, vt = get_args(hint)
        return {check(k, kt, path): check(v, vt, _join(path, str(k))) for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool and not isinstance(value, bool):
        raise DocumentError(f"{path}: must be true or false, not {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise DocumentError(f"{path}: must be an integer, not {value!r}")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DocumentError(f"{path}: must be a number, not {value!r}")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise DocumentError(f"{path}: must be a string, not {value!r}")
    return value


def build(cls: type[T], data: Any, path: str = "") -> T:
    """An instance of the dataclass ``cls`` from a parsed mapping."""
    where = path or "the document"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DocumentError(f"{where}: must be a mapping, not {type(data).__name__}")
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(names)})"
            raise DocumentError(f"{_join(path, str(key))}: unknown key{hint}")
    kwargs = {k: check(v, hints[k], _join(path, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        missing = [f.name for f in fields(cls) if f.name not in kwargs]  # type: ignore[arg-type]
        raise DocumentError(f"{where}: missing required key(s) {', '.join(missing)}") from e


def load_file(cls: type[T], path: Path) -> T:
    """Read ``path`` (YAML) as a ``cls``; errors start with the file's path."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise DocumentError(f"{path}: cannot read: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise DocumentError(f"{path}: not valid YAML: {e}") from e
    try:
        return build(cls, data)
    except DocumentError as e:
        raise DocumentError(f"{path}: {e}") from None
