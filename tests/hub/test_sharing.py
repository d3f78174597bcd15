"""Sharing a server (issue 37, item 2) through the real hub and the real node: its owner
shares it (before it starts, then again) read-only with a user and in full with a team of
theirs; each grantee opens it
(JupyterHub's consent page, then the lab) and may do what their access allows, no more;
bad requests are refused naming the field; every change is audited; a revoked share stops
opening within the server's 30 s memory of a user's rights, and an expired one is revoked by
the jobs service's expiry pass. A team's share follows the team: a member who joins is let in
within a pass of the service, one who leaves is refused.

The server is started once for the whole story (a start is the expensive part)."""

from __future__ import annotations

import datetime
import re
import time
from html.parser import HTMLParser

import requests
from sqlalchemy import select

from hubclient.users import HubUsers
from jobs_service.db import ShareRow, open_db
from tests.conftest import Hub
from tests.helpers import jobs_api, wait_for

OWNER, READER, WORKER, OUTSIDER, JOINER = "shira", "rudi", "wren", "ozzy", "zeke"
TEAM, OTHER_TEAM = "share-crew", "share-strangers"


class _Form(HTMLParser):
    """The hidden inputs of JupyterHub's consent page (``oauth.html``)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields.append((str(a["name"]), a.get("value") or ""))


def open_shared(hub: Hub, s: requests.Session, owner: str) -> list[str]:
    """Open ``owner``'s lab as the user of ``s`` would in a browser: JupyterHub asks them
    once to let the server know who they are (its consent page), which this answers. Returns
    the scopes the page asked for."""
    r = s.get(f"{hub.url}/user/{owner}/lab", timeout=30)
    asked: list[str] = []
    if "/hub/api/oauth2/authorize" in r.url and r.status_code == 200:
        form = _Form()
        form.feed(r.text)
        asked = [v for k, v in form.fields if k == "scopes"]
        r = s.post(r.url, data=form.fields, headers={"Referer": r.url}, timeout=30)
    assert r.status_code == 200 and r.url.endswith(f"/user/{owner}/lab"), (r.status_code, r.url, r.text[:500])
    return asked


def _opens(hub: Hub, s: requests.Session) -> bool:
    """Whether the owner's lab opens for the user of ``s`` now (consent page answered)."""
    try:
        open_shared(hub, s, OWNER)
    except AssertionError:
        return False
    return True


def _as(hub: Hub, s: requests.Session, method: str, path: str, **kw: object) -> requests.Response:
    """A request to the owner's server with the session's cookies, as JupyterLab makes it."""
    return hub.lab(s, OWNER, path, method, **kw)  # type: ignore[arg-type]


def _expire_now(hub: Hub, owner: str, kind: str) -> None:
    """Move the end of ``owner``'s share with a ``kind`` into the past, in the jobs service's
    database (as the hours passing would)."""
    path = hub.config.parent / "jobs.sqlite"
    assert path.exists(), f"the test hub's jobs database is not at {path}"
    with open_db(f"sqlite:///{path}")() as s:
        row = s.scalars(select(ShareRow).where(ShareRow.owner == owner, ShareRow.kind == kind)).one()
        row.expires_at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
        s.commit()


async def test_a_server_shared_read_only_and_in_full_then_revoked_and_expired(
    hub: Hub, timings: dict[str, float]
) -> None:
    admin = hub.login("admin")
    owner, reader, worker, outsider, joiner = (hub.login(u) for u in (OWNER, READER, WORKER, OUTSIDER, JOINER))
    for team, members in ((TEAM, [OWNER, WORKER]), (OTHER_TEAM, [OUTSIDER])):
        assert hub.api(admin, "POST", f"/groups/{team}").status_code in (201, 409)
        assert hub.api(admin, "POST", f"/groups/{team}/users", json={"users": members}).status_code == 200
    jobs = jobs_api(hub, owner, OWNER)

    # a server may be shared before it starts: the share holds when it runs
    r = jobs("POST", "/shares", {"user": READER})
    assert r.status_code == 201 and r.json()["access"] == "read", r.text
    r = hub.spawn_form(owner, OWNER, environment="python", size="small")
    assert r.status_code == 200, r.text[:500]
    hub.open_lab(owner, OWNER, timeout=240)
    try:
        # bad requests name their field; nothing is shared by them
        for body, field, status in [
            ({"user": READER, "group": TEAM}, "user", 400),
            ({}, "user", 400),
            ({"user": READER, "access": "admin"}, "access", 400),
            ({"user": READER, "expires_in_hours": 0}, "expires_in_hours", 400),
            ({"user": READER, "expires_in_hours": 24 * 91}, "expires_in_hours", 400),
            ({"user": READER, "expires_in_hours": "1"}, "expires_in_hours", 400),
            ({"user": READER, "until": "never"}, "until", 400),
            ({"user": "nobody-of-that-name"}, "user", 400),
            ({"user": OWNER}, "user", 400),
            ({"group": "no-such-team"}, "group", 400),
            ({"group": OTHER_TEAM}, "group", 403),
        ]:
            r = jobs("POST", "/shares", body)
            assert r.status_code == status and r.json()["field"] == field, (body, r.status_code, r.text)
        assert [x["name"] for x in jobs("GET", "/shares").json()["shares"]] == [READER]

        # read-only with a user; in full with a team of the owner's
        r = jobs("POST", "/shares", {"user": READER, "access": "read", "expires_in_hours": 2})
        assert r.status_code == 201, r.text
        shared = r.json()
        assert (shared["kind"], shared["name"], shared["access"]) == ("user", READER, "read")
        assert shared["url"].endswith(f"/user/{OWNER}/lab")
        assert jobs("POST", "/shares", {"group": TEAM, "access": "full"}).status_code == 201
        listed = jobs("GET", "/shares").json()["shares"]
        assert sorted((x["kind"], x["name"], x["access"]) for x in listed) == [
            ("group", TEAM, "full"),
            ("user", READER, "read"),
        ]
        for x in listed:
            left = datetime.datetime.fromisoformat(x["expires_at"]) - datetime.datetime.now(datetime.UTC)
            assert datetime.timedelta(hours=1) < left <= datetime.timedelta(hours=24), x
        # the hub lists shares a page at a time: the service's client reads every page
        pager = HubUsers(f"{hub.url}/hub/api", hub.token(admin, "admin", "shares"), page_size=1)
        held = await pager.shares(OWNER, "")
        assert sorted(x["user"]["name"] for x in held if x.get("user")) == sorted([READER, WORKER]), held
        # each grantee sees what is shared with them, and nobody else's shares
        to_reader = jobs_api(hub, reader, READER)("GET", "/shares").json()
        assert [(x["owner"], x["access"]) for x in to_reader["shared_with_me"]] == [(OWNER, "read")]
        assert to_reader["shares"] == []
        to_worker = jobs_api(hub, worker, WORKER)("GET", "/shares").json()["shared_with_me"]
        assert [(x["owner"], x["kind"], x["access"]) for x in to_worker] == [(OWNER, "group", "full")]
        r = jobs_api(hub, outsider, OUTSIDER)("GET", "/shares", None)
        assert r.json()["shared_with_me"] == []
        assert jobs_api(hub, outsider, OUTSIDER)("GET", f"/shares?owner={OWNER}").status_code == 404
        # an admin lists another user's shares and may revoke them, but never grants one
        as_admin = jobs_api(hub, admin, "admin")
        assert len(as_admin("GET", f"/shares?owner={OWNER}").json()["shares"]) == 2
        r = as_admin("POST", f"/shares?owner={OWNER}", {"user": "admin", "access": "full"})
        assert r.status_code == 403 and r.json()["field"] == "owner", r.text
        assert jobs_api(hub, outsider, OUTSIDER)("DELETE", f"/shares/user/{READER}?owner={OWNER}").status_code == 404

        # the reader opens the server and reads; nothing of theirs runs or changes there
        t0 = time.monotonic()
        asked = open_shared(hub, reader, OWNER)
        timings["sharing: a read-only grantee's first open (consent page included)"] = time.monotonic() - t0
        assert any(a.startswith(f"access:servers!server={OWNER}/") for a in asked), asked
        ok = _as(
            hub, owner, "PUT", "api/contents/shared.txt", json={"type": "file", "format": "text", "content": "hi\n"}
        )
        assert ok.status_code in (200, 201), ok.text
        assert _as(hub, reader, "GET", "api/contents/shared.txt").json()["content"] == "hi\n"
        assert _as(hub, reader, "GET", "files/shared.txt").text == "hi\n"
        assert _as(hub, reader, "GET", "lab").status_code == 200
        for method, path, body in [
            ("PUT", "api/contents/shared.txt", {"type": "file", "format": "text", "content": "mine now"}),
            ("POST", "api/sessions", {"path": "x.ipynb", "type": "notebook", "kernel": {"name": "python3"}}),
            ("POST", "api/kernels", {"name": "python3"}),
            ("POST", "api/terminals", None),
            ("GET", "vscode/", None),
            ("GET", "moonhub/api/v1/jobs", None),
            ("GET", "moonhub/api/v1/secrets", None),
        ]:
            r = _as(hub, reader, method, path, json=body, allow_redirects=False)
            assert r.status_code == 403, (method, path, r.status_code, r.text[:300])
        assert _as(hub, owner, "GET", "api/contents/shared.txt").json()["content"] == "hi\n"

        # the team member works in it, as the owner would; MoonHub's routes stay the owner's
        open_shared(hub, worker, OWNER)
        r = _as(
            hub, worker, "PUT", "api/contents/from-wren.txt", json={"type": "file", "format": "text", "content": "w"}
        )
        assert r.status_code in (200, 201), r.text
        kernel = _as(hub, worker, "POST", "api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        assert _as(hub, worker, "DELETE", f"api/kernels/{kernel.json()['id']}").status_code == 204
        assert _as(hub, worker, "GET", "moonhub/api/v1/jobs").status_code == 403

        # the team changes: who joins is granted within a pass of the service, who leaves is
        # revoked (a team's share is granted member by member)
        assert hub.api(admin, "POST", f"/groups/{TEAM}/users", json={"users": [JOINER]}).status_code == 200
        t0 = time.monotonic()
        await wait_for(
            lambda: _opens(hub, joiner),
            bool,
            timeout=90,
            interval=2,
            what=f"{JOINER}, new in the team, let in",
        )
        timings["sharing: a member joins the team -> let in"] = time.monotonic() - t0
        # in full: the server asks the hub again about a user it does not know in full (at
        # most every 5 s), so writing works within seconds of the grant
        await wait_for(
            lambda: (
                _as(
                    hub,
                    joiner,
                    "PUT",
                    "api/contents/from-zeke.txt",
                    json={"type": "file", "format": "text", "content": "z"},
                ).status_code
            ),
            lambda code: code in (200, 201),
            timeout=30,
            interval=1,
            what=f"{JOINER} writing, in full",
        )
        assert hub.api(admin, "DELETE", f"/groups/{TEAM}/users", json={"users": [JOINER]}).status_code == 200
        await wait_for(
            lambda: _as(hub, joiner, "GET", "api/contents", allow_redirects=False).status_code,
            lambda code: code in (302, 403),
            timeout=90,
            interval=2,
            what=f"{JOINER}, out of the team, refused",
        )

        # someone it is not shared with is turned away by the hub
        r = outsider.get(f"{hub.url}/user/{OWNER}/lab", timeout=30)
        assert r.status_code == 403 or "/user/" not in r.url, (r.status_code, r.url)
        assert _as(hub, outsider, "GET", "api/contents").status_code in (403, 302)

        # the reader's share is revoked: they are refused within the server's 30 s memory
        assert jobs("DELETE", f"/shares/user/{READER}").status_code == 204
        assert jobs("DELETE", f"/shares/user/{READER}").status_code == 404
        t0 = time.monotonic()
        await wait_for(
            lambda: _as(hub, reader, "GET", "api/contents/shared.txt", allow_redirects=False).status_code,
            lambda code: code in (302, 403),
            timeout=60,
            interval=2,
            what="the revoked reader refused",
        )
        timings["sharing: revoke -> the grantee refused"] = time.monotonic() - t0

        # the team's share expires: an hour passing is the test moving its end into the past
        _expire_now(hub, OWNER, "group")
        t0 = time.monotonic()
        await wait_for(
            lambda: jobs("GET", "/shares").json()["shares"],
            lambda left: left == [],
            timeout=60,
            what="the expired share revoked by the service",
        )
        await wait_for(
            lambda: _as(hub, worker, "GET", "api/contents", allow_redirects=False).status_code,
            lambda code: code in (302, 403),
            timeout=60,
            interval=2,
            what="the team member refused after the expiry",
        )
        timings["sharing: expiry -> the grantee refused"] = time.monotonic() - t0

        # the audit trail names who shared, revoked and what expired
        trail = [
            (e["actor"], e["action"], e["detail"])
            for e in jobs("GET", "/audit").json()["entries"]
            if e["job"] == "server"
        ]
        actions = [(a, act) for a, act, _ in trail]
        assert (OWNER, "share") in actions and (OWNER, "share-revoke") in actions, trail
        assert ("moonhub", "share-expire") in actions and ("moonhub", "share-members") in actions, trail
        assert any(re.search(rf"read access for user {READER} until", d) for _, _, d in trail), trail
    finally:
        hub.api(owner, "DELETE", f"/users/{OWNER}/server")
