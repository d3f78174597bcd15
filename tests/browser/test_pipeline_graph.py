"""A pipeline made in the Schedule dialog (this notebook, then two more), its run shown as
a graph of tasks in the Jobs panel, a failed task's log, the repair, and a task's rendered
output. JupyterLab from the local cluster through the real hub and proxy; every task runs
in a pod of its own."""

from __future__ import annotations

from playwright.async_api import Browser, Locator, Page, expect

from localcluster.config import REPO
from tests.browser.test_schedule_notebook import _open_lab, _put_notebook
from tests.conftest import Hub
from tests.hub.test_pipelines import PREPARE, REPORT, TRAIN

SHOTS = REPO / "test-results"
USER = "orla"


async def _until_ended(page: Page, panel: Locator, run: Locator) -> str:
    for _ in range(150):  # the panel refreshes itself; a click on Refresh hurries it
        status = await run.get_attribute("data-status")
        if status in ("succeeded", "failed", "timed_out", "cancelled"):
            return status or ""
        await page.wait_for_timeout(3000)
        await panel.get_by_role("button", name="Refresh").click()
    return await run.get_attribute("data-status") or ""


async def test_a_pipeline_from_the_dialog_its_graph_its_repair(hub: Hub, browser: Browser) -> None:
    SHOTS.mkdir(exist_ok=True)
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await _open_lab(page, hub, USER)
    for path, nb in (("prep.ipynb", PREPARE), ("train.ipynb", TRAIN), ("report.ipynb", REPORT)):
        await _put_notebook(page, hub, path, nb, USER)
    await page.goto(f"{hub.url}/user/{USER}/lab/tree/prep.ipynb")
    await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    toolbar = page.locator(".jp-NotebookPanel-toolbar [data-jp-item-name='moonhub-schedule']")
    await toolbar.get_by_role("button", name="Schedule").click()
    dialog = page.locator(".moonhub-ScheduleDialog")
    await expect(dialog.locator(".jp-Dialog-header")).to_have_text("Schedule this notebook")

    # the pipeline part: this notebook is the first task; two more after it
    part = dialog.locator("[data-field='tasks']")
    await expect(part.get_by_label("This notebook as a task")).to_have_value("prep")
    await part.get_by_role("button", name="Add a notebook").click()
    await part.get_by_label("Task 1 notebook").fill("train.ipynb")
    await expect(part.get_by_label("Task 1 name")).to_have_value("train")  # named after its notebook
    await expect(part.get_by_label("Task 1 runs after")).to_have_value("prep")  # after the task before it
    await part.get_by_role("button", name="Add a notebook").click()
    await part.get_by_label("Task 2 notebook").fill("reports/Weekly Report.ipynb")
    await expect(part.get_by_label("Task 2 name")).to_have_value("weekly-report")
    await part.get_by_label("Task 2 name").fill("report")  # a name of one's own stays
    await part.get_by_label("Task 2 notebook").fill("report.ipynb")
    await expect(part.get_by_label("Task 2 name")).to_have_value("report")
    await part.get_by_label("Task 2 runs after").fill("training")  # a slip: no such task
    await dialog.get_by_label("Run once now as well").check()
    await dialog.get_by_role("button", name="Schedule").click()
    err = part.locator(".moonhub-FieldError")
    await expect(err).to_contain_text("no task named 'training'")
    jobs = await (await page.request.get(f"{hub.url}/user/{USER}/moonhub/api/v1/jobs")).json()
    assert jobs == {"jobs": []}, "a refused pipeline leaves nothing behind"
    await part.get_by_label("Task 2 runs after").fill("train")
    await page.screenshot(path=str(SHOTS / "pipeline-dialog.png"))
    await dialog.get_by_role("button", name="Schedule").click()
    await expect(dialog).to_have_count(0, timeout=30_000)

    # the run's graph in the Jobs panel: train fails on its first try, report does not run
    panel = page.locator("#moonhub-jobs-panel")
    job = panel.locator(".moonhub-Job[data-job='prep']")
    await job.locator(".moonhub-JobToggle").click()
    run = job.locator("[data-run]").first
    await expect(run).to_be_visible(timeout=30_000)
    assert await _until_ended(page, panel, run) == "failed", await job.inner_text()
    graph = run.locator(".moonhub-Graph")
    await expect(graph.locator(".moonhub-GraphLevel")).to_have_count(3)
    await expect(graph.locator("[data-task='prep']")).to_have_attribute("data-status", "succeeded")
    await expect(graph.locator("[data-task='prep']")).to_contain_text("published model_path=")
    await expect(graph.locator("[data-task='train']")).to_have_attribute("data-status", "failed")
    await expect(graph.locator("[data-task='report']")).to_have_attribute("data-status", "upstream_failed")
    await expect(graph.locator("[data-task='report']")).to_contain_text("Not run: upstream failed")
    await expect(graph.locator("line[data-edge='train->report']")).to_have_count(1)
    await page.screenshot(path=str(SHOTS / "pipeline-graph-failed.png"))

    # the failed task's log
    await graph.locator("[data-task='train']").get_by_role("button", name="Log").click()
    log = page.locator(".moonhub-LogView:visible")
    await expect(log.locator(".moonhub-Log")).to_contain_text("first try fails", timeout=30_000)
    await expect(log.locator(".moonhub-LogStatus")).to_contain_text("Failed")  # the task's state

    # repair: train runs again (attempt 2), then report; prep is not run again
    await page.locator("#moonhub-jobs-panel").scroll_into_view_if_needed()
    await run.get_by_role("button", name="Repair").click()
    await expect(run).not_to_have_attribute("data-status", "failed", timeout=30_000)
    assert await _until_ended(page, panel, run) == "succeeded", await job.inner_text()
    graph = run.locator(".moonhub-Graph")
    await expect(graph.locator("[data-task='train']")).to_contain_text("attempt 2")
    await expect(graph.locator("[data-task='prep']")).not_to_contain_text("attempt")
    await expect(graph.locator("[data-task='report']")).to_have_attribute("data-status", "succeeded")
    # the train log opened again reads again: the new attempt's
    await graph.locator("[data-task='train']").get_by_role("button", name="Log").click()
    await expect(log.locator(".moonhub-LogStatus")).to_contain_text("Succeeded (attempt 2)", timeout=30_000)
    await expect(log.locator(".moonhub-Log")).not_to_contain_text("first try fails")
    await page.screenshot(path=str(SHOTS / "pipeline-graph-repaired.png"))

    # the report task's output, rendered in a sandboxed frame, with what train published
    await graph.locator("[data-task='report']").get_by_role("button", name="View").click()
    frame = page.frame_locator(".moonhub-OutputFrame:visible")
    await expect(frame.locator("body")).to_contain_text("report score=0.93", timeout=30_000)

    xsrf = next(c["value"] for c in await page.context.cookies() if c["name"] == "_xsrf" and c["path"] == "/hub/")
    await page.request.delete(f"{hub.url}/hub/api/users/{USER}/server", headers={"X-XSRFToken": xsrf})
    await page.close()
