"""Editing together in chromium (issue 37, item 3): a server's owner shares it in full with one
user and to read with another; owner and grantee type into one notebook and each sees the
other's edit, with the other's cursor named; the reader sees both live and can change nothing;
the server is stopped a moment after the last keystroke, and the notebook on disk has it.

Figures: the time from a keystroke in one browser to the character in the other (median and
worst of a run of keystrokes), on the local cluster."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import requests
from playwright.async_api import Browser, Page, expect

from localcluster.config import REPO
from tests.browser.test_schedule_notebook import _open_lab
from tests.browser.test_share_server import _login
from tests.conftest import Hub
from tests.helpers import jobs_api, notebook, wait_for

SHOTS = REPO / "test-results"
OWNER, EDITOR, READER = "ria", "rex", "rho"
NOTEBOOK = "together.ipynb"
CELLS = ".jp-Notebook .jp-Cell"
KEYSTROKES = 12


async def _open_shared_notebook(page: Page, hub: Hub) -> None:
    """The owner's notebook in a grantee's browser: JupyterHub's consent once, then the lab."""
    await page.goto(f"{hub.url}/user/{OWNER}/lab/tree/{NOTEBOOK}")
    await page.wait_for_url("**/hub/api/oauth2/authorize**", timeout=60_000)
    await page.locator("button[type='submit']").click()
    await page.wait_for_url(f"**/user/{OWNER}/lab**", timeout=60_000)
    await page.locator(CELLS).nth(1).wait_for(timeout=60_000)


async def _dismiss_dialogs(page: Page, seconds: float = 3.0) -> None:
    """A reader's lab can not start a kernel for the notebook: JupyterLab says so in a dialog,
    which is closed here when it comes within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await page.locator(".jp-Dialog").count():
            await page.keyboard.press("Escape")
        await asyncio.sleep(0.25)


def _cell(page: Page, n: int):  # type: ignore[no-untyped-def]
    return page.locator(CELLS).nth(n).locator(".cm-content")


async def _shows(page: Page, n: int, text: str, timeout_ms: float = 30_000) -> None:
    """Wait until cell ``n`` on ``page`` holds ``text``, polled at every frame."""
    await page.wait_for_function(
        """([sel, n, text]) => {
            const cell = document.querySelectorAll(sel)[n];
            const content = cell && cell.querySelector('.cm-content');
            return !!content && content.textContent.includes(text);
        }""",
        arg=[CELLS, n, text],
        polling="raf",
        timeout=timeout_ms,
    )


async def test_two_users_type_into_one_notebook_and_a_reader_follows(
    hub: Hub, browser: Browser, timings: dict[str, float]
) -> None:
    SHOTS.mkdir(exist_ok=True)
    owner_s = hub.login(OWNER)
    token = hub.token(owner_s, OWNER, f"access:servers!server={OWNER}/")
    jobs = jobs_api(hub, owner_s, OWNER)
    contexts = [await browser.new_context() for _ in range(3)]
    owner, editor, reader = [await c.new_page() for c in contexts]
    try:
        for page, user in ((editor, EDITOR), (reader, READER)):
            await _login(page, hub, user)  # the hub knows them by name from here
        await _open_lab(owner, hub, OWNER)

        def put() -> requests.Response:
            return requests.put(
                f"{hub.url}/user/{OWNER}/api/contents/{NOTEBOOK}",
                headers={"Authorization": f"token {token}"},
                data=json.dumps({"type": "notebook", "format": "json", "content": notebook("", "")}),
                timeout=30,
            )

        r = await asyncio.to_thread(put)
        assert r.status_code in (200, 201), r.text
        for user, access in ((EDITOR, "full"), (READER, "read")):
            r = await asyncio.to_thread(jobs, "POST", "/shares", {"user": user, "access": access})
            assert r.status_code == 201, r.text

        await owner.goto(f"{hub.url}/user/{OWNER}/lab/tree/{NOTEBOOK}")
        await owner.locator(CELLS).nth(1).wait_for(timeout=60_000)
        await _open_shared_notebook(editor, hub)
        await expect(editor.locator(".moonhub-AccessBadge")).to_have_text(f"{OWNER}'s server", timeout=30_000)

        # each types into a cell of their own; each sees the other's edit
        await _cell(owner, 0).click()
        await owner.keyboard.type("from_owner = 1")
        await _cell(editor, 1).click()
        await editor.keyboard.type("from_editor = 2")
        for page in (owner, editor):
            await _shows(page, 0, "from_owner = 1")
            await _shows(page, 1, "from_editor = 2")
        # who is here: the other's cursor, with their name, in each browser
        await expect(owner.locator(".jp-remote-userFlag-name", has_text=EDITOR).first).to_be_attached(timeout=30_000)
        await expect(editor.locator(".jp-remote-userFlag-name", has_text=OWNER).first).to_be_attached(timeout=30_000)
        await owner.screenshot(path=str(SHOTS / "together-owner.png"))

        # keystroke to the other browser, one character at a time, both ways
        await _cell(owner, 0).click()
        await owner.keyboard.press("End")
        await _cell(editor, 1).click()
        await editor.keyboard.press("End")
        lags: list[float] = []
        typed = {0: "from_owner = 1", 1: "from_editor = 2"}
        for i in range(KEYSTROKES):
            src, dst, n = (owner, editor, 0) if i % 2 == 0 else (editor, owner, 1)
            ch = "abcdefghijkl"[i]
            typed[n] += ch
            t0 = time.perf_counter()
            await src.keyboard.type(ch)
            await _shows(dst, n, typed[n], timeout_ms=10_000)
            lags.append(time.perf_counter() - t0)
        timings["editing together: keystroke -> the other browser, median"] = statistics.median(lags)
        timings["editing together: keystroke -> the other browser, worst of 12"] = max(lags)

        # the reader follows both live, in a notebook they can not change
        await _open_shared_notebook(reader, hub)
        await _dismiss_dialogs(reader)
        await expect(reader.locator(".moonhub-AccessBadge")).to_have_text(
            f"{OWNER}'s server: read only", timeout=30_000
        )
        await _shows(reader, 0, typed[0])
        await _shows(reader, 1, typed[1])
        await _cell(owner, 0).click()
        await owner.keyboard.press("End")
        await owner.keyboard.type("_live")
        typed[0] += "_live"
        await _shows(reader, 0, typed[0])
        await _dismiss_dialogs(reader)
        await _cell(reader, 1).click(force=True)
        # letters that are no command of JupyterLab's when the cell is not being edited
        await reader.keyboard.type("hewn_put")
        await reader.screenshot(path=str(SHOTS / "together-reader.png"))
        await asyncio.sleep(2)
        for page in (reader, owner, editor):
            assert "hewn_put" not in await page.locator(CELLS).nth(1).inner_text()

        # a last keystroke, seen by the editor, then the server stops at once: it is on disk
        await _cell(owner, 0).click()
        await owner.keyboard.press("End")
        await owner.keyboard.type("_last")
        typed[0] += "_last"
        await _shows(editor, 0, typed[0])
        t0 = time.monotonic()
        r = await asyncio.to_thread(hub.api, owner_s, "DELETE", f"/users/{OWNER}/server")
        assert r.status_code in (202, 204), r.text

        def stopped() -> bool:
            model = hub.api(owner_s, "GET", f"/users/{OWNER}").json()
            return not model.get("servers", {}).get("")

        await wait_for(stopped, bool, timeout=120, what="the owner's server stopped")
        timings["editing together: stop of a server with an open shared notebook"] = time.monotonic() - t0
        for c in contexts:
            await c.close()
        contexts = []
        r = await asyncio.to_thread(hub.spawn_form, owner_s, OWNER, environment="python", size="small")
        assert r.status_code == 200, r.text[:300]
        await asyncio.to_thread(hub.open_lab, owner_s, OWNER, 240)
        saved = await asyncio.to_thread(hub.lab, owner_s, OWNER, f"api/contents/{NOTEBOOK}")
        assert saved.status_code == 200, saved.text
        sources = ["".join(c["source"]) for c in saved.json()["content"]["cells"]]
        assert sources == [typed[0], typed[1]], sources
    finally:
        for c in contexts:
            await c.close()
        for user in (EDITOR, READER):
            await asyncio.to_thread(jobs, "DELETE", f"/shares/user/{user}")
        hub.api(owner_s, "DELETE", f"/users/{OWNER}/server")
