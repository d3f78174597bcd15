"""Images from environments in the lab, in chromium (issue 35, item 3): a user with an
environment in their workspace opens *Images From Environments…* from the command palette,
builds an image of it, and follows its log in the view until the cluster's build (rootless
BuildKit, the push, the checks) says it is ready; the spawn form then offers it."""

from __future__ import annotations

import time

from playwright.async_api import Browser, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout

from localcluster.config import REPO
from tests.browser.test_schedule_notebook import _open_lab
from tests.conftest import Hub
from tests.helpers import kubectl

SHOTS = REPO / "test-results"
USER = "iona"
USER_NS = "moonhub-users"


async def test_an_environment_is_built_into_an_image_from_the_lab(
    hub: Hub, browser: Browser, timings: dict[str, float]
) -> None:
    SHOTS.mkdir(exist_ok=True)
    page = await browser.new_page()
    await _open_lab(page, hub, USER)
    assert hub.cluster is not None
    made = kubectl(
        hub.cluster, "-n", USER_NS, "exec", f"jupyter-{USER}", "--",
        "sh", "-c", "moonhub-env create tabs tabulate==0.9.0 2>&1; echo rc=$?",
    )  # fmt: skip
    assert "rc=0" in made, made

    palette = page.locator(".lm-CommandPalette-input")
    item = page.locator(".lm-CommandPalette-item.lm-mod-active", has_text="Images From Environments")
    for _ in range(5):
        await page.keyboard.press("Control+Shift+C")
        try:
            await palette.wait_for(state="visible", timeout=10_000)
            await page.keyboard.type("Images From Environments")
            await item.wait_for(timeout=5_000)
            break
        except PlaywrightTimeout:
            await page.keyboard.press("Escape")
    await page.keyboard.press("Enter")
    view = page.locator(".moonhub-ImagesView")
    await expect(view.locator("#moonhub-image-env option", has_text="tabs")).to_have_count(1, timeout=30_000)
    await expect(view.locator("#moonhub-image-base")).to_have_value("python")
    t0 = time.monotonic()
    await view.get_by_role("button", name="Build image").click()
    build = view.locator(".moonhub-ImageItem").first
    await expect(build).to_contain_text("tabs on python")
    try:
        # the log follows the build as it runs, then the view says it is ready
        await expect(view.locator(".moonhub-Log")).to_contain_text("moonhub-build: starting BuildKit", timeout=120_000)
        await expect(build).to_have_attribute("data-state", "ready", timeout=600_000)
    except AssertionError:
        await page.screenshot(path=str(SHOTS / "env-image-view.png"))
        raise
    timings["an image built from the lab: click to ready"] = time.monotonic() - t0
    await expect(view.locator(".moonhub-Log")).to_contain_text("Successfully installed tabulate-0.9.0")
    await expect(view.locator(".moonhub-Log")).to_contain_text("moonhub-push: pushed")
    await page.screenshot(path=str(SHOTS / "env-image-view.png"))

    # the spawn form offers it (the user's own; it starts on the environment it was built on);
    # the form of a second server, as the first runs
    await page.goto(f"{hub.url}/hub/spawn/{USER}/second")
    await expect(page.locator("#own_image option", has_text="tabs on python")).to_have_count(1, timeout=30_000)
