"""Workspaces as data: the catalog's storage rules, sizes a user may choose, the volumes a
pod gets, the admins' view, the storage agent's and reclaim's plans, the lab's notices."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest
import yaml
from moonhub_lab import diskspace

from jobs_service import reclaim
from localcluster import gluster
from localcluster.config import ClusterConfig
from moonhub_core import choices as ch
from moonhub_core import identity, workspaces
from moonhub_core.catalog import Catalog, CatalogError, Dataset, Storage, TeamFolder, load, validate
from moonhub_core.errors import Conflict, NotEntitled, UnknownChoice
from moonhub_core.workload import build
from storage_agent.gluster import Quota, parse_quota_list
from storage_agent.plan import plan
from tests.helpers import example_catalog

EXAMPLE = Path(__file__).resolve().parents[2] / "moonhub_core" / "examples" / "catalog.yaml"
NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)


def _catalog(**storage: object) -> Catalog:
    cat = load(EXAMPLE)
    return dataclasses.replace(cat, storage=dataclasses.replace(cat.storage, **storage))


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"team_folders": [TeamFolder("ml", 100)]}, "storage.team_folders[0].gid: 100 can not be used"),
        ({"team_folders": [TeamFolder("ml", 0)]}, "storage.team_folders[0].gid: 0 can not be used"),
        (
            {"team_folders": [TeamFolder("ml", 2001), TeamFolder("ml", 2002)]},
            "storage.team_folders[1].group: 'ml' has two team folders",
        ),
        (
            {"team_folders": [TeamFolder("a", 2001), TeamFolder("b", 2001)]},
            "storage.team_folders[1].gid: 2001 is used by another team folder",
        ),
        ({"team_folders": [TeamFolder("a", 2001, capacity="lots")]}, "storage.team_folders[0].capacity: 'lots'"),
        ({"team_folders": [TeamFolder("a", 2001, mount_path="x")]}, "must be an absolute path"),
        ({"datasets": [Dataset("d", "c", "/home/jovyan")]}, "/home/jovyan is already storage.mount_path"),
        (
            {"datasets": [Dataset("d", "c", "/home/jovyan/teams/a")], "team_folders": [TeamFolder("a", 2001)]},
            "storage.datasets[0].mount_path: /home/jovyan/teams/a is already storage.team_folders[0]",
        ),
        ({"reclaim_delete_after_days": -1}, "storage.reclaim_delete_after_days: must not be negative"),
    ],
)
def test_bad_storage_is_refused_naming_the_field(storage: dict, message: str) -> None:
    with pytest.raises(CatalogError) as err:
        validate(_catalog(**storage))
    assert message in str(err.value)


def test_workspace_sizes_from_entitlements_default_first_then_larger(tmp_path: Path) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["entitlements"][0]["workspace_sizes"] = ["20Gi", "10Gi"]
    doc["entitlements"][1]["workspace_sizes"] = ["100Gi", "20480Mi"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
    cat = load(tmp_path / "c.yaml")
    assert ch.allowed(cat, ["other"]).workspace_sizes == ["10Gi", "20Gi"]
    assert ch.allowed(cat, ["ml-research"]).workspace_sizes == ["10Gi", "20Gi", "100Gi"], "one of each amount"
    assert ch.allowed(cat, [], admin=True).workspace_sizes == ["10Gi", "20Gi", "100Gi"]
    doc["entitlements"][0]["workspace_sizes"] = ["big"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(CatalogError, match=r"entitlements\[0\].workspace_sizes\[0\]: 'big'"):
        load(tmp_path / "c.yaml")


def test_a_chosen_size_must_be_allowed_and_never_shrinks() -> None:
    allowed = ["10Gi", "50Gi"]
    assert workspaces.parse_size(None, allowed, None) is None
    assert workspaces.parse_size("", allowed, "10Gi") is None, "empty: keep"
    assert workspaces.parse_size(["51200Mi"], allowed, "10Gi") == "50Gi", "the same amount, the catalog's words"
    with pytest.raises(NotEntitled, match="may choose workspaces of 10Gi, 50Gi, not 1Ti") as e:
        workspaces.parse_size("1Ti", allowed, None)
    assert (e.value.status, e.value.field) == (403, "workspace_size")
    with pytest.raises(UnknownChoice, match="is not a size"):
        workspaces.parse_size("huge", allowed, None)
    with pytest.raises(UnknownChoice, match="must be a size"):
        workspaces.parse_size(50, allowed, None)
    with pytest.raises(UnknownChoice, match="your workspace is 50Gi: a workspace can grow but not shrink") as e:
        workspaces.parse_size("10Gi", allowed, "50Gi")
    assert e.value.status == 400
    with pytest.raises(UnknownChoice, match="can grow but not shrink"):
        workspaces.parse_size("1Gi", allowed, "50Gi")  # smaller: said so, though not a size to choose either


def test_pods_get_their_groups_team_folders_and_datasets_only() -> None:
    cat = _catalog(
        team_folders=[TeamFolder("ml-research", 2001), TeamFolder("vision", 2002, mount_path="/srv/vision")],
        datasets=[
            Dataset("imagenet", "ds-imagenet", "/data/imagenet", groups=["vision"]),
            Dataset("pub", "ds", "/data/pub"),
        ],
    )
    choice = ch.Choices("python", "small")
    w = build(cat, choice, "claim-ann", ["ml-research"])
    mounts = {m["name"]: m for m in w.volume_mounts}
    assert mounts["team-ml-research"]["mountPath"] == "/home/jovyan/teams/ml-research"
    assert "readOnly" not in mounts["team-ml-research"]
    assert mounts["dataset-pub"]["readOnly"] is True and "dataset-imagenet" not in mounts
    assert "team-vision" not in mounts
    assert w.pod_security_context["supplementalGroups"] == [2001]
    w2 = build(cat, choice, "claim-bob", ["vision", "ml-research"])
    assert w2.pod_security_context["supplementalGroups"] == [2001, 2002]
    assert {m["mountPath"] for m in w2.volume_mounts} >= {"/srv/vision", "/data/imagenet"}
    plain = build(cat, choice, "claim-eve", [])
    assert "supplementalGroups" not in plain.pod_security_context
    claim = workspaces.team_folder_claim(cat.storage, cat.storage.team_folders[0], "glusterfs", "ns")
    assert claim["metadata"]["annotations"][workspaces.GID] == "2001"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and claim["metadata"]["name"] == "team-ml-research"
    assert workspaces.team_claim("Acme ML/Vision") == "team-acme-ml-vision"


def _pvc(name: str, user: str, size: str, used: int | None = None, **ann: str) -> dict:
    annotations = {"hub.jupyter.org/username": user, **ann}
    if used is not None:
        annotations[workspaces.USED_BYTES] = str(used)
    return {
        "metadata": {"name": name, "namespace": "ns", "annotations": annotations},
        "spec": {"resources": {"requests": {"storage": size}}},
        "status": {"phase": "Bound", "capacity": {"storage": size}},
    }


def test_admins_see_use_and_totals() -> None:
    rows = [workspaces.usage(_pvc("claim-a", "a", "10Gi", 2**30)), workspaces.usage(_pvc("claim-b", "b", "20Gi"))]
    assert rows[0].as_dict()["used"] == "1.0 GiB" and rows[1].used_bytes is None
    total = workspaces.summary(rows)
    assert (total["total"], total["used"], total["unknown_usage"]) == ("30.0 GiB", "1.0 GiB", 1)


def _pv(name: str, claim: str, path: str, size: str, cls: str = "glusterfs") -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "storageClassName": cls,
            "capacity": {"storage": size},
            "hostPath": {"path": path},
            "claimRef": {"namespace": "ns", "name": claim},
        },
        "status": {"phase": "Bound"},
    }


def test_agent_grows_quota_then_capacities_and_reports_use_sparingly() -> None:
    mnt = "/mnt/g"
    grown = _pvc("claim-a", "a", "20Gi", used=5)
    grown["status"]["capacity"]["storage"] = "10Gi"
    fresh = _pvc("claim-b", "b", "10Gi", used=100, **{workspaces.USAGE_AT: NOW.isoformat()})
    halfway = _pvc("claim-c", "c", "30Gi", used=0)
    pvs = [
        _pv("pv-a", "claim-a", f"{mnt}/ns/claim-a_pv-a", "10Gi"),
        _pv("pv-b", "claim-b", f"{mnt}/ns/claim-b_pv-b", "10Gi"),
        _pv("pv-c", "claim-c", f"{mnt}/ns/claim-c_pv-c", "10Gi"),
        _pv("pv-d", "claim-d", "/elsewhere/x", "10Gi"),
        _pv("pv-e", "claim-a", f"{mnt}/ns/e", "10Gi", cls="local-path"),
    ]
    quotas = {
        "/ns/claim-a_pv-a": Quota(10 * 2**30, 5),
        "/ns/claim-b_pv-b": Quota(10 * 2**30, 200),  # moved by less than 1 %, reported just now
        "/ns/claim-c_pv-c": Quota(30 * 2**30, 0),  # the quota grew, the capacities did not yet
    }
    p = plan(pvs, [grown, fresh, halfway], quotas, "glusterfs", mnt, NOW)
    assert [(g.claim, g.size, g.quantity, g.quota_done) for g in p.grow] == [
        ("claim-a", 20 * 2**30, "20Gi", False),
        ("claim-c", 30 * 2**30, "30Gi", True),
    ]
    assert p.report == [], "unchanged, or moved a little and reported recently"
    later = plan(pvs, [fresh], quotas, "glusterfs", mnt, NOW + datetime.timedelta(minutes=6))
    assert [(r.claim, r.used) for r in later.report] == [("claim-b", 200)]
    unmeasured = _pvc("claim-a", "a", "10Gi")
    missing = plan(pvs[:1], [unmeasured], {}, "glusterfs", mnt, NOW)
    assert missing.unlimited == ["/ns/claim-a_pv-a"] and missing.grow == []


def test_gluster_quota_list_is_read() -> None:
    xml = """<?xml version="1.0"?><cliOutput><opRet>0</opRet><volQuota>
      <limit><path>/ns/claim-a</path><hard_limit>52428800</hard_limit><used_space>20971520</used_space></limit>
      <limit><path>/ns/x</path><hard_limit>N/A</hard_limit></limit></volQuota></cliOutput>"""
    assert parse_quota_list(xml) == {"/ns/claim-a": Quota(52428800, 20971520)}
    assert parse_quota_list("") == {}


def test_reclaim_archives_departed_deletes_after_grace_restores_returning() -> None:
    old = (NOW - datetime.timedelta(days=31)).isoformat()
    recent = (NOW - datetime.timedelta(days=2)).isoformat()
    claims = [
        workspaces.usage(_pvc("claim-gone", "gone", "10Gi")),
        workspaces.usage(_pvc("claim-old", "old", "10Gi", **{workspaces.ARCHIVED_AT: old})),
        workspaces.usage(_pvc("claim-recent", "recent", "10Gi", **{workspaces.ARCHIVED_AT: recent})),
        workspaces.usage(_pvc("claim-back", "back", "10Gi", **{workspaces.ARCHIVED_AT: old})),
        workspaces.usage(_pvc("claim-here", "here", "10Gi")),
        workspaces.usage(_pvc("claim-unsure", "unsure", "10Gi", **{workspaces.ARCHIVED_AT: old})),
    ]
    gone = {"gone", "old", "recent"}
    p = reclaim.plan(claims, gone, {"back", "here"}, NOW, 30)
    assert [u.claim for u in p.archive] == ["claim-gone"]
    assert [u.claim for u in p.delete] == ["claim-old"], "'unsure' is neither listed nor confirmed gone: kept"
    assert [u.claim for u in p.restore] == ["claim-back"]
    assert reclaim.plan(claims, gone, set(), NOW, 0).delete == [], "0 days: archived ones are kept"
    # a claim a running pod mounts is never archived or deleted, whoever its name says it is
    # of (issue 32, item 5: a renamed user's running server); a returning user's comes back
    busy = reclaim.plan(claims, gone, {"back", "here"}, NOW, 30, {"claim-gone", "claim-old", "claim-back"})
    assert (busy.archive, busy.delete, [u.claim for u in busy.restore]) == ([], [], ["claim-back"])
    team = _pvc("team-x", "", "10Gi")
    team["metadata"]["annotations"] = {workspaces.GID: "2001"}
    assert [u.claim for u in reclaim.user_workspaces([team, _pvc("claim-a", "a", "1Gi")])] == ["claim-a"]


def test_reclaim_tells_accounts_of_a_name_apart_by_the_hubs_creation_stamp() -> None:
    """Issue 32, item 5: "pat" deleted and made again (another account) gets none of the
    earlier pat's workspace, which is archived at once and deleted in its time; a renamed
    user's claim under the old name is left alone."""
    first, second = "2026-01-01T00:00:00.000001Z", "2026-12-05T10:00:00.000002Z"
    third = "2026-03-01T00:00:00.000003Z"
    old = (NOW - datetime.timedelta(days=31)).isoformat()
    stamped = {identity.CREATED: first}
    claims = [
        workspaces.usage(_pvc("claim-pat", "pat", "10Gi", **stamped)),
        workspaces.usage(_pvc("claim-ren", "ren", "10Gi", **{identity.CREATED: third})),
        workspaces.usage(_pvc("claim-sam", "sam", "10Gi", **{identity.CREATED: second})),
        workspaces.usage(_pvc("claim-legacy", "pat2", "10Gi")),
    ]
    present = {"pat": second, "sam": second, "rena": third, "pat2": second}
    p = reclaim.plan(claims, {"ren"}, set(present), NOW, 30, present=present)
    assert [u.claim for u in p.archive] == ["claim-pat"], "the earlier pat's: archived though the name is here"
    assert not p.restore and not p.delete, "ren was renamed to rena (same stamp): left alone; unstamped: as before"
    archived = [workspaces.usage(_pvc("claim-pat", "pat", "10Gi", **stamped, **{workspaces.ARCHIVED_AT: old}))]
    p = reclaim.plan(archived, set(), set(present), NOW, 30, present=present)
    assert not p.restore and [u.claim for u in p.delete] == ["claim-pat"], "never given to the new pat"
    assert reclaim.plan(archived, set(), set(present), NOW, 30, {"claim-pat"}, present).delete == [], "mounted"


def test_a_claim_of_an_earlier_account_of_the_name_is_not_mounted() -> None:
    first, second = "2026-01-01T00:00:00.000001Z", "2026-12-05T10:00:00.000002Z"
    pvc = _pvc("claim-pat", "pat", "10Gi", **{identity.CREATED: first})
    assert identity.check_claim(pvc, "pat", first) is False
    with pytest.raises(Conflict, match="belongs to an earlier account named 'pat'") as err:
        identity.check_claim(pvc, "pat", second)
    assert err.value.status == 409 and err.value.field == "workspace"
    assert identity.check_claim(_pvc("claim-pat", "pat", "10Gi"), "pat", second) is True, "unstamped: stamp it"
    import datetime as dt

    assert identity.stamp(dt.datetime(2026, 12, 5, 10, 0, 0, 2)) == second, "the hub's ORM time (naive UTC)"
    assert identity.stamp("2026-12-05T10:00:00.000002Z") == second, "the REST model's"
    assert identity.stamp("2026-12-05T11:00:00.000002+01:00") == second
    assert identity.renamed(first, {"rena": first, "x": second}) == "rena" and identity.renamed("", {"a": ""}) is None


def test_lab_warns_when_almost_full_and_when_full() -> None:
    gib = 2**30
    assert diskspace.notice_text(diskspace.Space(10 * gib, 5 * gib)) is None
    warn = diskspace.Space(10 * gib, 9 * gib)
    assert warn.level == "warn" and "almost full (9 GiB of 10 GiB)" in (diskspace.notice_text(warn) or "")
    full = diskspace.Space(10 * gib, 10 * gib)
    assert full.level == "full" and "saving files and notebooks fails" in (diskspace.notice_text(full) or "")
    assert full.as_dict()["free"] == 0


def test_local_gluster_volume_is_per_cluster_with_quotas() -> None:
    a, b = ClusterConfig(Path("/s/a")), ClusterConfig(Path("/s/b"), node_ip="10.85.0.2")
    assert gluster.volume_name(a) != gluster.volume_name(b) and gluster.volume_name(a).startswith("moonhub-")
    cmds = gluster.create_commands(b)
    assert cmds[0][-2:] == ["10.85.0.2:/s/b/gluster/brick", "force"]
    assert ["volume", "quota", gluster.volume_name(b), "enable"] == cmds[2][2:]
    set_opts = {c[-2]: c[-1] for c in cmds if "set" in c}
    assert set_opts["features.quota-deem-statfs"] == "on" and set_opts["features.hard-timeout"] == "0"
    assert gluster.mount_command(b)[-2:] == [f"10.85.0.2:/{gluster.volume_name(b)}", "/s/b/node/gluster"]


def test_storage_defaults() -> None:
    st = Storage()
    assert (st.storage_class, st.capacity, st.reclaim_delete_after_days) == ("glusterfs", "10Gi", 30)


def test_a_claim_is_mounted_only_for_the_owner_it_was_made_for() -> None:
    """Claim names are derived (slugs, short hashes): a claim found under the name must have
    been made for the same user or group, and the catalog refuses two team folders whose
    groups meet in one name (issue 32, item 6)."""
    from moonhub_core import claims
    from moonhub_core.errors import Conflict

    claims.check_owner(_pvc("claim-ann", "ann", "1Gi"), user="ann")
    claims.check_owner(_pvc("claim-ann", "", "1Gi"), user="ann")  # made before owners were recorded
    with pytest.raises(Conflict) as e:
        claims.check_owner(_pvc("claim-ann", "Ann", "1Gi"), user="ann")
    assert e.value.field == "workspace" and "made for user 'Ann'" in e.value.message
    team = _pvc("team-ml-research", "", "1Gi", **{workspaces.GROUP: "ML Research"})
    claims.check_owner(team, group="ML Research")
    with pytest.raises(Conflict, match="team 'ML Research'"):
        claims.check_owner(team, group="ml-research")
    st = Storage(team_folders=[TeamFolder(group="ml-research", gid=2001), TeamFolder(group="ML Research", gid=2002)])
    with pytest.raises(CatalogError, match=r"team_folders\[1\]\.group: 'ML Research' and 'ml-research' differ only"):
        validate(dataclasses.replace(example_catalog(), storage=st))
