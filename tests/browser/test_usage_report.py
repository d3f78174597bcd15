"""Usage reports on the real node (issue 36, item 4): a user runs a server for a while and a
job once; the report counts what Kueue admitted to both within one sample of the time they
held it; the user sees it in JupyterLab (Jobs → Your Usage), an admin on the console, filtered
and as a CSV file, in chromium.

The reference figure is this test's own: it polls the user's Workloads every half second and
integrates what the admitted ones hold, independently of the jobs service's sampler (every
15 s). Each holding's start and end may be off by up to one sample step."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from urllib.parse import urljoin

from kubernetes_asyncio import client
from playwright.async_api import Browser, expect

from jobs_service import usage
from localcluster.config import REPO
from moonhub_core import admissions
from moonhub_core import queue_objects as q
from tests.browser.test_schedule_notebook import _open_lab
from tests.conftest import Hub
from tests.helpers import jobs_api, notebook, wait_for

SHOTS = REPO / "test-results"
USER = "ulla"
USER_NS = "moonhub-users"
#: one sample's step at most: the sampler's period, the service's loop (2 s here), slack
STEP = usage.EVERY + 2 + 3
WORK = notebook("import time\ntime.sleep(20)\nprint('slept')")


class Tracker:
    """What ``USER``'s admitted Workloads hold, integrated over time (core-seconds and
    GiB-seconds), polled every half second; and how many held intervals it saw."""

    def __init__(self, custom: client.CustomObjectsApi) -> None:
        self.custom = custom
        self.cpu_seconds = 0.0
        self.memory_gib_seconds = 0.0
        self.seen: dict[str, dict[str, float]] = {}
        self.held_now = 0
        self.stop = False

    async def run(self) -> None:
        last = time.monotonic()
        while not self.stop:
            got = await self.custom.list_namespaced_custom_object(q.GROUP, q.VERSION, USER_NS, "workloads")
            now = time.monotonic()
            held = [
                w
                for w in got["items"]
                if w["spec"].get("queueName") == q.user_local_queue(USER) and admissions.holds(w)
            ]
            for w in held:
                self.seen.setdefault(w["metadata"]["name"], admissions.workload_usage(w))
            self.cpu_seconds += (now - last) * sum(self.seen[w["metadata"]["name"]]["cpu"] for w in held)
            self.memory_gib_seconds += (
                (now - last) * sum(self.seen[w["metadata"]["name"]]["memory"] for w in held) / 2**30
            )
            self.held_now, last = len(held), now
            await asyncio.sleep(0.5)


async def test_a_server_and_a_run_are_counted_and_shown(
    hub: Hub, browser: Browser, api: client.ApiClient, timings: dict[str, float]
) -> None:
    SHOTS.mkdir(exist_ok=True)
    tracker = Tracker(client.CustomObjectsApi(api))
    tracking = asyncio.create_task(tracker.run())
    page = await browser.new_page(viewport={"width": 1300, "height": 900})
    admin_page = await browser.new_page(viewport={"width": 1300, "height": 1100})
    s = hub.login(USER)
    jobs = jobs_api(hub, s, USER)
    job_id = None
    try:
        await _open_lab(page, hub, USER)
        t_server = time.monotonic()
        # the user's own figures in the lab, while the server runs (after a sample or two)
        await page.locator(".lm-MenuBar-itemLabel", has_text="Jobs").click()
        await page.locator(".lm-Menu-itemLabel").get_by_text("Your Usage", exact=True).click()
        view = page.locator(".moonhub-UsageView")
        await expect(view.get_by_role("heading", name="Your usage")).to_be_visible()
        await expect(view.locator(".moonhub-UsageStatus")).to_contain_text("In all,", timeout=60_000)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        await expect(view.locator(f".moonhub-UsageDays tr[data-day='{today}']")).to_be_visible()
        await expect(view.locator(".moonhub-UsageBar")).to_have_count(30)
        await expect(view.locator(".moonhub-UsageTeams")).to_contain_text("No team of yours")
        href = await view.locator(".moonhub-UsageCsv").get_attribute("href")
        assert href and href.endswith("moonhub/api/v1/usage?days=30&format=csv"), href
        got = await page.request.get(urljoin(page.url, href))
        assert got.status == 200 and got.headers["content-type"].startswith("text/csv"), await got.text()
        assert (await got.text()).startswith("day,user,team,cpu_hours,"), await got.text()
        await page.screenshot(path=str(SHOTS / "usage-lab.png"))

        # a job run beside the server
        body = {"name": "sleepy", "notebook": "sleepy.ipynb", "notebook_content": WORK, "schedule": None}
        made = await asyncio.to_thread(jobs, "POST", "/jobs", body)
        assert made.status_code == 201, made.text
        job_id = made.json()["id"]
        assert (await asyncio.to_thread(jobs, "POST", f"/jobs/{job_id}/run")).status_code == 201
        await wait_for(
            lambda: jobs("GET", f"/jobs/{job_id}/runs").json()["runs"],
            lambda rs: bool(rs) and rs[0]["status"] in ("succeeded", "failed"),
            timeout=240,
            what="the run to end",
        )
        await asyncio.to_thread(hub.api, s, "DELETE", f"/users/{USER}/server")
        await wait_for(lambda: tracker.held_now, lambda n: n == 0, timeout=120, what="nothing held any more")
        held_for = time.monotonic() - t_server
        await asyncio.sleep(STEP + 2)  # the sampler's last step after the end
        tracker.stop = True
        await tracking
        assert len(tracker.seen) == 2, f"the server's and the run's Workloads: {tracker.seen}"

        report = (await asyncio.to_thread(jobs, "GET", "/usage?days=1")).json()
        counted = report["total"]
        cores = sum(u["cpu"] for u in tracker.seen.values())
        gib = sum(u["memory"] for u in tracker.seen.values()) / 2**30
        print(
            f"usage: server and run held for {held_for:.0f} s; counted {counted['cpu_hours'] * 3600:.1f} core-s "
            f"and {counted['memory_gib_hours'] * 3600:.1f} GiB-s against {tracker.cpu_seconds:.1f} and "
            f"{tracker.memory_gib_seconds:.1f} tracked (allowed: one step, {STEP:.0f} s, per holding)"
        )
        timings["usage report: core-seconds counted (a server and a run)"] = counted["cpu_hours"] * 3600
        timings["usage report: core-seconds the test integrated from the Workloads"] = tracker.cpu_seconds
        assert abs(counted["cpu_hours"] * 3600 - tracker.cpu_seconds) <= STEP * cores + 1, (
            counted,
            tracker.cpu_seconds,
        )
        assert abs(counted["memory_gib_hours"] * 3600 - tracker.memory_gib_seconds) <= STEP * gib + 1, counted
        assert counted["gpu_hours"] == 0
        assert {r["user"] for r in report["rows"]} == {USER}, "nobody else's rows"
        assert (await asyncio.to_thread(jobs, "GET", "/usage?user=admin")).status_code == 403

        # the admin console: everyone's, filtered to the user, and the CSV
        await admin_page.goto(f"{hub.url}/hub/login")
        await admin_page.fill("#username_input", "admin")
        await admin_page.fill("#password_input", hub.password)
        await admin_page.click("#login_submit")
        await admin_page.goto(f"{hub.url}/hub/moonhub-admin")
        section = admin_page.locator("#usage-report")
        await expect(section.locator(f"#usage-users tr[data-user='{USER}']")).to_be_visible(timeout=30_000)
        await section.get_by_label("User").fill(USER)
        await section.get_by_role("button", name="Show").click()
        await expect(section.locator("#usage-users tbody tr")).to_have_count(1)
        row = section.locator(f"#usage-users tr[data-user='{USER}'] td")
        cpu_shown = float((await row.nth(1).inner_text()).replace(",", ""))
        assert abs(cpu_shown - counted["cpu_hours"]) <= 0.002, (cpu_shown, counted)
        bar = section.locator(f".moonhub-usage-bar[data-day='{today}']")
        assert float(await bar.get_attribute("data-value") or 0) > 0
        await expect(section.locator("figcaption")).to_contain_text("CPU-hours per day")
        await admin_page.screenshot(path=str(SHOTS / "usage-console.png"), full_page=True)
        async with admin_page.expect_download() as download:
            await section.get_by_role("link", name="Download CSV").click()
        saved = await (await download.value).path()
        lines = list(csv.DictReader(io.StringIO(saved.read_text())))
        assert lines and {x["user"] for x in lines} == {USER}, lines
        assert abs(sum(float(x["cpu_hours"]) for x in lines) - counted["cpu_hours"]) <= 0.002, lines
    finally:
        tracker.stop = True
        tracking.cancel()
        if job_id is not None:
            await asyncio.to_thread(jobs, "DELETE", f"/jobs/{job_id}")
        await page.close()
        await admin_page.close()
