"""The cluster tests share one hub and one cluster, and pytest-xdist runs their modules side
by side. A user's server is the pod ``jupyter-<user>`` and their runs sit in their own Kueue
queue, so two modules logging in as the same user race for one pod and count each other's
work (a CI run failed on ``pods "jupyter-ivy" already exists``). Each user name the cluster
tiers log in as belongs to one module; ``admin`` is the one shared account (it starts no
server in these tests)."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: the tiers that run against the shared test hub and cluster
CLUSTER_TIERS = ("hub", "browser", "cluster", "images", "scale", "monitoring")
SHARED = {"admin"}
#: module-level names that hold a test user's name (``USER``, ``OWNER``, ``OTHER_USER``...)
_USER_CONST = re.compile(r"^[A-Z_0-9]*(USER|OWNER|MEMBER)[A-Z_0-9]*$")
_NOT_A_USER = re.compile(r"(_NS|_NAMESPACE|_GROUP|_TEAM)$")


def users_in(source: str) -> set[str]:
    """The user names a test module names (pure): string arguments of ``.login(...)`` and
    module-level constants named like a user."""
    found: set[str] = set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "login":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    for stmt in tree.body:
        targets = (
            stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        )
        value = getattr(stmt, "value", None)
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            continue
        for t in targets:
            if isinstance(t, ast.Name) and _USER_CONST.match(t.id) and not _NOT_A_USER.search(t.id):
                found.add(value.value)
    return found


def test_users_are_found_in_logins_and_constants() -> None:
    src = 'USER = "ivy"\nUSER_NS = "moonhub-users"\ndef t(hub):\n    hub.login("kim")\n    hub.login(USER)\n'
    assert users_in(src) == {"ivy", "kim"}


def test_each_cluster_test_user_belongs_to_one_module() -> None:
    where: dict[str, set[str]] = defaultdict(set)
    for tier in CLUSTER_TIERS:
        for path in sorted((REPO / "tests" / tier).rglob("*.py")):
            for user in users_in(path.read_text()):
                where[user].add(str(path.relative_to(REPO)))
    assert len(where) > 20, "the scan found the tests' users"
    shared = {u: sorted(m) for u, m in where.items() if len(m) > 1 and u not in SHARED}
    assert not shared, f"user names used by more than one cluster test module: {shared}"
