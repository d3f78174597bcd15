"""Security context of every MoonHub workload (user servers and job runs): passes the
``restricted`` Pod Security Standard. The one place it is decided: the workload builder
puts it on every pod, and nothing else sets it.

Who a pod runs as is its owner's (:mod:`.uids`): their own uid, and a group of the same
number as the primary group and ``fsGroup``; the images' group ``users`` (100) and team
folders' groups are supplementary. A workspace made before uids runs as the images' shared
user (1000:100), as it always did."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: the images' notebook user: name, home, uid and group (images/base-notebook)
NB_USER = "jovyan"
NB_HOME = "/home/jovyan"
NB_UID = 1000
NB_GID = 100


def ids(uid: int | None) -> tuple[int, int]:
    """(uid, primary gid) of a pod whose owner's uid is ``uid`` (None: the shared user)."""
    return (NB_UID, NB_GID) if uid is None else (uid, uid)


def pod_security_context(uid: int | None = None, groups: Iterable[int] = ()) -> dict[str, Any]:
    """The pod's context; ``groups``: supplementary groups (team folders')."""
    u, g = ids(uid)
    extra = set(groups) | ({NB_GID} if uid is not None else set())
    ctx: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": u,
        "runAsGroup": g,
        "fsGroup": g,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if extra:
        ctx["supplementalGroups"] = sorted(extra)
    return ctx


def container_security_context(uid: int | None = None) -> dict[str, Any]:
    u, g = ids(uid)
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": u,
        "runAsGroup": g,
    }


def user_env(home: str = NB_HOME) -> dict[str, str]:
    """Who the process is, for programs that ask the environment: a uid of its own has no
    line in the image's /etc/passwd, so the runtime would set HOME to ``/``. ``home``: where
    the workspace is mounted (the catalog's ``storage.mount_path``)."""
    return {"HOME": home, "USER": NB_USER, "LOGNAME": NB_USER}


#: the file-creation mask of every process in a user's pod: new files are writable by their
#: group. A user's own files belong to their private group (the uid's number), so that is
#: only them; in a team folder (set-group-id) the group is the team's, so team-mates can
#: change each other's files, as when everyone was uid 1000
UMASK = "0002"


def with_umask(argv: list[str]) -> list[str]:
    """``argv`` run with :data:`UMASK` (a shell sets it, then becomes the program; arguments
    appended after these, as KubeSpawner appends its own, reach the program)."""
    return ["sh", "-c", f'umask {UMASK} && exec "$@"', "moonhub", *argv]
