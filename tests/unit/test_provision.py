"""The storage agent as the Gluster class's provisioner: what it makes for a claim (pure),
and the folder steps against a real folder with a Gluster CLI that records its calls (the
hub tier runs them against the real Gluster volume)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from storage_agent import folders, gluster, provision

CLASS = {"metadata": {"name": "glusterfs"}, "provisioner": provision.PROVISIONER, "reclaimPolicy": "Delete"}
UID = "0b6f4c1e-6f0e-4a55-9c1a-1d2e3f405162"


def claim(name: str = "claim-ann", ns: str = "moonhub-users", **ann: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "uid": UID, "annotations": dict(ann)},
        "spec": {
            "storageClassName": "glusterfs",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "2Gi"}},
        },
        "status": {"phase": "Pending"},
    }


def test_a_workspace_gets_its_uid_alone_and_a_volume_bound_to_its_claim() -> None:
    m = provision.plan_make(claim(**{"moonhub.io/uid": "1000007"}), CLASS)
    assert (m.owner, m.group, m.mode) == (1000007, 1000007, 0o700)
    assert m.folder == f"/moonhub-users/claim-ann/pvc-{UID}" and m.size == 2 * 2**30
    pv = provision.volume(m, "/mnt/gv/")
    assert pv["metadata"]["name"] == f"pvc-{UID}"
    assert pv["metadata"]["annotations"] == {"pv.kubernetes.io/provisioned-by": "moonhub.io/gluster"}
    spec = pv["spec"]
    assert spec["hostPath"] == {"path": f"/mnt/gv/moonhub-users/claim-ann/pvc-{UID}", "type": "Directory"}
    assert spec["claimRef"]["uid"] == UID and spec["claimRef"]["name"] == "claim-ann"
    assert spec["capacity"] == {"storage": "2Gi"} and spec["storageClassName"] == "glusterfs"
    assert spec["persistentVolumeReclaimPolicy"] == "Delete" and spec["accessModes"] == ["ReadWriteOnce"]


def test_team_folders_and_claims_from_before_uids() -> None:
    team = provision.plan_make(claim("team-ml", **{"moonhub.io/gid": "2001"}), CLASS)
    assert (team.owner, team.group, team.mode) == (0, 2001, 0o2770)
    old = provision.plan_make(claim(), CLASS)
    assert (old.owner, old.group, old.mode) == (1000, 100, 0o770)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"moonhub.io/uid": "0"}, "not a user id MoonHub hands out"),
        ({"moonhub.io/uid": "1000"}, "not a user id MoonHub hands out"),
        ({"moonhub.io/uid": "1000000 /etc"}, "not a user id"),
        ({"moonhub.io/uid": "99999999999"}, "not a user id"),
        ({"moonhub.io/gid": "0"}, "not a group id"),
        ({"moonhub.io/gid": "2001/.."}, "not a group id"),
    ],
)
def test_owners_that_are_not_numbers_in_range_are_refused(change: dict[str, str], words: str) -> None:
    with pytest.raises(provision.Refused, match=words):
        provision.plan_make(claim(**change), CLASS)


def test_claims_it_can_not_make_are_refused_with_a_reason() -> None:
    c = claim()
    c["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    with pytest.raises(provision.Refused, match="selector"):
        provision.plan_make(c, CLASS)
    c = claim()
    c["spec"]["resources"] = {}
    with pytest.raises(provision.Refused, match="must request a size"):
        provision.plan_make(c, CLASS)
    c = claim()
    c["spec"]["dataSource"] = {"kind": "VolumeSnapshot", "name": "s"}
    with pytest.raises(provision.Refused, match="data source"):
        provision.plan_make(c, CLASS)
    with pytest.raises(provision.Refused, match="plain name"):
        provision.plan_make(claim(name="a..b"), CLASS)


def test_pending_means_this_class_no_volume_and_not_being_deleted() -> None:
    assert provision.pending(claim(), "glusterfs")
    assert not provision.pending(claim(), "local-path")
    bound = claim()
    bound["spec"]["volumeName"] = "pvc-x"
    assert not provision.pending(bound, "glusterfs")
    going = claim()
    going["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    assert not provision.pending(going, "glusterfs")


def _pv(
    name: str,
    path: str,
    phase: str = "Released",
    by: str = provision.PROVISIONER,
    policy: str = "Delete",
    cls: str = "glusterfs",
) -> Any:
    return {
        "metadata": {"name": name, "annotations": {provision.PROVISIONED_BY: by}},
        "spec": {"hostPath": {"path": path}, "persistentVolumeReclaimPolicy": policy, "storageClassName": cls},
        "status": {"phase": phase},
    }


def test_only_its_own_released_volumes_of_the_expected_shape_are_removed() -> None:
    pvs = [
        _pv("pvc-1", "/mnt/ns/claim-a/pvc-1"),
        _pv("pvc-2", "/mnt/ns/claim-b/pvc-2", phase="Bound"),
        _pv("pvc-3", "/mnt/ns/claim-c/pvc-3", by=provision.EARLIER),
        _pv("pvc-4", "/mnt/ns/claim-d/pvc-4", policy="Retain"),
        _pv("pvc-5", "/elsewhere/ns/claim-e/pvc-5"),
        _pv("pvc-6", "/mnt/ns/claim-f/../../etc/pvc-6"),
        _pv("pvc-7", "/mnt/ns/claim-g/pvc-other"),
        _pv("pvc-8", "/mnt/ns/pvc-8"),
        _pv("pvc-9", "/mnt/ns/claim-i/pvc-9", phase="Failed"),
        _pv("pvc-10", "/mnt/ns/claim-j/pvc-10", cls="other-gluster"),
    ]
    assert provision.released(pvs, "/mnt/", "glusterfs") == [
        provision.Remove("pvc-1", "/ns/claim-a/pvc-1"),
        provision.Remove("pvc-9", "/ns/claim-i/pvc-9"),
    ]


def _fake_gluster(tmp: Path, monkeypatch: pytest.MonkeyPatch, script: str = "") -> Path:
    calls = tmp / "calls"
    fake = tmp / "bin" / "gluster"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n{script}')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    return calls


@pytest.mark.skipif(os.geteuid() != 0, reason="the agent hands folders to users' uids as root")
def test_make_then_remove_a_folder_with_its_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_gluster(tmp_path, monkeypatch)
    mount = str(tmp_path / "mnt")
    m = provision.plan_make(claim(**{"moonhub.io/uid": "1000007"}), CLASS)
    asyncio.run(folders.make(mount, "vol", m))
    asyncio.run(folders.make(mount, "vol", m))  # again (a pass after a failed volume create): the same
    path = Path(mount + m.folder)
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000007, 1000007, 0o700)
    assert calls.read_text().splitlines()[-1] == f"--mode=script volume quota vol limit-usage {m.folder} {2 * 2**30}"
    team = provision.plan_make(claim("team-ml", **{"moonhub.io/gid": "2001"}), CLASS)
    asyncio.run(folders.make(mount, "vol", team))
    st = Path(mount + team.folder).stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 2001, 0o2770), "set-group-id kept after chown"
    asyncio.run(folders.remove(mount, "vol", m.folder, m.volume))
    assert calls.read_text().splitlines()[-1] == f"--mode=script volume quota vol remove {m.folder}"
    assert not path.exists() and not path.parent.exists(), "the claim's folder goes once empty"
    asyncio.run(folders.remove(mount, "vol", m.folder, m.volume))  # gone already: fine


def test_folders_outside_the_expected_shape_are_never_touched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_gluster(tmp_path, monkeypatch)
    keep = tmp_path / "mnt" / "keep"
    keep.mkdir(parents=True)
    for bad in ("/ns/claim/../keep", "/keep", "/ns/claim/pvc-1/..", "/ns//pvc-1"):
        with pytest.raises(RuntimeError, match="refusing"):
            asyncio.run(folders.remove(str(tmp_path / "mnt"), "vol", bad, "pvc-1"))
    assert keep.is_dir()


def test_quota_changes_wait_out_another_transaction_and_report_other_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fake_gluster(
        tmp_path,
        monkeypatch,
        f'[ "$(wc -l < {tmp_path / "calls"})" -ge 3 ] && exit 0\n'
        'echo "quota command failed : Another transaction is in progress for vol." >&2\nexit 1\n',
    )
    asyncio.run(gluster.change(gluster.limit_command("vol", "/a", 1), pause=0.01))
    assert len(calls.read_text().splitlines()) == 3, "two refusals, then the change"
    calls.unlink()
    _fake_gluster(tmp_path, monkeypatch, 'echo "quota: no such volume" >&2\nexit 1\n')
    with pytest.raises(gluster.GlusterError, match="no such volume"):
        asyncio.run(gluster.change(gluster.limit_command("vol", "/a", 1), pause=0.01))
    assert len(calls.read_text().splitlines()) == 1, "any other failure: no second try"


MOUNTINFO = (
    "94 27 0:81 / /srv/gluster rw,relatime - fuse.glusterfs 10.85.0.1:/workspaces rw,user_id=0\n"
    "129 27 0:82 / /run/gluster/workspaces_quota_list rw - fuse.glusterfs localhost:workspaces rw\n"
    "30 27 8:1 / /srv/disk rw - ext4 /dev/vda1 rw\n"
)


def test_the_agent_starts_only_on_a_mount_of_its_gluster_volume() -> None:
    from storage_agent.agent import check_mount

    assert check_mount("workspaces", "/srv/gluster/", MOUNTINFO) is None
    assert "is the Gluster volume workspaces, not other" in (check_mount("other", "/srv/gluster", MOUNTINFO) or "")
    for path in ("/srv/disk", "/srv/none"):
        assert "is not a Gluster mount here: mount the volume workspaces there" in (
            check_mount("workspaces", path, MOUNTINFO) or ""
        )
    # mounted over by something else afterwards: the last mount counts
    over = MOUNTINFO + "200 94 0:90 / /srv/gluster rw - tmpfs tmpfs rw\n"
    assert check_mount("workspaces", "/srv/gluster", over) is not None
