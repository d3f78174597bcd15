"""A user name bound to one account at the identity provider (pure: an in-memory database)."""

from __future__ import annotations

import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from hub_config import subjects


@pytest.fixture
def db() -> Session:
    return Session(sa.create_engine("sqlite://"))


def test_the_first_login_binds_the_name_and_the_same_account_passes(db: Session) -> None:
    assert subjects.bind(db, "pat", "sub-1", user_exists=False) is True
    assert subjects.bind(db, "pat", "sub-1", user_exists=True) is False, "nothing to write"


def test_another_account_is_refused_while_the_hub_has_the_user(db: Session) -> None:
    subjects.bind(db, "pat", "sub-1", user_exists=False)
    with pytest.raises(subjects.SubjectMismatch):
        subjects.bind(db, "pat", "sub-2", user_exists=True)
    assert subjects.bind(db, "other", "sub-2", user_exists=False), "names are bound one by one"


def test_a_name_whose_user_was_deleted_is_handed_over(db: Session) -> None:
    subjects.bind(db, "pat", "sub-1", user_exists=False)
    at = datetime.datetime(2026, 12, 5, 12, 0)
    assert subjects.bind(db, "pat", "sub-2", user_exists=False, now=at) is True
    with pytest.raises(subjects.SubjectMismatch):
        subjects.bind(db, "pat", "sub-1", user_exists=True)
    row = db.execute(sa.select(subjects.SUBJECTS)).one()
    assert (row.name, row.subject, row.bound_at) == ("pat", "sub-2", at)


def test_the_subject_is_read_from_the_providers_user_info() -> None:
    model = {"name": "pat", "auth_state": {"oauth_user": {"sub": "abc", "id": 42}}}
    assert subjects.subject_of(model, "sub") == "abc"
    assert subjects.subject_of(model, "id") == "42", "GitHub's and GitLab's numeric ids"
    assert subjects.subject_of({"name": "pat"}, "sub") == ""


def test_each_authenticator_knows_where_its_providers_account_id_is() -> None:
    from hub_config.authenticators import MoonGitHubAuthenticator, MoonGitLabAuthenticator, MoonOIDCAuthenticator

    keys = [cls().subject_key for cls in (MoonOIDCAuthenticator, MoonGitHubAuthenticator, MoonGitLabAuthenticator)]
    assert keys == ["sub", "id", "id"]
