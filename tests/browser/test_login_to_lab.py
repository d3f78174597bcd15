"""A user logs in with the browser and JupyterLab opens, served from the cluster."""

from __future__ import annotations

import time

from playwright.async_api import Browser

from localcluster.config import REPO
from tests.conftest import Hub

SHOTS = REPO / "test-results"


async def test_login_and_open_jupyterlab(hub: Hub, browser: Browser, timings: dict[str, float]) -> None:
    SHOTS.mkdir(exist_ok=True)
    page = await browser.new_page()
    await page.goto(f"{hub.url}/hub/login")

    banner = page.locator(".announcement")
    assert "Development login" in (await banner.inner_text())
    await page.fill("#username_input", "dana")
    await page.fill("#password_input", hub.password)
    t0 = time.monotonic()
    await page.click("#login_submit")
    # the spawn form: separate choices; the defaults are fine
    await page.wait_for_selector("input[name='environment']", timeout=30_000)
    assert await page.locator("#env-python").is_checked()
    await page.screenshot(path=str(SHOTS / "spawn-form.png"), full_page=True)
    await page.click("button[type='submit']")
    # the hub spawns the server, shows progress, then redirects into JupyterLab
    await page.wait_for_url("**/user/dana/lab**", timeout=120_000)
    await page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    await page.wait_for_selector(".jp-Launcher", timeout=60_000)
    timings["browser: login click -> JupyterLab launcher shown"] = time.monotonic() - t0
    assert "JupyterLab" in await page.title()
    # the status bar shows the workspace's use of its size (the Gluster quota: the catalog's 10Gi)
    status = page.locator(".moonhub-WorkspaceStatus")
    await page.wait_for_function(
        "() => /^Workspace .+ \\/ 10 GiB$/.test(document.querySelector('.moonhub-WorkspaceStatus')?.textContent || '')",
        timeout=30_000,
    )
    assert await status.get_attribute("data-level") == "ok"
    SHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SHOTS / "jupyterlab-after-login.png"))

    # a notebook's kernel runs inside the pod: its hostname is the pod's name
    await page.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    await page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=60_000)
    # the kernel has connected when the status bar says so
    await page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
    await page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
    await page.keyboard.type("import socket; print(socket.gethostname())")
    await page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-OutputArea-output").first
    try:
        await output.wait_for(timeout=60_000)
    except Exception:
        await page.screenshot(path=str(SHOTS / "notebook-no-output.png"))
        raise
    assert (await output.inner_text()).strip() == "jupyter-dana"
    await page.screenshot(path=str(SHOTS / "notebook-in-pod.png"))

    # a kernel the user registers lives in the workspace and survives a restart
    cell = page.locator(".jp-Notebook .jp-Cell .cm-content").last
    await cell.click()
    await page.keyboard.type(
        "import subprocess, sys; print(subprocess.run([sys.executable, '-m', 'ipykernel', 'install', '--user', "
        "'--name', 'niche', '--display-name', 'Niche (workspace)'], capture_output=True, text=True).returncode)"
    )
    await page.keyboard.press("Shift+Enter")
    await page.locator(".jp-OutputArea-output").nth(1).wait_for(timeout=60_000)
    assert (await page.locator(".jp-OutputArea-output").nth(1).inner_text()).strip() == "0"
    xsrf = next(c["value"] for c in await page.context.cookies() if c["name"] == "_xsrf" and c["path"] == "/hub/")
    r = await page.request.delete(f"{hub.url}/hub/api/users/dana/server", headers={"X-XSRFToken": xsrf})
    assert r.status in (202, 204)
    await page.goto(f"{hub.url}/hub/spawn/dana")
    await page.wait_for_selector("input[name='environment']", timeout=60_000)
    await page.click("button[type='submit']")
    await page.wait_for_url("**/user/dana/lab**", timeout=120_000)
    specs = await (await page.request.get(f"{hub.url}/user/dana/api/kernelspecs")).json()
    # the pod home is fresh on every start: only the workspace volume can have kept it
    assert specs["kernelspecs"]["niche"]["spec"]["display_name"] == "Niche (workspace)"
    await page.close()
