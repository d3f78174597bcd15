"""The admin console in the middle tier (tests/middle/console.py: its handlers in a real
JupyterHub, the Kubernetes API faked): who may call each route, the catalog's curation and
its refusals, the history and restore, a stale page's edit, the servers an edit touches,
read-only catalogs, and the ConfigMap a Helm install keeps the catalog in. What needs a
real registry or cluster (an image checked and pinned, then spawned; the chart's
ConfigMap through an upgrade) is in tests/hub/test_admin_console.py and
tests/cluster/test_chart_install.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from moonhub_core.catalog import EXAMPLE, load
from moonhub_core.pods import GPU_NODE_SELECTOR
from tests.middle.console import SLOWEST, ConsoleHub, console_hub

ROUTES = [
    ("GET", ""),
    ("GET", "/api/usage"),
    ("GET", "/api/catalog"),
    ("PATCH", "/api/catalog"),
    ("GET", "/api/catalog/history"),
    ("PATCH", "/api/workspaces/claim-ada"),
]
SIZE = {"name": "xl", "display_name": "Extra large", "cpu_guarantee": 1, "cpu_limit": 2,
        "memory_guarantee": "1Gi", "memory_limit": "2Gi"}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def hub_times(timings: dict[str, float]) -> Iterator[None]:
    """The slowest MockHub start and stop, with the run's timings (a slow run says which)."""
    yield
    timings.update(SLOWEST)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleHub]:
    with console_hub(tmp_path_factory.mktemp("console"), EXAMPLE) as hub:
        # one GPU node (the hub's GPU view is read at most every 10 s: there before any read)
        labels = {GPU_NODE_SELECTOR.split("=")[0]: "true", "nvidia.com/gpu.product": "Tesla-T4"}
        node = {
            "metadata": {"name": "gpu-1", "labels": labels},
            "spec": {},
            "status": {"allocatable": {"nvidia.com/gpu": "2"}, "conditions": [{"type": "Ready", "status": "True"}]},
        }
        hub.kube.put("api/v1", "nodes", "", node)
        yield hub


@pytest.fixture(scope="module")
def admin(console: ConsoleHub) -> requests.Session:
    return console.login("admin")


@pytest.fixture
def restore(console: ConsoleHub) -> Iterator[None]:
    before = console.catalog.read_text()
    yield
    console.catalog.write_text(before)


def test_only_admins_reach_any_route(console: ConsoleHub, admin: requests.Session) -> None:
    nia = console.login("nia")
    for method, path in ROUTES:
        r = console.call(nia, method, path, json={"op": "gpu_quota", "group": "x", "gpus": 1})
        assert r.status_code == 403, (method, path, r.status_code)
        r = requests.request(method, f"{console.url}hub/moonhub-admin{path}", allow_redirects=False, timeout=30)
        assert r.status_code in (302, 403), (method, path, r.status_code)
    page = console.call(admin, "GET", "")
    assert page.status_code == 200 and "Catalog history" in page.text and 'id="add-environment"' in page.text
    assert "MoonHub admin" in admin.get(f"{console.url}hub/home", timeout=30).text, "in the admin's navigation bar"
    assert "MoonHub admin" not in nia.get(f"{console.url}hub/home", timeout=30).text
    # a call with the session cookie but without the XSRF token is refused
    r = admin.patch(f"{console.url}hub/moonhub-admin/api/catalog", json={"op": "rename"}, timeout=30)
    assert r.status_code == 403 and load(console.catalog).size("xl") is None


def test_curation_history_and_restore(console: ConsoleHub, admin: requests.Session, restore: None) -> None:
    base = console.call(admin, "GET", "/api/catalog").json()["revision"]
    r = console.edit(admin, {"op": "add", "kind": "size", "item": SIZE, "base_revision": base})
    assert r.status_code == 200, r.text
    added = r.json()["revision"]
    assert r.json()["summary"] == "added size xl" and r.json()["checked_images"] == {}
    assert load(console.catalog).size("xl") is not None, "written, and loads as the hub loads it"
    r = console.edit(admin, {"op": "update", "kind": "size", "name": "xl", "set": {"cpu_limit": 4}})
    assert r.status_code == 200 and load(console.catalog).size("xl").cpu_limit == 4  # type: ignore[union-attr]
    # an edit from the page as it was at ``base``: someone changed the catalog since
    r = console.edit(admin, {"op": "remove", "kind": "size", "name": "xl", "base_revision": base})
    assert r.status_code == 409 and r.json()["field"] == "base_revision" and "changed size xl" in r.text
    assert load(console.catalog).size("xl") is not None
    r = console.edit(admin, {"op": "remove", "kind": "size", "name": "xl"})
    assert r.status_code == 200 and load(console.catalog).size("xl") is None

    history = console.call(admin, "GET", "/api/catalog/history").json()["revisions"]
    assert [h["summary"] for h in history[:3]] == ["removed size xl", "changed size xl: cpu_limit", "added size xl"]
    assert {h["by"] for h in history[:3]} == {"admin"}
    kept = console.call(admin, "GET", f"/api/catalog/history?revision={added}")
    assert kept.status_code == 200 and "name: xl" in kept.text
    r = console.edit(admin, {"op": "restore", "revision": added})
    assert r.status_code == 200 and r.json()["summary"] == f"restored revision {added}"
    assert load(console.catalog).size("xl").cpu_limit == 2  # type: ignore[union-attr]
    page = console.call(admin, "GET", "").text
    assert f"restored revision {added}" in page and "Restore this version" in page


@pytest.mark.parametrize(
    ("edit", "status", "field"),
    [
        ({"op": "add", "kind": "size", "item": {**SIZE, "cpu_limit": 0.5}}, 400, "cpu_limit"),
        ({"op": "add", "kind": "size", "item": {**SIZE, "name": "small"}}, 409, "name"),
        (
            {"op": "add", "kind": "environment", "item": {"name": "r", "display_name": "R", "image": "a b"}},
            400,
            "image",
        ),
        ({"op": "update", "kind": "environment", "name": "python", "set": {"runAsUser": 0}}, 400, "runAsUser"),
        ({"op": "remove", "kind": "gpu_type", "name": "h100"}, 404, "name"),
        ({"op": "restore", "revision": "1"}, 400, "revision"),
        ({"op": "restore", "revision": 99_999}, 404, "revision"),
        ({"op": "rename"}, 400, "op"),
        ([1, 2], 400, "body"),
    ],
)
def test_a_bad_edit_names_its_field_and_changes_nothing(
    console: ConsoleHub, admin: requests.Session, edit: Any, status: int, field: str
) -> None:
    before = console.catalog.read_text()
    revision = console.call(admin, "GET", "/api/catalog").json()["revision"]
    r = console.edit(admin, edit)
    assert (r.status_code, r.json()["field"]) == (status, field), r.text
    assert console.catalog.read_text() == before
    assert console.call(admin, "GET", "/api/catalog").json()["revision"] == revision, "nothing recorded"


def test_a_body_that_is_not_json_is_refused(console: ConsoleHub, admin: requests.Session) -> None:
    headers = {"X-XSRFToken": admin.cookies.get("_xsrf") or "", "Content-Type": "application/json"}
    r = admin.patch(f"{console.url}hub/moonhub-admin/api/catalog", data=b"{nope", headers=headers, timeout=30)
    assert r.status_code == 400 and r.json()["field"] == "body"


def test_the_answer_names_the_servers_an_edit_touches(
    console: ConsoleHub, admin: requests.Session, restore: None
) -> None:
    ada = console.login("ada")
    console.spawn(ada, "ada", environment="tensorflow", size="small")
    try:
        r = console.edit(admin, {"op": "remove", "kind": "environment", "name": "tensorflow"})
        assert r.status_code == 200, r.text
        [touched] = r.json()["in_use"]
        assert touched["user"] == "ada" and touched["environment"] == "tensorflow" and "removed" in touched["what"]
        r = console.edit(admin, {"op": "environment", "name": "python", "groups": ["ops"]})
        assert r.status_code == 200 and r.json()["in_use"] == [], "a change to an unused item touches no one"
    finally:
        console.stop_server(ada, "ada")


def test_usage_reads_the_cluster(console: ConsoleHub, admin: requests.Session) -> None:
    got = console.call(admin, "GET", "/api/usage").json()
    t4 = next(g for g in got["gpu_types"] if g["name"] == "t4")
    assert (t4["total"], t4["free"]) == (2, 2)
    assert got["catalog_error"] is None and got["queues"] == [] and got["workspaces"]["claims"] == []
