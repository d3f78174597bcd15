"""Pipelines' pure parts: the DAG's validation (names, dependencies, loops), what each
pending task becomes, a run's outcome, what a repair runs again, what a task receives, and
the Jobs a pipeline is made of."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from jobs_service import launch, manifests, pipelines, snapshots, validation
from jobs_service.jobspec import Task
from moonhub_core import choices as ch
from moonhub_core.errors import FieldError
from moonhub_core.workload import build
from tests.helpers import example_catalog


def _job(tasks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": "nightly", "schedule": "0 6 * * *", "tasks": tasks, **extra}


THREE = [
    {"name": "prepare", "notebook": "prep.ipynb"},
    {"name": "train", "notebook": "train.ipynb", "depends_on": ["prepare"], "gpu_count": 1, "parameters": {"lr": 0.1}},
    {"name": "report", "notebook": "report.ipynb", "depends_on": ["train"], "timeout_seconds": 600},
]


def test_a_pipeline_is_parsed_with_its_first_notebook_as_the_jobs() -> None:
    d = validation.parse(_job(THREE, parameters={"day": "{{run.date}}", "lr": 1}, retries=2))
    assert d.notebook == "prep.ipynb" and [t.name for t in d.task_list()] == ["prepare", "train", "report"]
    train = d.for_task(d.task_list()[1])
    assert train.notebook == "train.ipynb" and train.gpu_count == 1 and train.tasks == []
    assert train.parameters == {"day": "{{run.date}}", "lr": 0.1}, "the task's parameters over the job's"
    assert train.retries == 2 and train.timeout_seconds == 3600, "the job's where the task sets none"
    assert d.for_task(d.task_list()[2]).timeout_seconds == 600


@pytest.mark.parametrize(
    ("tasks", "field", "words"),
    [
        ([{"name": "a", "notebook": "a.ipynb"}, {"name": "a", "notebook": "b.ipynb"}], "tasks[1].name", "two tasks"),
        ([{"name": "a", "notebook": "a.ipynb", "depends_on": ["zz"]}], "tasks[0].depends_on", "no task named 'zz'"),
        ([{"name": "a", "notebook": "a.ipynb", "depends_on": ["a"]}], "tasks[0].depends_on", "itself"),
        (
            [
                {"name": "a", "notebook": "a.ipynb", "depends_on": ["c"]},
                {"name": "b", "notebook": "b.ipynb", "depends_on": ["a"]},
                {"name": "c", "notebook": "c.ipynb", "depends_on": ["b"]},
            ],
            "tasks",
            "a -> c -> b -> a",
        ),
        ([{"name": "a", "notebook": "../a.ipynb"}], "tasks[0].notebook", "'..'"),
        ([{"name": "a", "notebook": "a.ipynb", "run_if": "sometimes"}], "tasks[0].run_if", "all_succeeded"),
        ([{"name": "a", "notebook": "a.ipynb", "run_if": "any_failed"}], "tasks[0].run_if", "depends on others"),
        ([{"name": "a", "notebook": "a.ipynb", "gpus": 1}], "tasks[0].gpus", "unknown field"),
        ([{"name": "a", "notebook": "a.ipynb", "parameters": {"1x": 1}}], "tasks[0].parameters", "variable name"),
        ([{"name": "a", "notebook": "a.ipynb", "timeout_seconds": 5}], "tasks[0].timeout_seconds", "between"),
        ([{"name": "A", "notebook": "a.ipynb"}], "tasks[0].name", "lower-case"),
        ([{"name": "a", "notebook": "a.ipynb", "size": 3}], "tasks[0].size", "name from the catalog"),
        ([{"name": f"t{i}", "notebook": "a.ipynb"} for i in range(21)], "tasks", "at most 20"),
        ("prepare", "tasks", "must be a list"),
    ],
)
def test_a_bad_pipeline_is_refused_naming_the_field(tasks: Any, field: str, words: str) -> None:
    with pytest.raises(FieldError) as e:
        validation.parse(_job(tasks))
    assert e.value.field == field and words in e.value.message


def test_a_jobs_own_choices_are_catalog_names() -> None:
    with pytest.raises(FieldError) as e:
        validation.parse(_job(THREE, environment=5))
    assert e.value.field == "environment" and "name from the catalog" in e.value.message


def test_find_cycle_reports_the_loop_and_none_for_a_dag() -> None:
    assert validation.find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None
    assert validation.find_cycle({"x": ["y"], "y": ["x"]}) == ["x", "y", "x"]


def _tasks(*specs: tuple[str, list[str], str]) -> list[Task]:
    return [Task(name=n, notebook=f"{n}.ipynb", depends_on=deps, run_if=run_if) for n, deps, run_if in specs]


DAG = _tasks(
    ("prepare", [], "all_succeeded"),
    ("train", ["prepare"], "all_succeeded"),
    ("report", ["train"], "all_succeeded"),
    ("cleanup", ["train", "report"], "all_done"),
    ("alert", ["train"], "any_failed"),
)


def test_what_pending_tasks_become() -> None:
    states = dict.fromkeys(["prepare", "train", "report", "cleanup", "alert"], "pending")
    assert pipelines.decide(DAG, states) == {"prepare": "start"}, "only the root at first"
    states |= {"prepare": "running"}
    assert pipelines.decide(DAG, states) == {}
    states |= {"prepare": "succeeded"}
    assert pipelines.decide(DAG, states) == {"train": "start"}
    states |= {"train": "failed"}
    assert pipelines.decide(DAG, states) == {"report": "upstream_failed", "alert": "start"}
    states |= {"report": "upstream_failed", "alert": "running"}
    assert pipelines.decide(DAG, states) == {"cleanup": "start"}, "all_done runs whatever happened"
    # everything well: the alert that runs only on failure is skipped
    ok = dict.fromkeys(["prepare", "train", "report"], "succeeded") | {"cleanup": "pending", "alert": "pending"}
    assert pipelines.decide(DAG, ok) == {"cleanup": "start", "alert": "skipped"}
    # a task after a skipped one that needs success is skipped too (nothing failed)
    chain = _tasks(("a", [], "all_succeeded"), ("b", ["a"], "any_failed"), ("c", ["b"], "all_succeeded"))
    assert pipelines.decide(chain, {"a": "succeeded", "b": "skipped", "c": "pending"}) == {"c": "skipped"}


def test_a_runs_outcome() -> None:
    assert pipelines.outcome({"a": "succeeded", "b": "running"}) is None
    assert pipelines.outcome({"a": "succeeded", "b": "skipped"}) == "succeeded"
    assert pipelines.outcome({"a": "failed", "b": "succeeded"}) == "failed", "a clean-up that ran changes nothing"
    assert pipelines.outcome({"a": "timed_out", "b": "upstream_failed"}) == "failed"
    assert pipelines.outcome({"a": "succeeded", "b": "cancelled"}) == "cancelled"


def test_a_repair_runs_the_failed_tasks_and_all_after_them() -> None:
    states = {
        "prepare": "succeeded",
        "train": "failed",
        "report": "upstream_failed",
        "cleanup": "succeeded",
        "alert": "succeeded",
    }
    assert pipelines.to_repair(DAG, states) == ["train", "report", "cleanup", "alert"]
    assert pipelines.to_repair(DAG, dict.fromkeys(states, "succeeded")) == []


def test_a_task_receives_what_the_tasks_before_it_published_under_its_own_parameters() -> None:
    d = validation.parse(_job(THREE, parameters={"day": "x", "model_path": "none"}))
    tasks = d.task_list()
    prepare, train, report = tasks
    rows: dict[str, Any] = {
        "prepare": SimpleNamespace(published={"rows": 10, "lr": 9, "model_path": "/w/old.pt"}),
        "train": SimpleNamespace(published={"model_path": "/w/m.pt"}),
    }
    got = pipelines.received(report, tasks, {"day": "x"}, rows)
    assert got == {"day": "x", "rows": 10, "lr": 9, "model_path": "/w/m.pt"}, "all before it; the nearer wins"
    got = pipelines.received(train, tasks, {"day": "x"}, rows)
    assert got == {"day": "x", "rows": 10, "lr": 0.1, "model_path": "/w/old.pt"}, "its own parameter wins"
    assert pipelines.received(prepare, tasks, {"day": "x"}, rows) == {"day": "x"}, "nothing before the first"


def test_task_job_names_are_unique_and_fit_kubernetes() -> None:
    long = "nb-abcdefghijklmnop-twenty-two-characters-1a2b3c4d"
    names = {pipelines.task_job_name(long, 123456, "t" * 20, a) for a in (1, 2, 2)}
    assert len(names) == 3, "a run id that comes again still makes new names"
    assert all(len(n) <= 63 and n[-1].isalnum() and n.startswith("nb-abcdefghijklmnop-1") for n in names)


def test_a_pipelines_cronjob_makes_a_suspended_job_and_each_task_its_own() -> None:
    d = validation.parse(_job(THREE))
    w = build(example_catalog(), ch.parse({}, example_catalog(), ch.allowed(example_catalog(), [])), "claim-ann")
    n = manifests.Names("ann", d.name)
    launch = manifests.Launch("http://jobs/launch/x/1", "k", "")
    cron = manifests.cronjob(d, n, 1, launch, w, "ns")
    marker = cron["spec"]["jobTemplate"]["spec"]
    assert marker["suspend"] is True and cron["metadata"]["labels"][manifests.PIPELINE] == "true"
    assert "env" not in marker["template"]["spec"]["containers"][0], "the marker carries no key"
    t = d.task_list()[0]
    task_launch = manifests.Launch("http://jobs/launch/x/1/tasks/prepare", "k2", "abc")
    job = manifests.task_job(
        d.for_task(t), n, 1, task_launch, w, "ns", "nb-x-7-prepare-1", "prepare", "nb-x-m1a2b", "manual"
    )
    labels = job["metadata"]["labels"]
    assert labels[manifests.TASK] == "prepare" and labels[manifests.PIPELINE_RUN] == "nb-x-m1a2b"
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (
        env["MOONHUB_LAUNCH_URL"].endswith("/tasks/prepare") and env["MOONHUB_PUBLISH_FILE"] == manifests.PUBLISH_FILE
    )
    assert "suspend" not in job["spec"]


def test_a_task_key_opens_only_its_task() -> None:
    key = bytes(range(32))
    plain = launch.sign(key, "nb-ann-nightly-1a2b3c4d", 2)
    prepare = launch.sign(key, "nb-ann-nightly-1a2b3c4d", 2, "prepare")
    assert len({plain, prepare, launch.sign(key, "nb-ann-nightly-1a2b3c4d", 2, "train")}) == 3


async def test_a_pipelines_notebooks_count_together_against_the_owners_cap(tmp_path: Path) -> None:
    from jobs_service.db import DefinitionRow, open_db

    db = open_db(f"sqlite:///{tmp_path / 'jobs.db'}")
    ctx = SimpleNamespace(
        snapshots=snapshots.SnapshotStore(tmp_path / "store"),
        settings=SimpleNamespace(limits=SimpleNamespace(snapshot_bytes_per_user=4000)),
    )

    def nb(text: str) -> snapshots.Frozen:
        cell = {"cell_type": "markdown", "source": text, "metadata": {}}
        return snapshots.Frozen.of({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]})

    small = {"a": (nb("a" * 1000), 1), "b": (nb("b" * 1000), 1)}
    with db() as s:
        row = DefinitionRow(owner="ann", name="p", spec={}, version=1, cronjob="nb-ann-p")
        row.versions.append(await snapshots.freeze_tasks(ctx, s, "ann", 1, small))  # type: ignore[arg-type]
        s.add(row)
        s.commit()
        assert snapshots.stored_bytes(s, "ann") > 2000
        assert snapshots.task_file(row, 1, "b") is not None and snapshots.kept(row, 1)
        assert snapshots.task_file(row, 1, "c") is None and not snapshots.kept(row, 2)
        big = {"a": (nb("c" * 1000), 1), "b": (nb("d" * 1000), 1)}
        with pytest.raises(FieldError) as e:
            await snapshots.freeze_tasks(ctx, s, "ann", 2, big)  # type: ignore[arg-type]
        assert e.value.field == "notebook_contents" and e.value.status == 403
        assert sorted(p.name for p in (tmp_path / "store").rglob("*.gz")) == sorted(
            f"{f.sha256}.ipynb.gz" for f, _ in small.values()
        ), "nothing of the refused version was written"
