"""The usage report's route (middle tier): who sees which figures, the CSV file, and the
refusals that name their field. The figures are the stored rows the sampler writes (the hub
tier has the sampler count a real server and run: tests/hub/test_gpu_queues.py)."""

from __future__ import annotations

import csv
import io
import time

import pytest

from jobs_service import usage
from jobs_service.db import GpuUsageRow, UsageRow, utcnow
from moonhub_core import pods, workspaces
from moonhub_core import queue_objects as q
from tests.hub.jobs_client import Jobs
from tests.middle.conftest import CORE, NAMESPACE, Middle


@pytest.fixture(scope="module")
def stored(middle: Middle) -> str:
    today = utcnow().date().isoformat()
    with middle.service.ctx.db() as s:
        for user, team, cpu in (
            ("use-ann", "use-team", 7200.0),
            ("use-bob", "use-team", 3600.0),
            ("use-cat", "", 60.0),
        ):
            s.add(
                UsageRow(
                    day=today,
                    user=user,
                    team=team,
                    cpu_seconds=cpu,
                    memory_gib_seconds=cpu * 4,
                    storage_gib_seconds=0.0,
                    storage_used_gib_seconds=0.0,
                )
            )
        s.add(GpuUsageRow(day=today, user="use-bob", team="use-team", gpu_seconds=1800.0))
        s.add(
            UsageRow(
                day=today,
                user="",
                team="use-team",
                cpu_seconds=0.0,
                memory_gib_seconds=0.0,
                storage_gib_seconds=86400.0 * 50,
                storage_used_gib_seconds=86400.0 * 5,
            )
        )
        s.commit()
    return today


def test_a_user_gets_their_own_figures_and_their_teams_total(middle: Middle, stored: str) -> None:
    ann = middle.user("use-ann", groups=["use-team"])
    r = ann.call("GET", "/usage?days=2")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["scope"] == "own" and got["until"] == stored and got["days"] == 2
    assert {row["user"] for row in got["rows"]} == {"use-ann"}, "nobody else's rows"
    assert got["total"]["cpu_hours"] == 2.0 and got["total"]["memory_gib_hours"] == 8.0
    [team] = got["teams"]
    assert (team["team"], team["cpu_hours"], team["gpu_hours"], team["storage_gib_days"]) == (
        "use-team",
        3.0,
        0.5,
        50.0,
    )
    assert "use-cat" not in r.text and "use-bob" not in r.text
    # their own by name is theirs; another user's, or a team they are not in, is refused
    assert ann.call("GET", "/usage?user=use-ann").status_code == 200
    for query, field in (("user=use-bob", "user"), ("team=other-team", "team")):
        refused = ann.call("GET", f"/usage?{query}")
        assert refused.status_code == 403 and refused.json()["field"] == field, refused.text


def test_a_job_admin_gets_everyone_and_filters(middle: Middle, stored: str) -> None:
    admin = middle.user("use-admin", admin=True)
    got = admin.call("GET", "/usage?days=1").json()
    assert got["scope"] == "all"
    assert [u["user"] for u in got["users"]][:3] == ["use-bob", "use-ann", "use-cat"], "GPU-hours first"
    one = admin.call("GET", "/usage?days=1&user=use-cat").json()
    assert [r["user"] for r in one["rows"]] == ["use-cat"]
    totals = admin.call("GET", "/usage?days=1&rows=false").json()
    assert totals["rows"] == [] and totals["total"] == got["total"], "the same totals without the rows"
    team = admin.call("GET", "/usage?days=1&team=use-team").json()
    assert {r["user"] for r in team["rows"]} == {"use-ann", "use-bob", ""}, "the team folder's row has no user"


def test_the_csv_is_a_file_of_the_same_rows(middle: Middle, stored: str) -> None:
    admin: Jobs = middle.user("use-admin", admin=True)
    r = admin.call("GET", "/usage?days=1&team=use-team&format=csv")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"] == f'attachment; filename="moonhub-usage-{stored}-to-{stored}.csv"'
    lines = list(csv.DictReader(io.StringIO(r.text)))
    assert {(x["user"], x["cpu_hours"], x["gpu_hours"]) for x in lines} == {
        ("use-ann", "2.000", "0.000"),
        ("use-bob", "1.000", "0.500"),
        ("", "0.000", "0.000"),
    }


@pytest.mark.parametrize(
    ("query", "field"), [("days=0", "days"), ("days=x", "days"), ("format=xml", "format"), ("rows=maybe", "rows")]
)
def test_bad_queries_are_named(middle: Middle, query: str, field: str) -> None:
    r = middle.user("use-ann").call("GET", f"/usage?{query}")
    assert r.status_code == 400 and r.json()["field"] == field, r.text


def test_the_sampler_counts_what_kueue_admitted_and_the_claims_hold(middle: Middle) -> None:
    """The sampler against the API server's objects (the fake's; the hub tier has Kueue's):
    a step of 30 s of an admitted Workload of 2 CPUs and 3 GiB, and one of 300 s of a 10 GiB
    workspace with 1 GiB in use and a 20 GiB team folder."""
    ctx = middle.service.ctx
    prefix = ctx.settings.queue_prefix
    kueue = f"apis/{q.GROUP}/{q.VERSION}"
    cq = {
        "metadata": {
            "name": q.user_cluster_queue("samp-ann", prefix),
            "labels": {q.MANAGED: prefix},
            "annotations": {q.USER_ANNOTATION: "samp-ann", q.GROUPS_ANNOTATION: "samp-team"},
        },
        "spec": {"cohortName": q.team_cohort("samp-team", prefix)},
    }
    middle.kube.put(kueue, "clusterqueues", "", cq)
    wl = {
        "metadata": {"name": "samp-wl"},
        "spec": {"queueName": q.user_local_queue("samp-ann", prefix), "podSets": [{"count": 1, "template": {}}]},
        "status": {
            "conditions": [{"type": "QuotaReserved", "status": "True"}],
            "admission": {"podSetAssignments": [{"count": 1, "resourceUsage": {"cpu": "2", "memory": "3Gi"}}]},
        },
    }
    middle.kube.put(kueue, "workloads", NAMESPACE, wl)
    for name, notes, size in (
        ("claim-samp-ann", {pods.HUB_USER: "samp-ann", workspaces.USED_BYTES: str(2**30)}, "10Gi"),
        ("team-samp-team", {workspaces.GROUP: "samp-team", workspaces.GID: "7001"}, "20Gi"),
    ):
        pvc = {
            "metadata": {"name": name, "annotations": notes},
            "spec": {"resources": {"requests": {"storage": size}}},
            "status": {"phase": "Bound", "capacity": {"storage": size}},
        }
        middle.kube.put(CORE, "persistentvolumeclaims", NAMESPACE, pvc)
    sampler = usage.Sampler()
    assert middle.run(sampler.sample(ctx)) == 0, "the first sample only starts the clock"
    sampler.last = time.monotonic() - 30
    sampler.last_storage = time.monotonic() - usage.STORAGE_EVERY
    middle.run(sampler.sample(ctx))
    today = utcnow().date().isoformat()
    with ctx.db() as s:
        mine = s.get(UsageRow, (today, "samp-ann", "samp-team"))
        space = s.get(UsageRow, (today, "samp-ann", ""))
        folder = s.get(UsageRow, (today, "", "samp-team"))
    assert mine is not None and space is not None and folder is not None
    assert mine.cpu_seconds == pytest.approx(60, abs=0.5) and mine.memory_gib_seconds == pytest.approx(90, abs=1)
    assert space.storage_gib_seconds == pytest.approx(3000, rel=0.01)
    assert space.storage_used_gib_seconds == pytest.approx(300, rel=0.01)
    assert folder.storage_gib_seconds == pytest.approx(6000, rel=0.01) and folder.cpu_seconds == 0
