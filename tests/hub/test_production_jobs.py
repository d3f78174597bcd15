"""Jobs for production, through the real hub, jobs service and cluster: a 50 MB notebook kept
outside etcd, run-context parameters, re-run, outputs, and a slow webhook receiver beside
another user's tracking. What a launch key opens, back-fill, overdue alerts, the stored
notebooks' cap and a job after another are the middle tier's
(tests/middle/test_production_jobs.py)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from tornado import web

from hub_config.config_paths import REPO
from moonhub_core.platform import load
from tests.conftest import Hub
from tests.helpers import jobs_api, notebook, read_from_pvc, runs_ended, wait_for
from tests.hub.jobs_client import snapshot_folder

USER_NS = "moonhub-users"
PRINTS = notebook(
    ("day = 'unset'\nsince = 'unset'", ["parameters"]),
    "print(f'day={day} since={since}')",
)


def _password_file(hub: Hub) -> Path:
    """The hub's development password file (in its state folder)."""
    platform = load(hub.config)
    return (hub.config.parent / platform.hub.state_dir / platform.auth.development.password_file).resolve()


def _call(hub: Hub, user: str) -> Any:
    return jobs_api(hub, hub.login(user), user)


async def _printed(core: client.CoreV1Api, owner: str, run: dict[str, Any]) -> str:
    out = json.loads(await read_from_pvc(core, USER_NS, f"claim-{owner}", run["output"]))
    return "".join("".join(o.get("text", [])) for c in out["cells"] for o in c.get("outputs", [])).strip()


def _with_outputs(nb: dict[str, Any], megabytes: int) -> dict[str, Any]:
    """``nb`` with ``megabytes`` MB of plot output in its last code cell (as a notebook that
    drew big figures is saved)."""
    plot = {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo" * (megabytes * 10**6 // 11)}}
    cells = [dict(c) for c in nb["cells"]]
    cells[-1]["outputs"] = [{**plot, "metadata": {}}]
    return {**nb, "cells": cells}


async def test_a_50_mb_notebook_runs_from_outside_etcd_and_reruns_as_it_was(
    hub: Hub, core: client.CoreV1Api, api: client.ApiClient
) -> None:
    nadia = _call(hub, "nadia")
    big = _with_outputs(PRINTS, 50)
    body = {
        "name": "big-report",
        "notebook": "big.ipynb",
        "notebook_content": big,
        "schedule": None,
        "parameters": {"day": "{{run.date}}", "since": "{{job.last_success_date}}"},
    }
    assert len(json.dumps(big)) > 50 * 10**6
    t0 = time.monotonic()
    r = nadia("POST", "/jobs", body, timeout=120)
    created = time.monotonic() - t0
    assert r.status_code == 201, r.text[:500]
    job = r.json()
    print(f"50 MB notebook -> created in {created:.2f} s")
    [v1] = nadia("GET", f"/jobs/{job['id']}/versions").json()["versions"]
    assert v1["sent_bytes"] > 50 * 10**6 and v1["bytes"] < 10_000, "outputs are not stored: papermill runs again"
    stored = snapshot_folder("nadia") / f"{v1['sha256']}.ipynb.gz"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o444, "written once, read-only"
    maps = await core.list_namespaced_config_map(USER_NS, label_selector="moonhub.io/owner=nadia")
    assert maps.items == [], "nothing of the notebook is in etcd"
    cron = await client.BatchV1Api(api).read_namespaced_cron_job(job["cronjob"], USER_NS)
    env = {e.name: e.value for e in cron.spec.job_template.spec.template.spec.containers[0].env}
    assert env["MOONHUB_SNAPSHOT_SHA256"] == v1["sha256"]

    # run by hand: it stands for today; nothing succeeded before it
    first = nadia("POST", f"/jobs/{job['id']}/run").json()
    [done] = await runs_ended(nadia, job["id"])
    assert done["status"] == "succeeded", done
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert await _printed(core, "nadia", done) == f"day={today} since="
    assert done["parameters"] == {"day": today, "since": ""} and done["scheduled_for"].startswith(today)

    # a new version, then a re-run of the first run: version 1, its parameters, one changed
    v2 = {**PRINTS, "cells": [*PRINTS["cells"][:1], {**PRINTS["cells"][1], "source": "print('version two')"}]}
    assert nadia("PATCH", f"/jobs/{job['id']}", {"notebook_content": v2}).json()["version"] == 2
    r = nadia("POST", f"/jobs/{job['id']}/runs/{first['id']}/rerun", {"parameters": {"day": "1999-12-31"}})
    assert r.status_code == 201, r.text
    again = r.json()
    assert (again["version"], again["rerun_of"], again["trigger"]) == (1, first["id"], "rerun")
    runs = await runs_ended(nadia, job["id"], 2)
    rerun = next(x for x in runs if x["id"] == again["id"])
    assert rerun["status"] == "succeeded", rerun
    assert await _printed(core, "nadia", rerun) == "day=1999-12-31 since=", "version 1, as the first run received"
    assert rerun["scheduled_for"] == done["scheduled_for"], "it stands for the time the first run stood for"

    # refusals name the field; another user's run is not there
    assert nadia("POST", f"/jobs/{job['id']}/runs/{first['id']}/rerun", {"version": 2}).json()["field"] == "version"
    bad = nadia("POST", f"/jobs/{job['id']}/runs/{first['id']}/rerun", {"parameters": {"d": "{{run.dat}}"}})
    assert bad.status_code == 400 and bad.json()["field"] == "parameters"
    other = _call(hub, "olivia")
    assert other("POST", f"/jobs/{job['id']}/runs/{first['id']}/rerun").status_code == 404


async def _tracked_after(jobs: Any, core: client.CoreV1Api, job_id: int, run: dict[str, Any]) -> tuple[float, float]:
    """(when the service showed ``run`` succeeded, seconds after its pod's container ended)."""
    done = await wait_for(
        lambda: [r for r in jobs("GET", f"/jobs/{job_id}/runs").json()["runs"] if r["id"] == run["id"]],
        lambda rs: rs[0]["status"] in ("succeeded", "failed", "timed_out"),
        timeout=180,
        interval=0.2,
        what=f"run {run['name']} tracked",
    )
    seen = time.time()
    assert done[0]["status"] == "succeeded", done
    pods = await core.list_namespaced_pod(USER_NS, label_selector=f"job-name={run['name']}")
    ended = max(
        cs.state.terminated.finished_at.timestamp()
        for p in pods.items
        for cs in p.status.container_statuses or []
        if cs.state and cs.state.terminated
    )
    return seen, seen - ended


async def test_a_slow_webhook_receiver_does_not_delay_other_users_runs(
    hub: Hub, core: client.CoreV1Api, timings: dict[str, float]
) -> None:
    """Issue 32, item 3, measured: one user's failure alerts go to a receiver that never
    answers (each send waits out the webhook timeout); another user's run is tracked while
    those sends are held, and about as soon after its pod ends as without them (the figures
    are printed; the assertion is that the run was tracked while a send was held)."""
    held: set[int] = set()
    arrived: list[float] = []

    class Stuck(web.RequestHandler):
        async def post(self) -> None:
            held.add(id(self))
            arrived.append(time.time())
            try:
                await asyncio.sleep(60)
            finally:
                held.discard(id(self))

        def on_connection_close(self) -> None:
            held.discard(id(self))

    server = web.Application([("/hook", Stuck)]).listen(18028, "127.0.0.1")
    slow, fine = _call(hub, "hook-slow"), _call(hub, "hook-fine")
    quick = {"name": "quick", "notebook": "q.ipynb", "notebook_content": notebook("print('ok')"), "schedule": None}
    failing = {
        "name": "failing",
        "notebook": "f.ipynb",
        "notebook_content": notebook("raise ValueError('boom')"),
        "schedule": None,
        "notify": {"webhook": "http://127.0.0.1:18028/hook"},
    }
    made = []
    try:
        job = fine("POST", "/jobs", quick).json()
        made.append((fine, job["id"]))
        _, before = await _tracked_after(fine, core, job["id"], fine("POST", f"/jobs/{job['id']}/run").json())
        bad = slow("POST", "/jobs", failing).json()
        made.append((slow, bad["id"]))
        for _ in range(8):
            assert slow("POST", f"/jobs/{bad['id']}/run").status_code == 201
        await wait_for(lambda: held, bool, timeout=120, what="the first failure alert held by the receiver")
        seen, during = await _tracked_after(fine, core, job["id"], fine("POST", f"/jobs/{job['id']}/run").json())
        assert any(a <= seen < a + 10 for a in arrived), "the run was tracked while an alert send was held"
        timings["run tracked after its pod ended (no webhooks held)"] = before
        timings["run tracked after its pod ended (another user's webhooks held)"] = during
        print(f"failure alerts the stuck receiver got while the run was tracked: {len(arrived)}")
    finally:
        server.stop()
        for call, job_id in made:
            call("DELETE", f"/jobs/{job_id}")


async def test_outputs_are_kept_with_the_run_rendered_sanitised_and_removed_with_it(hub: Hub) -> None:
    """A run's executed notebook and the files it writes to its run folder are kept with
    the run; the notebook is shown rendered with no script of it left, in a sandbox; the
    files are downloads; they go when the run's history is trimmed and with the job."""
    xena = _call(hub, "xavi")
    nb = notebook(
        "import os, pathlib\n"
        "d = pathlib.Path(os.environ['MOONHUB_RUN_DIR'])\n"
        "(d / 'metrics.csv').write_text('auc,0.91\\n')\n"
        "(d / 'plots').mkdir(exist_ok=True)\n"
        "(d / 'plots' / 'roc.svg').write_text('<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>')",
        "from IPython.display import HTML, Javascript, display\n"
        'display(HTML(\'<b id="shown">auc 0.91</b><img src=x onerror="alert(2)"><script>alert(3)</script>\'))\n'
        "display(Javascript('alert(4)'))",
    )
    # a hostile notebook names the service machine's files (issue 32, item 1): the development
    # password by its absolute path and by the path relative to the repository
    password_file = _password_file(hub)
    nb["cells"].append(
        {
            "cell_type": "markdown",
            "id": "files",
            "metadata": {},
            "source": f"![a]({password_file}) ![b]({os.path.relpath(password_file, REPO)}) "
            f'<img src="{os.path.relpath(password_file, REPO)}">',
        }
    )
    body = {"name": "kept", "notebook": "k.ipynb", "notebook_content": nb, "schedule": None, "keep_runs": 1}
    job = xena("POST", "/jobs", body).json()
    first = xena("POST", f"/jobs/{job['id']}/run").json()
    [run] = await runs_ended(xena, job["id"])
    assert run["status"] == "succeeded" and run["output_kept"] and run["files"] == 2, run
    page = xena("GET", f"/jobs/{job['id']}/runs/{run['id']}/output")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Content-Security-Policy"].startswith("sandbox"), "no script runs, no origin to act in"
    assert '<b id="shown">auc 0.91</b>' in page.text, "the output's HTML is shown"
    # what the notebook's outputs tried to run is gone (the cells' code is shown as text)
    assert not re.search(r"<img\b|<[a-z]+[^>]*\son[a-z]+=", page.text), "no element or handler of the output's"
    assert not re.search(r"<script[^>]*>[^<]*alert\(", page.text), "no script of the notebook's"
    secret = password_file.read_bytes()
    assert hub.password and hub.password in secret.decode()
    assert secret.strip().decode() not in page.text and base64.b64encode(secret).decode() not in page.text, (
        "the service's file was inlined into the page"
    )
    raw = xena("GET", f"/jobs/{job['id']}/runs/{run['id']}/output?format=ipynb")
    assert raw.headers["Content-Disposition"].startswith("attachment") and json.loads(raw.content)["cells"]
    files = xena("GET", f"/jobs/{job['id']}/runs/{run['id']}/files").json()["files"]
    assert [f["path"] for f in files] == ["metrics.csv", "plots/roc.svg"]
    svg = xena("GET", f"/jobs/{job['id']}/runs/{run['id']}/files/plots/roc.svg")
    assert (
        svg.headers["Content-Type"] == "application/octet-stream" and "attachment" in svg.headers["Content-Disposition"]
    )
    assert _call(hub, "yuri")("GET", f"/jobs/{job['id']}/runs/{run['id']}/output").status_code == 404

    # the output page, shared with a team of the owner's by link (issue 37, item 2): the
    # team's members read that page, nobody else does, and not the run's other parts
    admin = hub.login("admin")
    zoe = _call(hub, "zoe")  # logged in once: the hub knows her
    for team, members in (("kept-crew", ["xavi", "yuri"]), ("kept-others", ["zoe"])):
        assert hub.api(admin, "POST", f"/groups/{team}").status_code in (201, 409)
        assert hub.api(admin, "POST", f"/groups/{team}/users", json={"users": members}).status_code == 200
    shares = f"/jobs/{job['id']}/runs/{run['id']}/shares"
    for body, field, status in [
        ({"group": "kept-others"}, "group", 403),
        ({"group": "no-such-team"}, "group", 400),
        ({"group": "kept-crew", "expires_in_hours": 0}, "expires_in_hours", 400),
        ({"team": "kept-crew"}, "team", 400),
    ]:
        r = xena("POST", shares, body)
        assert r.status_code == status and r.json()["field"] == field, (body, r.text)
    assert _call(hub, "admin")("POST", shares, {"group": "kept-crew"}).status_code == 403, "only the owner shares"
    shared = xena("POST", shares, {"group": "kept-crew", "expires_in_hours": 2})
    assert shared.status_code == 201, shared.text
    link = shared.json()["url"]
    assert link.endswith(f"/api/v1/jobs/{job['id']}/runs/{run['id']}/output")
    yuri = _call(hub, "yuri")
    page = yuri("GET", f"/jobs/{job['id']}/runs/{run['id']}/output")
    assert page.status_code == 200 and '<b id="shown">auc 0.91</b>' in page.text
    assert page.headers["Content-Security-Policy"].startswith("sandbox")
    assert yuri("GET", f"/jobs/{job['id']}/runs/{run['id']}/files").status_code == 404, "the page only"
    assert yuri("GET", f"/jobs/{job['id']}").status_code == 404
    assert zoe("GET", f"/jobs/{job['id']}/runs/{run['id']}/output").status_code == 404
    assert [x["team"] for x in xena("GET", shares).json()["shares"]] == ["kept-crew"]
    assert xena("DELETE", f"{shares}/kept-crew").status_code == 204
    assert yuri("GET", f"/jobs/{job['id']}/runs/{run['id']}/output").status_code == 404
    trail = [(e["action"], e["actor"]) for e in xena("GET", "/audit").json()["entries"] if e["job_id"] == job["id"]]
    assert ("run-share", "xavi") in trail and ("run-unshare", "xavi") in trail, trail
    assert xena("GET", f"/jobs/{job['id']}/runs/{run['id']}/files/../../x").status_code in (400, 404)

    # keep_runs 1: the next run trims the first, and its outputs go with it
    second = xena("POST", f"/jobs/{job['id']}/run").json()
    await wait_for(
        lambda: xena("GET", f"/jobs/{job['id']}/runs").json()["runs"],
        lambda rs: [(r["id"], r["status"]) for r in rs] == [(second["id"], "succeeded")],
        timeout=180,
        what="the second run, and the history trimmed to it",
    )
    kept = snapshot_folder("xavi").parent / "runs"
    assert not (kept / first["name"]).exists(), "the trimmed run's outputs went with it"
    assert (kept / second["name"] / "output.ipynb.gz").exists()
    assert xena("DELETE", f"/jobs/{job['id']}").status_code == 204
    assert not (kept / second["name"]).exists(), "and the job's with the job"
