"""Workspaces on the local cluster's real GlusterFS, through the real hub: the size the storage
enforces, growing, use shown to users and admins, what other users see, team folders,
read-only datasets, a job run reading the workspace, and reclaim."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes_asyncio import client

from jobs_service import manifests
from localcluster import gluster, storage
from localcluster.config import ClusterConfig
from moonhub_core import identity, uids, workspaces
from moonhub_core.catalog import load
from moonhub_core.security import container_security_context, pod_security_context
from tests.conftest import Hub
from tests.helpers import SHELL_IMAGE, gone, jobs_api, kubectl, notebook, pod_ended, pod_log, runs_ended, wait_for

USER_NS = "moonhub-users"
MiB = 2**20
PYTHON = {"environment": "python", "size": "small"}


@pytest.fixture
def storage_catalog(hub: Hub) -> Iterator[dict[str, Any]]:
    """Small workspaces (so a test fills one quickly), a larger size for everyone, a team
    folder and a dataset; the hub's catalog is put back afterwards."""
    original = hub.catalog.read_text()
    doc = yaml.safe_load(original)
    doc["storage"]["capacity"] = "32Mi"
    doc["entitlements"][0]["workspace_sizes"] = ["32Mi", "64Mi"]
    doc["storage"]["team_folders"] = [{"group": "ws-team", "gid": 2101, "capacity": "16Mi"}]
    doc["storage"]["datasets"] = [
        {"name": "reference", "claim": "ds-reference", "mount_path": "/srv/data/reference", "groups": ["ws-team"]}
    ]
    hub.catalog.write_text(yaml.safe_dump(doc))
    try:
        yield doc
    finally:
        hub.catalog.write_text(original)


def sh(cfg: ClusterConfig, pod: str, script: str) -> tuple[int, str]:
    """Run ``script`` in the user's server container: (exit status, output)."""
    argv = ("-n", USER_NS, "exec", pod, "-c", "notebook", "--", "sh", "-c", f"( {script} ) 2>&1; echo rc=$?")
    out = kubectl(cfg, *argv, timeout=120)
    body, _, rc = out.rstrip().rpartition("rc=")
    return int(rc.split()[0]), body


def _df(cfg: ClusterConfig, pod: str) -> tuple[int, str]:
    """The home folder's size as ``df`` gives it, and its file system's type."""
    rc, out = sh(cfg, pod, "df -B1 --output=size /home/jovyan | tail -1; stat -f -c %T /home/jovyan")
    assert rc == 0, out
    size, kind = out.split()[-2:]
    return int(size), kind


def _start(hub: Hub, s: requests.Session, user: str, **options: str) -> None:
    r = hub.spawn_form(s, user, **{**PYTHON, **options})
    assert r.status_code == 200, r.text[:500]
    hub.open_lab(s, user)


def _stop(hub: Hub, s: requests.Session, user: str) -> None:
    r = hub.api(s, "DELETE", f"/users/{user}/server")
    assert r.status_code in (202, 204), r.text


async def _pod_gone(core: client.CoreV1Api, user: str) -> None:
    await wait_for(
        lambda: gone(lambda: core.read_namespaced_pod(f"jupyter-{user}", USER_NS)), bool, timeout=90, what="pod gone"
    )


async def _claim(core: client.CoreV1Api, name: str) -> Any:
    return await core.read_namespaced_persistent_volume_claim(name, USER_NS)


async def test_the_storage_enforces_the_size_the_lab_says_so_and_a_workspace_grows_keeping_files(
    hub: Hub, core: client.CoreV1Api, local_cluster: ClusterConfig, storage_catalog: dict[str, Any]
) -> None:
    user, pod = "ws-ann", "jupyter-ws-ann"
    s = hub.login(user)
    form = s.get(f"{hub.url}/hub/spawn/{user}").text
    assert 'name="workspace_size"' in form and ">32Mi<" in form.replace(" ", "").replace("\n", "")
    _start(hub, s, user, workspace_size="32Mi")
    pvc = await _claim(core, f"claim-{user}")
    assert (pvc.spec.storage_class_name, pvc.spec.resources.requests["storage"]) == ("glusterfs", "32Mi")

    # df in the workspace is the workspace's own size (Gluster's quota), not the volume's. One
    # CI run's first df, just after the start, gave the whole volume's size once: looked at
    # again for a while, and a failure says which file system the folder is on (a FUSE mount
    # that answered without the quota, or a folder that is not on Gluster at all)
    seen = await wait_for(
        lambda: _df(local_cluster, pod),
        lambda got: got[0] == 32 * MiB,
        timeout=30,
        what="df in the workspace to give its quota",
    )
    assert seen[1].startswith("fuse"), seen
    rc, out = sh(local_cluster, pod, "echo kept > /home/jovyan/kept.txt && head -c 20000000 /dev/urandom > big1")
    assert rc == 0, out
    # past the size: the storage refuses the write, with the error the user's program gets
    rc, out = sh(local_cluster, pod, "head -c 20000000 /dev/urandom > /home/jovyan/big2")
    assert rc != 0 and "Disk quota exceeded" in out, out
    rc, out = sh(local_cluster, pod, "du -sb /home/jovyan | cut -f1")
    assert int(out.split()[-1]) < 40 * MiB, "the limit held (a write in flight may pass it by a little)"

    # the lab: the status bar's numbers and a notice that the workspace is full
    lab = f"{hub.url}/user/{user}"
    space = s.get(f"{lab}/moonhub/workspace").json()
    assert space["total"] == 32 * MiB and space["level"] == "full", space
    # (Gluster's use lags the writes: a check in between may first see "almost full", and
    # the next check's "full" notice takes its place)
    notices = await wait_for(
        lambda: _json(s.get(f"{lab}/moonhub/notices")),
        lambda n: any(
            x["kind"] == "disk" and x["message"].startswith("Your workspace is full (") for x in n["notices"]
        ),
        timeout=60,
        what="the full-workspace notice",
    )
    disk = [x["message"] for x in notices["notices"] if x["kind"] == "disk"]
    assert len(disk) == 1 and "larger workspace size" in disk[0], disk

    # admins see the use (the storage agent's report on the claim)
    admin = hub.login("admin")
    claim = await wait_for(
        lambda: _claim(core, f"claim-{user}"),
        lambda c: int((c.metadata.annotations or {}).get(workspaces.USED_BYTES, "0")) > 30 * MiB,
        timeout=60,
        what="the agent's report of the use",
    )
    assert claim.metadata.annotations[workspaces.USAGE_AT]
    usage = _admin(hub, admin, "GET", "usage").json()["workspaces"]
    mine = next(w for w in usage["claims"] if w["claim"] == f"claim-{user}")
    assert (mine["user"], mine["kind"], mine["total_bytes"]) == (user, "workspace", 32 * MiB)
    assert mine["used_bytes"] > 30 * MiB and usage["total"]["used_bytes"] >= mine["used_bytes"]
    assert f"claim-{user}" in admin.get(f"{hub.url}/hub/moonhub-admin", timeout=30).text

    # smaller than it is: refused before anything changes; not entitled: 403
    _stop(hub, s, user)
    await _pod_gone(core, user)
    r = hub.api(s, "POST", f"/users/{user}/server", json={**PYTHON, "workspace_size": "16Mi"})
    assert r.status_code == 400 and "can grow but not shrink" in r.json()["message"], r.text
    r = hub.api(s, "POST", f"/users/{user}/server", json={**PYTHON, "workspace_size": "1Gi"})
    assert r.status_code == 403 and "32Mi, 64Mi" in r.json()["message"], r.text
    assert (await _claim(core, f"claim-{user}")).spec.resources.requests["storage"] == "32Mi"

    # grow: the next start has the new size and the old files
    t0 = time.monotonic()
    _start(hub, s, user, workspace_size="64Mi")
    await wait_for(
        lambda: _claim(core, f"claim-{user}"),
        lambda c: (c.status.capacity or {}).get("storage") == "64Mi",
        timeout=60,
        what="the claim's capacity to grow",
    )
    print(f"grown to 64Mi and started in {time.monotonic() - t0:.1f}s")
    rc, out = sh(local_cluster, pod, "cat kept.txt && head -c 20000000 /dev/urandom > big2 && df -B1 --output=size .")
    assert rc == 0 and out.startswith("kept") and int(out.split()[-1]) == 64 * MiB, out
    assert s.get(f"{lab}/moonhub/workspace").json()["total"] == 64 * MiB

    # an admin grows it further from the console's API; a running server sees it at once
    assert _admin(hub, admin, "PATCH", "workspaces/claim-ws-ann", {"size": "96Mi"}).status_code == 200
    await wait_for(
        lambda: _json(s.get(f"{lab}/moonhub/workspace")), lambda w: w["total"] == 96 * MiB, timeout=60, what="96Mi"
    )
    bad = {
        ("workspaces/claim-ws-ann", "{...}"): 400,
        ("workspaces/claim-ws-ann", json.dumps({"size": "16Mi"})): 400,
        ("workspaces/claim-ws-ann", json.dumps({"size": "big"})): 400,
        ("workspaces/claim-nobody-here", json.dumps({"size": "1Gi"})): 404,
    }
    for (path, body), status in bad.items():
        r = _admin(hub, admin, "PATCH", path, raw=body)
        assert r.status_code == status and r.json()["field"] in ("body", "size", "claim"), (path, body, r.text)
    assert _admin(hub, s, "PATCH", "workspaces/claim-ws-ann", {"size": "1Gi"}).status_code == 403
    _stop(hub, s, user)


async def test_others_can_not_see_a_workspace_and_a_job_run_sees_its_owners(
    hub: Hub, core: client.CoreV1Api, local_cluster: ClusterConfig, storage_catalog: dict[str, Any]
) -> None:
    owner, other = "ws-bob", "ws-eve"
    s_owner, s_other = hub.login(owner), hub.login(other)
    _start(hub, s_owner, owner)
    _start(hub, s_other, other)
    rc, out = sh(local_cluster, f"jupyter-{owner}", "echo secret-of-bob > /home/jovyan/mine.txt")
    assert rc == 0, out
    rc, out = sh(local_cluster, f"jupyter-{other}", "ls -a /home/jovyan")
    assert rc == 0 and "mine.txt" not in out.split(), out
    pod = await core.read_namespaced_pod(f"jupyter-{other}", USER_NS)
    claims = {v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.persistent_volume_claim}
    assert claims == {f"claim-{other}"}, "another user's pod mounts only its own workspace"
    # on the Gluster volume the two folders are apart, each the notebook user's with mode 0770
    mnt = gluster.mount_dir(local_cluster)
    # <namespace>/<claim>/<PV name>: the folder from names the API server sets
    folders = {c.name: next(c.iterdir()) for c in (mnt / USER_NS).iterdir() if c.name.startswith("claim-ws-")}
    assert all(f.name.startswith("pvc-") for f in folders.values()), folders
    assert (folders[f"claim-{owner}"] / "mine.txt").read_text() == "secret-of-bob\n"
    assert not (folders[f"claim-{other}"] / "mine.txt").exists()
    # each user runs as a uid of their own, which their folder alone belongs to (mode 0700):
    # the claim is not the only thing between two users' files (issue 32, item 6)
    ids = {}
    for u in (owner, other):
        uid = uids.of_claim(await _claim(core, f"claim-{u}"))
        assert uid is not None and uid >= uids.FIRST, uid
        rc, out = sh(local_cluster, f"jupyter-{u}", "id -u; id -g; id -G; echo $HOME")
        assert rc == 0 and out.split()[:2] == [str(uid), str(uid)] and "100" in out.split()[2:-1], out
        assert out.split()[-1] == "/home/jovyan", out
        st = folders[f"claim-{u}"].stat()
        assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)) == (uid, uid, "0o700"), u
        ids[u] = uid
    assert ids[owner] != ids[other]
    assert (folders[f"claim-{owner}"] / "mine.txt").stat().st_uid == ids[owner]
    # a pod of the other user that mounts the owner's claim (as if a name had led it there)
    # still can not read or write there
    log = await _as_uid_on_claim(core, ids[other], f"claim-{owner}", "cat /w/mine.txt; touch /w/theirs; ls /w")
    assert "secret-of-bob" not in log and "Permission denied" in log, log
    assert not (folders[f"claim-{owner}"] / "theirs").exists()

    # the owner's job run mounts the same workspace and reads the file
    jobs = jobs_api(hub, s_owner, owner)
    content = notebook("print(open('/home/jovyan/mine.txt').read().strip())")
    body = {"name": "reads", "notebook": "reads.ipynb", "notebook_content": content, "schedule": None}
    job = jobs("POST", "/jobs", body).json()
    assert jobs("POST", f"/jobs/{job['id']}/run").status_code == 201
    runs = await runs_ended(jobs, job["id"])
    assert runs[0]["status"] == "succeeded", runs[0]
    out_nb = json.loads((folders[f"claim-{owner}"] / runs[0]["output"]).read_text())
    printed = "".join("".join(o.get("text", [])) for c in out_nb["cells"] for o in c.get("outputs", []))
    assert printed.strip() == "secret-of-bob"
    assert (folders[f"claim-{owner}"] / runs[0]["output"]).stat().st_uid == ids[owner], "the run is its owner too"
    jobs("DELETE", f"/jobs/{job['id']}")
    _stop(hub, s_owner, owner)
    _stop(hub, s_other, other)


async def test_a_team_folder_is_shared_within_its_group_and_a_dataset_is_read_only(
    hub: Hub, core: client.CoreV1Api, local_cluster: ClusterConfig, storage_catalog: dict[str, Any]
) -> None:
    admin = hub.login("admin")
    members, outsider = ["tf-ann", "tf-bob"], "tf-cyd"
    sessions = {u: hub.login(u) for u in [*members, outsider]}
    hub.api(admin, "POST", "/groups/ws-team")
    r = hub.api(admin, "POST", "/groups/ws-team/users", json={"users": members})
    assert r.status_code == 200, r.text
    # the dataset: a claim admins fill (here straight into its folder, as from a storage host)
    ds = {
        "metadata": {"name": "ds-reference"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "16Mi"}}},
    }
    try:
        await core.create_namespaced_persistent_volume_claim(USER_NS, ds)  # type: ignore[arg-type]
    except client.ApiException as e:
        assert e.status == 409
    bound = await wait_for(
        lambda: _claim(core, "ds-reference"), lambda c: c.status.phase == "Bound", timeout=60, what="bound"
    )
    pv = await core.read_persistent_volume(bound.spec.volume_name)
    Path(pv.spec.host_path.path, "hello.txt").write_text("reference data\n")
    try:
        for u in [*members, outsider]:
            _start(hub, sessions[u], u)
        team = await _claim(core, "team-ws-team")
        assert team.spec.access_modes == ["ReadWriteMany"] and team.metadata.annotations[workspaces.GID] == "2101"
        ann, bob, cyd = (f"jupyter-{u}" for u in [*members, outsider])
        rc, out = sh(local_cluster, ann, "id -G")
        assert rc == 0 and "2101" in out.split(), out
        # ann saves a file there from JupyterLab (her server: each member is a uid of their
        # own; the server's umask leaves the file writable by the team's group) ...
        s_ann, u_ann = sessions[members[0]], members[0]
        xsrf = {"X-XSRFToken": s_ann.cookies.get("_xsrf", path=f"/user/{u_ann}/") or ""}
        body = {"type": "file", "format": "text", "content": "from-ann\n"}
        r = s_ann.put(f"{hub.url}/user/{u_ann}/api/contents/teams/ws-team/plan.txt", json=body, headers=xsrf)
        assert r.status_code in (200, 201), r.text
        # ... and bob reads and changes it
        rc, out = sh(local_cluster, bob, "cat /home/jovyan/teams/ws-team/plan.txt; echo more >> teams/ws-team/plan.txt")
        assert rc == 0 and out.startswith("from-ann"), out
        rc, out = sh(local_cluster, cyd, "ls /home/jovyan/teams/ws-team")
        assert rc != 0, "not a member: no team folder"
        # on the storage the folder is the team's group's, mode 2770 (others can not enter)
        folder = Path((await core.read_persistent_volume(team.spec.volume_name)).spec.host_path.path)
        st = folder.stat()
        assert (st.st_gid, oct(st.st_mode & 0o7777)) == (2101, "0o2770")
        plan = (folder / "plan.txt").stat()
        assert plan.st_gid == 2101, "new files stay the team's (set-group-id)"
        assert plan.st_mode & 0o060 == 0o060, f"team-mates may change it: {oct(plan.st_mode)}"
        # the dataset: members read it, nobody writes it; the outsider does not get it
        rc, out = sh(local_cluster, ann, "cat /srv/data/reference/hello.txt; touch /srv/data/reference/x")
        assert rc != 0 and out.startswith("reference data") and "Read-only file system" in out, out
        rc, out = sh(local_cluster, cyd, "ls /srv/data/reference")
        assert rc != 0, out
    finally:
        for u in [*members, outsider]:
            hub.api(sessions[u], "DELETE", f"/users/{u}/server")


async def test_reclaim_archives_departed_users_workspaces_deletes_them_later_and_never_touches_present_users(
    hub: Hub, core: client.CoreV1Api, local_cluster: ClusterConfig
) -> None:
    """The hub test platform reconciles every 5 s with no grace period for departures."""
    admin = hub.login("admin")
    present, leaving = "rc-here", "rc-leaves"
    for u in (present, leaving):
        s = hub.login(u)
        _start(hub, s, u)
        _stop(hub, s, u)
    for u in (present, leaving):
        await _pod_gone(core, u)
    jobs = jobs_api(hub, admin, "admin")
    dry = jobs("GET", "/workspace-reclaim").json()
    assert dry["decided"] is True
    assert not {w["claim"] for k in ("archive", "delete") for w in dry[k]} & {f"claim-{present}", f"claim-{leaving}"}
    assert jobs_api(hub, hub.login(present), present)("GET", "/workspace-reclaim").status_code == 403

    assert hub.api(admin, "DELETE", f"/users/{leaving}").status_code == 204
    claim = await wait_for(
        lambda: _claim(core, f"claim-{leaving}"),
        lambda c: workspaces.ARCHIVED_AT in (c.metadata.annotations or {}),
        timeout=60,
        what="the departed user's workspace to be archived",
    )
    folder = Path((await core.read_persistent_volume(claim.spec.volume_name)).spec.host_path.path)
    assert folder.is_dir(), "archived: kept"
    here = await _claim(core, f"claim-{present}")
    assert workspaces.ARCHIVED_AT not in (here.metadata.annotations or {})
    audit = jobs("GET", f"/audit?owner={leaving}").json()["entries"]
    assert any(a["action"] == "archive" for a in audit), audit

    # past the grace (the archive date moved back, as time would): the dry run lists it,
    # then reconcile deletes it, audited, and the storage removes the folder
    old = "2020-01-01T00:00:00+00:00"
    patch = {"metadata": {"annotations": {workspaces.ARCHIVED_AT: old}}}
    await core.patch_namespaced_persistent_volume_claim(f"claim-{leaving}", USER_NS, patch)
    await wait_for(
        lambda: gone(lambda: _claim(core, f"claim-{leaving}")), bool, timeout=60, what="the archived workspace deleted"
    )
    await wait_for(lambda: _exists(folder), lambda e: not e, timeout=60, what="its folder removed")
    audit = jobs("GET", f"/audit?owner={leaving}").json()["entries"]
    assert any(a["action"] == "delete-workspace" for a in audit), audit
    here = await _claim(core, f"claim-{present}")
    assert workspaces.ARCHIVED_AT not in (here.metadata.annotations or {}), "a present user's workspace: untouched"

    # an archived workspace whose user is (back) in the hub gets its mark removed
    await core.patch_namespaced_persistent_volume_claim(f"claim-{present}", USER_NS, patch)
    await wait_for(
        lambda: _claim(core, f"claim-{present}"),
        lambda c: workspaces.ARCHIVED_AT not in (c.metadata.annotations or {}),
        timeout=60,
        what="the present user's workspace restored",
    )


async def test_a_name_made_again_does_not_get_the_earlier_accounts_workspace(hub: Hub, core: client.CoreV1Api) -> None:
    """Issue 32, item 5: a workspace claim carries the stamp of the account it was made for
    (the hub's ``created``). An admin deletes "acct-pat" and the name logs in again (a new
    user): their server is refused (409, nothing mounted) and reconcile archives the
    earlier account's workspace, although a user of that name is present."""
    user = "acct-pat"
    admin = hub.login("admin")
    s = hub.login(user)
    _start(hub, s, user)
    first = hub.api(admin, "GET", f"/users/{user}").json()["created"]
    claim = await _claim(core, f"claim-{user}")
    assert (claim.metadata.annotations or {}).get(identity.CREATED) == identity.stamp(first)
    _stop(hub, s, user)
    await _pod_gone(core, user)
    assert hub.api(admin, "DELETE", f"/users/{user}").status_code == 204
    s = hub.login(user)  # the name's next login: a new hub user
    second = hub.api(admin, "GET", f"/users/{user}").json()["created"]
    assert identity.stamp(second) != identity.stamp(first)
    try:
        r = hub.api(s, "POST", f"/users/{user}/server", json=PYTHON, timeout=120)
        assert r.status_code == 409, r.text
        assert "belongs to an earlier account named 'acct-pat'" in r.json()["message"], r.text
        assert await gone(lambda: core.read_namespaced_pod(f"jupyter-{user}", USER_NS)), "nothing started"
        archived = await wait_for(
            lambda: _claim(core, f"claim-{user}"),
            lambda c: workspaces.ARCHIVED_AT in (c.metadata.annotations or {}),
            timeout=60,
            what="the earlier account's workspace archived though the name is present",
        )
        assert (archived.metadata.annotations or {}).get(identity.CREATED) == identity.stamp(first), "kept as it was"
    finally:
        hub.api(admin, "DELETE", f"/users/{user}/server")


async def _as_uid_on_claim(core: client.CoreV1Api, uid: int, claim: str, script: str) -> str:
    """Run ``script`` in a pod as ``uid`` (its group the same number) with ``claim`` at /w:
    its log."""
    name = f"wrong-pod-{uid}"
    await core.create_namespaced_pod(
        USER_NS,
        {
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": pod_security_context(uid),
                "containers": [
                    {
                        "name": "c",
                        "image": SHELL_IMAGE,
                        "command": ["sh", "-c", f"( {script} ) 2>&1"],
                        "securityContext": container_security_context(uid),
                        "volumeMounts": [{"name": "w", "mountPath": "/w"}],
                    }
                ],
                "volumes": [{"name": "w", "persistentVolumeClaim": {"claimName": claim}}],
            },
        },
    )
    try:
        await pod_ended(core, USER_NS, name)
        return await pod_log(core, USER_NS, name)
    finally:
        await core.delete_namespaced_pod(name, USER_NS, grace_period_seconds=0)


async def _exists(path: Path) -> bool:
    return os.path.exists(path)


async def _json(r: requests.Response) -> Any:
    return r.json()


def _admin(
    hub: Hub, s: requests.Session, method: str, path: str, body: Any = None, raw: str | None = None
) -> requests.Response:
    headers = {"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/") or ""}
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    return s.request(method, f"{hub.url}/hub/moonhub-admin/api/{path}", data=data, headers=headers, timeout=30)


async def test_a_workspace_made_before_uids_is_handed_to_a_uid_of_its_own(
    hub: Hub, core: client.CoreV1Api, api: client.ApiClient, local_cluster: ClusterConfig
) -> None:
    """Issue 32, item 6, on an upgraded deployment: a workspace made by an earlier MoonHub
    (no uid, its files the shared user's) is handed to a uid of its own by the operator's
    migration; while marked nothing mounts it; the owner's CronJob is made again with the
    new uid at the next reconcile, and the run and the server read the old files."""
    user = "mig-ann"
    s = hub.login(user)
    name = f"claim-{user}"
    pvc = manifests.workspace_pvc(manifests.Names(user, ""), load(hub.catalog).storage, "glusterfs", USER_NS)
    assert uids.UID not in (pvc.metadata.annotations or {}), "as an earlier MoonHub made it"
    await core.create_namespaced_persistent_volume_claim(USER_NS, pvc)
    bound = await wait_for(lambda: _claim(core, name), lambda c: c.status.phase == "Bound", timeout=60, what="bound")
    folder = Path((await core.read_persistent_volume(bound.spec.volume_name)).spec.host_path.path)
    assert (folder.stat().st_uid, folder.stat().st_gid) == (1000, 100), "the shared user's"
    (folder / "proj").mkdir()
    (folder / "proj" / "notes.txt").write_text("kept across the hand-over\n")
    outside = folder.parent / "outside.txt"  # beside the workspace: a link to it must not move it
    outside.write_text("not the user's\n")
    (folder / "link").symlink_to(outside)
    for p in (folder / "proj", folder / "proj" / "notes.txt"):
        os.chown(p, 1000, 100)

    jobs = jobs_api(hub, s, user)
    content = notebook("print(open('/home/jovyan/proj/notes.txt').read().strip())")
    job = jobs("POST", "/jobs", {"name": "old", "notebook": "old.ipynb", "notebook_content": content, "schedule": None})
    assert job.status_code == 201, job.text
    job = job.json()
    batch = client.BatchV1Api(api)
    cron = await batch.read_namespaced_cron_job(job["cronjob"], USER_NS)
    assert cron.metadata.labels[manifests.RUN_AS_LABEL] == "1000"

    # marked (as the migration marks it while it hands files over): nothing mounts it
    mark = {"metadata": {"annotations": {uids.UID: str(uids.FIRST + 999_999), uids.MIGRATING: "true"}}}
    await core.patch_namespaced_persistent_volume_claim(name, USER_NS, mark)
    r = jobs("POST", f"/jobs/{job['id']}/run")
    assert r.status_code == 503 and r.json()["field"] == "workspace", r.text
    unmark = {"metadata": {"annotations": {uids.UID: None, uids.MIGRATING: None}}}
    await core.patch_namespaced_persistent_volume_claim(name, USER_NS, unmark)

    command = storage.migrate_command(local_cluster)

    def migrate(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *extra], capture_output=True, text=True, timeout=300)

    dry = await asyncio.to_thread(migrate, "--dry-run")
    assert dry.returncode == 0 and f"{USER_NS}/{name}: would be handed" in dry.stderr, dry.stderr
    assert uids.UID not in ((await _claim(core, name)).metadata.annotations or {}), "a dry run changes nothing"
    done = await asyncio.to_thread(migrate)
    assert done.returncode == 0, done.stderr
    print(done.stderr)
    ann = (await _claim(core, name)).metadata.annotations
    uid = uids.parse(ann.get(uids.UID))
    assert uid is not None and uids.MIGRATING not in ann, ann
    for p in (folder, folder / "proj", folder / "proj" / "notes.txt"):
        assert (p.stat().st_uid, p.stat().st_gid) == (uid, uid), p
    assert oct(folder.stat().st_mode & 0o7777) == "0o700"
    assert os.lstat(folder / "link").st_uid == uid and outside.stat().st_uid == 0, "the link, not what it names"
    again = await asyncio.to_thread(migrate)
    assert again.returncode == 0 and "0 workspace(s) without a uid" in again.stderr, again.stderr

    # the next reconcile makes the CronJob again: its runs run as the new uid
    await wait_for(
        lambda: batch.read_namespaced_cron_job(job["cronjob"], USER_NS),
        lambda c: c.metadata.labels.get(manifests.RUN_AS_LABEL) == str(uid),
        timeout=60,
        what="the CronJob made again with the workspace's uid",
    )
    assert jobs("POST", f"/jobs/{job['id']}/run").status_code == 201
    runs = await runs_ended(jobs, job["id"])
    assert runs[0]["status"] == "succeeded", runs[0]
    out = folder / runs[0]["output"]
    printed = "".join(
        "".join(o.get("text", [])) for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])
    )
    assert printed.strip() == "kept across the hand-over" and out.stat().st_uid == uid
    _start(hub, s, user)
    rc, text = sh(local_cluster, f"jupyter-{user}", "id -u; cat proj/notes.txt; echo new > proj/more.txt")
    assert rc == 0 and text.split()[0] == str(uid) and "kept across the hand-over" in text, text
    jobs("DELETE", f"/jobs/{job['id']}")
    _stop(hub, s, user)
