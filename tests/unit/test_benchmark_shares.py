"""What the scale benchmark says the hub's idle CPU goes to, from py-spy's collapsed stacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.hub_scale import cpu_shares

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
