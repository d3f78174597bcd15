"""Images from environments in the lab, in chromium (issue 35, item 3): a user with an
environment in their workspace opens *Images From Environments…* from the command palette,
builds an image of it, and follows its log in the view until the cluster's build (rootless
BuildKit, the push, the checks) says it is ready; the spawn form then offers it. Removed, the
image goes from the registry too (a pod with the push login deletes it by digest)."""

from __future__ import annotations

import time

import requests
from playwright.async_api import Browser, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout

from localcluster.config import REPO
from tests.browser.test_schedule_notebook import _open_lab
from tests.conftest import Hub
from tests.helpers import jobs_api, kubectl, wait_for

SHOTS = REPO / "test-results"
USER = "iona"
USER_NS = "moonhub-users"


def _asked(manifest: str) -> int:
    """The registry's answer to a read of ``manifest`` (the machine's own registry, the
    storage the node's doors share)."""
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    return requests.get(manifest, headers={"Accept": accept}, timeout=10).status_code


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

    # removed: off the list, and deleted from the registry (nothing else uses it)
    call = jobs_api(hub, hub.login(USER), USER)
    [mine] = [i for i in call("GET", "/images").json()["images"] if i["environment"] == "tabs"]
    name, digest = mine["image"].split("/", 1)[1].rsplit("@", 1)
    repository = name.rsplit(":", 1)[0]
    manifest = f"http://127.0.0.1:5000/v2/{repository}/manifests/{digest}"
    assert _asked(manifest) == 200
    t0 = time.monotonic()
    r = call("DELETE", f"/images/{mine['id']}")
    assert r.status_code == 200 and r.json()["state"] == "removed", r.text
    assert call("GET", f"/images/{mine['id']}").status_code == 404
    await wait_for(
        lambda: _asked(manifest),
        lambda code: code == 404,
        timeout=90,
        what="the registry to delete the removed image",
    )
    timings["a removed image: DELETE to gone from the registry (removal_grace 0)"] = time.monotonic() - t0
