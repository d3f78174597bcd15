"""The admin console in the browser: an admin changes the default size; the page shows
the edit; a refused edit shows its message next to the row; an admin adds an environment
(checked in the registry), a user spawns it, the admin removes it and restores it."""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser, Page, expect

from localcluster.config import REPO
from moonhub_core import image_probe
from moonhub_core.catalog import load
from tests.conftest import Hub

SHOTS = REPO / "test-results"


async def _log_in(page: Page, hub: Hub, user: str) -> None:
    await page.goto(f"{hub.url}/hub/login")
    await page.fill("#username_input", user)
    await page.fill("#password_input", hub.password)
    await page.click("#login_submit")


async def test_admin_console(hub: Hub, browser: Browser) -> None:
    SHOTS.mkdir(exist_ok=True)
    before = hub.catalog.read_text()
    page = await browser.new_page(viewport={"width": 1300, "height": 1100})
    try:
        await _log_in(page, hub, "admin")
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


#: how long a browser waits for an edit that offers an image: the registry, then a probe pod
#: (its own bound, image_probe.WAIT, plus the page's reload); 5 s was not always enough on a
#: busy node
EDIT = (image_probe.WAIT + 10) * 1000


async def test_an_admin_adds_an_environment_in_the_browser_and_a_user_spawns_it(hub: Hub, browser: Browser) -> None:
    SHOTS.mkdir(exist_ok=True)
    before = hub.catalog.read_text()
    image = next(e for e in load(hub.catalog).environments if e.name == "python").image
    page = await browser.new_page(viewport={"width": 1300, "height": 1400})
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))  # the removal's confirmation
    user = "bruno"
    s = hub.login(user)
    try:
        await _log_in(page, hub, "admin")
        await page.goto(f"{hub.url}/hub/moonhub-admin")
        form = page.locator("#add-environment")
        await form.get_by_label("Name", exact=True).fill("browser-lab")
        await form.get_by_label("Display name", exact=True).fill("Lab added in the browser")
        await form.get_by_label("Image", exact=True).fill(image.rsplit(":", 1)[0] + ":no-such-tag")
        await form.get_by_role("button", name="Add environment").click()
        await expect(form.locator(".field-error")).to_contain_text("not in the registry")
        await form.get_by_label("Image", exact=True).fill(image)
        await form.get_by_role("button", name="Add environment").click()
        # the edit waits for the registry and a test start of the image (image_probe.WAIT)
        await expect(page.locator("#admin-message")).to_contain_text("found in its registry and pinned", timeout=EDIT)
        row = page.locator("#environments tr[data-name='browser-lab']")
        await expect(row).to_contain_text("pinned sha256:")
        await expect(page.locator("#catalog-history tbody tr").first).to_contain_text("added environment browser-lab")

        # a user picks it on the spawn form and gets their lab
        assert 'value="browser-lab"' in s.get(f"{hub.url}/hub/spawn/{user}", timeout=30).text
        assert hub.spawn_form(s, user, environment="browser-lab", size="small").status_code == 200
        hub.open_lab(s, user)

        # removing it says whose server uses it; the history restores it
        await page.reload()
        await page.locator("#environments tr[data-name='browser-lab']").get_by_role("button", name="Remove").click()
        await expect(page.locator("#admin-message")).to_contain_text(f"{user}'s server (default) keeps running")
        await expect(page.locator("#environments tr[data-name='browser-lab']")).to_have_count(0)
        await page.screenshot(path=str(SHOTS / "admin-console-curation.png"), full_page=True)
        restore = page.locator("#catalog-history tbody tr").nth(1)
        await expect(restore).to_contain_text("added environment browser-lab")
        await restore.get_by_role("button", name="Restore this version").click()
        await expect(page.locator("#environments tr[data-name='browser-lab']")).to_have_count(1, timeout=EDIT)
    finally:
        hub.api(s, "DELETE", f"/users/{user}/server")
        hub.catalog.write_text(before)
        await page.close()
