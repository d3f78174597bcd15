"""A user's own environment (issue 35, items 1 and 2) through the real hub, the real node
and the node's package index (a caching proxy of PyPI), one user's day in one test (each
server start is paid once):

- ``%pip install`` in a notebook lands in the workspace, imports in the same kernel, and
  can not reach the notebook server itself; another version of an image package is refused;
- ``moonhub-env`` makes a named environment from a requirements file in the workspace;
- a server of another image (TensorFlow's, the same Python) still imports the
  package and offers the environment as a kernel;
- a pipeline's first task (the notebook's own kernel) imports the installed package; its
  second names the environment's kernel and runs in exactly it; a job naming a kernel that
  is gone fails naming it.
"""

from __future__ import annotations

import time

import requests
from kubernetes_asyncio import client

from tests.conftest import Hub
from tests.helpers import gone, jobs_api, kubectl, notebook, printed, run_in_kernel, runs_ended, wait_for

USER_NS = "moonhub-users"
USER = "envbo"
#: a small pure-Python package none of the images has
PACKAGE, VERSION = "tabulate", "0.9.0"
USER_SITE = "/home/jovyan/.local/lib/python3.11/site-packages"
IMPORT = f"import {PACKAGE}; print('IMPORTED', {PACKAGE}.__version__, {PACKAGE}.__file__)"
ENV, KERNEL = "tab", "env-tab"
ENV_SITE = f"/home/jovyan/envs/{ENV}/lib/python3.11/site-packages"
SHOW = f"import sys, {PACKAGE}; print('ENV', sys.prefix, {PACKAGE}.__version__, {PACKAGE}.__file__)"


def _start(hub: Hub, s: requests.Session, **choices: str) -> None:
    r = hub.spawn_form(s, USER, **choices)
    assert r.status_code == 200, r.text[:500]
    hub.open_lab(s, USER, timeout=240)


async def _stop(hub: Hub, s: requests.Session, core: client.CoreV1Api) -> None:
    r = hub.api(s, "DELETE", f"/users/{USER}/server")
    assert r.status_code in (202, 204), r.text
    await wait_for(
        lambda: gone(lambda: core.read_namespaced_pod(f"jupyter-{USER}", USER_NS)), bool, timeout=120, what="pod gone"
    )


def _sh(hub: Hub, script: str) -> str:
    """``script`` in the server's container, as in a terminal: its output and ``rc=<status>``."""
    assert hub.cluster is not None
    return kubectl(
        hub.cluster, "-n", USER_NS, "exec", f"jupyter-{USER}", "--", "sh", "-c", f"{script} 2>&1; echo rc=$?"
    )


async def test_installs_and_environments_stay_with_the_workspace_and_run_in_jobs(
    hub: Hub, core: client.CoreV1Api, timings: dict[str, float]
) -> None:
    s = hub.login(USER)
    _start(hub, s, environment="python", size="small")
    try:
        status, out = await run_in_kernel(hub, s, USER, IMPORT)
        assert status == "error" and "ModuleNotFoundError" in out, f"{PACKAGE} is in the image already: {out}"
        t0 = time.monotonic()
        status, out = await run_in_kernel(hub, s, USER, f"%pip install -q {PACKAGE}=={VERSION}\n{IMPORT}")
        timings[f"%pip install {PACKAGE} to import, in a new kernel (the index's cache cold or warm)"] = (
            time.monotonic() - t0
        )
        assert status == "ok", out
        assert f"IMPORTED {VERSION} {USER_SITE}/{PACKAGE}" in out, "imported in the same kernel, from the workspace"
        print("the install in the workspace:", _sh(hub, "du -sb /home/jovyan/.local").split()[0], "bytes")
        # the notebook server's own Python does not see it (no install can break the server)
        server = _sh(hub, f"python -c 'import {PACKAGE}'")
        assert "ModuleNotFoundError" in server and "rc=1" in server, server
        # another version of one of the image's packages: refused, the image's stays
        status, out = await run_in_kernel(hub, s, USER, "%pip install tornado==6.4")
        assert "lack sys.path precedence to tornado" in out, out
        status, out = await run_in_kernel(hub, s, USER, "import tornado; print('TORNADO', tornado.__file__)")
        assert "TORNADO /opt/moonhub/venv/" in out, out

        # a named environment from a requirements file in the workspace
        r = hub.lab(s, USER, "api/contents/requirements.txt", "PUT", json={"type": "file", "format": "text",
                    "content": f"# the project's\n{PACKAGE}=={VERSION}\n"})  # fmt: skip
        assert r.status_code in (200, 201), r.text
        t0 = time.monotonic()
        made = _sh(hub, f"cd && moonhub-env create {ENV} -r requirements.txt")
        timings[f"moonhub-env create (ipykernel and {PACKAGE} from the package index)"] = time.monotonic() - t0
        assert "rc=0" in made and f"{ENV} is ready" in made, made
        again = _sh(hub, f"moonhub-env create {ENV} {PACKAGE}")
        assert "rc=2" in again and "exists" in again, again
        specs = hub.lab(s, USER, "api/kernelspecs").json()["kernelspecs"]
        assert specs[KERNEL]["spec"]["display_name"] == f"{ENV} (environment)"
        for name in ("python3", KERNEL):  # a kernel's start to its first answer, side by side
            t0 = time.monotonic()
            status, out = await run_in_kernel(hub, s, USER, "print('up')", kernel=name)
            assert status == "ok" and "up" in out, out
            timings[f"kernel {name}: start to its first answer"] = time.monotonic() - t0
    finally:
        await _stop(hub, s, core)

    # another image, the same Python: the install and the environment are there (the default
    # size: a bigger guarantee may not fit the 2-core node beside the other lane's pods, and
    # the spawn is then refused at once, as it should be)
    _start(hub, s, environment="tensorflow", size="small")
    try:
        status, out = await run_in_kernel(hub, s, USER, IMPORT)
        assert status == "ok" and f"IMPORTED {VERSION} {USER_SITE}/{PACKAGE}" in out, out
        status, out = await run_in_kernel(hub, s, USER, SHOW, kernel=KERNEL)
        assert status == "ok" and f"ENV /home/jovyan/envs/{ENV} {VERSION} {ENV_SITE}/{PACKAGE}" in out, out
    finally:
        await _stop(hub, s, core)

    # the jobs: a pipeline whose first task runs on the notebook's own kernel (the image's
    # Python with the user's installs) and whose second names the environment's kernel
    jobs = jobs_api(hub, s, USER)
    tasks = [
        {"name": "first", "notebook": "first.ipynb"},
        {"name": "second", "notebook": "second.ipynb", "depends_on": ["first"], "kernel": KERNEL},
    ]
    body = {"name": "envpipe", "schedule": None, "tasks": tasks,
            "notebook_contents": {"first": notebook(IMPORT), "second": notebook(SHOW)}}  # fmt: skip
    r = jobs("POST", "/jobs", body)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["tasks"][1]["kernel"] == KERNEL and job["kernel"] == ""
    bad = {"name": "noenv", "notebook": "n.ipynb", "notebook_content": notebook(SHOW), "schedule": None,
           "kernel": "env-gone"}  # fmt: skip
    r = jobs("POST", "/jobs", bad)
    assert r.status_code == 201, r.text
    bad_id = r.json()["id"]
    try:
        assert jobs("POST", f"/jobs/{job['id']}/run").status_code == 201
        assert jobs("POST", f"/jobs/{bad_id}/run").status_code == 201
        [run] = await runs_ended(jobs, job["id"], timeout=300)
        assert run["status"] == "succeeded", run

        def output(task: str) -> str:
            return printed(jobs("GET", f"/jobs/{job['id']}/runs/{run['id']}/output?task={task}&format=ipynb").json())

        assert f"IMPORTED {VERSION} {USER_SITE}/{PACKAGE}" in output("first")
        assert f"ENV /home/jovyan/envs/{ENV} {VERSION} {ENV_SITE}/{PACKAGE}" in output("second")
        # the environment named is gone: the run fails naming it, nothing else runs it
        [failed] = await runs_ended(jobs, bad_id, timeout=240)
        assert failed["status"] == "failed", failed
        log = jobs("GET", f"/jobs/{bad_id}/runs/{failed['id']}/log").json()["log"]
        assert "No such kernel" in log and "env-gone" in log, log[-2000:]
    finally:
        jobs("DELETE", f"/jobs/{job['id']}")
        jobs("DELETE", f"/jobs/{bad_id}")
