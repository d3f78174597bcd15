"""Jobs a team owns (issue 37, item 1), middle tier: the real jobs service and its database,
with the hub's groups (members, the viewers and alert-address properties) and the cluster
played by the fakes.

A team job runs as the team (its folder, its secrets, its queue; never a member's own), its
members act on it by their role, a non-member sees nothing of it, alerts go to the team's
addresses, the audit trail names each member; a job moves to a team and back; a departed
owner's personal jobs are held, not deleted, and offered to their teams, while their team's
jobs keep running."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from jobs_service.teams import ALERTS, VIEWERS
from moonhub_core.queue_objects import QUEUE_LABEL, user_local_queue
from tests.helpers import NOTEBOOK
from tests.hub.jobs_client import Jobs, job_body
from tests.middle.conftest import BATCH, NAMESPACE, Middle, wait_until

TEAM, GID, NO_FOLDER, SHORT_LIVED = "data-eng", 4101, "no-folder-team", "short-lived"


@pytest.fixture(scope="module", autouse=True)
def team_folder(middle: Middle) -> Iterator[None]:
    """The catalog gives the team a folder (an admin's edit); the hub knows its viewers and
    alert address; an admin keeps a team secret; a member keeps a secret of her own."""
    catalog = middle.folder / "catalog.yaml"
    before = catalog.read_text()
    doc = yaml.safe_load(before)
    doc.setdefault("storage", {})["team_folders"] = [
        {"group": TEAM, "gid": GID, "capacity": "10Gi"},
        {"group": SHORT_LIVED, "gid": GID + 1, "capacity": "10Gi"},
    ]
    catalog.write_text(yaml.safe_dump(doc))
    middle.hub.group_properties[TEAM] = {VIEWERS: ["vic"], ALERTS: ["oncall@example.org"]}
    boss = middle.user("admin", admin=True)
    assert boss.call("PUT", f"/team-secrets/{TEAM}/warehouse", {"value": "team-token-123456"}).status_code == 201
    ana = middle.user("ana", groups=[TEAM, NO_FOLDER])
    assert ana.call("PUT", "/secrets/own-token", {"value": "anas-own-token-987"}).status_code == 201
    try:
        yield
    finally:
        catalog.write_text(before)


def _cron(middle: Middle, name: str) -> dict[str, Any]:
    cron = middle.kube.get(BATCH, "cronjobs", NAMESPACE, name)
    assert cron is not None, name
    return cron


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    return dict((spec.get("jobTemplate") or {"spec": spec})["spec"]["template"]["spec"])


def _claims(obj: dict[str, Any]) -> set[str]:
    return {v["persistentVolumeClaim"]["claimName"] for v in _pod_spec(obj)["volumes"] if "persistentVolumeClaim" in v}


def _secret_refs(obj: dict[str, Any]) -> set[str]:
    env = _pod_spec(obj)["containers"][0].get("env") or []
    return {e["valueFrom"]["secretKeyRef"]["name"] for e in env if "secretKeyRef" in (e.get("valueFrom") or {})}


def team_job(name: str, **extra: Any) -> dict[str, Any]:
    return {**job_body(name, **extra), "team": TEAM, "secrets": [{"name": "warehouse", "team": TEAM, "env": "WH"}]}


def test_a_team_job_runs_as_the_team_and_members_act_on_it_by_their_role(middle: Middle) -> None:
    ana, ben, vic = middle.user("ana"), middle.user("ben", groups=[TEAM]), middle.user("vic", groups=[TEAM])
    olga, boss = middle.user("olga", groups=["other-team"]), middle.user("admin")

    # what a team job may not be: bad names, other teams, a team without a folder, a member's own secret
    for who, body, status, field in [
        (ana, {**team_job("x"), "team": ""}, 400, "team"),
        (ana, {**team_job("x"), "team": 7}, 400, "team"),
        (ana, {**team_job("x"), "team": "no-such-group"}, 404, "team"),
        (olga, team_job("x"), 403, "team"),
        (vic, team_job("x"), 403, "team"),
        (ana, {**team_job("x"), "team": NO_FOLDER, "secrets": []}, 403, "team"),
        (ana, {**team_job("x"), "secrets": [{"name": "own-token", "env": "TOKEN"}]}, 403, "secrets"),
    ]:
        r = who.call("POST", "/jobs", body)
        assert (r.status_code, r.json().get("field")) == (status, field), (body.get("team"), r.text)
    assert ana.call("GET", "/jobs").json()["jobs"] == [], "nothing half-made"

    r = ana.call("POST", "/jobs", team_job("nightly", schedule="0 2 * * *", notify={"emails": ["ana@example.org"]}))
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["team"], job["owner"]) == (TEAM, "ana")
    assert ana.call("POST", "/jobs", {**team_job("nightly"), "schedule": None}).status_code == 409
    # it runs as the team: the team's folder is its workspace, the team's secret its only
    # one, the team's gid its group, the team's queue its queue; nothing of ana's
    cron = _cron(middle, job["cronjob"])
    assert _claims(cron) == {f"team-{TEAM}"}, _claims(cron)
    assert _secret_refs(cron) and all("ana" not in s for s in _secret_refs(cron))
    assert GID in _pod_spec(cron)["securityContext"]["supplementalGroups"]
    assert cron["spec"]["jobTemplate"]["metadata"]["labels"][QUEUE_LABEL] == user_local_queue(f"team/{TEAM}")

    # members see it; a non-member sees nothing of it, on every route
    assert [j["name"] for j in ben.call("GET", "/jobs").json()["jobs"]] == ["nightly"]
    assert [j["name"] for j in vic.call("GET", "/jobs").json()["jobs"]] == ["nightly"]
    assert olga.call("GET", "/jobs").json()["jobs"] == []
    jid = job["id"]
    for method, path, body in [
        ("GET", f"/jobs/{jid}", None),
        ("PATCH", f"/jobs/{jid}", {"active": False}),
        ("DELETE", f"/jobs/{jid}", None),
        ("POST", f"/jobs/{jid}/run", {}),
        ("GET", f"/jobs/{jid}/runs", None),
        ("GET", f"/jobs/{jid}/versions", None),
        ("PATCH", f"/jobs/{jid}", {"team": None}),
    ]:
        r = olga.call(method, path, body)
        assert r.status_code == 404, (method, path, r.status_code, r.text)

    # a viewer looks, and may do nothing else
    assert vic.call("GET", f"/jobs/{jid}").status_code == 200
    for method, path, body in [
        ("PATCH", f"/jobs/{jid}", {"active": False}),
        ("PATCH", f"/jobs/{jid}", {"parameters": {"rows": 1}}),
        ("POST", f"/jobs/{jid}/run", {}),
        ("DELETE", f"/jobs/{jid}", None),
    ]:
        r = vic.call(method, path, body)
        assert r.status_code == 403 and "viewer" in r.json()["message"], (method, path, r.text)

    # another editor changes it and runs it: as the team, with the team's secret
    r = ben.call("PATCH", f"/jobs/{jid}", {"parameters": {"rows": 7}})
    assert r.status_code == 200 and r.json()["parameters"] == {"rows": 7}, r.text
    r = ben.call("POST", f"/jobs/{jid}/run", {})
    assert r.status_code == 201, r.text
    run = r.json()
    r = vic.call("DELETE", f"/jobs/{jid}/runs/{run['id']}")
    assert r.status_code == 403 and "viewer" in r.json()["message"], "a viewer does not cancel either"
    assert olga.call("DELETE", f"/jobs/{jid}/runs/{run['id']}").status_code == 404
    made = middle.job(run["name"])
    assert made is not None and _claims(made) == {f"team-{TEAM}"} and _secret_refs(made) == _secret_refs(cron)
    env = middle.env(run["name"])
    assert env.get("MOONHUB_JOB_OWNER", "ana") != "ben", "the run is not ben's"

    # the audit trail names each member; members see it, a non-member does not
    lines = [(e["actor"], e["action"]) for e in ben.call("GET", "/audit").json()["entries"] if e["job_id"] == jid]
    assert ("ana", "create") in lines and ("ben", "edit") in lines, lines
    assert not [e for e in olga.call("GET", "/audit").json()["entries"] if e["job_id"] == jid]

    # a failure alerts the team's address as well as the job's own
    mails = len(middle.mailbox)
    middle.job_state(run["name"], "failed", message="Job has reached the specified backoff limit")
    middle.sync()
    wait_until(lambda: len(middle.mailbox) > mails)
    sent = [m for m in middle.mailbox[mails:] if "nightly" in str(m["Subject"])]
    assert sent and set(str(sent[0]["To"]).replace(" ", "").split(",")) == {"ana@example.org", "oncall@example.org"}

    # moved back by its owner only (and as a request of its own); then it is hers alone
    r = ben.call("PATCH", f"/jobs/{jid}", {"team": None})
    assert r.status_code == 403 and r.json()["field"] == "team", r.text
    r = ana.call("PATCH", f"/jobs/{jid}", {"team": None, "parameters": {"rows": 1}})
    assert r.status_code == 400 and r.json()["field"] == "team", r.text
    r = ana.call("PATCH", f"/jobs/{jid}", {"team": None})
    assert r.status_code == 200 and r.json()["team"] is None, r.text
    assert "claim-ana" in _claims(_cron(middle, job["cronjob"])), "her workspace now (with her teams' folders)"
    assert ben.call("GET", f"/jobs/{jid}").status_code == 404
    r = ana.call("PATCH", f"/jobs/{jid}", {"team": TEAM})
    assert r.status_code == 200 and r.json()["team"] == TEAM, r.text
    assert _claims(_cron(middle, job["cronjob"])) == {f"team-{TEAM}"}
    moves = [e["detail"] for e in ana.call("GET", "/audit").json()["entries"] if e["action"] == "move"]
    assert moves == [f"from ana to team {TEAM}", f"from team {TEAM} to ana"], moves

    # an editor deletes it; a job admin could too
    assert ben.call("DELETE", f"/jobs/{jid}").status_code == 204
    assert boss.call("GET", f"/jobs/{jid}").status_code == 404


def test_a_personal_job_moved_to_the_team_is_checked_as_the_team_runs_it(middle: Middle) -> None:
    ana, ben = middle.user("ana"), middle.user("ben")
    body = {**job_body("mine"), "secrets": [{"name": "own-token", "env": "TOKEN"}]}
    job = ana.call("POST", "/jobs", body).json()
    r = ana.call("PATCH", f"/jobs/{job['id']}", {"team": TEAM})
    assert r.status_code == 403 and r.json()["field"] == "secrets" and "team" in r.json()["message"], r.text
    assert ana.call("GET", f"/jobs/{job['id']}").json()["team"] is None, "unchanged"
    assert ben.call("PATCH", f"/jobs/{job['id']}", {"team": TEAM}).status_code == 404, "not his to move"
    assert ana.call("DELETE", f"/jobs/{job['id']}").status_code == 204


def test_a_departed_owners_jobs_are_held_and_offered_to_their_teams_while_the_teams_jobs_go_on(
    middle: Middle,
) -> None:
    dora = middle.user("dora", groups=[TEAM])
    boss = middle.user("admin")
    personal = dora.call("POST", "/jobs", job_body("dora-report", schedule="0 5 * * *")).json()
    teams = dora.call("POST", "/jobs", team_job("dora-team-load", schedule="0 6 * * *")).json()
    middle.run(middle.service.reconcile())  # her groups are recorded as the hub lists them
    settings = middle.service.ctx.settings
    middle.service.ctx.settings = dataclasses.replace(settings, departed_grace=datetime.timedelta(0))
    try:
        del middle.hub.users["dora"]
        for _ in range(2):  # held at the first pass; never deleted at the next
            middle.run(middle.service.reconcile())
        held = boss.call("GET", f"/jobs/{personal['id']}")
        assert held.status_code == 200, "kept, not deleted"
        reason = held.json()["suspended_reason"] or ""
        assert "left the hub" in reason and TEAM in reason, reason
        assert _cron(middle, personal["cronjob"])["spec"]["suspend"] is True
        # the team's job is the team's: it goes on
        team_job_now = boss.call("GET", f"/jobs/{teams['id']}").json()
        assert team_job_now["suspended_reason"] is None and not _cron(middle, teams["cronjob"])["spec"]["suspend"]
        # an admin gives the held job to her team: released, run as the team, seen by members
        r = boss.call("PATCH", f"/jobs/{personal['id']}", {"team": TEAM})
        assert r.status_code == 200 and r.json()["suspended_reason"] is None, r.text
        assert _claims(_cron(middle, personal["cronjob"])) == {f"team-{TEAM}"}
        assert not _cron(middle, personal["cronjob"])["spec"]["suspend"]
        ben = middle.user("ben")
        assert {j["name"] for j in ben.call("GET", "/jobs").json()["jobs"]} >= {"dora-report", "dora-team-load"}
        middle.run(middle.service.reconcile())
        assert boss.call("GET", f"/jobs/{personal['id']}").json()["suspended_reason"] is None, "stays released"
    finally:
        middle.service.ctx.settings = settings
    for j in (personal, teams):
        assert Jobs(middle.base, middle.hub.token("admin")).call("DELETE", f"/jobs/{j['id']}").status_code == 204


def test_notebook_content_of_a_team_job_may_not_hold_the_teams_secret(middle: Middle) -> None:
    ana = middle.user("ana")
    leaky = {**NOTEBOOK, "cells": [{**NOTEBOOK["cells"][1], "source": "token = 'team-token-123456'"}]}
    r = ana.call("POST", "/jobs", team_job("leaky", notebook_content=leaky))
    assert r.status_code == 400 and r.json()["field"] == "notebook_content", r.text


def test_a_team_gone_from_the_hub_holds_its_jobs_until_it_is_back(middle: Middle) -> None:
    eve = middle.user("eve", groups=[SHORT_LIVED])
    r = eve.call("POST", "/jobs", {**job_body("short", schedule="0 7 * * *"), "team": SHORT_LIVED})
    assert r.status_code == 201, r.text
    job = r.json()
    middle.hub.users["eve"].groups = []  # its last member leaves: the hub has no such group
    middle.run(middle.service.reconcile())
    boss = middle.user("admin")
    reason = boss.call("GET", f"/jobs/{job['id']}").json()["suspended_reason"] or ""
    assert "no longer exists" in reason, reason
    assert _cron(middle, job["cronjob"])["spec"]["suspend"] is True
    eve = middle.user("eve")  # a new login (a login's groups are the hub's when it was checked)
    assert eve.call("GET", f"/jobs/{job['id']}").status_code == 404, "not a member any more"
    middle.hub.users["eve"].groups = [SHORT_LIVED]
    middle.run(middle.service.reconcile())
    assert boss.call("GET", f"/jobs/{job['id']}").json()["suspended_reason"] is None, "released"
    assert not _cron(middle, job["cronjob"])["spec"]["suspend"]
    assert middle.user("eve").call("DELETE", f"/jobs/{job['id']}").status_code == 204
