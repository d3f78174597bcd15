"""MoonHub's OpenID Connect authenticator: oauthenticator's generic one, plus refusing
users whose e-mail address the provider has not verified."""

from __future__ import annotations

from typing import Any

from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from traitlets import Bool


class MoonOIDCAuthenticator(GenericOAuthenticator):
    require_verified_email = Bool(
        True,
        help="Refuse users whose `email_verified` claim is not true (an unverified address "
        "could claim someone else's identity at the provider).",
    ).tag(config=True)

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None) -> bool:
        if auth_model is not None and self.require_verified_email:
            user = (auth_model.get("auth_state") or {}).get(self.user_auth_state_key) or {}
            if user.get("email_verified") is not True:
                self.log.warning("refused %s: e-mail address not verified at the identity provider", username)
                raise web.HTTPError(
                    403, "Your e-mail address is not verified at the identity provider; verify it there first."
                )
        allowed: bool = await super().check_allowed(username, auth_model)
        if not allowed:
            self.log.warning("refused %s: not in the allowed users or groups", username)
        return allowed


def github_teams(auth_state: dict[str, Any]) -> list[str]:
    """GitHub teams as JupyterHub groups, named ``org:team`` (as allowed_groups names them)."""
    return [f"{t['organization']['login']}:{t['slug']}" for t in auth_state.get("teams") or []]
