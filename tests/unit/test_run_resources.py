"""What a run used, from Prometheus's answers (jobs_service/run_resources.py): the queries
select exactly the run's pods' containers, the range covers the run in at most POINTS
points, and the kept document puts samples on the step's grid with their peaks and limits."""

from __future__ import annotations

import datetime

from jobs_service import run_resources as rr

T0 = datetime.datetime(2026, 12, 7, 1, 0, tzinfo=datetime.UTC)


def test_the_queries_read_the_runs_pods_containers_only() -> None:
    q = rr.queries("moonhub-users", "ada-report-29", 15)
    sel = 'namespace="moonhub-users", pod=~"ada-report-29-[a-z0-9]{5}", image!="", container!=""'
    assert q["memory_bytes"] == f"sum(container_memory_working_set_bytes{{{sel}}})"
    assert q["cpu_cores"] == f"sum(rate(container_cpu_usage_seconds_total{{{sel}}}[30s]))"
    assert "container_spec_memory_limit_bytes" in q["memory_limit_bytes"] and "> 0" in q["memory_limit_bytes"]
    # the GPUs the exporter says the run's pod holds (its labels name no container or image)
    gpus = 'namespace="moonhub-users", pod=~"ada-report-29-[a-z0-9]{5}"'
    assert q["gpu_utilization_percent"] == f"avg(DCGM_FI_DEV_GPU_UTIL{{{gpus}}})"
    assert q["gpu_memory_bytes"] == f"sum(DCGM_FI_DEV_FB_USED{{{gpus}}}) * 1048576"
    # a longer step: the rate spans two of them
    assert "[120s]" in rr.queries("u", "j", 60)["cpu_cores"]


def test_the_range_covers_the_run_in_at_most_the_points_kept() -> None:
    start, end, step = rr.span(T0, T0 + datetime.timedelta(minutes=5))
    assert step == rr.MIN_STEP and start == T0.timestamp() - 10 and end == T0.timestamp() + 300 + 10
    start, end, step = rr.span(T0, T0 + datetime.timedelta(hours=10))
    assert step == 300 and (end - start) / step <= rr.POINTS + 2
    naive = T0.replace(tzinfo=None)  # SQLite's times: UTC
    assert rr.span(naive, naive + datetime.timedelta(seconds=30))[0] == T0.timestamp() - 10


def test_samples_go_on_the_grid_with_their_peaks_and_limits() -> None:
    start, step = 1000.0, 10
    answers = {
        "memory_bytes": [{"metric": {}, "values": [[1000, "100"], [1010, "300"], [1030, "200"]]}],
        "cpu_cores": [{"metric": {}, "values": [[1010, "0.5"], [1020, "NaN"], [1030, "1.5"]]}],
        "memory_limit_bytes": [{"metric": {}, "values": [[1000, "4294967296"], [1030, "4294967296"]]}],
        "cpu_limit_cores": [],
    }
    doc = rr.summary(answers, start, 1030.0, step)
    assert doc["start"] == 1000.0 and doc["step"] == 10
    assert doc["memory_bytes"] == [100.0, 300.0, None, 200.0] and doc["memory_bytes_peak"] == 300.0
    assert doc["cpu_cores"] == [None, 0.5, None, 1.5] and doc["cpu_cores_peak"] == 1.5
    assert doc["memory_limit_bytes"] == 4294967296.0 and doc["cpu_limit_cores"] is None
    assert doc["samples"] == 3
    # a run Prometheus never saw: no samples, no peaks
    empty = rr.summary({"memory_bytes": [], "cpu_cores": []}, start, 1030.0, step)
    assert empty["memory_bytes"] == [None] * 4 and empty["memory_bytes_peak"] is None and empty["samples"] == 0
