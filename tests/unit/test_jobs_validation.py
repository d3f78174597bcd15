import dataclasses
from datetime import timedelta

import pytest

from jobs_service import jobspec, manifests, validation
from moonhub_core import choices as ch
from moonhub_core.errors import FieldError
from moonhub_core.workload import build
from tests.helpers import example_catalog

BASE = {"name": "daily", "notebook": "reports/daily.ipynb", "schedule": "0 6 * * *"}


def test_defaults() -> None:
    d = validation.parse(BASE)
    assert (d.timezone, d.concurrency, d.retries, d.timeout_seconds, d.active, d.parameters) == (
        "UTC",
        "skip",
        0,
        3600,
        True,
        {},
    )


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"notebook": "/etc/passwd.ipynb"}, "notebook", "relative to your workspace"),
        ({"notebook": "../other/x.ipynb"}, "notebook", "may not contain '..'"),
        ({"notebook": "a/../../x.ipynb"}, "notebook", "may not contain '..'"),
        ({"notebook": "~/x.ipynb"}, "notebook", "relative to your workspace"),
        ({"notebook": "script.py"}, "notebook", "must be a .ipynb file"),
        ({"schedule": "0 0 6 * * *"}, "schedule", "needs 5 fields"),
        ({"schedule": "61 * * * *"}, "schedule", "not a valid cron expression"),
        ({"schedule": "every day"}, "schedule", "needs 5 fields"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"name": "Daily Report"}, "name", "lower-case letters"),
        ({"name": "x" * 31}, "name", "at most 30 fit"),
        ({"concurrency": "queue"}, "concurrency", "must be 'skip'"),
        ({"timeout_seconds": 5}, "timeout_seconds", "between 60 and"),
        ({"retries": "3"}, "retries", "whole number"),
        ({"retries": 99}, "retries", "between 0 and 10"),
        ({"parameters": {"not valid": 1}}, "parameters", "not a usable Python variable name"),
        ({"parameters": {"blob": "x" * 20000}}, "parameters", "larger than 16 KiB"),
        ({"image": "evil"}, "image", "unknown field"),
        ({"active": "yes"}, "active", "true or false"),
        ({"kernel": "../../bin/sh"}, "kernel", "a kernel's name"),
        ({"kernel": ".hidden"}, "kernel", "a kernel's name"),
        ({"kernel": 3}, "kernel", "a kernel's name"),
        ({"tasks": [{"name": "a", "notebook": "a.ipynb", "kernel": "x y"}]}, "tasks[0].kernel", "a kernel's name"),
    ],
)
def test_bad_definitions_name_the_field(change: dict, field: str, text: str) -> None:
    with pytest.raises(FieldError) as err:
        validation.parse({**BASE, **change})
    assert err.value.status == 400 and err.value.field == field and text in err.value.message


def test_too_frequent_schedule_is_refused() -> None:
    with pytest.raises(FieldError, match="more often than the allowed"):
        validation.parse({**BASE, "schedule": "*/5 * * * *"}, min_interval=timedelta(minutes=15))
    assert validation.parse({**BASE, "schedule": "*/15 * * * *"}, min_interval=timedelta(minutes=15))


def test_notebook_content_must_be_a_notebook() -> None:
    with pytest.raises(FieldError, match="nbformat 4"):
        validation.check_notebook({"cells": []})
    assert validation.check_notebook({"nbformat": 4, "cells": []})


def test_cronjob_from_the_workload_builder() -> None:
    d = validation.parse(
        {
            **BASE,
            "concurrency": "replace",
            "timezone": "Europe/Berlin",
            "retries": 2,
            "environment": "pytorch",
            "gpu_type": "t4",
            "gpu_count": 1,
            "parameters": {"n": 3},
        }
    )
    choice = ch.parse(d.choices(), example_catalog(), ch.allowed(example_catalog(), []))
    w = build(example_catalog(), choice, "claim-ann")
    names = manifests.Names("Ann.Lee@corp", d.name)
    launch = manifests.Launch("http://10.85.0.1:8090/services/jobs/launch/x/4", "k3y", "ab" * 32)
    cron = manifests.cronjob(d, names, 4, launch, w, "moonhub-users")
    assert len(names.cronjob) <= 52 and names.cronjob.startswith("nb-")
    spec = cron["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"], spec["suspend"]) == (
        "0 6 * * *",
        "Europe/Berlin",
        "Replace",
        False,
    )
    job = spec["jobTemplate"]["spec"]
    assert (job["activeDeadlineSeconds"], job["backoffLimit"]) == (3600, 2) and job["ttlSecondsAfterFinished"] > 0
    pod = job["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == "127.0.0.1:5000/moonhub/pytorch-notebook:pytorch-2.9-cuda12.8"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "Tesla-T4"}
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert "MOONHUB_PARAMETERS" not in env, "parameters are fetched at start (templates resolved per run)"
    assert (env["MOONHUB_LAUNCH_URL"], env["MOONHUB_LAUNCH_KEY"], env["MOONHUB_SNAPSHOT_SHA256"]) == (
        launch.url,
        "k3y",
        "ab" * 32,
    )
    # the runner, under the pods' umask (team-mates share team folders' files)
    assert c["command"][:4] == ["sh", "-c", 'umask 0002 && exec "$@"', "moonhub"]
    assert c["command"][4:7] == ["moonhub-run-notebook", "--launch", "/snapshot/notebook.ipynb"]
    assert c["command"][7] == "/home/jovyan/jobs/daily/$(MOONHUB_RUN).ipynb"
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == ["claim-ann"], "only the owner's workspace"
    assert {"name": "snapshot", "emptyDir": {"sizeLimit": "1Gi"}} in pod["volumes"], "no ConfigMap: nothing in etcd"
    assert cron["metadata"]["labels"][manifests.RUNNER_API_LABEL] == manifests.RUNNER_API


def test_a_run_lives_where_the_catalog_mounts_the_workspace() -> None:
    """A job pod's HOME, working folder, run folder and output are under the catalog's
    ``storage.mount_path``, as the server's HOME is (one fact, not a second default)."""
    cat = example_catalog()
    cat = dataclasses.replace(cat, storage=dataclasses.replace(cat.storage, mount_path="/workspace"))
    d = validation.parse({"name": "where", "notebook": "w.ipynb", "schedule": None})
    w = build(cat, ch.parse(d.choices(), cat, ch.allowed(cat, [])), "claim-ann")
    launch = manifests.Launch("http://jobs/launch/x/1", "k", "ab" * 32)
    pod = manifests.cronjob(d, manifests.Names("ann", d.name), 1, launch, w, "ns")["spec"]["jobTemplate"]["spec"]
    c = pod["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert [e["name"] for e in c["env"]].count("HOME") == 1 and env["HOME"] == "/workspace"
    assert c["workingDir"] == "/workspace" and c["command"][-3:-1] == [
        "/workspace/jobs/where/$(MOONHUB_RUN).ipynb",
        "--cwd",
    ]
    assert env["MOONHUB_RUN_DIR"].startswith("/workspace/jobs/where/")
    assert {"name": "workspace", "mountPath": "/workspace"} in c["volumeMounts"]


def test_unscheduled_definition_is_suspended_and_manual_job_copies_template() -> None:
    d = validation.parse({**BASE, "schedule": None})
    w = build(example_catalog(), ch.parse({}, example_catalog(), ch.allowed(example_catalog(), [])), "claim-bo")
    launch = manifests.Launch("http://jobs/launch/x/1", "k", "0" * 64)
    cron = manifests.cronjob(d, manifests.Names("bo", d.name), 1, launch, w, "ns")
    assert cron["spec"]["suspend"] is True
    job = manifests.manual_job(cron, "daily-abc")
    assert job["metadata"]["name"] == "daily-abc" and job["spec"] == cron["spec"]["jobTemplate"]["spec"]
    assert job["metadata"]["labels"]["moonhub.io/trigger"] == "manual"
    filled = manifests.manual_job(cron, "daily-b1", "backfill", "2026-11-30T06:00:00+00:00")
    assert filled["metadata"]["labels"]["moonhub.io/trigger"] == "backfill"
    assert filled["metadata"]["annotations"][manifests.SCHEDULED] == "2026-11-30T06:00:00+00:00"


def test_progress_from_papermill_log() -> None:
    from jobs_service.db import DefinitionRow, RunRow, SnapshotRow, VersionRow
    from jobs_service.sync import last_cell, total_cells

    tail = "Executing notebook with kernel: python3\nExecuting Cell 1---------\nrows 3\nExecuting Cell 2---------\n"
    assert last_cell(tail) == 2
    assert last_cell("a line of output\n") is None, "no cell in the tail: keep what was recorded"

    def version() -> VersionRow:
        return VersionRow(number=1, notebook={}, stored=SnapshotRow(sha256="0" * 64, size=10, cells=3))

    with_params = DefinitionRow(spec={"parameters": {"rows": 3}}, version=1, versions=[version()])
    assert total_cells(RunRow(version=1, definition=with_params)) == 4, "papermill injects the parameters as a cell"
    plain = DefinitionRow(spec={"parameters": {}}, version=1, versions=[version()])
    assert total_cells(RunRow(version=1, definition=plain)) == 3


def test_a_stored_definition_is_read_in_the_form_it_was_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stored definitions carry their form (``spec_version``): an older form is upgraded
    step by step as this version reads it; a newer one (a rollback) is a 409, not a guess."""
    Row = dataclasses.make_dataclass("Row", ["name", "spec", "spec_version"])
    spec = {"name": "daily", "notebook": "d.ipynb", "schedule": None}
    assert jobspec.stored(Row("daily", spec, jobspec.SPEC_VERSION)).notebook == "d.ipynb"
    with pytest.raises(FieldError) as e:
        jobspec.stored(Row("daily", spec, jobspec.SPEC_VERSION + 1))
    assert e.value.status == 409 and e.value.field == "spec_version" and "newer" in e.value.message
    # a later form renames a key: the step from the form before does it
    old = {"name": "daily", "nb": "d.ipynb", "schedule": None}
    now = jobspec.SPEC_VERSION + 1
    monkeypatch.setattr(jobspec, "SPEC_VERSION", now)
    monkeypatch.setitem(
        jobspec.UPGRADES, now - 1, lambda s: {**{k: v for k, v in s.items() if k != "nb"}, "notebook": s["nb"]}
    )
    assert jobspec.stored(Row("daily", old, now - 1)).notebook == "d.ipynb"


def test_a_job_or_task_runs_with_the_kernel_it_names_and_is_stored_in_the_form_that_needs_it() -> None:
    """kernel: a workspace environment's kernel for every run (the runner's --kernel), or a
    task's own; unset, the notebook's. Stored in form 1 unless set (a rollback to a version
    before form 2 reads every job that does not use it)."""
    Row = dataclasses.make_dataclass("Row", ["name", "spec", "spec_version"])
    plain = validation.parse(BASE)
    spec, form = jobspec.to_stored(plain)
    assert form == 1 and "kernel" not in spec and all("kernel" not in t for t in spec["tasks"])
    assert jobspec.stored(Row("daily", spec, form)) == plain
    named = validation.parse({**BASE, "kernel": "env-lightgbm"})
    spec, form = jobspec.to_stored(named)
    assert form == 2 and jobspec.stored(Row("daily", spec, form)) == named

    choice = ch.parse(named.choices(), example_catalog(), ch.allowed(example_catalog(), []))
    w = build(example_catalog(), choice, "claim-ann")
    launch = manifests.Launch("http://10.85.0.1:8090/services/jobs/launch/x/1", "k", "ab" * 32)
    names = manifests.Names("ann", named.name)
    command = manifests.pod_spec(named, names, launch, w)["containers"][0]["command"]
    assert command[-2:] == ["--kernel", "env-lightgbm"]
    assert "--kernel" not in manifests.pod_spec(plain, names, launch, w)["containers"][0]["command"]

    pipeline = validation.parse(
        {
            **BASE,
            "tasks": [{"name": "a", "notebook": "a.ipynb"}, {"name": "b", "notebook": "b.ipynb", "kernel": "env-x"}],
        }
    )
    spec, form = jobspec.to_stored(pipeline)
    assert form == 2 and jobspec.stored(Row("daily", spec, form)) == pipeline
    a, b = pipeline.task_list()
    assert pipeline.for_task(a).kernel == "" and pipeline.for_task(b).kernel == "env-x"


def test_a_job_names_an_own_image_by_its_build_and_is_stored_in_the_form_that_needs_it() -> None:
    """own_image: an image its owner built from an environment (docs/environment-images.md),
    by the build's id; stored in form 3 only when set (a rollback reads every other job)."""
    Row = dataclasses.make_dataclass("Row", ["name", "spec", "spec_version"])
    named = validation.parse({**BASE, "own_image": 7})
    assert named.own_image == 7
    spec, form = jobspec.to_stored(named)
    assert form == 3 and jobspec.stored(Row("daily", spec, form)) == named
    spec, form = jobspec.to_stored(validation.parse(BASE))
    assert form == 1 and "own_image" not in spec
    assert jobspec.stored(Row("daily", spec, 1)).own_image is None
    for bad in ("7", 0, -1, True, 1.5, [7]):
        with pytest.raises(FieldError) as e:
            validation.parse({**BASE, "own_image": bad})
        assert e.value.field == "own_image" and e.value.status == 400
