"""The usage reports' pure parts (jobs_service/usage.py): who a Workload's queue belongs to,
what admitted Workloads and claims hold, the report by day for admins and for a user, and
its CSV."""

from __future__ import annotations

import csv
import datetime
import io
from typing import Any

import pytest

from jobs_service import usage, usage_report
from jobs_service.usage_report import DayRow
from moonhub_core import pods, workspaces
from moonhub_core import queue_objects as q

P = "mh"


def cluster_queue(user: str, groups: list[str], cohort: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": q.user_cluster_queue(user, P),
            "annotations": {q.USER_ANNOTATION: user, q.GROUPS_ANNOTATION: ",".join(groups)},
        },
        "spec": {"cohortName": cohort},
    }


def workload(user: str, cpu: str, memory: str, gpus: int = 0, *, admitted: bool = True, done: bool = False) -> Any:
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    conditions = [{"type": "QuotaReserved", "status": "True" if admitted else "False"}]
    if done:
        conditions.append({"type": "Finished", "status": "True"})
    return {
        "spec": {
            "queueName": q.user_local_queue(user, P),
            "podSets": [{"count": 1, "template": {"spec": {"containers": [{"resources": {"limits": limits}}]}}}],
        },
        "status": {
            "conditions": conditions,
            "admission": {"podSetAssignments": [{"count": 1, "resourceUsage": {"cpu": cpu, "memory": memory}}]},
        },
    }


def claim(name: str, size: str, used: int | None, *, user: str = "", group: str = "", phase: str = "Bound") -> Any:
    notes: dict[str, str] = {pods.HUB_USER: user} if user else {workspaces.GROUP: group, workspaces.GID: "5001"}
    if used is not None:
        notes[workspaces.USED_BYTES] = str(used)
    return {
        "metadata": {"name": name, "annotations": notes},
        "spec": {"resources": {"requests": {"storage": size}}},
        "status": {"phase": phase, "capacity": {"storage": size}},
    }


def test_a_queue_belongs_to_its_user_and_the_team_whose_cohort_it_is_in() -> None:
    found = usage.owners(
        [
            cluster_queue("ann", ["ml", "readers"], q.team_cohort("ml", P)),
            cluster_queue("bob", ["readers"], f"{P}-root"),
            {"metadata": {"name": "not-ours", "annotations": {}}, "spec": {}},
        ],
        P,
    )
    assert found == {q.user_local_queue("ann", P): ("ann", "ml"), q.user_local_queue("bob", P): ("bob", "")}


def test_only_admitted_unfinished_workloads_of_known_queues_hold_anything() -> None:
    queues = {q.user_local_queue("ann", P): ("ann", "ml")}
    held = usage.holdings(
        [
            workload("ann", "1500m", "2Gi"),
            workload("ann", "2", "6Gi", gpus=2),
            workload("ann", "8", "8Gi", admitted=False),
            workload("ann", "8", "8Gi", done=True),
            workload("zed", "8", "8Gi"),
        ],
        queues,
    )
    assert held == {("ann", "ml"): usage.Held(cpu=3.5, memory_gib=8.0, gpus=2)}


def test_a_workspace_counts_for_its_user_and_a_team_folder_for_its_team() -> None:
    stored = usage.storage(
        [
            claim("claim-ann", "10Gi", 2**30, user="ann"),
            claim("team-ml", "100Gi", None, group="ml"),
            claim("claim-new", "10Gi", None, user="new", phase="Pending"),
            {"metadata": {"name": "somebody-elses"}, "spec": {}, "status": {"phase": "Bound"}},
        ]
    )
    assert stored == {("ann", ""): usage.Stored(10.0, 1.0), ("", "ml"): usage.Stored(100.0, 0.0)}


ROWS = [
    DayRow("2026-12-05", "ann", "ml", cpu_seconds=7200, memory_gib_seconds=4 * 3600, gpu_seconds=3600),
    DayRow("2026-12-06", "ann", "ml", cpu_seconds=3600),
    DayRow("2026-12-06", "ann", "", storage_gib_seconds=10 * 86400, storage_used_gib_seconds=86400),
    DayRow("2026-12-06", "bob", "ml", gpu_seconds=2 * 3600),
    DayRow("2026-12-06", "cat", "vision", cpu_seconds=36000),
    DayRow("2026-12-06", "", "ml", storage_gib_seconds=50 * 86400),
    DayRow("2026-11-01", "ann", "ml", cpu_seconds=99999),  # outside the days asked for
]
DAYS = ["2026-12-05", "2026-12-06"]


def test_the_admins_report_has_everyone_by_day_user_and_team() -> None:
    r = usage_report.build(ROWS, DAYS)
    assert (r["since"], r["until"], r["days"], r["scope"]) == ("2026-12-05", "2026-12-06", 2, "all")
    assert [d["cpu_hours"] for d in r["by_day"]] == [2.0, 11.0]
    assert r["total"] == {
        "cpu_hours": 13.0,
        "memory_gib_hours": 4.0,
        "gpu_hours": 3.0,
        "storage_gib_days": 60.0,
        "storage_used_gib_days": 1.0,
    }
    assert [u["user"] for u in r["users"]] == ["bob", "ann", "cat"], "GPU-hours first, then CPU"
    assert {t["team"]: (t["gpu_hours"], t["storage_gib_days"]) for t in r["teams"]} == {
        "ml": (3.0, 50.0),
        "vision": (0.0, 0.0),
    }
    assert len(r["rows"]) == 6


def test_the_totals_the_database_sums_are_the_reports_without_its_rows() -> None:
    figures = ("cpu_seconds", "memory_gib_seconds", "gpu_seconds", "storage_gib_seconds", "storage_used_gib_seconds")
    per_owner: dict[tuple[str, str], DayRow] = {}
    per_day: dict[str, DayRow] = {}

    def plus(was: DayRow, r: DayRow) -> DayRow:
        return DayRow(was.day, was.user, was.team, *(getattr(was, f) + getattr(r, f) for f in figures))

    for r in ROWS:  # as GROUP BY user, team and GROUP BY day over the days asked for sum them
        if r.day in DAYS:
            per_owner[(r.user, r.team)] = plus(per_owner.get((r.user, r.team), DayRow("", r.user, r.team)), r)
            per_day[r.day] = plus(per_day.get(r.day, DayRow(r.day, "", "")), r)
    assert usage_report.totals(per_owner.values(), per_day, DAYS) == {**usage_report.build(ROWS, DAYS), "rows": []}


def test_a_user_sees_their_own_rows_and_their_teams_totals_only() -> None:
    r = usage_report.build(ROWS, DAYS, own="ann", teams=["ml"])
    assert r["scope"] == "own"
    assert {row["user"] for row in r["rows"]} == {"ann"}
    assert [u["user"] for u in r["users"]] == ["ann"]
    assert r["total"]["gpu_hours"] == 1.0 and r["total"]["storage_gib_days"] == 10.0
    # the team's total counts bob's GPU-hours and the team folder, without listing bob
    [team] = r["teams"]
    assert (team["team"], team["gpu_hours"], team["cpu_hours"], team["storage_gib_days"]) == ("ml", 3.0, 3.0, 50.0)
    assert usage_report.build(ROWS, DAYS, own="dan", teams=[])["rows"] == []


def test_the_csv_has_a_header_and_a_line_per_row() -> None:
    text = usage_report.as_csv(usage_report.build(ROWS, DAYS, own="ann", teams=["ml"]))
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["day", "user", "team", *usage_report.FIGURES]
    assert lines[1] == ["2026-12-05", "ann", "ml", "2.000", "4.000", "1.000", "0.000", "0.000"]
    assert len(lines) == 4 and text.endswith("\r\n")


def test_days_end_today_oldest_first() -> None:
    assert usage_report.day_range(3, datetime.date(2026, 3, 1)) == ["2026-02-27", "2026-02-28", "2026-03-01"]
    assert usage_report.day_range(1) == [datetime.datetime.now(datetime.UTC).date().isoformat()]


@pytest.mark.parametrize("days", [0, 367])
def test_a_days_count_out_of_range_is_named(days: int) -> None:
    from jobs_service.context import Caller
    from moonhub_core.errors import FieldError

    with pytest.raises(FieldError) as e:
        usage_report.report(None, Caller("ann"), days)  # type: ignore[arg-type]
    assert e.value.field == "days"
