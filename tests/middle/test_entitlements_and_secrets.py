"""What a job may use follows its owner's groups today (middle tier): entitlements checked
again at every run and every reconcile, team secrets by group membership, each user's own
secrets apart. The hub's groups are the fake hub's; a reconcile is one call of the service's.
The hub tier keeps a run that reads a team secret on the real node (tests/hub/test_secrets.py)."""

from __future__ import annotations

from tests.helpers import NOTEBOOK
from tests.hub.jobs_client import job_body
from tests.middle.conftest import BATCH, NAMESPACE, Middle


def _suspended(middle: Middle, cronjob: str) -> bool:
    cron = middle.kube.get(BATCH, "cronjobs", NAMESPACE, cronjob)
    assert cron is not None
    return bool(cron["spec"]["suspend"])


def test_entitlements_are_checked_again_at_every_run_and_reconcile(middle: Middle) -> None:
    """A job keeps what its owner may use today: after the owner leaves the group that
    allowed its size, it is suspended (and "run now" refused) until they may again."""
    lena = middle.user("lena", groups=["ml-research"])
    r = lena.call("POST", "/jobs", job_body("big", size="large", schedule="0 3 * * *"))
    assert r.status_code == 201, r.text
    job = r.json()
    middle.hub.users["lena"].groups = []
    middle.run(middle.service.reconcile())
    shown = lena.call("GET", f"/jobs/{job['id']}").json()
    assert "size" in (shown["suspended_reason"] or "") and shown["next_run"] is None, shown
    assert _suspended(middle, job["cronjob"])
    r = lena.call("POST", f"/jobs/{job['id']}/run")
    assert r.status_code == 409 and "suspended" in r.json()["message"], r.text
    # pausing needs no entitlement; saving with a size she may use resumes it
    assert lena.call("PATCH", f"/jobs/{job['id']}", {"active": False}).status_code == 200
    r = lena.call("PATCH", f"/jobs/{job['id']}", {"size": "medium", "active": True})
    assert r.status_code == 200 and r.json()["suspended_reason"] is None, r.text
    assert not _suspended(middle, job["cronjob"])
    # back in the group: a job suspended meanwhile is resumed by the reconcile
    r = lena.call("PATCH", f"/jobs/{job['id']}", {"size": "large"})
    assert r.status_code == 403 and r.json()["field"] == "size", "not entitled now"
    middle.hub.users["lena"].groups = ["ml-research"]
    assert lena.call("PATCH", f"/jobs/{job['id']}", {"size": "large"}).status_code == 200
    middle.hub.users["lena"].groups = []
    middle.run(middle.service.reconcile())
    assert lena.call("GET", f"/jobs/{job['id']}").json()["suspended_reason"], "suspended again"
    middle.hub.users["lena"].groups = ["ml-research"]
    middle.run(middle.service.reconcile())
    assert lena.call("GET", f"/jobs/{job['id']}").json()["suspended_reason"] is None, "resumed by the reconcile"
    assert not _suspended(middle, job["cronjob"])
    actions = [e["action"] for e in lena.call("GET", "/audit").json()["entries"] if e["job_id"] == job["id"]]
    assert "hold" in actions and "release" in actions
    assert lena.call("DELETE", f"/jobs/{job['id']}").status_code == 204


def test_a_job_whose_environment_an_admin_removed_is_held_and_its_owner_told(middle: Middle) -> None:
    """An admin removes an environment from the catalog (the console's edit): the next
    reconcile holds the jobs that use it, with a reason that says what to do, and mails
    their owners; choosing another environment resumes the job."""
    import yaml

    sam = middle.user("sam")
    body = {
        **job_body("tf-report", environment="tensorflow", schedule="0 4 * * *"),
        "notify": {"emails": ["sam@example.org"]},
    }
    r = sam.call("POST", "/jobs", body)
    assert r.status_code == 201, r.text
    job = r.json()
    catalog = middle.folder / "catalog.yaml"
    before = catalog.read_text()
    doc = yaml.safe_load(before)
    doc["environments"] = [e for e in doc["environments"] if e["name"] != "tensorflow"]
    catalog.write_text(yaml.safe_dump(doc))
    try:
        mails = len(middle.mailbox)
        middle.run(middle.service.reconcile())
        reason = sam.call("GET", f"/jobs/{job['id']}").json()["suspended_reason"] or ""
        assert "no environment named 'tensorflow'" in reason and "pick another" in reason, reason
        assert _suspended(middle, job["cronjob"])
        told = [m for m in middle.mailbox[mails:] if "tf-report" in str(m["Subject"])]
        assert told and "pick another" in told[0].get_content(), [m["Subject"] for m in middle.mailbox[mails:]]
        r = sam.call("PATCH", f"/jobs/{job['id']}", {"environment": "python", "active": True})
        assert r.status_code == 200 and r.json()["suspended_reason"] is None, r.text
        assert not _suspended(middle, job["cronjob"])
    finally:
        catalog.write_text(before)
        sam.call("DELETE", f"/jobs/{job['id']}")


def test_team_secrets_follow_group_membership(middle: Middle) -> None:
    vera, walt = middle.user("vera", groups=["data-eng"]), middle.user("walt")
    boss = middle.user("admin", admin=True)
    assert vera.call("PUT", "/team-secrets/data-eng/warehouse", {"value": "x" * 12}).status_code == 403
    r = boss.call("PUT", "/team-secrets/data-eng/warehouse", {"value": "team-token-123456"})
    assert r.status_code == 201, r.text
    listed = vera.call("GET", "/secrets").json()["secrets"]
    assert [s["team"] for s in listed] == ["data-eng"] and "team-token-123456" not in str(listed)
    assert walt.call("GET", "/secrets").json()["secrets"] == []
    body = {
        **job_body("warehouse-load", notebook_content=NOTEBOOK),
        "secrets": [{"name": "warehouse", "team": "data-eng", "env": "WH"}],
    }
    r = walt.call("POST", "/jobs", body)
    assert r.status_code == 403 and r.json()["field"] == "secrets" and "not in group data-eng" in r.text
    job = vera.call("POST", "/jobs", body).json()
    run = vera.call("POST", f"/jobs/{job['id']}/run")
    assert run.status_code == 201, run.text
    made = middle.job(run.json()["name"])
    env = made["spec"]["template"]["spec"]["containers"][0]["env"]
    wh = next(e for e in env if e["name"] == "WH")
    assert "value" not in wh and wh["valueFrom"]["secretKeyRef"]["key"], "by reference, never the value"
    # out of the group: the next run is refused and the job held
    middle.hub.users["vera"].groups = []
    r = vera.call("POST", f"/jobs/{job['id']}/run")
    assert r.status_code == 403 and r.json()["field"] == "secrets", r.text
    assert "not in group data-eng" in vera.call("GET", f"/jobs/{job['id']}").json()["suspended_reason"]
    assert boss.call("DELETE", "/team-secrets/data-eng/warehouse").status_code == 204
    assert boss.call("DELETE", f"/jobs/{job['id']}").status_code == 204


def test_each_user_lists_their_own_secrets_whatever_the_length_of_their_names(middle: Middle) -> None:
    """The list reads a user's secrets by an owner label that is cut to 16 characters: users
    whose long names share that start see only their own."""
    one, two = "analytics-department-user-one", "analytics-department-user-two"
    a, b = middle.user(one), middle.user(two)
    assert a.call("PUT", "/secrets/token", {"value": "first-value"}).status_code == 201
    assert b.call("PUT", "/secrets/other", {"value": "second-value"}).status_code == 201
    assert [s["name"] for s in a.call("GET", "/secrets").json()["secrets"]] == ["token"]
    assert [s["name"] for s in b.call("GET", "/secrets").json()["secrets"]] == ["other"]
    r = a.call("PUT", "/secrets/token", {"value": "changed-value"})
    assert r.status_code == 200, "a second PUT replaces (200), it does not make another"
    assert a.call("DELETE", "/secrets/token").status_code == 204
    assert a.call("DELETE", "/secrets/token").status_code == 404
    assert b.call("DELETE", "/secrets/other").status_code == 204
