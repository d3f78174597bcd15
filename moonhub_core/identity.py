"""Which account of a user name a workspace belongs to (issue 32, item 5).

A user name can stand for two accounts over time: an admin deletes a user and the name's
next login makes a new one, or renames a user and the old name is free. MoonHub finds a
user's workspace by the name; the hub's record of when the user was created tells the
accounts apart (a rename keeps it, a new user of the same name gets a new one). A workspace
claim carries that stamp (:data:`CREATED`) from its first mount on:

- a claim stamped for another account of the name is not mounted (409): the new holder of
  a name does not get an earlier holder's files;
- a claim whose name's user is gone, but whose stamp is a present user's (a rename), is not
  archived: the person is still here (``jobs_service.reclaim``).

Pure; the spawner and the jobs service read the stamp from the hub (the user's ``created``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from .errors import Conflict
from .pods import PREFIX

#: on a workspace claim: when the hub created the user it was made for (UTC, microseconds)
CREATED = f"{PREFIX}hub-user-created"


def stamp(created: datetime.datetime | str | None) -> str:
    """The hub's ``created`` of a user (an ORM datetime, naive UTC, or the REST model's
    ISO 8601 text) as one canonical text; "" when unknown."""
    if created is None or created == "":
        return ""
    if isinstance(created, str):
        created = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    if created.tzinfo is not None:
        created = created.astimezone(datetime.UTC).replace(tzinfo=None)
    return created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def of_claim(pvc: Any) -> str:
    meta = pvc.metadata if hasattr(pvc, "metadata") else (pvc.get("metadata") or {})
    notes = (meta.annotations if hasattr(meta, "annotations") else meta.get("annotations")) or {}
    return str(notes.get(CREATED, ""))


def check_claim(pvc: Any, user: str, created: str) -> bool:
    """Raise 409 when the claim was made for another account named ``user``; True when the
    claim has no stamp yet (it is to be stamped with ``created``)."""
    have = of_claim(pvc)
    if not have:
        return bool(created)
    if created and have != created:
        name = pvc.metadata.name if hasattr(pvc, "metadata") else pvc["metadata"]["name"]
        raise Conflict(
            "workspace",
            f"volume {name} belongs to an earlier account named {user!r} (created {have}; yours was created "
            f"{created}): not mounted. An admin must archive or remove it first",
        )
    return False


def patch(created: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {CREATED: created}}}


def renamed(claim_stamp: str, present: Mapping[str, str]) -> str | None:
    """The present user (by name) whose account a claim's stamp is, if any: a user renamed
    since the claim was made (``present``: name -> stamp of every user the hub has)."""
    if not claim_stamp:
        return None
    return next((name for name, s in present.items() if s == claim_stamp), None)
