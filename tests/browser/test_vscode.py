"""VS Code in the browser beside JupyterLab, on the real node (issue 35, item 4): a user
clicks the launcher's VS Code card in chromium; code-server opens their workspace (a file
saved from JupyterLab is in its explorer), its terminal writes into the same workspace as
the user, and working in it counts as the server's activity, which the idle culler reads."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import requests
from kubernetes_asyncio import client
from playwright.async_api import Browser, Page, expect

from localcluster.config import REPO
from tests.browser.test_schedule_notebook import _open_lab
from tests.conftest import Hub
from tests.helpers import wait_for

SHOTS = REPO / "test-results"
USER = "vick"
USER_NS = "moonhub-users"


async def _status_at_pod(core: client.CoreV1Api, token: str) -> dict[str, Any]:
    """The server's own /api/status, asked at the pod: through the hub's proxy the read would
    itself be activity."""
    pod = await core.read_namespaced_pod(f"jupyter-{USER}", USER_NS)
    r = await asyncio.to_thread(
        requests.get,
        f"http://{pod.status.pod_ip}:8888/user/{USER}/api/status",
        headers={"Authorization": f"token {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _workbench_shows(vs: Page, name: str) -> None:
    await vs.wait_for_selector(".monaco-workbench", timeout=120_000)
    await vs.locator(".explorer-folders-view .monaco-list-row", has_text=name).first.wait_for(timeout=60_000)


async def test_vscode_opens_the_workspace_and_its_terminal_writes_there(
    hub: Hub, browser: Browser, core: client.CoreV1Api, timings: dict[str, float]
) -> None:
    SHOTS.mkdir(exist_ok=True)
    s = hub.login(USER)
    token = hub.token(s, USER, f"access:servers!server={USER}/")
    page = await browser.new_page()
    await _open_lab(page, hub, USER)
    # a file saved from JupyterLab, through the server's contents API
    r = await asyncio.to_thread(
        requests.put,
        f"{hub.url}/user/{USER}/api/contents/from-lab.txt",
        headers={"Authorization": f"token {token}"},
        data=json.dumps({"type": "file", "format": "text", "content": "written in JupyterLab\n"}),
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text

    card = page.locator(".jp-LauncherCard", has_text="VS Code")
    await card.wait_for(timeout=30_000)
    t0 = time.monotonic()
    async with page.context.expect_page(timeout=30_000) as opened:
        await card.click()
    vs = await opened.value
    try:
        await vs.wait_for_selector(".monaco-workbench", timeout=120_000)
        timings["vscode: launcher click -> workbench painted"] = time.monotonic() - t0
        await _workbench_shows(vs, "from-lab.txt")
        timings["vscode: launcher click -> the workspace listed"] = time.monotonic() - t0
    except Exception:
        await vs.screenshot(path=str(SHOTS / "vscode-not-open.png"))
        raise
    assert f"/user/{USER}/vscode/" in vs.url
    await vs.screenshot(path=str(SHOTS / "vscode-workspace.png"))
    # JupyterLab's tab goes away (closing it would close the browser context the VS Code tab
    # belongs to too): from here on, only VS Code is in use
    await page.goto("about:blank")
    before = (await _status_at_pod(core, token))["last_activity"]

    # its terminal runs in the server's pod, as the user, in the workspace
    terminal = vs.locator(".terminal-wrapper .xterm")
    try:
        # the command palette: the workbench takes keys once it has the focus (after the lab's
        # tab went away, it may not have it yet), so click into it and ask again if need be
        # (the palette closes when the workbench loses the focus: then the whole step again)
        palette = vs.locator(".quick-input-widget input")
        pick = vs.locator(".quick-input-list .monaco-list-row.focused")
        for attempt in range(3):
            for _ in range(5):
                await vs.locator(".explorer-folders-view").first.click()
                await vs.keyboard.press("F1")
                try:
                    await palette.wait_for(timeout=5_000)
                    break
                except Exception:
                    continue
            await palette.fill(">Terminal: Create New Terminal")
            await expect(pick).to_contain_text("Terminal: Create New Terminal", timeout=30_000)
            await vs.keyboard.press("Enter")  # the highlighted command
            try:
                await terminal.first.wait_for(timeout=60_000 if attempt == 2 else 20_000)
                break
            except Exception:
                if attempt == 2:
                    raise
        await asyncio.sleep(2)  # the shell's prompt
        await terminal.first.click()
        await vs.keyboard.type("echo made-in-vscode-as-$(id -u) > from-vscode.txt")
        await vs.keyboard.press("Enter")

        def made() -> requests.Response:
            return requests.get(
                f"{hub.url}/user/{USER}/api/contents/from-vscode.txt",
                headers={"Authorization": f"token {token}"},
                params={"content": "1", "format": "text"},
                timeout=30,
            )

        got = await wait_for(
            lambda: asyncio.to_thread(made),
            lambda r: r.status_code == 200,
            timeout=60,
            what="the file VS Code's terminal wrote, read through JupyterLab's contents API",
        )
    except Exception:
        await vs.screenshot(path=str(SHOTS / "vscode-terminal.png"))
        raise
    content = got.json()["content"].strip()
    assert content.startswith("made-in-vscode-as-") and content != "made-in-vscode-as-0", content
    # the new file shows in VS Code's explorer too (its watcher sees the workspace)
    await _workbench_shows(vs, "from-vscode.txt")
    await vs.screenshot(path=str(SHOTS / "vscode-terminal.png"))

    # what was done in VS Code is the server's activity, which the hub and the culler read
    after = (await _status_at_pod(core, token))["last_activity"]
    assert after > before, (before, after)
    # an idle VS Code tab: does its connection alone keep the server "active"? (measured)
    await asyncio.sleep(20)
    idle = (await _status_at_pod(core, token))["last_activity"]
    timings["vscode: activity seen during 20 s of an idle open tab (1 yes, 0 no)"] = float(idle > after)
    await page.close()
    hub.api(s, "DELETE", f"/users/{USER}/server")
