"""Which workspaces the uid migration hands over, and the hand-over itself (issue 32, item 6)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from moonhub_core import uids, workspaces
from moonhub_core.errors import Conflict
from moonhub_core.pods import HUB_USER
from storage_agent import migrate

MOUNT = "/srv/gluster"


def _pair(
    name: str, ann: dict[str, str], path: str = "", cls: str = "glusterfs"
) -> tuple[dict[str, Any], dict[str, Any]]:
    pv = {
        "metadata": {"name": f"pv-{name}"},
        "spec": {
            "storageClassName": cls,
            "claimRef": {"namespace": "users", "name": name},
            "hostPath": {"path": path or f"{MOUNT}/users/{name}/pv-{name}"},
        },
    }
    pvc = {"metadata": {"namespace": "users", "name": name, "annotations": ann, "resourceVersion": "7"}}
    return pv, pvc


def test_only_workspaces_without_a_finished_uid_are_handed_over() -> None:
    pairs = [
        _pair("claim-old", {HUB_USER: "old"}),
        _pair("claim-new", {HUB_USER: "new", uids.UID: "1000004"}),
        _pair("claim-half", {HUB_USER: "half", uids.UID: "1000005", uids.MIGRATING: "true"}),
        _pair("team-ml", {workspaces.GID: "2001", workspaces.GROUP: "ml"}),
        _pair("ds-ref", {}),
        _pair("claim-other-class", {HUB_USER: "o"}, cls="local-path"),
        _pair("claim-elsewhere", {HUB_USER: "e"}, path="/var/lib/other/claim-elsewhere"),
    ]
    found = migrate.legacy([p[0] for p in pairs], [p[1] for p in pairs], "glusterfs", MOUNT)
    assert [(w.claim, w.uid) for w in found] == [("claim-half", 1000005), ("claim-old", None)]
    assert found[1].folder == f"{MOUNT}/users/claim-old/pv-claim-old" and found[1].resource_version == "7"


def test_a_damaged_uid_is_not_handed_anything() -> None:
    pv, pvc = _pair("claim-bad", {HUB_USER: "bad", uids.UID: "0", uids.MIGRATING: "true"})
    with pytest.raises(Conflict):
        migrate.legacy([pv], [pvc], "glusterfs", MOUNT)


def test_claims_of_pods_that_have_not_ended_are_in_use() -> None:
    def pod(phase: str, *claims: str) -> dict[str, Any]:
        vols = [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims] + [
            {"name": "x", "emptyDir": {}}
        ]
        return {"metadata": {"namespace": "users"}, "spec": {"volumes": vols}, "status": {"phase": phase}}

    got = migrate.mounted([pod("Running", "claim-a"), pod("Pending", "claim-b"), pod("Succeeded", "claim-c")])
    assert got == {("users", "claim-a"), ("users", "claim-b")}


@pytest.mark.skipif(os.geteuid() != 0, reason="handing files to another uid needs root")
def test_hand_over_changes_every_entry_but_follows_no_link(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "a" / "b").mkdir(parents=True)
    (ws / "a" / "b" / "f.txt").write_text("x")
    (ws / ".hidden").write_text("y")
    outside = tmp_path / "outside"
    outside.write_text("z")
    (ws / "a" / "link").symlink_to(outside)
    (ws / "dirlink").symlink_to(tmp_path)
    n = migrate.hand_over(str(ws), 1000077)
    assert n == 7  # ws, a, b, f.txt, .hidden, link, dirlink
    for p in (ws, ws / "a", ws / "a" / "b", ws / "a" / "b" / "f.txt", ws / ".hidden"):
        assert (p.stat().st_uid, p.stat().st_gid) == (1000077, 1000077), p
    assert os.lstat(ws / "a" / "link").st_uid == 1000077 and outside.stat().st_uid == 0
    assert tmp_path.stat().st_uid == 0, "a linked folder is not entered"
    assert oct(ws.stat().st_mode & 0o7777) == "0o700"
