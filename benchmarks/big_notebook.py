"""Scheduling a big notebook from JupyterLab's dialog (figures, no asserts).

On a fresh benchmark cluster with its own hub, one user's JupyterLab in Debian's chromium.
Notebooks with ``--mb`` MB of plot outputs and a small one (the baseline) are put in the
workspace, and each is scheduled from the file browser ("Schedule…" on a right click):

- **dialog open**: from the menu click to the dialog (the lab reads the saved notebook and
  strips its outputs);
- **created**: from the dialog's Schedule click until the dialog closed on the service's
  answer (the upload through the server extension; the service freezes the version);

and the same notebook the API way: the whole notebook, outputs and all, POSTed to the
jobs service (which strips them), timed to its 201.

    .venv/bin/python -m benchmarks.big_notebook [--mb 50] [--repeat 3]

Needs the machine's node slot (stop `./moonhub up` and any test cluster first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from playwright.async_api import Page, async_playwright, expect

from tests.browser.conftest import ARGS, CHROMIUM
from tests.conftest import Hub
from tests.helpers import jobs_api, parameter_notebook

from .cluster import bench_hub

PORT = 18400
USER = "bigdata"


def with_outputs(megabytes: float) -> dict[str, Any]:
    nb = parameter_notebook("rows = 10", "print('rows:', rows)")
    if megabytes:
        png = "iVBORw0KGgo" * int(megabytes * 10**6 // 11)
        nb["cells"][-1]["outputs"] = [{"output_type": "display_data", "data": {"image/png": png}, "metadata": {}}]
    return nb


async def _put(page: Page, hub: Hub, path: str, nb: dict[str, Any]) -> None:
    cookies = await page.context.cookies()
    xsrf = next(c["value"] for c in cookies if c["name"] == "_xsrf" and c["path"] == f"/user/{USER}/")
    r = await page.request.put(
        f"{hub.url}/user/{USER}/api/contents/{path}",
        data=json.dumps({"type": "notebook", "format": "json", "content": nb}),
        headers={"X-XSRFToken": xsrf, "Content-Type": "application/json"},
        timeout=300_000,
    )
    assert r.status in (200, 201), await r.text()


async def _schedule(page: Page, path: str, name: str) -> tuple[float, float]:
    """Open the dialog on ``path`` from the file browser and schedule it as ``name``."""
    # scheduling opens the Jobs panel: the file browser back first
    browser_tab = page.locator(".jp-SideBar li[data-id='filebrowser']")
    if await browser_tab.get_attribute("aria-selected") != "true":
        await browser_tab.click()
    await page.locator("[data-command='filebrowser:refresh']").first.click()
    item = page.locator(".jp-DirListing-item[data-file-type='notebook']", has_text=path)
    await item.wait_for(timeout=60_000)
    await item.click(button="right")
    entry = page.locator(".lm-Menu-itemLabel", has_text="Schedule…")
    dialog = page.locator(".moonhub-ScheduleDialog")
    t0 = time.monotonic()
    await entry.click()
    await expect(dialog).to_have_count(1, timeout=300_000)
    opened = time.monotonic() - t0
    await dialog.locator("[data-field='name'] input").fill(name)
    t1 = time.monotonic()
    await dialog.get_by_role("button", name="Schedule").click()
    await expect(dialog).to_have_count(0, timeout=300_000)
    created = time.monotonic() - t1
    return opened, created


async def run(hub: Hub, mb: float, repeat: int) -> None:
    s = hub.login(USER)
    call = jobs_api(hub, s, USER)
    r = hub.spawn_form(s, USER, environment="python", size="small")
    assert r.status_code == 200, r.text[:300]
    hub.open_lab(s, USER, timeout=300)
    results: dict[str, dict[str, list[float]]] = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        await page.goto(f"{hub.url}/hub/login")
        await page.fill("#username_input", USER)
        await page.fill("#password_input", hub.password)
        await page.click("#login_submit")
        await page.wait_for_url(f"**/user/{USER}/lab**", timeout=300_000)
        await page.wait_for_selector(".jp-Launcher", timeout=120_000)
        for label, size in (("small", 0.0), (f"{mb:g} MB", mb)):
            nb = with_outputs(size)
            path = f"nb-{int(size)}.ipynb"
            await _put(page, hub, path, nb)
            sent = len(json.dumps(nb))
            got = results.setdefault(label, {"dialog": [], "created": [], "api": []})
            for i in range(repeat):
                opened, created = await _schedule(page, path, f"b{int(size)}-{i}")
                got["dialog"].append(opened)
                got["created"].append(created)
                t0 = time.monotonic()
                body = {"name": f"a{int(size)}-{i}", "notebook": path, "notebook_content": nb, "schedule": None}
                resp = await asyncio.to_thread(call, "POST", "/jobs", body, 300)
                assert resp.status_code == 201, resp.text[:300]
                got["api"].append(time.monotonic() - t0)
                print(
                    f"  {label:8} ({sent / 1e6:6.2f} MB as saved): dialog {opened:5.2f} s, "
                    f"created {created:5.2f} s, API with outputs {got['api'][-1]:5.2f} s",
                    flush=True,
                )
        await browser.close()
    for job in call("GET", "/jobs").json()["jobs"]:
        call("DELETE", f"/jobs/{job['id']}")
    hub.api(s, "DELETE", f"/users/{USER}/server")
    base = results["small"]
    print(f"\nscheduling from JupyterLab (median of {repeat}; ratio to the small notebook)")
    for label, got in results.items():
        cells = []
        for key, what in (("dialog", "dialog open"), ("created", "Schedule -> created"), ("api", "API POST")):
            m = statistics.median(got[key])
            cells.append(f"{what} {m:5.2f} s (x{m / statistics.median(base[key]):.1f})")
        print(f"  {label:8}: " + ", ".join(cells))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mb", type=float, default=50, help="MB of outputs in the big notebook")
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    with bench_hub("bench-notebook-hub", PORT) as (_, hub):
        asyncio.run(run(hub, a.mb, a.repeat))


if __name__ == "__main__":
    main()
