"""The admin console in the browser: an admin changes the default size; the page shows
the edit; a refused edit shows its message next to the row."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from localcluster.config import REPO
from tests.conftest import Hub

SHOTS = REPO / "test-results"


async def test_admin_console(hub: Hub, browser: Browser) -> None:
    SHOTS.mkdir(exist_ok=True)
    before = hub.catalog.read_text()
    page = await browser.new_page(viewport={"width": 1300, "height": 1100})
    try:
        await page.goto(f"{hub.url}/hub/login")
        await page.fill("#username_input", "admin")
        await page.fill("#password_input", hub.password)
        await page.click("#login_submit")
        # admins find it in the hub's navigation bar
        await page.goto(f"{hub.url}/hub/home")
        await page.get_by_role("link", name="MoonHub admin").click()
        await expect(page.get_by_role("heading", name="MoonHub admin console")).to_be_visible()
        await expect(page.locator("#gpu-usage tr[data-gpu-type='a100']")).to_contain_text("NVIDIA A100")
        row = page.locator("#sizes tr[data-name='medium']")
        await row.get_by_label("medium is the default").check()
        async with page.expect_response(lambda r: "moonhub-admin/api/catalog" in r.url) as saved:
            await row.get_by_role("button", name="Save").click()
        assert (await saved.value).status == 200
        await page.wait_for_load_state()
        await expect(page.locator("#sizes tr[data-name='medium'] [data-field=default]")).to_be_checked()
        assert "default: true" in hub.catalog.read_text().split("name: medium", 1)[1].split("- name:", 1)[0]
        quota = page.locator("#gpu-quotas tr[data-new]")
        await quota.get_by_label("group for a new quota").fill("vision")
        await quota.get_by_label("GPUs for the new quota").fill("-3")
        await quota.get_by_role("button", name="Add").click()
        await expect(quota.locator(".field-error")).to_contain_text("gpus: must be a whole number")
        await page.screenshot(path=str(SHOTS / "admin-console.png"), full_page=True)
    finally:
        hub.catalog.write_text(before)
        await page.close()
