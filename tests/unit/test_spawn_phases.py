"""The spawn phases read from a hub's log (benchmarks.spawn_phases)."""

from __future__ import annotations

import pytest

from benchmarks.spawn_phases import phases, steps

LOG = """\
[I 2026-12-05 01:29:50.000 JupyterHub spawner:3042] Attempting to create pvc claim-u00001, with timeout 3
[I 2026-12-05 01:29:50.607 JupyterHub spawner:3042] Attempting to create pvc claim-u00010, with timeout 10
[I 2026-12-05 01:29:50.611 JupyterHub spawner:3001] Attempting to create pod jupyter-u00010, with timeout 10
[I 2026-12-05 01:29:50.699 JupyterHub base:1192] User u00010 took 0.127 seconds to start
[I 2026-12-05 01:29:50.700 JupyterHub log:192] 201 POST /hub/api/users/u00010/server (u00010@127.0.0.1) 133.55ms
[I 2026-12-05 01:29:51.000 JupyterHub spawner:3001] Attempting to create pod base-u00002, with timeout 3
[I 2026-12-05 01:29:52.000 JupyterHub spawner:3042] Attempting to create pvc claim-u00010, with timeout 10
[I 2026-12-05 01:29:53.000 JupyterHub spawner:3042] Attempting to create pvc claim-u00020, with timeout 10
[I 2026-12-05 01:29:53.020 JupyterHub spawner:328] u00020: creating pod jupyter-u00020 (timeout 10 s)
[I 2026-12-05 01:29:52.100 JupyterHub log:192] 201 POST /hub/api/users/u00010/server (u00010@127.0.0.1) 20.00ms
"""


def test_each_step_counts_its_first_line_and_the_request_starts_its_duration_before_the_answer() -> None:
    found = steps(LOG.splitlines())
    u = found["u00010"]
    assert u["claim"] == pytest.approx(u["answered"] - 0.093, abs=1e-5)
    assert u["request"] == pytest.approx(u["answered"] - 0.13355, abs=1e-5)
    assert found["u00002"].keys() == {"pod"}  # the baseline's pods are named base-<user>
    # MoonHub's own line for the pod (it creates the pod without KubeSpawner's request)
    assert found["u00020"]["pod"] - found["u00020"]["claim"] == pytest.approx(0.02, abs=1e-5)
    p = phases(found, ["u00010", "nobody"])
    assert p["request -> claim"] == [pytest.approx(0.04055, abs=1e-5)]
    assert p["claim -> pod"] == [pytest.approx(0.004, abs=1e-5)]
    assert p["pod -> started"] == [pytest.approx(0.088, abs=1e-5)]
    assert p["started -> answered"] == [pytest.approx(0.001, abs=1e-5)]
    assert p["request -> answered"] == [pytest.approx(0.13355, abs=1e-5)]


def test_lines_before_the_run_began_are_left_out() -> None:
    found = steps(LOG.splitlines())
    assert "u00001" in found
    cut = found["u00010"]["answered"] + 1.0  # the first answer's second later
    later = steps(LOG.splitlines(), since=cut)
    assert set(later) == {"u00010", "u00020"}
    assert later["u00010"]["claim"] > cut and "pod" not in later["u00010"]
