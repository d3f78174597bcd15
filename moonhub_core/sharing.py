"""Sharing a server (JupyterHub's sharing, with MoonHub's read-only access and expiry): the
scopes a share grants, in one place for the hub's configuration, the jobs service that grants
them, and (as a copy a unit test keeps equal) the guard in the user's server.

A share always grants ``access:servers`` on the one server: the grantee may open it. Read-only
access stops there; full access adds :data:`WRITE_SCOPE`, without which the server's guard
(``moonhub_lab.sharing``) lets a user other than the owner only read: pages, files and
listings, never a kernel, a terminal, a write or a proxied program."""

from __future__ import annotations

#: the custom scope that lets someone other than a server's owner change it
WRITE_SCOPE = "custom:moonhub:server-write"
WRITE_SCOPE_HELP = "Run code, open terminals and change files on a server shared with full access."
#: what a share may be: to see, or to work in
ACCESS = ("read", "full")


def server_filter(owner: str, server: str = "") -> str:
    return f"server={owner}/{server}"


def scopes(owner: str, access: str, server: str = "") -> list[str]:
    """The scopes a share with ``access`` grants on ``owner``'s ``server``."""
    if access not in ACCESS:
        raise ValueError(f"access must be one of {', '.join(ACCESS)}, not {access!r}")
    only = server_filter(owner, server)
    granted = [f"access:servers!{only}"]
    if access == "full":
        granted.append(f"{WRITE_SCOPE}!{only}")
    return granted


def access_of(granted: list[str]) -> str:
    """What a share's scopes amount to: "full" where they hold the write scope."""
    return "full" if any(s.partition("!")[0] == WRITE_SCOPE for s in granted) else "read"
