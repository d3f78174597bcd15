"""Which owners' jobs may be removed because their user left the hub.

Removing a user's jobs removes their history too, so it needs positive evidence, not the
absence of a name from a list that may be partial: an owner counts as departed only after
the hub answered 404 for them at every reconcile for ``grace`` seconds. A failed read of the
hub decides nothing; an owner the hub knows again is forgotten.
"""

from __future__ import annotations

import datetime
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hubclient.users import HubReadError, HubUsers

from .db import DepartureRow, utc, utcnow

log = logging.getLogger("moonhub.jobs")


def due(s: Session, gone: set[str], checked: set[str], grace: datetime.timedelta, now: datetime.datetime) -> set[str]:
    """Record ``gone`` owners (404 now), forget ``checked`` owners that are not gone, and
    return the owners gone for at least ``grace``."""
    rows = {r.owner: r for r in s.scalars(select(DepartureRow))}
    for owner, row in rows.items():
        if owner in checked and owner not in gone:
            s.delete(row)
    for owner in gone - set(rows):
        s.add(DepartureRow(owner=owner, first_seen=now))
    s.flush()
    out = set()
    for row in s.scalars(select(DepartureRow)):
        if row.owner in gone and now - utc(row.first_seen) >= grace:
            out.add(row.owner)
    return out


async def departed(
    hub: HubUsers,
    db: sessionmaker[Session],
    owners: set[str],
    listed: set[str],
    grace: datetime.timedelta,
    record: bool = True,
) -> set[str]:
    """The ``owners`` gone from the hub for at least ``grace``: absent from ``listed`` (the
    hub's complete user list) and answered 404 when asked about by name. ``record=False``
    (a dry run) answers the same without remembering what it saw."""
    gone, checked = set(), owners & listed
    for owner in sorted(owners - listed):
        try:
            if await hub.is_gone(owner):
                gone.add(owner)
            checked.add(owner)
        except HubReadError as e:
            log.warning("could not ask the hub about %s (%s): keeping their jobs", owner, e)
    with db() as s:
        ready = due(s, gone, checked, grace, utcnow())
        if record:
            s.commit()
        else:
            s.rollback()
    waiting = gone - ready
    if waiting and record:
        log.info(
            "users gone from the hub; their jobs and workspaces are kept for the grace period: %s",
            ", ".join(sorted(waiting)),
        )
    return ready
