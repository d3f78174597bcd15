"""Logging in through a real OpenID Connect provider (npm's certified ``oidc-provider``):
allowed groups, admin groups, group sync into JupyterHub (and so the catalog's
entitlements), and refusals for users outside the allowed groups or with an unverified
e-mail address."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from localcluster.config import REPO, ClusterConfig
from localcluster.supervisor import Supervisor
from tests.conftest import platform_doc, start_hub

STATE = REPO / ".state" / "test-hub-oidc"
PROVIDER_PORT = 18310
HUB = "http://127.0.0.1:18300"
ACCOUNTS = {
    "olga": {"email": "olga@example.com", "email_verified": True, "groups": ["moonhub-users", "ml-research"]},
    "ada": {"email": "ada@example.com", "email_verified": True, "groups": ["moonhub-users", "platform-admins"]},
    "oscar": {"email": "oscar@example.com", "email_verified": True, "groups": ["contractors"]},
    "una": {"email": "una@example.com", "email_verified": False, "groups": ["moonhub-users"]},
    "pat": {"email": "pat@example.com", "email_verified": True, "groups": ["moonhub-users"]},
    # another account at the provider that was later given the user name "pat"
    "pat-2": {
        "preferred_username": "pat",
        "email": "pat.two@example.com",
        "email_verified": True,
        "groups": ["moonhub-users"],
    },
}


@dataclass
class OIDCHub:
    url: str
    accounts: Path

    def set_groups(self, user: str, groups: list[str]) -> None:
        data = json.loads(self.accounts.read_text())
        data[user]["groups"] = groups
        self.accounts.write_text(json.dumps(data))

    def login(self, user: str) -> tuple[requests.Session, requests.Response]:
        """The browser's way through: hub -> provider's login form -> consent -> hub."""
        s = requests.Session()
        r = s.get(f"{self.url}/hub/oauth_login", params={"next": "/hub/home"}, timeout=30)
        assert r.url.startswith(f"http://127.0.0.1:{PROVIDER_PORT}/interaction/"), r.url
        for _ in range(3):
            m = re.search(r'<form[^>]*action="([^"]+)"', r.text)
            prompt = re.search(r'name="prompt" value="(\w+)"', r.text)
            if not m or not prompt:
                break
            data = {"prompt": prompt.group(1)}
            if prompt.group(1) == "login":
                data |= {"login": user, "password": "any"}
            r = s.post(urljoin(r.url, m.group(1)), data=data, timeout=30)
        return s, r


@pytest.fixture(scope="module")
def oidc_hub(local_cluster: ClusterConfig | None) -> Iterator[OIDCHub]:
    if local_cluster is None:
        pytest.skip("the OIDC hub runs on the host against the local cluster")
    doc = platform_doc(STATE, 18300)  # a fresh state folder first
    accounts = STATE / "accounts.json"
    accounts.write_text(json.dumps(ACCOUNTS))
    (STATE / "client-secret").write_text("s3cret-for-tests\n")
    sup = Supervisor(local_cluster.run, local_cluster.logs, REPO)
    sup.start(
        "oidc-provider",
        ["node", str(REPO / "tests" / "hub" / "oidc_provider.mjs")],
        {
            "OIDC_PORT": str(PROVIDER_PORT),
            "OIDC_ACCOUNTS": str(accounts),
            "OIDC_CLIENT_ID": "moonhub",
            "OIDC_CLIENT_SECRET": "s3cret-for-tests",
            "OIDC_REDIRECT_URI": f"{HUB}/hub/oauth_callback",
            "NODE_PATH": str(REPO / "node_modules"),
        },
    )
    sup.wait_healthy("oidc-provider", f"http://127.0.0.1:{PROVIDER_PORT}/.well-known/openid-configuration", 60)
    doc["auth"] = {
        "type": "oidc",
        "oauth": {
            "client_id": "moonhub",
            "client_secret_file": "client-secret",
            "allowed_groups": ["moonhub-users", "ml-research"],
            "admin_groups": ["platform-admins"],
            "scopes": ["groups"],
        },
        "oidc": {"issuer": f"http://127.0.0.1:{PROVIDER_PORT}"},
    }
    doc["jobs"]["enabled"] = False
    doc["builds"]["enabled"] = False  # builds need the jobs service
    url, _, hub_sup = start_hub(local_cluster, STATE, doc, "hub-oidc")
    yield OIDCHub(url, accounts)
    hub_sup.stop("hub-oidc")
    sup.stop("oidc-provider")


def _user(hub: OIDCHub, admin: requests.Session, name: str) -> dict:
    headers = {"X-XSRFToken": admin.cookies.get("_xsrf", path="/hub/") or ""}
    r = admin.get(f"{hub.url}/hub/api/users/{name}", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_allowed_group_member_logs_in_with_groups_synced(oidc_hub: OIDCHub) -> None:
    s, r = oidc_hub.login("olga")
    assert r.status_code == 200 and r.url == f"{oidc_hub.url}/hub/home", (r.status_code, r.url)
    # the catalog's entitlements follow the provider's groups: ml-research may pick A100s
    form = s.get(f"{oidc_hub.url}/hub/spawn/olga", timeout=30).text
    assert 'value="a100"' in form
    admin, r = oidc_hub.login("ada")
    assert r.status_code == 200, r.text
    ada = _user(oidc_hub, admin, "ada")
    assert ada["admin"] is True, "platform-admins is an admin group"
    assert sorted(_user(oidc_hub, admin, "olga")["groups"]) == ["ml-research", "moonhub-users"]

    # the provider drops olga from ml-research: the next login drops it in JupyterHub too
    oidc_hub.set_groups("olga", ["moonhub-users"])
    s, r = oidc_hub.login("olga")
    assert r.status_code == 200
    assert _user(oidc_hub, admin, "olga")["groups"] == ["moonhub-users"]
    assert 'value="a100"' not in s.get(f"{oidc_hub.url}/hub/spawn/olga", timeout=30).text


def test_a_user_name_given_to_another_account_is_refused_until_an_admin_removes_the_old_user(
    oidc_hub: OIDCHub,
) -> None:
    """The provider hands "pat" to a second account (another ``sub``): its login is refused
    while the hub has the first pat (whose workspace, jobs and secrets are found by that
    name). Once an admin deletes the old user, the name is the new account's, and the first
    account is refused in turn."""
    _, r = oidc_hub.login("pat")
    assert r.status_code == 200 and r.url == f"{oidc_hub.url}/hub/home", (r.status_code, r.url)
    s2, r = oidc_hub.login("pat-2")
    assert r.status_code == 403, (r.status_code, r.url)
    assert "belongs to another account at the identity provider" in r.text
    assert not any(c.name.startswith("jupyterhub-session") for c in s2.cookies)
    _, r = oidc_hub.login("pat")
    assert r.status_code == 200, "the first account still logs in"

    admin, r = oidc_hub.login("ada")
    headers = {"X-XSRFToken": admin.cookies.get("_xsrf", path="/hub/") or ""}
    r = admin.delete(f"{oidc_hub.url}/hub/api/users/pat", headers=headers, timeout=30)
    assert r.status_code == 204, r.text
    s2, r = oidc_hub.login("pat-2")
    assert r.status_code == 200 and r.url == f"{oidc_hub.url}/hub/home", (r.status_code, r.text[-300:])
    _, r = oidc_hub.login("pat")
    assert r.status_code == 403 and "belongs to another account" in r.text, "the name was handed over"


def test_user_outside_the_allowed_groups_is_refused(oidc_hub: OIDCHub) -> None:
    s, r = oidc_hub.login("oscar")
    assert r.status_code == 403, (r.status_code, r.url)
    assert not any(c.name.startswith("jupyterhub-session") for c in s.cookies)


def test_unverified_email_is_refused(oidc_hub: OIDCHub) -> None:
    s, r = oidc_hub.login("una")
    assert r.status_code == 403, (r.status_code, r.url)
    assert "e-mail address is not verified" in r.text
    assert not any(c.name.startswith("jupyterhub-session") for c in s.cookies)


def test_development_login_is_off(oidc_hub: OIDCHub) -> None:
    r = requests.get(f"{oidc_hub.url}/hub/login", timeout=30)
    assert "Development login" not in r.text and "password" not in r.text.lower()
    assert "single sign-on" in r.text
    r = requests.post(f"{oidc_hub.url}/hub/login", data={"username": "admin", "password": "x"}, timeout=30)
    assert not any(c.name.startswith("jupyterhub-session") for c in r.cookies)
