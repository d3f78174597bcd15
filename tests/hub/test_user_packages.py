"""A user's own packages (issue 35, item 1), through the real hub, the real node and the
node's package index (a caching proxy of PyPI): ``%pip install`` in a notebook lands in the
workspace, stays across a restart on another size and another image of the same Python, is
there in the notebook's scheduled runs, and can not reach the notebook server itself."""

from __future__ import annotations

import json
import time

import requests
from kubernetes_asyncio import client

from tests.conftest import Hub
from tests.helpers import gone, jobs_api, kubectl, notebook, printed, read_from_pvc, run_in_kernel, runs_ended, wait_for

USER_NS = "moonhub-users"
#: a small pure-Python package none of the images has
PACKAGE, VERSION = "tabulate", "0.9.0"
USER_SITE = "/home/jovyan/.local/lib/python3.11/site-packages"
IMPORT = f"import {PACKAGE}; print('IMPORTED', {PACKAGE}.__version__, {PACKAGE}.__file__)"


def _start(hub: Hub, s: requests.Session, user: str, **choices: str) -> None:
    r = hub.spawn_form(s, user, **choices)
    assert r.status_code == 200, r.text[:500]
    hub.open_lab(s, user, timeout=240)


async def _stop(hub: Hub, s: requests.Session, core: client.CoreV1Api, user: str) -> None:
    r = hub.api(s, "DELETE", f"/users/{user}/server")
    assert r.status_code in (202, 204), r.text
    await wait_for(
        lambda: gone(lambda: core.read_namespaced_pod(f"jupyter-{user}", USER_NS)), bool, timeout=120, what="pod gone"
    )


async def test_a_package_installed_in_a_notebook_stays_and_runs_in_scheduled_runs(
    hub: Hub, core: client.CoreV1Api, timings: dict[str, float]
) -> None:
    user = "pipada"
    s = hub.login(user)
    _start(hub, s, user, environment="python", size="small")
    try:
        status, out = await run_in_kernel(hub, s, user, IMPORT)
        assert status == "error" and "ModuleNotFoundError" in out, f"{PACKAGE} is in the image already: {out}"

        t0 = time.monotonic()
        status, out = await run_in_kernel(hub, s, user, f"%pip install -q {PACKAGE}=={VERSION}\n{IMPORT}")
        took = time.monotonic() - t0
        assert status == "ok", out
        assert f"IMPORTED {VERSION} {USER_SITE}/{PACKAGE}" in out, "imported in the same kernel, from the workspace"
        timings[f"%pip install {PACKAGE} to import, in a new kernel"] = took
        pod = f"jupyter-{user}"
        used = kubectl(hub.cluster, "-n", USER_NS, "exec", pod, "--", "du", "-sb", "/home/jovyan/.local")  # type: ignore[arg-type]
        print(f"the install takes {int(used.split()[0])} bytes of the workspace (~/.local)")

        # the notebook server's own Python does not see it (no install can break the server)
        server = kubectl(
            hub.cluster,  # type: ignore[arg-type]
            "-n", USER_NS, "exec", pod, "--", "sh", "-c", f"python -c 'import {PACKAGE}' 2>&1; echo rc=$?",
        )  # fmt: skip
        assert "ModuleNotFoundError" in server and "rc=1" in server, server
        # an image package at another version: refused, the image's stays (users take a named
        # environment for that), nothing half-installed
        status, out = await run_in_kernel(hub, s, user, "%pip install tornado==6.4")
        assert "lack sys.path precedence to tornado" in out, out
        status, out = await run_in_kernel(hub, s, user, "import tornado; print('TORNADO', tornado.__file__)")
        assert "TORNADO /opt/moonhub/venv/" in out, out
    finally:
        await _stop(hub, s, core, user)

    # another size and another image built on the same Python: still there
    _start(hub, s, user, environment="tensorflow", size="medium")
    try:
        status, out = await run_in_kernel(hub, s, user, IMPORT)
        assert status == "ok" and f"IMPORTED {VERSION} {USER_SITE}/{PACKAGE}" in out, out
    finally:
        await _stop(hub, s, core, user)

    # the notebook's scheduled run has it too (the same workspace, the same kernel spec)
    jobs = jobs_api(hub, s, user)
    content = notebook(IMPORT)
    job = jobs(
        "POST", "/jobs", {"name": "uses-pkg", "notebook": "uses.ipynb", "notebook_content": content, "schedule": None}
    )
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    try:
        assert jobs("POST", f"/jobs/{job_id}/run").status_code == 201
        runs = await runs_ended(jobs, job_id, timeout=240)
        assert runs[0]["status"] == "succeeded", runs[0]
        nb = json.loads(await read_from_pvc(core, USER_NS, f"claim-{user}", runs[0]["output"]))
        assert f"IMPORTED {VERSION} {USER_SITE}/{PACKAGE}" in printed(nb)
    finally:
        jobs("DELETE", f"/jobs/{job_id}")
