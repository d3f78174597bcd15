"""Named environments (issue 35, item 2) through the real hub and node: ``moonhub-env``
makes one from a requirements file in the workspace (packages from the node's package
index); it is a kernel in a new server of another image, and a pipeline task that names it
runs in exactly it. A task naming an environment that is gone fails naming it."""

from __future__ import annotations

import time

import requests
from kubernetes_asyncio import client

from tests.conftest import Hub
from tests.helpers import gone, jobs_api, kubectl, notebook, printed, run_in_kernel, runs_ended, wait_for

USER_NS = "moonhub-users"
ENV, KERNEL = "tab", "env-tab"
WHERE = "/home/jovyan/envs/tab/lib/python3.11/site-packages/tabulate"
SHOW = "import sys, tabulate; print('ENV', sys.prefix, tabulate.__version__, tabulate.__file__)"


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


async def test_an_environment_is_a_kernel_in_any_server_and_runs_a_pipeline_task(
    hub: Hub, core: client.CoreV1Api, timings: dict[str, float]
) -> None:
    assert hub.cluster is not None
    user = "envbo"
    s = hub.login(user)
    _start(hub, s, user, environment="python", size="small")
    try:
        r = hub.lab(s, user, "api/contents/requirements.txt", "PUT", json={"type": "file", "format": "text",
                    "content": "# the project's\ntabulate==0.9.0\n"})  # fmt: skip
        assert r.status_code in (200, 201), r.text
        t0 = time.monotonic()
        made = kubectl(
            hub.cluster, "-n", USER_NS, "exec", f"jupyter-{user}", "--",
            "sh", "-c", f"cd && moonhub-env create {ENV} -r requirements.txt 2>&1; echo rc=$?",
        )  # fmt: skip
        timings["moonhub-env create (ipykernel + tabulate from the package index)"] = time.monotonic() - t0
        assert "rc=0" in made and f"{ENV} is ready" in made, made
        specs = hub.lab(s, user, "api/kernelspecs").json()["kernelspecs"]
        assert specs[KERNEL]["spec"]["display_name"] == f"{ENV} (environment)"
        # its kernel's start and first answer, against the image's own kernel's
        for name in ("python3", KERNEL):
            t0 = time.monotonic()
            status, out = await run_in_kernel(hub, s, user, "print('up')", kernel=name)
            assert status == "ok" and "up" in out, out
            timings[f"kernel {name}: start to its first answer"] = time.monotonic() - t0
        again = kubectl(hub.cluster, "-n", USER_NS, "exec", f"jupyter-{user}", "--",
                        "sh", "-c", f"moonhub-env create {ENV} tabulate 2>&1; echo rc=$?")  # fmt: skip
        assert "rc=2" in again and "exists" in again, again
    finally:
        await _stop(hub, s, core, user)

    # a server of another image (TensorFlow's, the same Python) offers it, and it works there
    _start(hub, s, user, environment="tensorflow", size="small")
    try:
        status, out = await run_in_kernel(hub, s, user, SHOW, kernel=KERNEL)
        assert status == "ok" and f"ENV /home/jovyan/envs/{ENV} 0.9.0 {WHERE}" in out, out
    finally:
        await _stop(hub, s, core, user)

    # a pipeline whose second task names the environment's kernel: it runs in it; the first
    # (the notebook's own kernel, the image's Python) does not have the package
    jobs = jobs_api(hub, s, user)
    plain = notebook("import importlib.util; print('FIRST', importlib.util.find_spec('tabulate') is None)")
    tasks = [
        {"name": "first", "notebook": "first.ipynb"},
        {"name": "second", "notebook": "second.ipynb", "depends_on": ["first"], "kernel": KERNEL},
    ]
    body = {"name": "envpipe", "schedule": None, "tasks": tasks,
            "notebook_contents": {"first": plain, "second": notebook(SHOW)}}  # fmt: skip
    r = jobs("POST", "/jobs", body)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["tasks"][1]["kernel"] == KERNEL
    try:
        assert jobs("POST", f"/jobs/{job['id']}/run").status_code == 201
        [run] = await runs_ended(jobs, job["id"], timeout=300)
        assert run["status"] == "succeeded", run
        first = printed(jobs("GET", f"/jobs/{job['id']}/runs/{run['id']}/output?task=first&format=ipynb").json())
        second = printed(jobs("GET", f"/jobs/{job['id']}/runs/{run['id']}/output?task=second&format=ipynb").json())
        assert "FIRST True" in first and f"ENV /home/jovyan/envs/{ENV} 0.9.0 {WHERE}" in second, (first, second)

        # the environment gone: the task fails naming the kernel, nothing else runs it
        bad = {"name": "noenv", "notebook": "n.ipynb", "notebook_content": notebook(SHOW), "schedule": None,
               "kernel": "env-gone"}  # fmt: skip
        r = jobs("POST", "/jobs", bad)
        assert r.status_code == 201, r.text
        bad_id = r.json()["id"]
        assert jobs("POST", f"/jobs/{bad_id}/run").status_code == 201
        [failed] = await runs_ended(jobs, bad_id, timeout=240)
        assert failed["status"] == "failed", failed
        log = jobs("GET", f"/jobs/{bad_id}/runs/{failed['id']}/log").json()["log"]
        assert "No such kernel" in log and "env-gone" in log, log[-2000:]
        jobs("DELETE", f"/jobs/{bad_id}")
    finally:
        jobs("DELETE", f"/jobs/{job['id']}")
