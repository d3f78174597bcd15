"""What a job definition is (``Definition``, a pipeline's ``Task``), and reading one stored
in the database in the form it was stored in (``stored``). Checking what a user sends is
``validation``'s."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from moonhub_core import secrets as sec
from moonhub_core.errors import Conflict

Concurrency = Literal["allow", "skip", "replace"]
#: our words for Kubernetes' CronJob concurrencyPolicy
CONCURRENCY_POLICY = {"allow": "Allow", "skip": "Forbid", "replace": "Replace"}


@dataclass(frozen=True)
class Task:
    """One notebook of a pipeline: it starts when the tasks it depends on have ended as
    ``run_if`` asks (all succeeded; all done, whatever the outcome; at least one failed)."""

    name: str
    notebook: str
    depends_on: list[str] = field(default_factory=list)
    run_if: str = "all_succeeded"
    parameters: dict[str, Any] = field(default_factory=dict)
    environment: str | None = None
    size: str | None = None
    gpu_type: str | None = None
    gpu_count: int | None = None
    timeout_seconds: int | None = None
    retries: int | None = None
    #: the Jupyter kernel the task runs with (None: the job's)
    kernel: str | None = None


@dataclass(frozen=True)
class Definition:
    """A validated job definition (what the user asked for; choices checked separately)."""

    name: str
    notebook: str
    schedule: str | None
    timezone: str = "UTC"
    environment: str | None = None
    size: str | None = None
    gpu_type: str | None = None
    gpu_count: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    timeout_seconds: int = 3600
    retries: int = 0
    concurrency: Concurrency = "skip"
    active: bool = True
    keep_runs: int = 20
    #: {"emails": [...], "webhook": "https://...", "on_success": false}
    notify: dict[str, Any] = field(default_factory=dict)
    #: the secrets its runs receive: [{"name": ..., "env": ...} or {"name": ..., "file": ...}]
    secrets: list[dict[str, str]] = field(default_factory=list)
    #: the owner's jobs whose every success starts a run of this one
    after: list[str] = field(default_factory=list)
    #: a pipeline: its notebook tasks (a DAG); empty for a job of one notebook
    tasks: list[dict[str, Any]] = field(default_factory=list)
    #: the Jupyter kernel runs use, e.g. a workspace environment's (``env-<name>``: the lab
    #: extension's moonhub-env); "": the notebook's own (its metadata), else the image's
    kernel: str = ""
    #: an image its owner built from one of their environments (a build's id,
    #: ``env_images``), run instead of the environment's own; None: the catalog's
    own_image: int | None = None

    def task_list(self) -> list[Task]:
        return [Task(**t) for t in self.tasks]

    def for_task(self, task: Task) -> Definition:
        """The job as one of its tasks runs it: the task's notebook, its choices, timeout and
        retries where it sets them (else the job's), the job's parameters with the task's
        over them. Pure."""
        pick = {
            k: getattr(task, k)
            for k in ("environment", "size", "gpu_type", "gpu_count", "kernel")
            if getattr(task, k) is not None
        }
        return replace(
            self,
            notebook=task.notebook,
            parameters={**self.parameters, **task.parameters},
            timeout_seconds=task.timeout_seconds or self.timeout_seconds,
            retries=self.retries if task.retries is None else task.retries,
            tasks=[],
            **pick,
        )

    def secret_uses(self) -> list[sec.Use]:
        return sec.parse_uses(self.secrets)

    def choices(self) -> dict[str, Any]:
        """The environment / size / GPU part, in the spawner's option format."""
        raw = {
            "environment": self.environment,
            "size": self.size,
            "gpu_type": self.gpu_type or "",
            "gpu_count": self.gpu_count,
        }
        return {k: v for k, v in raw.items() if v not in (None, "")} | {"gpu_count": self.gpu_count}


#: the form of a definition as this version stores it (``DefinitionRow.spec_version``)
SPEC_VERSION = 3
#: form -> the function that turns a stored definition of that form into the next form;
#: a change of ``Definition`` that old stored definitions do not fit adds one here (and
#: raises SPEC_VERSION). Form 2 added ``kernel``, form 3 ``own_image`` (their defaults fit
#: the forms before as they are)
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: dict, 2: dict}


def to_stored(defn: Definition) -> tuple[dict[str, Any], int]:
    """The JSON a row stores for ``defn`` and its form. A definition that uses nothing of a
    later form is stored in the earliest form that holds it (kernel: only when set), so a
    rollback to a version before that form still reads it; one that does is refused there
    by name (:func:`stored`), not read wrongly. Pure."""
    spec = asdict(defn)
    spec["tasks"] = [{k: v for k, v in t.items() if not (k == "kernel" and v is None)} for t in spec["tasks"]]
    if defn.own_image is not None:
        return spec, 3
    del spec["own_image"]
    if defn.kernel or any("kernel" in t for t in spec["tasks"]):
        return spec, 2
    del spec["kernel"]
    return spec, 1


def stored(row: Any) -> Definition:
    """The definition a row stores (a ``DefinitionRow``), upgraded from the form it was
    stored in. One stored by a newer version (a rollback) is a 409 naming the form: it is
    not guessed at."""
    form = int(getattr(row, "spec_version", None) or 1)
    if form > SPEC_VERSION:
        raise Conflict(
            "spec_version",
            f"job {getattr(row, 'name', '?')} was saved by a newer MoonHub (definition form {form}; this one "
            f"knows {SPEC_VERSION}): run that version",
        )
    spec = dict(row.spec)
    while form < SPEC_VERSION:
        spec = UPGRADES[form](spec)
        form += 1
    # tasks as validation makes them (every field; a stored one leaves out what is unset)
    spec["tasks"] = [asdict(Task(**t)) for t in spec.get("tasks") or []]
    return Definition(**spec)
