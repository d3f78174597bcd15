"""MoonHub's authenticators: oauthenticator's, plus a user name bound to one account at the
provider (:mod:`.subjects`), and for OpenID Connect refusing users whose e-mail address the
provider has not verified."""

from __future__ import annotations

from typing import Any

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.github import GitHubOAuthenticator
from oauthenticator.gitlab import GitLabOAuthenticator
from tornado import web
from traitlets import Bool, Unicode

from . import subjects


class SubjectBound:
    """A login whose provider account (its stable id, ``subject_key`` of the user info) is
    not the one the name was first used by is refused (403), while the hub has that user."""

    #: (each authenticator below declares it as a trait: a mixin's trait has no name)
    subject_key: str

    async def run_post_auth_hook(self, handler: Any, auth_model: dict[str, Any]) -> dict[str, Any]:
        auth_model = await super().run_post_auth_hook(handler, auth_model)  # type: ignore[misc]
        name = str(auth_model["name"])
        subject = subjects.subject_of(auth_model, self.subject_key, getattr(self, "user_auth_state_key", "oauth_user"))
        log = self.log  # type: ignore[attr-defined]
        if not subject:
            log.warning("refused %s: the provider sent no %s", name, self.subject_key)
            raise web.HTTPError(403, f"The identity provider sent no account id ({self.subject_key}); tell an admin.")
        try:
            if subjects.bind(handler.db, name, subject, handler.find_user(name) is not None):
                log.info("user name %s is bound to the provider's account %s", name, subject)
        except subjects.SubjectMismatch:
            log.warning(
                "refused %s: another account at the provider (%s) than the one that holds the name", name, subject
            )
            raise web.HTTPError(
                403,
                f"The user name {name!r} belongs to another account at the identity provider. If it was "
                "given to you, an admin must first remove the previous user of that name.",
            ) from None
        return auth_model


def _subject_key(kind: str) -> Any:
    return Unicode(
        subjects.SUBJECT_KEYS[kind], help="The key of the provider's stable account id in its user info."
    ).tag(config=True)


class MoonGitHubAuthenticator(SubjectBound, GitHubOAuthenticator):
    subject_key = _subject_key("github")


class MoonGitLabAuthenticator(SubjectBound, GitLabOAuthenticator):
    subject_key = _subject_key("gitlab")


class MoonOIDCAuthenticator(SubjectBound, GenericOAuthenticator):
    subject_key = _subject_key("oidc")
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
