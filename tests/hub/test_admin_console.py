"""The admin console and the metrics through the real hub and cluster: catalog edits take
effect at the next spawn form; an environment added is checked in the real registry,
pinned, spawned, removed and restored from the history; a broken catalog file is shown,
not a 500; MoonHub's counters on the hub's Prometheus endpoint. Who may call each route,
the usage view, every refusal, the history and the Helm install's ConfigMap are checked in
the middle tier (tests/middle/test_admin_console.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from kubernetes_asyncio import client

from moonhub_core.catalog import load
from tests.conftest import Hub


@pytest.fixture
def restore_catalog(hub: Hub) -> Iterator[None]:
    before = hub.catalog.read_text()
    yield
    hub.catalog.write_text(before)


def _call(hub: Hub, s: requests.Session, method: str, path: str, **kw) -> requests.Response:  # type: ignore[no-untyped-def]
    headers = {"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/") or ""}
    return s.request(method, f"{hub.url}{path}", headers=headers, allow_redirects=False, timeout=30, **kw)


def test_catalog_edits_are_validated_and_take_effect(hub: Hub, restore_catalog: None) -> None:
    admin = hub.login("admin")
    patch = lambda edit: _call(hub, admin, "PATCH", "/hub/moonhub-admin/api/catalog", json=edit)  # noqa: E731
    r = patch({"op": "environment", "name": "tensorflow", "enabled": False})
    assert r.status_code == 200, r.text
    user = hub.login("ivo")
    form = user.get(f"{hub.url}/hub/spawn/ivo", timeout=30).text
    assert 'value="tensorflow"' not in form and 'value="pytorch"' in form, "the spawn form follows the edit"

    # restricting a GPU type to a group: members of ml-research lose A100s unless in it
    assert hub.api(admin, "POST", "/groups/ml-research").status_code in (201, 409)
    assert hub.api(admin, "POST", "/groups/ml-research/users", json={"users": ["ivo"]}).status_code == 200
    assert 'value="a100"' in user.get(f"{hub.url}/hub/spawn/ivo", timeout=30).text
    assert patch({"op": "gpu_type", "name": "a100", "groups": ["gpu-elite"]}).status_code == 200
    assert 'value="a100"' not in user.get(f"{hub.url}/hub/spawn/ivo", timeout=30).text
    r = patch({"op": "gpu_quota", "group": "ml-research", "gpus": 4})
    assert r.status_code == 200 and r.json()["catalog"]["group_gpu_quotas"]["ml-research"] == 4
    r = patch({"op": "size", "name": "medium", "default": True})
    assert [s["name"] for s in r.json()["catalog"]["sizes"] if s.get("default")] == ["medium"]

    # refused edits name the field and leave the file as it was
    before = hub.catalog.read_text()
    for edit, field in [
        ({"op": "environment", "name": "python", "enabled": False}, None),  # then pytorch: none left
        ({"op": "environment", "name": "pytorch", "enabled": False}, "catalog"),
        ({"op": "environment", "name": "cobol", "enabled": True}, "name"),
        ({"op": "gpu_quota", "group": "ml-research", "gpus": -1}, "gpus"),
        ({"op": "size", "name": "small", "image": "evil"}, "image"),
        ({"op": "rename"}, "op"),
    ]:
        r = patch(edit)
        if field is None:
            assert r.status_code == 200, r.text
            before = hub.catalog.read_text()
            continue
        assert r.status_code == 400 and r.json()["field"] == field, (edit, r.text)
        assert hub.catalog.read_text() == before, "a refused edit changes nothing"
    assert "at least one enabled environment" in patch({"op": "environment", "name": "pytorch", "enabled": False}).text


def test_metrics_count_spawns_and_failures(hub: Hub) -> None:
    nia = hub.login("nia")
    r = hub.api(nia, "POST", "/users/nia/server", json={"environment": "pytorch", "gpu_type": "a100", "gpu_count": 8})
    assert r.status_code == 403, r.text
    admin = hub.login("admin")
    text = _call(hub, admin, "GET", "/hub/metrics").text
    assert 'moonhub_spawn_failures_total{reason="not_entitled"}' in text
    assert "# TYPE moonhub_spawns_total counter" in text and "# TYPE moonhub_gpus_in_use gauge" in text
    assert "jupyterhub_" in text, "the hub's own metrics are served alongside"
    assert requests.get(f"{hub.url}/hub/metrics", timeout=30).status_code == 403, "metrics need a login"


def test_a_broken_catalog_file_is_shown_to_admins_not_a_500(hub: Hub, restore_catalog: None) -> None:
    admin = hub.login("admin")
    good = hub.catalog.read_text()
    # an edit made outside the console (e.g. by hand) with a typo: the hub keeps the last good
    hub.catalog.write_text(good.replace("display_name:", "display_nam:", 1))
    page = _call(hub, admin, "GET", "/hub/moonhub-admin")
    assert page.status_code == 200 and 'id="catalog-error"' in page.text, page.status_code
    assert "display_nam" in page.text, "the error names the key"
    usage = _call(hub, admin, "GET", "/hub/moonhub-admin/api/usage").json()
    assert "display_nam" in usage["catalog_error"] and usage["gpu_types"], "usage from the last good catalog"
    user = hub.login("ivo")
    assert 'value="python"' in user.get(f"{hub.url}/hub/spawn/ivo", timeout=30).text, "spawning goes on"
    # not YAML at all: the page still opens; the catalog API says what is wrong (409)
    hub.catalog.write_text("environments: [\n")
    assert _call(hub, admin, "GET", "/hub/moonhub-admin").status_code == 200
    r = _call(hub, admin, "GET", "/hub/moonhub-admin/api/catalog")
    assert r.status_code == 409 and r.json()["field"] == "catalog", r.text
    hub.catalog.write_text(good)
    assert _call(hub, admin, "GET", "/hub/moonhub-admin/api/usage").json()["catalog_error"] is None


async def test_an_environment_added_is_checked_pinned_spawned_removed_and_restored(
    hub: Hub, core: client.CoreV1Api, restore_catalog: None
) -> None:
    admin = hub.login("admin")
    patch = lambda edit: _call(hub, admin, "PATCH", "/hub/moonhub-admin/api/catalog", json=edit)  # noqa: E731
    image = next(e for e in load(hub.catalog).environments if e.name == "python").image
    base = _call(hub, admin, "GET", "/hub/moonhub-admin/api/catalog").json()["revision"]
    add = {"name": "second-lab", "display_name": "A second lab", "image": image}

    # an image the registry does not have is refused, naming the field; nothing changes
    before = hub.catalog.read_text()
    missing = {**add, "image": image.rsplit(":", 1)[0] + ":no-such-tag"}
    r = patch({"op": "add", "kind": "environment", "item": missing, "base_revision": base})
    assert r.status_code == 400 and r.json()["field"] == "image" and "not in the registry" in r.text, r.text
    assert hub.catalog.read_text() == before

    # one it has that is no notebook server (the storage helper's) is refused with what it said
    helper = image.split("/moonhub/")[0] + "/moonhub/storage-helper:glusterfs-10"
    r = patch({"op": "add", "kind": "environment", "item": {**add, "image": helper}, "base_revision": base})
    assert r.status_code == 400 and r.json()["field"] == "image", r.text
    assert "does not start as a notebook server" in r.text and "jupyterhub-singleuser" in r.text, r.text
    assert hub.catalog.read_text() == before
    pods = await core.list_namespaced_pod("moonhub-users", label_selector="moonhub.io/component=image-probe")
    assert pods.items == [] or all(p.metadata.deletion_timestamp for p in pods.items), "the probe is removed"

    # one it has is added, pinned by the digest the registry answers, once it started as a server
    r = patch({"op": "add", "kind": "environment", "item": add, "base_revision": base})
    assert r.status_code == 200, r.text
    assert r.json()["started_as_server"]["second-lab"], r.text  # jupyterhub-singleuser's version
    digest = r.json()["checked_images"]["second-lab"]
    added_at = r.json()["revision"]
    env = load(hub.catalog).environment("second-lab")
    assert env is not None and env.image_digest == digest and digest.startswith("sha256:")
    # an edit made from the page as it was before that is refused: someone changed it since
    r = patch({"op": "gpu_quota", "group": "x", "gpus": 1, "base_revision": base})
    assert r.status_code == 409 and r.json()["field"] == "base_revision" and "admin" in r.text, r.text

    # a user spawns it; the pod runs the pinned image
    user = "ines"
    s = hub.login(user)
    assert 'value="second-lab"' in s.get(f"{hub.url}/hub/spawn/{user}", timeout=30).text
    assert hub.spawn_form(s, user, environment="second-lab", size="small").status_code == 200
    hub.open_lab(s, user)
    try:
        pod = await core.read_namespaced_pod(f"jupyter-{user}", "moonhub-users")
        assert pod.spec.containers[0].image == f"{image}@{digest}"

        # removing it names the running server, which keeps running
        r = patch({"op": "remove", "kind": "environment", "name": "second-lab"})
        assert r.status_code == 200, r.text
        assert [(u["user"], u["environment"]) for u in r.json()["in_use"]] == [(user, "second-lab")]
        assert "removed" in r.json()["in_use"][0]["what"]
        assert s.get(f"{hub.url}/user/{user}/api/status", timeout=30).status_code == 200
    finally:
        hub.api(s, "DELETE", f"/users/{user}/server")
    r = hub.api(s, "POST", f"/users/{user}/server", json={"environment": "second-lab"})
    assert r.status_code == 400 and "an admin may have removed it" in r.text, r.text

    # the history says who did what; restoring the version after the addition brings it back
    history = _call(hub, admin, "GET", "/hub/moonhub-admin/api/catalog/history").json()["revisions"]
    assert [h["summary"] for h in history[:2]] == ["removed environment second-lab", "added environment second-lab"]
    assert history[0]["by"] == "admin" and history[0]["edit"]["name"] == "second-lab"
    doc = _call(hub, admin, "GET", f"/hub/moonhub-admin/api/catalog/history?revision={added_at}").text
    assert "second-lab" in doc
    r = patch({"op": "restore", "revision": added_at})
    assert r.status_code == 200 and r.json()["summary"] == f"restored revision {added_at}", r.text
    assert load(hub.catalog).environment("second-lab") is not None
    r = patch({"op": "restore", "revision": 10_000})
    assert r.status_code == 404 and r.json()["field"] == "revision"
