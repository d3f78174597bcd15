"""A hub user name belongs to one account at the identity provider (issue 32, item 5).

Providers re-issue user names: a ``preferred_username`` or e-mail prefix of someone who left
is given to the next person, a GitHub login is renamed and taken by someone else. MoonHub's
state (workspaces, jobs, secrets) is found by the hub user name, so a new person with an old
name would inherit all of it. The first login of a name records the provider's stable
subject for it (OIDC ``sub``, GitHub's and GitLab's numeric user id); a later login of that
name with another subject is refused with a 403 that says why, for as long as the hub has
the user. An admin hands the name over by deleting the old hub user: MoonHub's departure
handling then archives their workspace, deletes their secrets and handles their jobs, and
the stamp of the hub user's creation on those (:mod:`moonhub_core.identity`) keeps the new
holder from them meanwhile.

The record is a table of its own in the hub's database (``moonhub_login_subjects``), so it
lives where the users live, on SQLite or PostgreSQL alike.
"""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

METADATA = sa.MetaData()
SUBJECTS = sa.Table(
    "moonhub_login_subjects",
    METADATA,
    sa.Column("name", sa.Unicode(255), primary_key=True),
    sa.Column("subject", sa.Unicode(255), nullable=False),
    sa.Column("bound_at", sa.DateTime, nullable=False),
)

#: where each provider's stable account id is, in the user info oauthenticator keeps
SUBJECT_KEYS = {"oidc": "sub", "github": "id", "gitlab": "id"}


#: the databases whose table this process has made sure of
_MADE: set[int] = set()


class SubjectMismatch(Exception):
    """The name is bound to another account at the provider."""


def subject_of(auth_model: dict[str, Any], key: str, user_info_key: str = "oauth_user") -> str:
    """The provider's stable id in an oauthenticator auth model ("" when it has none)."""
    info = (auth_model.get("auth_state") or {}).get(user_info_key) or {}
    value = info.get(key)
    return "" if value is None else str(value)


def bind(db: Session, name: str, subject: str, user_exists: bool, now: datetime.datetime | None = None) -> bool:
    """Check and record that ``name`` is ``subject``'s. A name no hub user has now is bound
    afresh (the admin deleted the old user: the name was handed over). Returns whether the
    binding was written; raises :class:`SubjectMismatch` when another subject holds it."""
    engine = db.get_bind()
    if id(engine) not in _MADE:
        METADATA.create_all(engine, checkfirst=True)
        _MADE.add(id(engine))
    row = db.execute(sa.select(SUBJECTS.c.subject).where(SUBJECTS.c.name == name)).first()
    if row is not None and row.subject == subject:
        return False
    if row is not None and user_exists:
        raise SubjectMismatch(name)
    stamp = now or datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    if row is None:
        db.execute(sa.insert(SUBJECTS).values(name=name, subject=subject, bound_at=stamp))
    else:
        db.execute(sa.update(SUBJECTS).where(SUBJECTS.c.name == name).values(subject=subject, bound_at=stamp))
    db.commit()
    return True
