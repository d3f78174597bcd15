"""Sharing a server in chromium with two users (issue 37, item 2): the owner shares their
running server read-only from JupyterLab's Share page; the grantee, in a browser of their own,
confirms JupyterHub's consent page and sees the owner's files in JupyterLab, and is refused a
kernel; the owner revokes the share on the page, and the grantee's next visit is refused."""

from __future__ import annotations

import asyncio
import json
import time

import requests
from playwright.async_api import Browser, Page, expect

from localcluster.config import REPO
from tests.browser.test_schedule_notebook import _open_lab
from tests.conftest import Hub
from tests.helpers import wait_for

SHOTS = REPO / "test-results"
OWNER, GRANTEE = "sol", "tam"


async def _login(page: Page, hub: Hub, user: str) -> None:
    await page.goto(f"{hub.url}/hub/login")
    await page.fill("#username_input", user)
    await page.fill("#password_input", hub.password)
    await page.click("#login_submit")
    await page.wait_for_url("**/hub/**", timeout=30_000)


async def test_a_server_shared_on_the_page_opens_for_the_grantee_until_revoked(
    hub: Hub, browser: Browser, timings: dict[str, float]
) -> None:
    SHOTS.mkdir(exist_ok=True)
    owner_s = hub.login(OWNER)
    token = hub.token(owner_s, OWNER, f"access:servers!server={OWNER}/")
    owner_ctx, grantee_ctx = await browser.new_context(), await browser.new_context()
    owner, grantee = await owner_ctx.new_page(), await grantee_ctx.new_page()
    try:
        await _login(grantee, hub, GRANTEE)  # the hub knows the grantee by name from here
        await _open_lab(owner, hub, OWNER)
        r = await asyncio.to_thread(
            requests.put,
            f"{hub.url}/user/{OWNER}/api/contents/for-tam.txt",
            headers={"Authorization": f"token {token}"},
            data=json.dumps({"type": "file", "format": "text", "content": "notes for tam\n"}),
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text

        # the owner shares the server read-only on the Share page
        await owner.locator(".lm-MenuBar-itemLabel", has_text="Jobs").click()
        await owner.locator(".lm-Menu-itemLabel").get_by_text("Share This Server…", exact=True).click()
        view = owner.locator(".moonhub-ShareView")
        await view.wait_for(timeout=30_000)
        await view.locator("#moonhub-share-who").fill(GRANTEE)
        await view.locator("#moonhub-share-hours").select_option("8")
        assert "Read only" in await view.locator(".moonhub-ShareAccessHelp").inner_text()
        await view.locator("button[data-key='share']").click()
        row = view.locator(f"tr[data-share='user/{GRANTEE}']")
        await expect(row).to_contain_text("Read only", timeout=30_000)
        await expect(row).to_contain_text("in 8 hours")
        await owner.screenshot(path=str(SHOTS / "share-page.png"))
        # a name the hub does not know is refused beside the form, naming what is wrong
        await view.locator("#moonhub-share-who").fill("nobody-here")
        await view.locator("button[data-key='share']").click()
        await expect(view.locator(".moonhub-FieldError")).to_contain_text("no user 'nobody-here'", timeout=30_000)

        # the grantee opens the owner's server: JupyterHub asks once, then JupyterLab opens
        t0 = time.monotonic()
        await grantee.goto(f"{hub.url}/user/{OWNER}/lab")
        await grantee.wait_for_url("**/hub/api/oauth2/authorize**", timeout=60_000)
        await grantee.screenshot(path=str(SHOTS / "share-consent.png"))
        await grantee.locator("button[type='submit']").click()
        await grantee.wait_for_url(f"**/user/{OWNER}/lab**", timeout=60_000)
        await grantee.wait_for_selector(".jp-DirListing-item", timeout=60_000)
        timings["sharing (browser): the grantee's click -> the owner's files listed"] = time.monotonic() - t0
        await expect(grantee.locator(".jp-DirListing-item", has_text="for-tam.txt")).to_be_visible()
        await grantee.screenshot(path=str(SHOTS / "share-grantee-lab.png"))
        # read only: the grantee's JupyterLab can not start a kernel there
        xsrf = next(
            c["value"] for c in await grantee_ctx.cookies() if c["name"] == "_xsrf" and c["path"] == f"/user/{OWNER}/"
        )
        started = await grantee.request.post(
            f"{hub.url}/user/{OWNER}/api/kernels", data="{}", headers={"X-XSRFToken": xsrf}
        )
        assert started.status == 403 and "to read" in await started.text()

        # the owner revokes it on the page; the grantee's next visit is refused (within 30 s)
        await row.locator("button", has_text="Revoke").click()
        await expect(view.locator(f"tr[data-share='user/{GRANTEE}']")).to_have_count(0, timeout=30_000)
        t0 = time.monotonic()

        async def visit() -> int:
            r = await grantee.goto(f"{hub.url}/user/{OWNER}/api/contents")
            return r.status if r else 0

        await wait_for(visit, lambda code: code == 403, timeout=60, interval=2, what="the grantee refused")
        timings["sharing (browser): revoke -> the grantee refused"] = time.monotonic() - t0
    finally:
        await owner_ctx.close()
        await grantee_ctx.close()
        hub.api(owner_s, "DELETE", f"/users/{OWNER}/server")
