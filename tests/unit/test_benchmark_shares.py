"""What the scale benchmarks say a process's CPU goes to, from py-spy's collapsed stacks and logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.hub_scale import cpu_shares
from benchmarks.jobs_scale import reconcile_passes
from benchmarks.profiling import top_frames

ROOT = "<module> (jupyterhub:6);JupyterHub.launch_instance (jupyterhub/app.py:4106);Handle._run (asyncio/events.py:80)"


def test_each_stack_counts_once_for_the_first_kind_it_shows(tmp_path: Path) -> None:
    stacks = tmp_path / "hub-idle.txt"
    stacks.write_text(
        "\n".join(
            [
                f"{ROOT};ResourceReflector._watch_and_update (kubespawner/reflector.py:380);loads (json.py:1) 30",
                f"{ROOT};Watch.__anext__ (kubernetes_asyncio/watch/watch.py:120) 6",
                f"{ROOT};ResumingReflector._follow (spawner_ext/resuming_reflector.py:108);apply (x.py:1) 4",
                f"{ROOT};Spawner.poll_and_notify (jupyterhub/spawner.py:1400) 20",
                f"{ROOT};RequestHandler._execute (tornado/web.py:2004);UserListAPIHandler.get (x.py:1) 25",
                f"{ROOT};JupyterHub.update_last_activity (jupyterhub/app.py:3500) 5",
                f"{ROOT};something_else (x.py:1) 10",
                "a line py-spy did not write",
            ]
        )
    )
    shares = cpu_shares(stacks)
    assert shares == pytest.approx(
        {
            "watches (pods, events, GPU view)": 0.4,
            "server polls": 0.2,
            "requests (services, servers, API)": 0.25,
            "other periodic checks (routes, activity, orphans)": 0.05,
            "other": 0.1,
        }
    )


def test_nothing_sampled_or_no_file_gives_no_shares(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert cpu_shares(empty) == {}
    assert cpu_shares(tmp_path / "missing.txt") == {}


SERVICE = "<module> (jobs_service/__main__.py:5);run (asyncio/runners.py:118)"


def test_the_time_inside_a_function_goes_to_the_innermost_frame_of_our_code(tmp_path: Path) -> None:
    stacks = tmp_path / "jobs-service.txt"
    rec = f"{SERVICE};reconcile (jobs_service/reconcile.py:95)"
    stacks.write_text(
        "\n".join(
            [
                f"{rec};_reconcile_one (jobs_service/reconcile.py:160);__init__ (pydantic/main.py:200) 6",
                f"{rec};_reconcile_one (jobs_service/reconcile.py:160);validate (pydantic/main.py:300) 2",
                f"{rec};sha_of (jobs_service/snapshots.py:181);execute (sqlalchemy/orm/session.py:10) 2",
                f"{SERVICE};sync_runs (jobs_service/sync.py:40) 10",
            ]
        )
    )
    share, top = top_frames(stacks, "reconcile.py")
    assert share == pytest.approx(0.5)
    assert top == [
        ("_reconcile_one (jobs_service/reconcile.py:160)", pytest.approx(0.8)),
        ("sha_of (jobs_service/snapshots.py:181)", pytest.approx(0.2)),
    ]
    assert top_frames(stacks, "nowhere.py") == (0.0, [])
    assert top_frames(tmp_path / "missing.txt", "reconcile.py") == (0.0, [])


def test_the_reconcile_passes_are_read_from_the_log_after_a_given_byte(tmp_path: Path) -> None:
    log = tmp_path / "hub.log"
    before = b"x moonhub.jobs reconcile pass: 9.0 s\n"
    log.write_bytes(before + b"y moonhub.jobs reconcile pass: 22.2 s\nz other\nw reconcile pass: 3.5 s\n")
    assert reconcile_passes(log, len(before)) == [22.2, 3.5]
    assert reconcile_passes(log, 0) == [9.0, 22.2, 3.5]
    assert reconcile_passes(tmp_path / "missing.log", 0) == []
