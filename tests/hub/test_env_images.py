"""Images built from environments (issue 35, item 3) through the real hub, the jobs service and
the real node: rootless BuildKit in a build pod of the cluster, the node's registry and its
package index (a caching proxy of PyPI).

- bad requests are refused naming the field, and nothing is queued;
- an environment made in the workspace (``moonhub-env``) is frozen by the user's server and
  sent on from the lab's route;
- an environment's packages on the base catalog image build in the cluster; its log is read
  while it builds and kept; the image is pushed under its owner's name, checked (a non-root
  user, starts as a notebook server) and then ready;
- its owner starts a server with it, and a job of theirs runs with it: the pod runs it by
  digest, and the package imports from the image's own Python (not the workspace); another
  user naming it, for a server or a job, is refused;
- an admin promotes it into the catalog (the console's add, which checks it again) for a
  group, and a member of that group starts it like any environment;
- a build of an unknown package fails with pip's own words, and nothing is offered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from kubernetes_asyncio import client

from moonhub_core.catalog import load
from tests.conftest import Hub
from tests.helpers import gone, jobs_api, kubectl, notebook, printed, run_in_kernel, runs_ended, wait_for

USER_NS = "moonhub-users"
BUILDS_NS = "moonhub-builds"
OWNER, OTHER, MEMBER = "imra", "imke", "imani"
PACKAGE, VERSION = "tabulate", "0.9.0"
GROUP = "image-fans"


def _call(hub: Hub, s: requests.Session, method: str, path: str, **kw: Any) -> requests.Response:
    headers = {"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/") or ""}
    return s.request(method, f"{hub.url}{path}", headers=headers, allow_redirects=False, timeout=300, **kw)


@pytest.fixture
def restore_catalog(hub: Hub) -> Iterator[None]:
    before = hub.catalog.read_text()
    yield
    hub.catalog.write_text(before)


async def _ended(call: Callable[..., requests.Response], build_id: int, timeout: float = 900) -> dict[str, Any]:
    """The build once it ended, printing its log as it grows (the test's own follow)."""
    shown = ""

    async def done() -> dict[str, Any]:
        nonlocal shown
        await asyncio.sleep(2)
        log = call("GET", f"/images/{build_id}/log").json().get("log") or ""
        if log.startswith(shown):
            print(log[len(shown) :], end="")
        shown = log
        b = call("GET", f"/images/{build_id}").json()
        return dict(b) if b["state"] in ("ready", "failed", "cancelled") else {}

    return await wait_for(done, bool, timeout=timeout, what=f"image build {build_id} ended")


async def _stop(hub: Hub, s: requests.Session, user: str, core: client.CoreV1Api) -> None:
    hub.api(s, "DELETE", f"/users/{user}/server")
    await wait_for(
        lambda: gone(lambda: core.read_namespaced_pod(f"jupyter-{user}", USER_NS)), bool, timeout=120, what="pod gone"
    )


async def test_an_environment_becomes_an_image_its_owner_runs_and_an_admin_promotes(
    hub: Hub, core: client.CoreV1Api, timings: dict[str, float], restore_catalog: None
) -> None:
    s = hub.login(OWNER)
    call = jobs_api(hub, s, OWNER)

    # refusals name the field; nothing is queued
    for body, field in [
        ({"environment": "tab", "packages": ["x @ http://169.254.169.254/x.whl"], "base": "python"}, "packages[0]"),
        ({"environment": "tab", "packages": ["--extra-index-url=http://10.0.0.5/"], "base": "python"}, "packages[0]"),
        ({"environment": "tab", "packages": [f"{PACKAGE}=={VERSION}"], "base": "cobol"}, "base"),
        ({"environment": "Tab!", "packages": [f"{PACKAGE}=={VERSION}"], "base": "python"}, "environment"),
        ({"environment": "tab", "packages": [f"{PACKAGE}=={VERSION}"], "base": "python", "image": "x"}, "image"),
    ]:
        r = call("POST", "/images", body)
        assert r.status_code == 400 and r.json()["field"] == field, r.text
    assert call("GET", "/images").json()["images"] == []

    # from the lab: an environment made in the workspace, frozen by the server and sent on
    r = hub.api(s, "POST", f"/users/{OWNER}/server", json={"environment": "python", "size": "small"})
    assert r.status_code in (201, 202), r.text
    hub.open_lab(s, OWNER, timeout=240)
    try:
        assert hub.cluster is not None
        made = kubectl(
            hub.cluster, "-n", USER_NS, "exec", f"jupyter-{OWNER}", "--",
            "sh", "-c", f"moonhub-env create tab {PACKAGE}=={VERSION} 2>&1; echo rc=$?",
        )  # fmt: skip
        assert "rc=0" in made, made
        envs = hub.lab(s, OWNER, "moonhub/environments").json()
        assert envs["base"] == "python" and [e["name"] for e in envs["environments"]] == ["tab"], envs
        r = hub.lab(s, OWNER, "moonhub/environments/nosuch/image", "POST", json={})
        assert r.status_code == 400 and r.json()["field"] == "name", r.text
        t0 = time.monotonic()
        r = hub.lab(s, OWNER, "moonhub/environments/tab/image", "POST", json={})
    finally:
        await _stop(hub, s, OWNER, core)
    # a build in the cluster: queued, built by rootless BuildKit, pushed, checked, ready
    assert r.status_code == 202 and r.json()["state"] == "queued", r.text
    assert r.json()["packages"] == [f"{PACKAGE}=={VERSION}"] and r.json()["base"] == "python", r.text
    build_id = r.json()["id"]
    built = await _ended(call, build_id)
    timings["an environment image: request to ready (build, push, checks)"] = time.monotonic() - t0
    assert built["state"] == "ready", built["message"]
    assert built["image"].startswith(f"127.0.0.1:5000/moonhub-users/{OWNER}/tab:build-{build_id}@sha256:"), built
    print(f"image {built['image']}: {built['size_bytes']} bytes as pushed, {built['added_bytes']} added to its base")
    assert 0 < built["added_bytes"] < 50 * 2**20, "only the environment's layer is new"
    log = call("GET", f"/images/{build_id}/log").json()["log"]
    assert f"Successfully installed {PACKAGE}-{VERSION}" in log and "moonhub-push: pushed" in log, log[-2000:]
    # (another test's builds may share the namespace: this build's pod and its probe's)
    pods = await core.list_namespaced_pod(BUILDS_NS)
    left = [
        p.metadata.name
        for p in pods.items
        if not p.metadata.deletion_timestamp
        and (
            (p.metadata.labels or {}).get("moonhub.io/image-build") == str(build_id)
            or p.spec.containers[0].image == built["image"]
        )
    ]
    assert not left, f"build and probe pods are removed: {left}"
    # another user sees none of it
    other = hub.login(OTHER)
    other_call = jobs_api(hub, other, OTHER)
    assert other_call("GET", "/images").json()["images"] == []
    assert other_call("GET", f"/images/{build_id}").status_code == 404
    assert other_call("DELETE", f"/images/{build_id}").status_code == 404

    # its owner starts a server with it: the image by digest, the package in the image's Python
    r = hub.api(s, "POST", f"/users/{OWNER}/server", json={"own_image": str(build_id), "size": "small"})
    assert r.status_code in (201, 202), r.text
    hub.open_lab(s, OWNER, timeout=240)
    try:
        pod = await core.read_namespaced_pod(f"jupyter-{OWNER}", USER_NS)
        assert pod.spec.containers[0].image == built["image"]
        assert pod.metadata.labels["moonhub.io/own-image"] == str(build_id)
        status, out = await run_in_kernel(
            hub, s, OWNER, f"import {PACKAGE}; print('AT', {PACKAGE}.__version__, {PACKAGE}.__file__)"
        )
        assert status == "ok" and f"AT {VERSION} /opt/moonhub/venv/" in out, out
    finally:
        await _stop(hub, s, OWNER, core)

    # a job of its owner runs with it; another user's job naming it is refused
    show = f"import {PACKAGE}; print('AT', {PACKAGE}.__version__, {PACKAGE}.__file__)"
    body = {"name": "tabjob", "notebook": "t.ipynb", "notebook_content": notebook(show), "schedule": None,
            "own_image": build_id}  # fmt: skip
    r = call("POST", "/jobs", body)
    assert r.status_code == 201 and r.json()["own_image"] == build_id, r.text
    job_id = r.json()["id"]
    assert call("POST", f"/jobs/{job_id}/run").status_code == 201
    [run] = await runs_ended(call, job_id, timeout=300)
    assert run["status"] == "succeeded", run
    out = printed(call("GET", f"/jobs/{job_id}/runs/{run['id']}/output?format=ipynb").json())
    assert f"AT {VERSION} /opt/moonhub/venv/" in out, out
    r = other_call("POST", "/jobs", {**body, "name": "notmine"})
    assert r.status_code == 403 and r.json()["field"] == "own_image", r.text
    assert call("DELETE", f"/jobs/{job_id}").status_code == 204

    # someone else's image is not theirs to start
    r = hub.api(other, "POST", f"/users/{OTHER}/server", json={"own_image": str(build_id), "size": "small"})
    assert r.status_code == 403 and "no image" in r.text, r.text

    # an admin promotes it for a group: checked again, pinned, offered to the group's members
    admin = hub.login("admin")
    member = hub.login(MEMBER)  # (a user the hub knows)
    assert hub.api(admin, "POST", f"/groups/{GROUP}").status_code in (201, 409)
    assert hub.api(admin, "POST", f"/groups/{GROUP}/users", json={"users": [MEMBER]}).status_code == 200
    assert _call(hub, admin, "GET", "/hub/moonhub-admin/api/user-images").json()["images"][0]["id"] == build_id
    item = {"name": "tab-lab", "display_name": "Tabulate lab", "image": built["image"], "groups": [GROUP]}
    r = _call(
        hub, admin, "PATCH", "/hub/moonhub-admin/api/catalog", json={"op": "add", "kind": "environment", "item": item}
    )
    assert r.status_code == 200, r.text
    assert load(hub.catalog).environment("tab-lab") is not None
    assert 'value="tab-lab"' in member.get(f"{hub.url}/hub/spawn/{MEMBER}", timeout=30).text
    assert 'value="tab-lab"' not in other.get(f"{hub.url}/hub/spawn/{OTHER}", timeout=30).text
    assert hub.spawn_form(member, MEMBER, environment="tab-lab", size="small").status_code == 200
    hub.open_lab(member, MEMBER, timeout=240)
    try:
        pod = await core.read_namespaced_pod(f"jupyter-{MEMBER}", USER_NS)
        assert pod.spec.containers[0].image == built["image"]
    finally:
        await _stop(hub, member, MEMBER, core)

    # its owner removes the build: off their list at once; the catalog runs the image now, so
    # once the grace has passed (none here) no pod deletes it from the registry (the removal
    # of one the catalog does not use: tests/browser/test_env_image_view.py)
    r = call("DELETE", f"/images/{build_id}")
    assert r.status_code == 200 and r.json()["state"] == "removed", r.text
    assert call("GET", "/images").json()["images"] == []
    assert call("GET", f"/images/{build_id}").status_code == 404
    assert call("DELETE", f"/images/{build_id}").status_code == 404
    if hub.log is not None:  # the service's word (its output is in the host-run hub's log)
        said = f"image build {build_id} removed; its image stays in the registry: the catalog's image"
        await wait_for(
            lambda: said in hub.log.read_text(errors="replace") if hub.log else False,
            bool,
            timeout=60,
            what="the service to keep the promoted image",
        )
    removals = await core.list_namespaced_pod(BUILDS_NS, label_selector=f"moonhub.io/image-build={build_id}")
    assert removals.items == [], [p.metadata.name for p in removals.items]
    name, digest = built["image"].split("/", 1)[1].rsplit("@", 1)
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    kept = await asyncio.to_thread(
        requests.get,
        f"http://127.0.0.1:5000/v2/{name.rsplit(':', 1)[0]}/manifests/{digest}",
        headers={"Accept": accept},
        timeout=10,
    )
    assert kept.status_code == 200, kept.text


async def test_a_build_of_a_package_the_index_lacks_fails_with_pips_words(hub: Hub) -> None:
    s = hub.login("imogen")
    call = jobs_api(hub, s, "imogen")
    r = call("POST", "/images", {"environment": "nope", "packages": ["moonhub-no-such-package==1.0"], "base": "python"})
    assert r.status_code == 202, r.text
    built = await _ended(call, r.json()["id"])
    assert built["state"] == "failed" and built["image"] == "", built
    # pip's own words (it found no such distribution), not only that a step failed
    assert "ERROR:" in built["message"] and "moonhub-no-such-package==1.0" in built["message"], built
    assert "moonhub-no-such-package" in call("GET", f"/images/{built['id']}/log").json()["log"]
    # an ended build is removed from the list; nothing is left
    assert call("DELETE", f"/images/{built['id']}").status_code == 200
    assert call("GET", "/images").json()["images"] == []
