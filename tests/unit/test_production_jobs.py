"""Production jobs' pure parts: snapshots outside etcd, run-context parameters, back-fill
ticks, the launch key, alerts' payloads."""

from __future__ import annotations

import datetime
import gzip
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from jobs_service import launch, notify, runcontext, snapshots, validation
from jobs_service.db import DefinitionRow, RunContextRow, RunRow
from jobs_service.runs import _covered
from moonhub_core.errors import FieldError

UTC = datetime.UTC


def _nb(outputs: list[dict], key_order_flip: bool = False) -> dict:
    code = {"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": outputs, "execution_count": 3}
    md = {"cell_type": "markdown", "source": "# hi", "metadata": {}, "attachments": {"a.png": {"image/png": "QUJD"}}}
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3"}}, "cells": [code, md]}
    return dict(reversed(list(nb.items()))) if key_order_flip else nb


def test_outputs_are_stripped_and_one_notebook_has_one_digest() -> None:
    plot = {"output_type": "display_data", "data": {"image/png": "A" * 5_000_000}, "metadata": {}}
    big, small = snapshots.Frozen.of(_nb([plot])), snapshots.Frozen.of(_nb([], key_order_flip=True))
    assert big.sha256 == small.sha256, "outputs and key order do not change what a run executes"
    assert len(big.data) < 1000 and big.cells == 2
    stored = snapshots.strip_outputs(_nb([plot]))
    assert stored["cells"][0]["outputs"] == [] and stored["cells"][0]["execution_count"] is None
    assert stored["cells"][1]["attachments"] == {"a.png": {"image/png": "QUJD"}}, "markdown kept as it was"
    changed = _nb([])
    changed["cells"][0]["source"] = "x = 2"
    assert snapshots.Frozen.of(changed).sha256 != small.sha256


def test_the_store_writes_once_read_only_and_per_owner(tmp_path: Path) -> None:
    store = snapshots.SnapshotStore(tmp_path)
    frozen = snapshots.Frozen.of(_nb([]))
    store.put("ann", frozen)
    store.put("bob", frozen)
    a, b = store.path("ann", frozen.sha256), store.path("bob", frozen.sha256)
    assert a.parent != b.parent, "one folder per owner: removing ann's never touches bob's"
    assert stat.S_IMODE(a.stat().st_mode) == 0o444
    assert gzip.decompress(a.read_bytes()) == frozen.data
    mtime = a.stat().st_mtime_ns
    store.put("ann", frozen)
    assert a.stat().st_mtime_ns == mtime, "a second put of the same content changes nothing"
    assert store.read("ann", frozen.sha256) == snapshots.strip_outputs(_nb([]))
    assert not [p for p in a.parent.iterdir() if p.name.startswith(".incoming-")]
    # a file changed behind the service's back is refused, not run
    os.chmod(a, 0o644)
    a.write_bytes(gzip.compress(b'{"cells":[],"nbformat":4}'))
    with pytest.raises(ValueError, match="does not match"):
        store.read("ann", frozen.sha256)
    store.remove("ann", frozen.sha256)
    assert not a.exists() and b.exists()


def test_templates_are_checked_when_saved() -> None:
    validation.check_parameters({"day": "{{run.date}}", "files": ["in/{{ run.date }}.csv"], "n": 3})
    with pytest.raises(FieldError) as e:
        validation.check_parameters({"day": "{{run.yesterday}}"})
    assert e.value.field == "parameters" and "run.yesterday" in e.value.message and "run.date" in e.value.message
    with pytest.raises(FieldError):
        validation.check_parameters({"deep": {"x": ["{{job.secret}}"]}})


def test_templates_resolve_from_the_time_the_run_stands_for() -> None:
    # 23:30 UTC on 30 November is 1 December in Shanghai: the job's zone decides the date
    facts = runcontext.RunFacts(
        job="daily",
        owner="ann",
        run="nb-ann-daily-29409030",
        trigger="schedule",
        scheduled=datetime.datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
        timezone="Asia/Shanghai",
        last_success=datetime.datetime(2026, 11, 29, 23, 30, tzinfo=UTC),
    )
    got = runcontext.resolve(
        {
            "day": "{{run.date}}",
            "path": "s3://b/{{ run.date }}/x",
            "since": "{{job.last_success_time}}",
            "n": 7,
            "nested": {"l": ["{{run.trigger}}", 1]},
            "plain": "no {template} here",
        },
        facts,
    )
    assert got == {
        "day": "2026-12-01",
        "path": "s3://b/2026-12-01/x",
        "since": "2026-11-30T07:30:00+08:00",
        "n": 7,
        "nested": {"l": ["schedule", 1]},
        "plain": "no {template} here",
    }
    first = runcontext.RunFacts("d", "ann", "r", "manual", datetime.datetime(2026, 1, 1, tzinfo=UTC))
    assert runcontext.resolve({"s": "{{job.last_success_date}}"}, first) == {"s": ""}, "no success yet: empty"


def test_backfill_ticks_are_bounded_and_in_the_jobs_zone() -> None:
    ticks = runcontext.scheduled_ticks(
        "0 6 * * 1-5", "Europe/Berlin", datetime.date(2026, 3, 27), datetime.date(2026, 3, 31), cap=10
    )
    # Friday, (weekend skipped), Monday, Tuesday; 06:00 Berlin across the change to summer time
    assert [t.isoformat() for t in ticks] == [
        "2026-03-27T06:00:00+01:00",
        "2026-03-30T06:00:00+02:00",
        "2026-03-31T06:00:00+02:00",
    ]
    with pytest.raises(FieldError) as e:
        runcontext.scheduled_ticks("*/5 * * * *", "UTC", datetime.date(2026, 1, 1), datetime.date(2026, 1, 2), cap=100)
    assert e.value.field == "to" and "more than 100" in e.value.message
    with pytest.raises(FieldError) as e:
        runcontext.parse_day("from", "yesterday")
    assert e.value.field == "from"


def test_backfill_skips_ticks_that_have_a_run() -> None:
    row = DefinitionRow(cronjob="nb-ann-daily-1a2b3c4d", spec={})
    tick = datetime.datetime(2026, 11, 30, 6, tzinfo=UTC)
    minutes = int(tick.timestamp()) // 60
    row.runs = [
        RunRow(job_name=f"nb-ann-daily-1a2b3c4d-{minutes}", trigger="schedule", version=1),
        RunRow(job_name="nb-ann-daily-1a2b3c4d-m1a2b", trigger="manual", version=1),
    ]
    later = datetime.datetime(2026, 12, 1, 6, tzinfo=UTC)
    row.contexts = [RunContextRow(job_name="x-b1", scheduled_for=later)]
    assert _covered(row) == {tick, later}


def test_the_launch_key_opens_one_version_of_one_job() -> None:
    key = bytes(32)
    k = launch.sign(key, "nb-ann-daily-1a2b3c4d", 3)
    assert k == launch.sign(key, "nb-ann-daily-1a2b3c4d", 3)
    assert k != launch.sign(key, "nb-ann-daily-1a2b3c4d", 4)
    assert k != launch.sign(key, "nb-bob-daily-9f8e7d6c", 3)
    assert k != launch.sign(bytes([1] * 32), "nb-ann-daily-1a2b3c4d", 3)


def test_the_time_a_run_stands_for() -> None:
    def job(notes: dict[str, str]) -> SimpleNamespace:
        created = datetime.datetime(2026, 12, 2, 9, 17, tzinfo=UTC)
        return SimpleNamespace(metadata=SimpleNamespace(name="j", annotations=notes, creation_timestamp=created))

    tick = launch.scheduled_time(job({launch.CRONJOB_SCHEDULED: "2026-12-02T06:00:00Z"}))
    assert tick == datetime.datetime(2026, 12, 2, 6, tzinfo=UTC), "Kubernetes' tick, not when the run started"
    ours = launch.scheduled_time(job({"moonhub.io/scheduled-time": "2026-11-30T06:00:00+01:00"}))
    assert ours == datetime.datetime(2026, 11, 30, 5, tzinfo=UTC)
    assert launch.scheduled_time(job({})) == datetime.datetime(2026, 12, 2, 9, 17, tzinfo=UTC)


def test_alert_payloads_and_overdue_settings() -> None:
    job = {"id": 1, "name": "nightly", "owner": "ann", "notify": {"overdue_after_seconds": 5400}}
    run = {
        "name": "nb-1",
        "status": "failed",
        "reason": "cell 3 failed",
        "trigger": "schedule",
        "output": "jobs/x.ipynb",
        "version": 2,
        "started": None,
        "finished": None,
    }
    plain = notify.payload(job, run, "run.failed")
    assert plain["event"] == "run.failed" and plain["job"] == {"id": 1, "name": "nightly", "owner": "ann"}
    slack = notify.payload(job, run, "run.failed", "slack")
    assert set(slack) == {"text"} and "job nightly failed (run nb-1)" in slack["text"]
    assert "cell 3 failed" in slack["text"]
    late = notify.payload(job, {**run, "status": "running", "reason": ""}, notify.OVERDUE, "slack")
    assert "still running after 1 h 30 min" in late["text"]
    msg = notify.message(job, run, "moonhub@x", ["ann@x"], notify.OVERDUE)
    assert msg["Subject"] == "[MoonHub] job nightly is still running after 1 h 30 min (run nb-1)"
    ok = validation.check_notify(
        {"webhook": "https://chat.example.com/h", "webhook_format": "slack", "overdue_after_seconds": 600}
    )
    assert ok["webhook_format"] == "slack" and ok["overdue_after_seconds"] == 600
    assert "overdue_after_seconds" not in validation.check_notify({"overdue_after_seconds": 0}), "0: off"
    for bad in ({"overdue_after_seconds": 5}, {"overdue_after_seconds": True}, {"webhook_format": "teams"}):
        with pytest.raises(FieldError) as e:
            validation.check_notify(bad)
        assert e.value.field == "notify"


def test_a_notebook_must_be_one() -> None:
    for bad in (None, [], {"nbformat": 3, "cells": []}, {"nbformat": 4, "cells": ["x"]}):
        with pytest.raises(FieldError) as e:
            validation.check_notebook(bad)
        assert e.value.field == "notebook_content"


def test_jobs_after_other_jobs_make_no_loops() -> None:
    from jobs_service.upstream import check_after

    others = {"prepare": [], "train": ["prepare"], "report": ["train"]}
    check_after("publish", ["report", "train"], others)
    check_after("prepare", [], others)
    for name, after, words in (
        ("x", ["x"], "itself"),
        ("x", ["nope"], "no job 'nope'"),
        ("prepare", ["report"], "prepare runs after report runs after train runs after prepare"),
    ):
        with pytest.raises(FieldError) as e:
            check_after(name, after, others)
        assert e.value.field == "after" and words in e.value.message, e.value.message
    for bad in ("prepare", ["A"], ["a"] * 2, ["a", "b", "c", "d", "e", "f"]):
        with pytest.raises(FieldError) as e:
            validation.parse({"name": "j", "notebook": "a.ipynb", "after": bad})
        assert e.value.field == "after"
