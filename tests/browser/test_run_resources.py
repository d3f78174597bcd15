"""What work uses, in JupyterLab in chromium (issue 36, items 2 and 3):

- the server's memory against its size's limit in the status bar, live, which turns to a
  warning colour when a kernel of the server's comes within 10% of the limit, and back;
- a run that holds memory and burns CPU for a while: its log, opened from the Jobs panel,
  shows its highest memory and CPU against its size's limits, and a chart of each, from the
  figures the jobs service kept from the local Prometheus as the run ended."""

from __future__ import annotations

import asyncio
import json
import re

from playwright.async_api import Browser, expect

from localcluster.config import REPO
from tests.browser.test_pipeline_graph import _until_ended
from tests.browser.test_schedule_notebook import _open_lab
from tests.conftest import Hub
from tests.helpers import notebook, run_in_kernel

SHOTS = REPO / "test-results"
USER = "rhea"
#: jupyter-resource-usage's colour of a usage within its warning threshold of the limit
WARNING = "rgb(255, 210, 210)"
#: about 300 MiB held and a core busy for 30 s: a few of Prometheus's samples (every 10 s here)
WORK = notebook(
    "import time\nheld = bytearray(300 * 2**20)\nend = time.time() + 30\nwhile time.time() < end:\n    pass",
    "print('done', len(held))",
)


async def test_an_ended_runs_memory_and_cpu_show_under_its_log(hub: Hub, browser: Browser) -> None:
    SHOTS.mkdir(exist_ok=True)
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    await _open_lab(page, hub, USER)

    # the server's memory against its limit, live in the status bar
    memory = page.locator(".jp-StatusBar-TextItem", has_text="Mem:")
    await expect(memory).to_be_visible(timeout=30_000)
    calm = await memory.inner_text()
    assert re.search(r"Mem: [\d.]+ / [\d.]+ [KMG]B", calm), calm
    calm_colour = await memory.evaluate("e => getComputedStyle(e).backgroundColor")
    # the notebook's kernel (a process of the server's, which the indicator counts) holds
    # 3.6 GiB of the 4 GiB limit for 25 s: past 90%, not past the limit
    hog = "import time\nb = bytearray(int(3.6 * 2**30))\ntime.sleep(25)\ndel b"
    s = hub.login(USER)
    hub.open_lab(s, USER, timeout=60)  # (the server's cookie, for its kernels' API)
    holding = asyncio.create_task(run_in_kernel(hub, s, USER, hog, timeout=120))
    await expect(memory).to_have_css("background-color", WARNING, timeout=20_000)
    print("near the limit:", await memory.inner_text())
    await page.screenshot(path=str(SHOTS / "memory-warning.png"))
    status, out = await holding
    assert status == "ok", out
    await expect(memory).not_to_have_css("background-color", WARNING, timeout=20_000)
    assert await memory.evaluate("e => getComputedStyle(e).backgroundColor") == calm_colour

    api = f"{hub.url}/user/{USER}/moonhub/api/v1"
    xsrf = next(
        c["value"] for c in await page.context.cookies() if c["name"] == "_xsrf" and c["path"] == f"/user/{USER}/"
    )
    headers = {"X-XSRFToken": xsrf, "Content-Type": "application/json"}
    body = {"name": "busy", "notebook": "busy.ipynb", "notebook_content": WORK, "schedule": None}
    r = await page.request.post(f"{api}/jobs", data=json.dumps(body), headers=headers)
    assert r.status == 201, await r.text()
    job_id = (await r.json())["id"]
    try:
        r = await page.request.post(f"{api}/jobs/{job_id}/run", headers=headers)
        assert r.status == 201, await r.text()
        await page.reload()
        await page.wait_for_selector(".jp-Launcher", timeout=60_000)
        await page.locator(".lm-MenuBar-itemLabel", has_text="Jobs").click()
        await page.locator(".lm-Menu-itemLabel").get_by_text("Show Scheduled Jobs", exact=True).click()
        panel = page.locator("#moonhub-jobs-panel")
        job = panel.locator(".moonhub-Job[data-job='busy']")
        await job.locator(".moonhub-JobToggle").click()
        run = job.locator("[data-run]").first
        await expect(run).to_be_visible(timeout=30_000)
        assert await _until_ended(page, panel, run) == "succeeded", await job.inner_text()
        await run.get_by_role("button", name="Log").click()
        log = page.locator(".moonhub-LogView")
        await expect(log.locator(".moonhub-Log")).to_contain_text("done 314572800")
        used = log.locator(".moonhub-ResourceText")
        await expect(used).to_contain_text("Memory: up to", timeout=30_000)
        await expect(used).to_contain_text("of 4.0 GiB")  # the default size's limit
        await expect(used).to_contain_text("of 2 cores")
        await expect(log.locator("svg.moonhub-ResourceChart")).to_have_count(2)
        await expect(log.locator("figcaption").first).to_have_text("Memory over the run (dashed: the limit)")
        text = await used.inner_text()
        print("under the log:", text)
        await page.screenshot(path=str(SHOTS / "run-resources.png"))
    finally:
        await page.request.delete(f"{api}/jobs/{job_id}", headers=headers)
        await page.close()
