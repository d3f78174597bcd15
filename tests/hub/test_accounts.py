"""A user name made again is another account (issue 32, item 5): it gets none of what the
earlier account left in the jobs service. A real hub and jobs service; the hub test platform
reconciles every 5 s with no grace for departures."""

from __future__ import annotations

import requests
from kubernetes_asyncio import client

from tests.conftest import Hub
from tests.helpers import NOTEBOOK, gone, jobs_api, wait_for


async def test_a_name_made_again_sees_none_of_the_earlier_accounts_jobs_or_secrets(
    hub: Hub, core: client.CoreV1Api
) -> None:
    user = "acct-jo"
    admin = hub.login("admin")
    first = jobs_api(hub, hub.login(user), user)
    r = first(
        "POST", "/jobs", {"name": "nightly", "notebook": "n.ipynb", "notebook_content": NOTEBOOK, "schedule": None}
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert first("PUT", "/secrets/db", {"value": "earlier-account-password"}).status_code == 201
    before = hub.api(admin, "GET", f"/users/{user}").json()["created"]

    # the admin hands the name over: the user deleted and made again at once (what a login
    # of the name's next holder does), before a reconcile can call it a departure
    assert hub.api(admin, "DELETE", f"/users/{user}").status_code == 204
    assert hub.api(admin, "POST", f"/users/{user}").status_code == 201
    assert hub.api(admin, "GET", f"/users/{user}").json()["created"] != before
    second = jobs_api(hub, hub.login(user), user)
    as_admin = jobs_api(hub, admin, "admin")

    def sees(r: requests.Response) -> str:
        if r.status_code == 409:
            assert r.json()["field"] == "user" and "earlier account" in r.json()["message"], r.text
            return "refused"
        assert r.status_code == 200, r.text
        return "empty" if not r.json()["jobs"] else "LEAK"

    first_look = sees(second("GET", "/jobs"))
    assert first_look != "LEAK", "the new account sees the earlier account's job"
    secrets = second("GET", "/secrets")
    assert secrets.status_code == 409 or secrets.json()["secrets"] == [], secrets.text
    assert second("GET", f"/jobs/{job['id']}").status_code in (404, 409), "nor by its id"
    assert second("POST", f"/jobs/{job['id']}/run").status_code in (404, 409), "nor runs it"
    if first_look == "refused":  # (a reconcile that ran in between took it for a departure)
        held = await wait_for(
            lambda: as_admin("GET", f"/jobs/{job['id']}"),
            lambda r: r.status_code == 200 and bool(r.json()["suspended_reason"]),
            timeout=30,
            what="the earlier account's job held by reconcile",
        )
        assert "earlier account named acct-jo" in held.json()["suspended_reason"], held.text
        assert sees(second("GET", "/jobs")) == "refused", "refused while the earlier account's job is kept"
        assert as_admin("DELETE", f"/jobs/{job['id']}").status_code == 204
    await wait_for(
        lambda: second("GET", "/jobs"),
        lambda r: r.status_code == 200,
        timeout=30,
        what="the name handed over once the earlier account's job is removed",
    )
    assert second("GET", "/jobs").json()["jobs"] == []
    assert second("GET", "/secrets").json()["secrets"] == [], "the earlier account's secret is gone"
    audit = as_admin("GET", f"/audit?owner={user}").json()["entries"]
    assert any(a["action"] == "secret-delete" for a in audit), audit
    # the earlier account's workspace (made for its job) is not the new account's either:
    # its jobs wait until the admin who handed the name over removes it
    mine = {"name": "mine", "notebook": "m.ipynb", "notebook_content": NOTEBOOK, "schedule": None}
    r = second("POST", "/jobs", mine)
    assert r.status_code == 409 and r.json()["field"] == "workspace", r.text
    assert "belongs to an earlier account named 'acct-jo'" in r.json()["message"]
    await core.delete_namespaced_persistent_volume_claim(f"claim-{user}", "moonhub-users")
    await wait_for(
        lambda: gone(lambda: core.read_namespaced_persistent_volume_claim(f"claim-{user}", "moonhub-users")),
        bool,
        timeout=60,
        what="the earlier account's workspace removed",
    )
    r = second("POST", "/jobs", mine)
    assert r.status_code == 201, "the new account works as anyone's"
    second("DELETE", f"/jobs/{r.json()['id']}")
