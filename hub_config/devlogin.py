"""The development login: any user name with one shared password. Local use only.

It is enabled only when the platform config says ``auth.type: development``, and every
login page then says so in a banner.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from jupyterhub.auth import DummyAuthenticator

BANNER = (
    "<strong>Development login</strong> &mdash; any user name with the shared development "
    "password. For local development only: never enable it on a shared deployment."
)


class DevelopmentAuthenticator(DummyAuthenticator):
    """JupyterHub's dummy authenticator under a name that says what it is in logs.

    (``login_service`` stays unset: setting it turns the form into an OAuth button.)
    """


def ensure_password(path: Path) -> str:
    """The shared development password, created (random) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(12) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()
