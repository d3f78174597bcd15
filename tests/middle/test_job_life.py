"""A job's life through the jobs service's routes (middle tier): made, edited, paused,
versioned, run, followed, cancelled, replaced and removed, with the test playing the
cluster's part (a Job runs, a pod logs, a Job ends or vanishes). The hub tier keeps the same
life on the real node once (tests/hub/test_jobs_api.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import re
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from jobs_service import run_resources
from jobs_service.db import RunRow
from moonhub_core import uids
from tests.helpers import NOTEBOOK
from tests.hub.jobs_client import Jobs, job_body
from tests.middle.conftest import BATCH, CORE, NAMESPACE, PREFIX, Middle, receiver, serving, wait_until


@pytest.fixture(scope="module")
def quinn(middle: Middle) -> Jobs:
    return middle.user("quinn")


def _runs(c: Jobs, job_id: int) -> list[dict[str, Any]]:
    r = c.call("GET", f"/jobs/{job_id}/runs")
    assert r.status_code == 200, r.text
    return list(r.json()["runs"])


def _created_earlier(middle: Middle, run_id: int, minutes: float = 5) -> None:
    """The run as if made ``minutes`` ago (past the grace before a vanished Job counts)."""
    with middle.service.ctx.db() as s:
        row = s.get(RunRow, run_id)
        assert row is not None
        row.created = row.created - datetime.timedelta(minutes=minutes)
        s.commit()


def _run(c: Jobs, job_id: int, run_id: int) -> dict[str, Any]:
    return next(r for r in _runs(c, job_id) if r["id"] == run_id)


def test_a_new_job_makes_its_cronjob_and_its_owners_workspace(middle: Middle, quinn: Jobs) -> None:
    r = quinn.call("POST", "/jobs", job_body("report", parameters={"rows": "$(HOME) $$ ${USER} é"}))
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["owner"], job["version"], job["schedule"]) == ("quinn", 1, None)
    cron = middle.kube.get(BATCH, "cronjobs", NAMESPACE, job["cronjob"])
    assert cron is not None and cron["spec"]["suspend"] is True, "a job without a schedule only runs when asked"
    pvc = middle.kube.get(CORE, "persistentvolumeclaims", NAMESPACE, "claim-quinn")
    assert pvc is not None, "quinn never spawned: the service made the workspace"
    uid = uids.parse(pvc["metadata"]["annotations"][uids.UID])
    assert uid is not None and uid >= uids.FIRST
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["fsGroup"]) == (uid, uid)
    assert pod["containers"][0]["securityContext"]["runAsUser"] == uid
    # the run's home, working folder and output are the catalog's mount path (as the server's)
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "workspace")
    env = {e["name"]: e.get("value") for e in pod["containers"][0].get("env") or []}
    home = mount["mountPath"]
    assert env.get("HOME") == home and pod["containers"][0]["workingDir"] == home
    assert str(env.get("MOONHUB_RUN_DIR", "")).startswith(f"{home}/jobs/report/")
    argv = pod["containers"][0]["command"]
    assert argv[argv.index("--cwd") + 1] == home and f"{home}/jobs/report/$(MOONHUB_RUN).ipynb" in argv
    # a second job of the same owner finds the workspace and keeps its uid
    again = quinn.call("POST", "/jobs", job_body("second")).json()
    assert middle.kube.get(CORE, "persistentvolumeclaims", NAMESPACE, "claim-quinn")["metadata"]["annotations"][
        uids.UID
    ] == str(uid)
    for j in (job, again):
        assert quinn.call("DELETE", f"/jobs/{j['id']}").status_code == 204
        assert middle.kube.get(BATCH, "cronjobs", NAMESPACE, j["cronjob"]) is None, "its CronJob went with it"


def test_edit_pause_versions_run_log_and_cancel(middle: Middle, quinn: Jobs) -> None:
    r = quinn.call("POST", "/jobs", job_body("nightly", schedule="30 2 * * *", timezone="Europe/Paris"))
    assert r.status_code == 201, r.text
    job = r.json()
    cron = middle.kube.get(BATCH, "cronjobs", NAMESPACE, job["cronjob"])
    assert (cron["spec"]["suspend"], cron["spec"]["timeZone"], cron["spec"]["concurrencyPolicy"]) == (
        False,
        "Europe/Paris",
        "Forbid",
    )
    assert job["next_run"].endswith(("+01:00", "+02:00")) and "02:30" in job["schedule_description"]
    # pause, and switch to "replace the previous run"
    r = quinn.call("PATCH", f"/jobs/{job['id']}", {"active": False, "concurrency": "replace"})
    assert r.status_code == 200 and r.json()["version"] == 1 and r.json()["next_run"] is None, r.text
    cron = middle.kube.get(BATCH, "cronjobs", NAMESPACE, job["cronjob"])
    assert (cron["spec"]["suspend"], cron["spec"]["concurrencyPolicy"]) == (True, "Replace")
    assert quinn.call("PATCH", f"/jobs/{job['id']}", {"name": "other"}).json()["field"] == "name"
    r = quinn.call("PATCH", f"/jobs/{job['id']}", {"schedule": "* * *"})
    assert r.status_code == 400 and r.json()["field"] == "schedule"
    # a new notebook freezes a new version; runs use it
    changed = {**NOTEBOOK, "cells": [{**NOTEBOOK["cells"][1], "source": "print('v2')"}]}
    assert quinn.call("PATCH", f"/jobs/{job['id']}", {"notebook_content": changed}).json()["version"] == 2
    versions = quinn.call("GET", f"/jobs/{job['id']}/versions").json()["versions"]
    assert [v["number"] for v in versions] == [1, 2]

    run = quinn.call("POST", f"/jobs/{job['id']}/run").json()
    assert (run["version"], run["status"], run["trigger"]) == (2, "queued", "manual")
    made = middle.job(run["name"])
    assert made is not None, "run now made a Job"
    # the cluster starts it: tracking records it running, and the live log reads its pod
    middle.job_state(run["name"], "running")
    middle.pod(run["name"], log="moonhub-run-notebook: executing\nsleeping\n")
    middle.sync()
    assert _runs(quinn, job["id"])[0]["status"] == "running"
    live = quinn.call("GET", f"/jobs/{job['id']}/runs/{run['id']}/log").json()
    assert "sleeping" in live["log"], live
    # another user can not cancel it; its owner can, and its Job goes
    assert middle.user("rita").call("DELETE", f"/jobs/{job['id']}/runs/{run['id']}").status_code == 404
    r = quinn.call("DELETE", f"/jobs/{job['id']}/runs/{run['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert middle.job(run["name"]) is None
    middle.sync()
    assert _runs(quinn, job["id"])[0]["status"] == "cancelled", "a later pass keeps it cancelled"
    assert quinn.call("DELETE", f"/jobs/{job['id']}").status_code == 204


def test_runs_end_as_their_jobs_do(middle: Middle, quinn: Jobs) -> None:
    job = quinn.call("POST", "/jobs", job_body("ends")).json()
    ok = quinn.call("POST", f"/jobs/{job['id']}/run").json()
    middle.job_state(ok["name"], "succeeded")
    middle.sync()
    done = _run(quinn, job["id"], ok["id"])
    assert done["status"] == "succeeded" and done["duration_seconds"] is not None, done
    shown = quinn.call("GET", f"/jobs/{job['id']}").json()
    assert shown["last_run"]["id"] == ok["id"] and shown["last_run"]["status"] == "succeeded"
    assert middle.job(ok["name"])["metadata"]["labels"].get("moonhub.io/run-recorded") == "ended", (
        "an ended run's Job is marked, so later passes do not list it"
    )
    # a failure says why in words when the pod does (its container's message)
    bad = quinn.call("POST", f"/jobs/{job['id']}/run").json()
    middle.pod(bad["name"], phase="Failed", terminated={"reason": "Error", "message": "ZeroDivisionError in cell 2"})
    middle.job_state(bad["name"], "failed", message="Job has reached the specified backoff limit")
    middle.sync()
    failed = _run(quinn, job["id"], bad["id"])
    assert failed["status"] == "failed" and "ZeroDivisionError in cell 2" in failed["reason"], failed
    # a deadline is a time-out, not a failure
    slow = quinn.call("POST", f"/jobs/{job['id']}/run").json()
    middle.job_state(slow["name"], "failed", reason="DeadlineExceeded", message="Job was active longer than specified")
    middle.sync()
    timed_out = _run(quinn, job["id"], slow["id"])
    assert timed_out["status"] == "timed_out", timed_out
    assert timed_out["reason"].startswith("timed out: still running after its time limit of 1 h"), timed_out
    assert quinn.call("DELETE", f"/jobs/{job['id']}").status_code == 204


def test_a_run_whose_job_vanishes_is_cancelled_and_says_why(middle: Middle, quinn: Jobs) -> None:
    """What "replace the previous run" looks like to tracking: the CronJob controller deletes
    the running Job and starts the next (that the controller does so is Kubernetes' part)."""
    job = quinn.call("POST", "/jobs", job_body("replaced", schedule="* * * * *", concurrency="replace")).json()
    first = middle.tick(job["cronjob"])
    middle.job_state(first, "running")
    middle.sync()
    (run,) = _runs(quinn, job["id"])
    assert (run["name"], run["trigger"], run["status"]) == (first, "schedule", "running"), run
    middle.kube.delete(BATCH, "jobs", NAMESPACE, first)
    second = middle.tick(job["cronjob"])
    middle.sync()
    assert _run(quinn, job["id"], run["id"])["status"] == "running", (
        "a Job just made may not be listed yet: a grace before it counts as gone"
    )
    _created_earlier(middle, run["id"])
    middle.sync()
    gone = _run(quinn, job["id"], run["id"])
    assert gone["status"] == "cancelled" and "replaced" in gone["reason"], gone
    assert _runs(quinn, job["id"])[0]["name"] == second, "the tick's new run is followed"
    # a run asked for by hand is never replaced: its Job gone is "deleted", not "replaced"
    by_hand = quinn.call("POST", f"/jobs/{job['id']}/run").json()
    middle.job_state(by_hand["name"], "running")
    middle.sync()
    middle.kube.delete(BATCH, "jobs", NAMESPACE, by_hand["name"])
    _created_earlier(middle, by_hand["id"])
    middle.sync()
    assert "deleted before it ended" in _run(quinn, job["id"], by_hand["id"])["reason"]
    assert quinn.call("DELETE", f"/jobs/{job['id']}").status_code == 204


def test_schedule_preview_in_the_callers_zone(quinn: Jobs) -> None:
    r = quinn.call("GET", "/schedule-preview?schedule=0+6+*+*+1-5&timezone=Asia/Tokyo")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["description"] == "At 06:00, Monday through Friday" and len(got["next"]) == 3
    assert all(t.endswith("+09:00") and "T06:00:00" in t for t in got["next"])
    bad = quinn.call("GET", "/schedule-preview?schedule=0+6+*&timezone=UTC")
    assert bad.status_code == 400 and bad.json()["field"] == "schedule"
    bad = quinn.call("GET", "/schedule-preview?schedule=0+6+*+*+*&timezone=Moon/Base")
    assert bad.status_code == 400 and bad.json()["field"] == "timezone"


def test_a_failed_run_mails_its_owner_and_calls_the_webhook_once(middle: Middle, quinn: Jobs) -> None:
    """The alerts a failure sends: to a real SMTP server and to a webhook receiver on this
    machine (both allowed as on the test hub), once however many passes see the failure."""
    with receiver() as (url, received):
        hook = f"{url}/hook?token=s3cret"
        body = job_body("alerting", notify={"emails": ["quinn@example.org"], "webhook": hook})
        job = quinn.call("POST", "/jobs", body).json()
        run = quinn.call("POST", f"/jobs/{job['id']}/run").json()
        middle.job_state(run["name"], "failed", message="Job has reached the specified backoff limit")
        for _ in range(3):
            middle.sync()
        wait_until(lambda: received and middle.mailbox)
        assert received and received[0]["event"] == "run.failed" and received[0]["run"]["name"] == run["name"]
        mails = [m for m in middle.mailbox if "alerting" in m["Subject"]]
        assert mails and mails[0]["To"] == "quinn@example.org"
        assert "failed" in mails[0]["Subject"] and run["name"] in mails[0].get_content()
        time.sleep(1)
        assert len(received) == 1, "told once"
        assert len([m for m in middle.mailbox if "alerting" in m["Subject"]]) == 1, "mailed once"
        assert quinn.call("DELETE", f"/jobs/{job['id']}").status_code == 204


def test_prometheus_token_reads_the_run_metrics_and_nothing_else(middle: Middle, quinn: Jobs) -> None:
    """``/metrics`` for a token with JupyterHub's ``read:metrics`` (the hub's metrics-scraper
    service) and for job admins, not for users; the service's token is nobody's, so every
    other route refuses it. A failed run is counted as it ends, once however many passes
    see it; waiting runs are read from the database."""
    metrics = f"{middle.url}{PREFIX}metrics"
    scraper = middle.hub.service("metrics-scraper", ["read:metrics", "access:services!service=jobs"])
    auth = {"Authorization": f"token {scraper}"}

    def failed_count() -> float:
        r = requests.get(metrics, headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        found = re.search(r'^moonhub_job_runs_ended_total\{kind="run",status="failed"\} (\S+)$', r.text, re.M)
        assert "moonhub_job_runs_queued " in r.text and "moonhub_job_runs_queued_oldest_seconds " in r.text
        return float(found.group(1)) if found else 0.0

    before = failed_count()
    refused = requests.get(f"{middle.base}/jobs", headers=auth, timeout=30)
    assert refused.status_code == 403 and "not a user" in refused.json()["message"], refused.text
    assert (
        requests.post(f"{middle.base}/jobs", headers=auth, json=job_body("as-a-service"), timeout=30).status_code == 403
    )
    assert quinn.call("GET", "/jobs").status_code == 200
    user = requests.get(metrics, headers=quinn.headers, timeout=30)
    assert user.status_code == 403 and user.json()["field"] == "metrics", user.text
    admin = middle.user("metrics-admin", admin=True)
    assert requests.get(metrics, headers=admin.headers, timeout=30).status_code == 200

    job = quinn.call("POST", "/jobs", job_body("counted")).json()
    run = quinn.call("POST", f"/jobs/{job['id']}/run").json()
    middle.job_state(run["name"], "failed", message="Job has reached the specified backoff limit")
    for _ in range(3):
        middle.sync()
    assert failed_count() == before + 1, "counted once"
    assert quinn.call("DELETE", f"/jobs/{job['id']}").status_code == 204


def _ago(seconds: float) -> str:
    return (datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.contextmanager
def _prometheus(answers: dict[str, list[Any]]) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A stand-in of Prometheus's range API on this machine (the one edge of this test): each
    query answered with the series of the first key it contains; its URL, and what was asked."""
    asked: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            asked.append({"path": url.path, **params})
            result = next((v for k, v in answers.items() if k in params.get("query", "")), [])
            body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield url, asked


def test_a_run_keeps_what_it_used_from_prometheus_and_tracking_never_waits_on_it(middle: Middle, quinn: Jobs) -> None:
    """As a run ends its pod's memory and CPU over the run are asked of Prometheus (its
    containers by the run's Job name) and kept with the run; without a Prometheus that
    answers the run keeps none, and its end is tracked all the same."""
    ctx = middle.service.ctx
    was = ctx.settings
    t = time.time()
    series = {
        "container_memory_working_set_bytes": [{"metric": {}, "values": [[t - 20, "1000"], [t - 10, "3000"]]}],
        "container_cpu_usage_seconds_total": [{"metric": {}, "values": [[t - 10, "0.75"]]}],
        "container_spec_memory_limit_bytes": [{"metric": {}, "values": [[t - 10, "4294967296"]]}],
        "DCGM_FI_DEV_GPU_UTIL": [{"metric": {}, "values": [[t - 20, "40"], [t - 10, "97"]]}],
    }
    job = quinn.call("POST", "/jobs", job_body("measured")).json()
    try:
        with _prometheus(series) as (url, asked):
            ctx.settings = dataclasses.replace(was, prometheus_url=url)
            run = quinn.call("POST", f"/jobs/{job['id']}/run").json()
            assert quinn.call("GET", f"/jobs/{job['id']}/runs/{run['id']}/resources").json() == {"kept": False}
            middle.job_state(run["name"], "succeeded", started=_ago(60))
            middle.sync()
            middle.run(run_resources.settled())
            kept = quinn.call("GET", f"/jobs/{job['id']}/runs/{run['id']}/resources").json()
            assert kept["kept"] is True and kept["memory_bytes_peak"] == 3000 and kept["cpu_cores_peak"] == 0.75
            assert kept["memory_limit_bytes"] == 4294967296 and kept["samples"] == 2 and kept["step"] == 10
            assert kept["gpu_utilization_percent_peak"] == 97 and kept["gpu_memory_bytes_peak"] is None
            assert {a["path"] for a in asked} == {"/api/v1/query_range"} and len(asked) == 6
            assert all(f'pod=~"{run["name"]}-[a-z0-9]{{5}}"' in a["query"] for a in asked), asked
            others = quinn.call("GET", f"/jobs/{job['id']}/runs/{run['id']}/resources")
            assert others.status_code == 200
            stranger = middle.user("stranger-of-quinn")
            r = stranger.call("GET", f"/jobs/{job['id']}/runs/{run['id']}/resources")
            assert r.status_code == 404, "another user's run is not theirs to see"
        # Prometheus away: nothing kept, the run's end tracked as ever
        ctx.settings = dataclasses.replace(was, prometheus_url=url)
        second = quinn.call("POST", f"/jobs/{job['id']}/run").json()
        middle.job_state(second["name"], "failed", started=_ago(30))
        middle.sync()
        middle.run(run_resources.settled())
        ended = next(r for r in quinn.call("GET", f"/jobs/{job['id']}/runs").json()["runs"] if r["id"] == second["id"])
        assert ended["status"] == "failed"
        assert quinn.call("GET", f"/jobs/{job['id']}/runs/{second['id']}/resources").json() == {"kept": False}
    finally:
        ctx.settings = was
        quinn.call("DELETE", f"/jobs/{job['id']}")
