"""The ``auth`` section onto JupyterHub: oauthenticator for OIDC / GitLab / GitHub, or the
development login when (and only when) the document names it."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any

from moonhub_core.platform import ConfigError, PlatformConfig

from .devlogin import BANNER, DevelopmentAuthenticator, ensure_password

SECRET_ENV = "MOONHUB_OAUTH_CLIENT_SECRET"


def client_secret(cfg: PlatformConfig, base: Path) -> str:
    """The OAuth client secret from its file or the environment (never the document)."""
    o = cfg.auth.oauth
    if o.client_secret_file:
        path = (base / o.client_secret_file).resolve()
        try:
            return path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"auth.oauth.client_secret_file: cannot read {path}: {e.strerror}") from None
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise ConfigError(f"auth.oauth.client_secret_file: not set, and ${SECRET_ENV} is empty")
    return secret


def discover(issuer: str, timeout: float = 10) -> dict[str, Any]:
    """The provider's OpenID configuration (its endpoints)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            doc: dict[str, Any] = json.load(r)
    except (OSError, ValueError) as e:
        raise ConfigError(f"auth.oidc.issuer: cannot read {url}: {e}") from None
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint"):
        if key not in doc:
            raise ConfigError(f"auth.oidc.issuer: {url} has no {key}")
    return doc


#: on the login page of a hub served over plain http (issue 32, item 8)
PLAIN_HTTP = (
    "<strong>Served over plain http</strong> &mdash; for development only: sign-ins and "
    "sessions cross the network unencrypted{origin}. A shared deployment uses https."
)
ONE_ORIGIN = ", and every user's server shares the hub's origin (set hub.subdomain_host for one each)"


def login_notices(cfg: PlatformConfig) -> str:
    """What the login page says of this set-up: the development login, plain http (pure)."""
    notes = [BANNER] if cfg.auth.type == "development" else []
    if not cfg.hub.public_url.startswith("https://"):
        notes.append(PLAIN_HTTP.format(origin="" if cfg.hub.subdomain_host else ONE_ORIGIN))
    return "<br>".join(notes)


def apply(c: Any, cfg: PlatformConfig, base: Path, state: Path) -> None:
    a, o = cfg.auth, cfg.auth.oauth
    c.Authenticator.admin_users = set(a.admin_users)
    notices = login_notices(cfg)
    if notices:
        c.JupyterHub.template_vars = {"announcement_login": notices}
    if a.type == "development":
        c.JupyterHub.authenticator_class = DevelopmentAuthenticator
        c.DummyAuthenticator.password = ensure_password(state / a.development.password_file)
        c.Authenticator.allow_all = True
        return

    if a.type == "oidc":
        from .authenticators import MoonOIDCAuthenticator

        kind: Any = MoonOIDCAuthenticator
        endpoints = discover(a.oidc.issuer)
        c.GenericOAuthenticator.authorize_url = endpoints["authorization_endpoint"]
        c.GenericOAuthenticator.token_url = endpoints["token_endpoint"]
        c.GenericOAuthenticator.userdata_url = endpoints["userinfo_endpoint"]
        c.GenericOAuthenticator.username_claim = a.oidc.username_claim
        c.GenericOAuthenticator.login_service = "single sign-on"
        c.MoonOIDCAuthenticator.require_verified_email = a.oidc.require_verified_email
        scopes = ["openid", "profile", "email"]
        if o.manage_groups or o.allowed_groups or o.admin_groups:
            c.GenericOAuthenticator.auth_state_groups_key = f"oauth_user.{a.oidc.groups_claim}"
    elif a.type == "gitlab":
        # membership of GitLab group paths decides who is in; GitLab's REST user has no
        # groups to sync (for group sync use type oidc with GitLab as the issuer: its
        # userinfo carries a groups claim)
        from .authenticators import MoonGitLabAuthenticator

        kind = MoonGitLabAuthenticator
        c.GitLabOAuthenticator.gitlab_url = a.gitlab.url
        c.GitLabOAuthenticator.allowed_gitlab_groups = set(o.allowed_groups)
        scopes = ["read_user", "read_api"]
    else:
        from .authenticators import MoonGitHubAuthenticator, github_teams

        # organisations (and org:team) decide who is in; teams become JupyterHub groups
        kind = MoonGitHubAuthenticator
        c.GitHubOAuthenticator.github_url = a.github.url
        c.GitHubOAuthenticator.allowed_organizations = set(o.allowed_groups)
        c.GitHubOAuthenticator.populate_teams_in_auth_state = True
        c.GitHubOAuthenticator.auth_state_groups_key = github_teams
        scopes = ["read:user", "read:org"]

    c.JupyterHub.authenticator_class = kind
    c.OAuthenticator.client_id = o.client_id
    c.OAuthenticator.client_secret = client_secret(cfg, base)
    c.OAuthenticator.oauth_callback_url = o.callback_url or f"{cfg.hub.public_url.rstrip('/')}/hub/oauth_callback"
    c.OAuthenticator.scope = list(dict.fromkeys(scopes + o.scopes))
    c.OAuthenticator.allowed_users = set(o.allowed_users)
    c.OAuthenticator.manage_groups = o.manage_groups and a.type != "gitlab"
    if a.type == "oidc":
        c.OAuthenticator.allowed_groups = set(o.allowed_groups)
    c.OAuthenticator.admin_groups = set(o.admin_groups)
    c.Authenticator.allow_all = False
