"""A team's job in chromium with two users (issue 37, item 1): one member schedules a notebook
of the team's folder as the team's job, with the team's secret; the other sees it in his Jobs
panel, edits it (a parameter) and runs it. The run runs as the team: the team's secret, the
team's folder as its home, the team's group id. Both servers run on the local cluster
through the real hub and proxy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes_asyncio import client
from playwright.async_api import Browser, Locator, Page, expect

from tests.browser.test_schedule_notebook import SHOTS, _open_lab, _put_notebook
from tests.conftest import Hub
from tests.helpers import jobs_api, parameter_notebook, printed, runs_ended, team_folder_bound, team_folder_in_catalog

USER_NS = "moonhub-users"
MAKER, EDITOR, TEAM, GID = "tjob-bea", "tjob-cal", "bt-team", 2109
SECRET = "bt-team-key-24680"
NOTEBOOK = parameter_notebook(
    "rows = 10",
    "import os\n"
    "print('rows:', rows)\n"
    "print('groups', sorted(os.getgroups()))\n"
    "print('key', os.environ['KEY'][::-1])\n"
    "print('home', os.environ['HOME'], sorted(os.listdir(os.environ['HOME']))[:20])",
)


@pytest.fixture
def team_catalog(hub: Hub) -> Iterator[None]:
    with team_folder_in_catalog(hub, TEAM, GID):
        yield


async def _jobs_panel(page: Page) -> Locator:
    await page.locator(".lm-MenuBar-itemLabel", has_text="Jobs").click()
    await page.locator(".lm-Menu-itemLabel").get_by_text("Show Scheduled Jobs", exact=True).click()
    panel = page.locator("#moonhub-jobs-panel")
    await expect(panel).to_be_visible()
    return panel


async def test_a_member_edits_and_runs_a_team_job_another_member_made(
    hub: Hub, browser: Browser, core: client.CoreV1Api, team_catalog: None
) -> None:
    admin = hub.login("admin")
    for user in (MAKER, EDITOR):
        hub.login(user)
    assert hub.api(admin, "POST", f"/groups/{TEAM}").status_code in (201, 409)
    assert hub.api(admin, "POST", f"/groups/{TEAM}/users", json={"users": [MAKER, EDITOR]}).status_code == 200
    boss = jobs_api(hub, admin, "admin")
    assert boss("PUT", f"/team-secrets/{TEAM}/api-key", {"value": SECRET}).status_code in (200, 201)
    await team_folder_bound(core, USER_NS, TEAM)
    SHOTS.mkdir(exist_ok=True)
    path = f"teams/{TEAM}/report.ipynb"
    job_id = None
    maker = await browser.new_context(viewport={"width": 1400, "height": 900})
    editor = await browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        # the maker schedules the team's notebook as the team's job, with the team's secret
        page = await maker.new_page()
        await _open_lab(page, hub, MAKER)
        await _put_notebook(page, hub, path, NOTEBOOK, user=MAKER)
        await page.goto(f"{hub.url}/user/{MAKER}/lab/tree/{path}")
        await page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        toolbar = page.locator(".jp-NotebookPanel-toolbar [data-jp-item-name='moonhub-schedule']")
        await toolbar.get_by_role("button", name="Schedule").click()
        dialog = page.locator(".moonhub-ScheduleDialog")
        owner = dialog.locator("[data-field='team'] select")
        await expect(owner.locator(f"option[value='{TEAM}']")).to_have_count(1)
        await owner.select_option(TEAM)
        await dialog.locator("[data-field='schedule'] select").select_option("none")
        await dialog.get_by_label(f"Give {TEAM}/api-key").check()
        await dialog.get_by_label(f"{TEAM}/api-key as").fill("KEY")
        await dialog.get_by_role("button", name="Schedule").click()
        await expect(dialog).to_have_count(0, timeout=30_000)
        panel = page.locator("#moonhub-jobs-panel")
        row = panel.locator(".moonhub-Job[data-job='report']")
        await expect(row.locator(".moonhub-mod-team")).to_have_text(f"team {TEAM}")
        jobs = boss("GET", "/jobs").json()["jobs"]
        made = next(j for j in jobs if j["name"] == "report" and j["team"] == TEAM)
        job_id = made["id"]
        assert made["owner"] == MAKER

        # the editor finds it in his panel, edits a parameter and runs it
        page2 = await editor.new_page()
        await _open_lab(page2, hub, EDITOR)
        panel2 = await _jobs_panel(page2)
        row2 = panel2.locator(".moonhub-Job[data-job='report']")
        await expect(row2.locator(".moonhub-mod-team")).to_have_text(f"team {TEAM}")
        await row2.locator(".moonhub-JobToggle").click()
        await row2.get_by_role("button", name="Edit").click()
        dialog2 = page2.locator(".moonhub-ScheduleDialog")
        await expect(dialog2.locator(".jp-Dialog-header")).to_have_text('Edit job "report"')
        await expect(dialog2.locator("[data-field='team'] select")).to_have_value(TEAM)
        await dialog2.locator("[data-param='rows']").fill("77")
        await dialog2.get_by_label("Run once now as well").check()
        await page2.screenshot(path=str(SHOTS / "team-job-edit.png"))
        await dialog2.get_by_role("button", name="Save").click()
        await expect(dialog2).to_have_count(0, timeout=30_000)

        cal = jobs_api(hub, hub.login(EDITOR), EDITOR)
        run = (await runs_ended(cal, job_id, timeout=240))[0]
        assert run["status"] == "succeeded", run
        out = cal("GET", f"/jobs/{job_id}/runs/{run['id']}/output?format=ipynb")
        said = printed(json.loads(out.text))
        assert "rows: 77" in said and f"key {SECRET[::-1]}" in said and str(GID) in said, said
        assert "report.ipynb" in said.split("home", 1)[1], "its home is the team's folder, not a member's workspace"
        lines = [(e["actor"], e["action"]) for e in cal("GET", "/audit").json()["entries"] if e["job_id"] == job_id]
        assert (MAKER, "create") in lines and (EDITOR, "edit") in lines, lines
    finally:
        await maker.close()
        await editor.close()
        if job_id is not None:
            boss("DELETE", f"/jobs/{job_id}")
        boss("DELETE", f"/team-secrets/{TEAM}/api-key")
        for user in (MAKER, EDITOR):
            hub.api(admin, "DELETE", f"/users/{user}/server")
