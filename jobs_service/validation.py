"""Validate a job definition submitted to the service. Pure: no Kubernetes, no database."""

from __future__ import annotations

import itertools
import json
import keyword
import re
from dataclasses import asdict, fields
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, cast
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from moonhub_core import secrets as sec
from moonhub_core.errors import FieldError

from . import runcontext
from .jobspec import CONCURRENCY_POLICY, Concurrency, Definition, Task

NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
MAX_NAME = 30
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_PARAMETERS_BYTES = 16 * 1024
#: what a job definition accepts: the fields of ``Definition``
FIELDS = {f.name for f in fields(Definition)}
#: what a pipeline's task accepts (``tasks``); choices, timeout and retries default to the job's
TASK_FIELDS = {f.name for f in fields(Task)}
#: when a task runs, from how the tasks it depends on ended
RUN_IF = ("all_succeeded", "all_done", "any_failed")
MAX_TASKS = 20
MAX_TASK_NAME = 20
#: a Jupyter kernel's name (what Jupyter accepts for a kernel spec's folder)
KERNEL = re.compile(r"[A-Za-z0-9._-]{1,64}")


def check_kernel(value: Any, key: str = "kernel") -> str:
    """A kernel name, or "" (the notebook's own). Whether it exists is the run's to find: it
    lives in the owner's image or workspace, and a run without it fails naming it."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not KERNEL.fullmatch(value) or value.startswith("."):
        raise FieldError(key, "must be a kernel's name (letters, digits, '.', '_' and '-'), e.g. env-lightgbm")
    return value


def _int(data: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(key, f"must be a whole number, not {value!r}")
    if not lo <= value <= hi:
        raise FieldError(key, f"must be between {lo} and {hi}, not {value}")
    return value


def check_notebook_path(path: Any) -> str:
    if not isinstance(path, str) or not path:
        raise FieldError("notebook", "must be the notebook's path in your workspace")
    p = PurePosixPath(path)
    if p.is_absolute() or path.startswith("~"):
        raise FieldError("notebook", f"must be relative to your workspace, not {path!r}")
    if ".." in p.parts:
        raise FieldError("notebook", "may not contain '..'")
    if p.suffix != ".ipynb":
        raise FieldError("notebook", "must be a .ipynb file")
    if len(path) > 255 or "\x00" in path:
        raise FieldError("notebook", "is not a usable path")
    return str(p)


def check_schedule(schedule: Any, timezone: Any, min_interval: timedelta) -> tuple[str | None, str]:
    if not isinstance(timezone, str) or not 0 < len(timezone) <= 64:
        raise FieldError("timezone", "must be an IANA time zone name such as Europe/Berlin")
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise FieldError(
            "timezone", f"unknown time zone {timezone!r} (use an IANA name such as Asia/Shanghai)"
        ) from None
    if schedule in (None, ""):
        return None, timezone
    if not isinstance(schedule, str):
        raise FieldError("schedule", "must be a cron expression such as '0 6 * * 1-5'")
    fields = schedule.split()
    if len(fields) != 5:
        raise FieldError("schedule", f"needs 5 fields (minute hour day month weekday), got {len(fields)}")
    if not croniter.is_valid(schedule):
        raise FieldError("schedule", f"{schedule!r} is not a valid cron expression")
    try:
        it = croniter(schedule, datetime(2026, 1, 1, tzinfo=tz))
        times = [it.get_next(datetime) for _ in range(3)]
    except (ValueError, OverflowError):  # croniter's "no next date" (e.g. the 30th of February)
        raise FieldError("schedule", f"{schedule!r} never fires (no such date)") from None
    gap = min(b - a for a, b in itertools.pairwise(times))
    if gap < min_interval:
        raise FieldError("schedule", f"runs every {gap}, more often than the allowed {min_interval}")
    return " ".join(fields), timezone


def check_parameters(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise FieldError("parameters", "must be an object of name: value")
    for k, v in params.items():
        if not isinstance(k, str) or not PARAM_NAME.fullmatch(k) or keyword.iskeyword(k):
            raise FieldError("parameters", f"{k!r} is not a usable Python variable name")
        if not isinstance(v, str | int | float | bool | list | dict) and v is not None:
            raise FieldError("parameters", f"{k}: values must be JSON")
    if len(json.dumps(params)) > MAX_PARAMETERS_BYTES:
        raise FieldError("parameters", f"are larger than {MAX_PARAMETERS_BYTES // 1024} KiB")
    runcontext.check(params)
    return dict(params)


#: what ``notify`` accepts
NOTIFY_KEYS = ("emails", "webhook", "on_success", "overdue_after_seconds", "webhook_format")
#: webhook payloads: MoonHub's own JSON, or what Slack (and chat tools that copy it) accept
WEBHOOK_FORMATS = ("plain", "slack")


def check_notify(value: Any) -> dict[str, Any]:
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise FieldError("notify", f"must be an object with {', '.join(NOTIFY_KEYS)}")
    unknown = set(value) - set(NOTIFY_KEYS)
    if unknown:
        raise FieldError("notify", f"unknown key(s) {', '.join(sorted(unknown))}")
    emails = value.get("emails") or []
    if (
        not isinstance(emails, list)
        or len(emails) > 20
        or not all(isinstance(e, str) and re.fullmatch(r"[^@\s]+@[^@\s]+", e) for e in emails)
    ):
        raise FieldError("notify", "emails must be a list of at most 20 e-mail addresses")
    hook = value.get("webhook") or ""
    if hook and (not isinstance(hook, str) or urlparse(hook).scheme not in ("http", "https") or len(hook) > 2048):
        raise FieldError("notify", "webhook must be an http(s) URL")
    on_success = value.get("on_success", False)
    if not isinstance(on_success, bool):
        raise FieldError("notify", "on_success must be true or false")
    overdue = value.get("overdue_after_seconds") or 0
    if isinstance(overdue, bool) or not isinstance(overdue, int) or not (overdue == 0 or 60 <= overdue <= 7 * 86400):
        raise FieldError("notify", "overdue_after_seconds must be 0 (off) or from 60 to 604800 seconds")
    fmt = value.get("webhook_format") or "plain"
    if fmt not in WEBHOOK_FORMATS:
        raise FieldError("notify", f"webhook_format must be one of {', '.join(WEBHOOK_FORMATS)}")
    found = {"emails": emails, "webhook": hook, "on_success": on_success}
    if overdue:
        found["overdue_after_seconds"] = overdue
    if fmt != "plain":
        found["webhook_format"] = fmt
    return found


def check_choice_names(data: dict[str, Any], prefix: str = "") -> None:
    """Environment, size and GPU type are catalog names (checked against the catalog later)."""
    for key in ("environment", "size", "gpu_type"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise FieldError(f"{prefix}{key}", "must be a name from the catalog")


def check_tasks(value: Any) -> list[dict[str, Any]]:
    """A pipeline's tasks: unique names, known dependencies, no cycle (pure)."""
    if value in (None, []):
        return []
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise FieldError("tasks", "must be a list of tasks ({name, notebook, depends_on, ...})")
    if len(value) > MAX_TASKS:
        raise FieldError("tasks", f"a job holds at most {MAX_TASKS} tasks, not {len(value)}")
    found: list[Task] = []
    for i, t in enumerate(value):
        where = f"tasks[{i}]"
        for key in t:
            if key not in TASK_FIELDS:
                raise FieldError(f"{where}.{key}", f"unknown field (accepted: {', '.join(sorted(TASK_FIELDS))})")
        name = t.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name) or len(name) > MAX_TASK_NAME:
            raise FieldError(
                f"{where}.name", f"must be lower-case letters, digits and '-', at most {MAX_TASK_NAME} characters"
            )
        if any(f.name == name for f in found):
            raise FieldError(f"{where}.name", f"two tasks are named {name!r}")
        try:
            notebook = check_notebook_path(t.get("notebook"))
            params = check_parameters(t.get("parameters"))
        except FieldError as e:
            raise FieldError(f"{where}.{e.field}", e.message) from None
        deps = t.get("depends_on") or []
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps) or len(set(deps)) != len(deps):
            raise FieldError(f"{where}.depends_on", "must be a list of other tasks' names, each once")
        run_if = t.get("run_if", "all_succeeded")
        if run_if not in RUN_IF:
            raise FieldError(f"{where}.run_if", f"must be one of {', '.join(RUN_IF)}")
        if run_if != "all_succeeded" and not deps:
            raise FieldError(f"{where}.run_if", "applies to a task that depends on others")
        check_choice_names(t, f"{where}.")
        limits = {"gpu_count": (0, 64), "timeout_seconds": (60, 7 * 24 * 3600), "retries": (0, 10)}
        try:
            ints = {k: _int(t, k, 0, lo, hi) if t.get(k) is not None else None for k, (lo, hi) in limits.items()}
        except FieldError as e:
            raise FieldError(f"{where}.{e.field}", e.message) from None
        found.append(
            Task(
                name=name,
                notebook=notebook,
                depends_on=list(deps),
                run_if=run_if,
                parameters=params,
                environment=t.get("environment"),
                size=t.get("size"),
                gpu_type=t.get("gpu_type") or None,
                kernel=check_kernel(t.get("kernel"), f"{where}.kernel") or None,
                **ints,
            )
        )
    names = [t.name for t in found]
    for i, t in enumerate(found):
        for d in t.depends_on:
            if d == t.name:
                raise FieldError(f"tasks[{i}].depends_on", f"task {t.name} can not depend on itself")
            if d not in names:
                raise FieldError(f"tasks[{i}].depends_on", f"no task named {d!r} (tasks: {', '.join(names)})")
    loop = find_cycle({t.name: t.depends_on for t in found})
    if loop:
        raise FieldError("tasks", f"the tasks depend on each other in a loop: {' -> '.join(loop)}")
    return [asdict(t) for t in found]


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A loop in ``graph`` (name -> names it depends on) as a path that ends where it
    starts, or None (pure; depth-first, in the order given)."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for d in graph.get(n, []):
            if state.get(d) == 1:
                return [*path[path.index(d) :], d]
            if d not in state and (found := visit(d)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in graph:
        if n not in state and (found := visit(n)):
            return found
    return None


def parse(data: Any, min_interval: timedelta = timedelta(minutes=1)) -> Definition:
    """A :class:`Definition` from the JSON body of a create / update request."""
    if not isinstance(data, dict):
        raise FieldError("body", "must be a JSON object")
    for key in data:
        if key not in FIELDS:
            raise FieldError(key, f"unknown field (accepted: {', '.join(sorted(FIELDS))})")
    name = data.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise FieldError(
            "name", "must be lower-case letters, digits and '-', starting and ending with a letter or digit"
        )
    if len(name) > MAX_NAME:
        raise FieldError("name", f"is {len(name)} characters; at most {MAX_NAME} fit in Kubernetes names")
    schedule, tz = check_schedule(data.get("schedule"), data.get("timezone", "UTC"), min_interval)
    concurrency = data.get("concurrency", "skip")
    if not isinstance(concurrency, str) or concurrency not in CONCURRENCY_POLICY:
        raise FieldError("concurrency", "must be 'skip' (if still running), 'replace' (the running one) or 'allow'")
    check_choice_names(data)
    active = data.get("active", True)
    if not isinstance(active, bool):
        raise FieldError("active", "must be true or false")
    tasks = check_tasks(data.get("tasks"))
    notebook = data.get("notebook")
    if tasks and notebook in (None, ""):
        notebook = tasks[0]["notebook"]  # a pipeline's own notebook is its first task's
    return Definition(
        name=name,
        notebook=check_notebook_path(notebook),
        schedule=schedule,
        timezone=tz,
        environment=data.get("environment"),
        size=data.get("size"),
        gpu_type=data.get("gpu_type") or None,
        gpu_count=_int(data, "gpu_count", 0, 0, 64),
        parameters=check_parameters(data.get("parameters")),
        timeout_seconds=_int(data, "timeout_seconds", 3600, 60, 7 * 24 * 3600),
        retries=_int(data, "retries", 0, 0, 10),
        concurrency=cast(Concurrency, concurrency),
        active=active,
        keep_runs=_int(data, "keep_runs", 20, 1, 1000),
        notify=check_notify(data.get("notify")),
        secrets=[u.as_json() for u in sec.parse_uses(data.get("secrets"))],
        after=check_after_names(data.get("after")),
        tasks=tasks,
        kernel=check_kernel(data.get("kernel")),
        own_image=check_own_image(data.get("own_image")),
    )


def check_own_image(value: Any) -> int | None:
    """A build's id (an image its owner built from an environment), or None. Whether it is
    theirs and ready is checked where the job's choices are (``entitlements``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FieldError("own_image", "must be the id of one of your images (GET /api/v1/images), or null")
    return value


def check_after_names(value: Any) -> list[str]:
    if value in (None, []):
        return []
    if (
        not isinstance(value, list)
        or len(value) > 5
        or not all(isinstance(v, str) and NAME.fullmatch(v) for v in value)
    ):
        raise FieldError("after", "must be a list of at most 5 of your jobs' names")
    if len(set(value)) != len(value):
        raise FieldError("after", "names a job twice")
    return list(value)


def check_notebook(content: Any) -> dict[str, Any]:
    """The snapshot's content: an nbformat-4 notebook (its size is bounded by the request
    body's limit, ``jobs.limits.notebook_bytes``, and the owner's stored total)."""
    if not isinstance(content, dict) or content.get("nbformat") != 4 or not isinstance(content.get("cells"), list):
        raise FieldError("notebook_content", "must be a Jupyter notebook (nbformat 4)")
    if not all(isinstance(c, dict) for c in content["cells"]):
        raise FieldError("notebook_content", "cells must be objects")
    return content
