"""The admin console's two other modes in the middle tier (tests/middle/console.py), each
with a hub of its own (never two at once: the module's hub in test_admin_console.py is
stopped before these start): a catalog managed elsewhere (read-only), and a Helm install's
catalog ConfigMap written through the API, with a concurrent write refused."""

from __future__ import annotations

from pathlib import Path

import yaml

from moonhub_core.catalog import EXAMPLE, load
from tests.middle.console import console_hub
from tests.middle.test_admin_console import SIZE


def test_a_read_only_catalog_refuses_edits(tmp_path: Path) -> None:
    with console_hub(tmp_path, EXAMPLE, catalog_managed_by="git (ops/moonhub)") as console:
        admin = console.login("admin")
        page = console.call(admin, "GET", "")
        assert "read-only here" in page.text and "git (ops/moonhub)" in page.text
        r = console.edit(admin, {"op": "add", "kind": "size", "item": SIZE})
        assert r.status_code == 409 and r.json()["field"] == "catalog" and "git (ops/moonhub)" in r.text
        assert load(console.catalog).size("xl") is None


def test_on_a_helm_install_the_catalog_configmap_is_written(tmp_path: Path) -> None:
    """catalogEdits: console. The hub reads its ConfigMap as a mounted file (here the copy in
    the folder, which the kubelet would update) and writes it through the API."""
    ref = "moonhub/t-moonhub-catalog"
    with console_hub(tmp_path, EXAMPLE, catalog_configmap=ref, catalog_history="history") as console:
        cm = {"metadata": {"name": "t-moonhub-catalog"}, "data": {"catalog.yaml": EXAMPLE.read_text()}}
        console.kube.put("api/v1", "configmaps", "moonhub", cm)
        admin = console.login("admin")
        assert "ConfigMap moonhub/t-moonhub-catalog" in console.call(admin, "GET", "").text
        r = console.edit(admin, {"op": "add", "kind": "size", "item": SIZE})
        assert r.status_code == 200, r.text
        written = console.kube.get("api/v1", "configmaps", "moonhub", "t-moonhub-catalog")
        assert written is not None and "name: xl" in written["data"]["catalog.yaml"]
        assert "name: xl" not in console.catalog.read_text(), "the mount is the kubelet's to update"
        got = console.call(admin, "GET", "/api/catalog").json()
        assert [s["name"] for s in got["catalog"]["sizes"]][-1] == "xl", "read back from the ConfigMap"
        assert (tmp_path / "history" / "log.jsonl").exists(), "the history where the platform says"
        # changed by someone else between this hub's read and its write: refused, not lost
        from kubespawner.clients import shared_client

        from admin_console.catalog_source import ConfigMapSource

        async def race() -> str:
            source = ConfigMapSource(shared_client("CoreV1Api"), ref, console.catalog)
            doc = yaml.safe_load(await source.read())
            other = console.kube.get("api/v1", "configmaps", "moonhub", "t-moonhub-catalog")
            assert other is not None
            other["data"]["catalog.yaml"] += "\n# another hub's edit\n"
            console.kube.put("api/v1", "configmaps", "moonhub", other)
            try:
                await source.write(doc)
            except Exception as e:
                return f"{getattr(e, 'status', '?')} {getattr(e, 'field', '')}"
            return "written"

        assert console.run(race()) == "409 catalog"
        kept = console.kube.get("api/v1", "configmaps", "moonhub", "t-moonhub-catalog")
        assert kept is not None and "another hub's edit" in kept["data"]["catalog.yaml"]
