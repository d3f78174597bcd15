"""The one click: a notebook scheduled from JupyterLab, run now, watched in the Jobs panel,
its log and output opened; a bad cron shows the field error. JupyterLab is served from the
local cluster through the real hub and proxy; the jobs service runs the notebook in a pod.
Run twice: against the hub run on the host, and against MoonHub installed with the Helm
chart (tests/chart_release.py)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from typing import Any

import pytest
from kubernetes_asyncio import client
from playwright.async_api import Browser, Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout

from localcluster import cli
from localcluster.config import REPO
from moonhub_core import admissions
from moonhub_core import queue_objects as q
from tests.chart_release import USERS
from tests.conftest import TEST_CLUSTER, Hub
from tests.helpers import gpu_job, parameter_notebook, wait_for

SHOTS = REPO / "test-results"
USER = "nora"
NOTEBOOK = parameter_notebook('rows = 10  # how many\nlabel = "weekly"\n', "print('rows:', rows, label)")


async def _open_lab(page: Page, hub: Hub, user: str = USER) -> None:
    await page.goto(f"{hub.url}/hub/login")
    await page.fill("#username_input", user)
    await page.fill("#password_input", hub.password)
    await page.click("#login_submit")
    await page.wait_for_selector("input[name='environment']", timeout=30_000)
    await page.click("button[type='submit']")
    await page.wait_for_url(f"**/user/{user}/lab**", timeout=120_000)
    await page.wait_for_selector(".jp-Launcher", timeout=60_000)


async def _put_notebook(page: Page, hub: Hub, path: str, nb: dict[str, Any] = NOTEBOOK, user: str = USER) -> None:
    """A notebook saved in ``user``'s workspace through their server's contents API."""
    xsrf = next(
        c["value"] for c in await page.context.cookies() if c["name"] == "_xsrf" and c["path"] == f"/user/{user}/"
    )
    r = await page.request.put(
        f"{hub.url}/user/{user}/api/contents/{path}",
        data=json.dumps({"type": "notebook", "format": "json", "content": nb}),
        headers={"X-XSRFToken": xsrf, "Content-Type": "application/json"},
    )
    assert r.status in (200, 201), await r.text()


def _run_out_of_memory(namespace: str) -> None:
    """Allocate more than the server's memory limit inside its container (as a notebook
    that loads too much would); the kernel's OOM killer stops that process."""
    kubectl = [str(cli.build() / "kubectl"), f"--kubeconfig={TEST_CLUSTER.admin_kubeconfig}"]
    hog = "b = bytearray(6 * 2**30)"
    r = subprocess.run(
        [*kubectl, "exec", "-n", namespace, f"jupyter-{USER}", "--", "python", "-c", hog],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 137, (r.returncode, r.stderr)  # SIGKILL: the OOM killer


@pytest.fixture(
    params=[
        pytest.param("host hub", marks=pytest.mark.lane("node")),
        pytest.param("Helm install", marks=pytest.mark.lane("cluster")),
    ]
)
def moonhub(request: pytest.FixtureRequest) -> Hub:
    """The hub run on the host, and MoonHub installed into the cluster with the Helm chart."""
    if request.param == "host hub":
        return request.getfixturevalue("hub")  # type: ignore[no-any-return]
    return request.getfixturevalue("chart").hub()  # type: ignore[no-any-return]


async def test_schedule_run_and_watch_from_jupyterlab(
    moonhub: Hub, browser: Browser, timings: dict[str, float]
) -> None:
    hub = moonhub
    shots = "helm-" if hub.label else ""  # screenshot names
    SHOTS.mkdir(exist_ok=True)
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    await _open_lab(page, hub)
    await _put_notebook(page, hub, "report.ipynb")
    # a process in the server's container runs out of memory: the server's notice (its
    # cgroup's OOM count, with the limit of the size) shows in the lab
    await asyncio.to_thread(_run_out_of_memory, USERS if hub.label else "moonhub-users")

    # the entry points: the Jobs menu, the file browser's context menu, the notebook toolbar
    await expect(page.locator(".lm-MenuBar-itemLabel", has_text="Jobs")).to_be_visible()
    await page.goto(f"{hub.url}/user/{USER}/lab/tree/report.ipynb")
    await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    await expect(page.get_by_text("ran out of memory", exact=False).first).to_be_visible(timeout=30_000)
    item = page.locator(".jp-DirListing-item[data-file-type='notebook']", has_text="report.ipynb")
    await item.click(button="right")
    await expect(page.locator(".lm-Menu-itemLabel", has_text="Schedule…")).to_be_visible()
    await page.keyboard.press("Escape")
    # the command palette, by keyboard; Escape closes the dialog
    dialog = page.locator(".moonhub-ScheduleDialog")
    palette = page.locator(".lm-CommandPalette-input")
    item = page.locator(".lm-CommandPalette-item.lm-mod-active", has_text="Schedule This Notebook")
    for _ in range(5):  # right after opening (on a busy machine) the lab may not have made the notebook current
        await page.locator(".jp-NotebookPanel .jp-Cell").first.click()
        await page.keyboard.press("Escape")  # command mode
        await page.keyboard.press("Control+Shift+C")
        try:
            await palette.wait_for(state="visible", timeout=10_000)
            await expect(palette).to_be_focused()
            await page.keyboard.type("Schedule This Notebook")
            # Enter runs the highlighted item: wait until the filter has caught up with the typing
            await item.wait_for(timeout=5_000)
            break
        except (PlaywrightTimeout, AssertionError):
            await page.keyboard.press("Escape")
    await expect(item).to_be_visible()
    await page.keyboard.press("Enter")
    await expect(dialog).to_have_count(1, timeout=30_000)
    await expect(dialog.get_by_role("dialog")).to_have_attribute("aria-modal", "true")
    await page.keyboard.press("Escape")
    await expect(dialog).to_have_count(0)
    # an edit, saved by the server (real-time collaboration saves each change itself, a
    # second later), and a second one not yet saved when Schedule is clicked: the dialog
    # takes the notebook as shown and asks nothing (a save from the lab then found the
    # server's newer save on disk and asked about a changed file: CI saw the dialog not come)
    code = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").nth(1)
    await code.click()
    await page.keyboard.press("End")
    await page.keyboard.type("  # checked")
    await page.wait_for_timeout(3000)
    await page.keyboard.type(" twice")
    toolbar = page.locator(".jp-NotebookPanel-toolbar [data-jp-item-name='moonhub-schedule']")
    await toolbar.get_by_role("button", name="Schedule").click()

    # the dialog: name from the file, the server's environment, parameters from the cell
    await expect(dialog.locator(".jp-Dialog-header")).to_have_text("Schedule this notebook")
    name = dialog.locator("[data-field='name'] input")
    await expect(name).to_have_value("report")
    await expect(name).to_be_focused()
    await expect(dialog.locator("[data-field='environment'] select")).to_have_value("python")
    await expect(dialog.locator("[data-field='size'] select")).to_have_value("small")
    # the kernel: the notebook's own by default, or one of the server's (the image's Python)
    kernel = dialog.locator("[data-field='kernel'] select")
    await expect(kernel).to_have_value("")
    await expect(kernel.locator("option").first).to_have_text(re.compile(r"^The notebook's \(Python 3"))
    await expect(kernel.locator("option[value='python3']")).to_have_count(1)
    await expect(dialog.locator("[data-param='rows']")).to_have_value("10")
    await expect(dialog.locator("[data-param='label']")).to_have_value('"weekly"')
    # the default, daily at 06:00 in the browser's zone, described with its next runs
    preview = dialog.locator(".moonhub-Preview")
    await expect(preview).to_contain_text("At 06:00")
    await expect(preview).to_contain_text("next runs")

    # a bad cron: the service's field error appears next to the schedule; nothing is made
    await dialog.locator("[data-field='schedule'] select").select_option("custom")
    await dialog.get_by_label("Cron expression").fill("0 6 * *")
    err = dialog.locator("[data-field='schedule'] .moonhub-FieldError")
    await expect(err).to_contain_text("needs 5 fields")
    await dialog.get_by_role("button", name="Schedule").click()
    await expect(err).to_contain_text("needs 5 fields")
    await expect(dialog.locator("[data-field='schedule'] select")).to_have_attribute("aria-invalid", "true")
    await page.screenshot(path=str(SHOTS / f"{shots}schedule-dialog-error.png"))
    jobs = await (await page.request.get(f"{hub.url}/user/{USER}/moonhub/api/v1/jobs")).json()
    assert jobs == {"jobs": []}, "a refused job leaves nothing behind"

    # a good weekly schedule, a changed parameter, run once now as well
    await dialog.locator("[data-field='schedule'] select").select_option("weekly")
    await dialog.get_by_label("Wednesday").check()
    await dialog.get_by_label("Time of day").fill("07:30")
    await expect(err).to_be_empty()
    await expect(preview).to_contain_text("At 07:30, only on Monday and Wednesday")
    await dialog.locator("[data-param='rows']").fill("25")
    await dialog.get_by_label("Run once now as well").check()
    await page.screenshot(path=str(SHOTS / f"{shots}schedule-dialog.png"))
    t0 = time.monotonic()
    await dialog.get_by_role("button", name="Schedule").click()
    await expect(dialog).to_have_count(0)

    # the Jobs panel opens with the job; its run succeeds
    panel = page.locator("#moonhub-jobs-panel")
    await expect(panel).to_be_visible()
    job = panel.locator(".moonhub-Job[data-job='report']")
    await expect(job).to_contain_text("At 07:30, only on Monday and Wednesday")
    await job.locator(".moonhub-JobToggle").click()
    run = job.locator("[data-run]").first
    await expect(run).to_be_visible(timeout=30_000)
    for _ in range(60):  # the panel refreshes itself; a click on Refresh hurries it
        if await run.get_attribute("data-status") in ("succeeded", "failed", "timed_out"):
            break
        await page.wait_for_timeout(2000)
        await panel.get_by_role("button", name="Refresh").click()
    assert await run.get_attribute("data-status") == "succeeded", await job.inner_text()
    where = f" [{hub.label}]" if hub.label else ""
    timings[f"browser: Schedule click -> run succeeded (seen in the panel){where}"] = time.monotonic() - t0
    await expect(job.locator(".moonhub-JobToggle .moonhub-Badge")).to_have_text("Succeeded")
    await page.screenshot(path=str(SHOTS / f"{shots}jobs-panel.png"))

    # its log, then its output notebook, with the parameter the dialog set
    await run.get_by_role("button", name="Log").click()
    log = page.locator(".moonhub-LogView")
    await expect(log.locator(".moonhub-LogStatus")).to_contain_text("Succeeded")
    await expect(log.locator(".moonhub-Log")).to_contain_text("rows: 25 weekly")
    await run.get_by_role("button", name="Output").click()
    out = page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output")
    await expect(out.first).to_contain_text("rows: 25 weekly", timeout=30_000)

    # re-run it as it was: a new run, which says which run it repeats
    first = await run.get_attribute("data-run")
    await run.get_by_role("button", name="Re-run").click()
    rerun = job.locator("[data-run]").first
    await expect(rerun).to_contain_text(f"re-run of #{first}", timeout=30_000)
    # the first run's kept output, rendered by the service in a sandboxed frame
    await job.locator(f"[data-run='{first}']").get_by_role("button", name="View").click()
    frame = page.frame_locator(".moonhub-OutputFrame")
    await expect(frame.locator("body")).to_contain_text("rows: 25 weekly", timeout=30_000)
    await expect(frame.locator("body")).to_contain_text("# checked twice")  # the snapshot: as shown
    assert await page.locator(".moonhub-OutputFrame").get_attribute("sandbox") == ""

    # a secret, kept on the Secrets page (value write-only), offered in the dialog
    await page.locator(".lm-MenuBar-itemLabel", has_text="Jobs").click()
    await page.locator(".lm-Menu-itemLabel", has_text="Secrets…").click()
    secrets_page = page.locator(".moonhub-SecretsView")
    await secrets_page.get_by_label("Secret name").fill("db-password")
    await secrets_page.get_by_label("Secret value").fill("browser-typed-secret")
    await secrets_page.get_by_role("button", name="Save").click()
    await expect(secrets_page.locator("[data-secret='db-password']")).to_be_visible()
    await expect(secrets_page.get_by_label("Secret value")).to_have_value("")
    assert "browser-typed-secret" not in await secrets_page.inner_text()

    # edit: the notebook is frozen again as version 2, with the new retries
    await job.get_by_role("button", name="Edit").click()
    await expect(dialog.locator(".jp-Dialog-header")).to_have_text('Edit job "report"')
    await expect(dialog.locator("[data-param='rows']")).to_have_value("25")
    await dialog.locator("[data-field='retries'] input").fill("2")
    # the secret, given as a variable
    pick = dialog.locator("[data-secret='db-password']")
    await expect(pick.get_by_label("db-password as")).to_have_value("DB_PASSWORD")
    await pick.get_by_label("Give db-password").check()
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_have_count(0)
    await expect(job).to_contain_text("report.ipynb v2")
    r = await page.request.get(f"{hub.url}/user/{USER}/moonhub/api/v1/jobs")
    saved = next(j for j in (await r.json())["jobs"] if j["name"] == "report")
    assert saved["secrets"] == [{"name": "db-password", "env": "DB_PASSWORD"}]

    # JupyterLab's dark theme: the panel follows it
    await page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    await page.locator(".lm-Menu-itemLabel").get_by_text("Theme", exact=True).hover()
    await page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
    await page.wait_for_selector("body[data-jp-theme-light='false']", state="attached", timeout=30_000)
    await page.wait_for_timeout(500)
    await page.screenshot(path=str(SHOTS / f"{shots}jobs-panel-dark.png"))

    # pause, then delete with confirmation
    await job.get_by_role("button", name="Pause").click()
    await expect(job).to_contain_text("Paused")
    await expect(job.get_by_role("button", name="Resume")).to_be_visible()
    await job.get_by_role("button", name="Delete").click()
    confirm = page.locator(".jp-Dialog").filter(has_text='Delete job "report"?')
    await confirm.get_by_role("button", name="Delete").click()
    await expect(panel.locator(".moonhub-Job")).to_have_count(0)
    await expect(panel).to_contain_text("No scheduled notebooks yet")

    xsrf = next(c["value"] for c in await page.context.cookies() if c["name"] == "_xsrf" and c["path"] == "/hub/")
    await page.request.delete(f"{hub.url}/hub/api/users/{USER}/server", headers={"X-XSRFToken": xsrf})
    await page.close()


async def test_a_queued_gpu_run_shows_why_it_waits_in_the_jobs_panel(
    hub: Hub, browser: Browser, api: client.ApiClient, timings: dict[str, float]
) -> None:
    """ml-research owns 1 GPU and another member's server holds it: a run of a GPU job waits
    in Kueue's queue, and the Jobs panel says so, with the numbers and its place."""
    import requests
    import yaml

    user, holder = "nina", "nina-hog"
    admin = hub.login("admin")
    s_holder, _ = hub.login(holder), hub.login(user)  # users exist once they logged in
    job_url, headers = "", {}
    r = hub.api(admin, "POST", "/groups/ml-research")
    assert r.status_code in (201, 409), r.text
    assert hub.api(admin, "POST", "/groups/ml-research/users", json={"users": [user, holder]}).status_code == 200
    original = hub.catalog.read_text()
    doc = yaml.safe_load(original)
    doc["group_gpu_quotas"]["ml-research"] = 1
    try:
        hub.catalog.write_text(yaml.safe_dump(doc))
        custom = client.CustomObjectsApi(api)
        await wait_for(
            lambda: custom.get_cluster_custom_object(q.GROUP, q.VERSION, "cohorts", q.team_cohort("ml-research")),
            lambda c: admissions.budget(c["spec"])[0] == 1,
            timeout=60,
            what="ml-research's quota of 1",
        )
        a100 = {"environment": "pytorch", "gpu_type": "a100", "gpu_count": 1}
        r = hub.api(s_holder, "POST", f"/users/{holder}/server", json=a100, timeout=60)
        assert r.status_code in (201, 202), r.text
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        await _open_lab(page, hub, user)
        token = hub.token(hub.login(user), user, "access:services!service=jobs")
        body = gpu_job("train", "a100", 1, NOTEBOOK)
        base = f"{hub.url}/services/jobs/api/v1"
        headers = {"Authorization": f"token {token}"}
        r = await asyncio.to_thread(requests.post, f"{base}/jobs", data=json.dumps(body), headers=headers, timeout=30)
        assert r.status_code == 201, r.text
        job_url = f"{base}/jobs/{r.json()['id']}"
        run_url = f"{base}/jobs/{r.json()['id']}/run"
        r = await asyncio.to_thread(requests.post, run_url, headers=headers, timeout=30)
        assert r.status_code == 201, r.text
        t0 = time.monotonic()
        await page.locator(".lm-MenuBar-itemLabel", has_text="Jobs").click()
        await page.locator(".lm-Menu-itemLabel").get_by_text("Show Scheduled Jobs", exact=True).click()
        panel = page.locator("#moonhub-jobs-panel")
        job = panel.locator(".moonhub-Job[data-job='train']")
        await job.locator(".moonhub-JobToggle").click()
        reason = job.locator("[data-status='queued'] .moonhub-RunReason")
        for _ in range(30):
            if await reason.count() and "place 1 in the queue" in (await reason.inner_text()):
                break
            await page.wait_for_timeout(1000)
            await panel.get_by_role("button", name="Refresh").click()
        await expect(reason).to_contain_text("queued: waiting for 1 GPU, place 1 in the queue")
        await expect(reason).to_contain_text("ml-research uses 1 of its 1; you use 0 of your 8")
        timings["browser: GPU run queued -> reason shown in the panel"] = time.monotonic() - t0
        SHOTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(SHOTS / "jobs-panel-queued.png"))
        await page.close()
    finally:
        if job_url:  # its run holds nothing once the test is over
            await asyncio.to_thread(requests.delete, job_url, headers=headers, timeout=30)
        hub.catalog.write_text(original)
        hub.api(admin, "DELETE", f"/users/{holder}/server")
        hub.api(admin, "DELETE", f"/users/{user}/server")
