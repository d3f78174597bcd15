"""The import rule of docs/architecture.md: which package may import which. The domain core
imports none of the components; components do not import each other; the platform document
is the core's (``moonhub_core.platform``), so every service reads it without an exception to
the rule; the hub's parts are wired together in one file (``hub_config/jupyterhub_config.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: package -> its folder
PACKAGES = {
    "moonhub_core": "moonhub_core",
    "hub_config": "hub_config",
    "spawner_ext": "spawner_ext",
    "admin_console": "admin_console",
    "jobs_service": "jobs_service",
    "culling": "culling",
    "hubclient": "hubclient",
    "moonhub_lab": "lab_extension/moonhub_lab",
    "localcluster": "localcluster",
    "images": "images",
    "benchmarks": "benchmarks",
    "storage_agent": "storage_agent",
    "package_index": "package_index",
}
#: what each package may import of the others (a dotted name allows that module only)
ALLOWED: dict[str, set[str]] = {
    "moonhub_core": set(),
    "hubclient": set(),
    # runs in users' images, next to their code: nothing of the platform's
    "moonhub_lab": set(),
    "hub_config": {"moonhub_core"},
    "spawner_ext": {"moonhub_core"},
    "admin_console": {"moonhub_core"},
    "jobs_service": {"moonhub_core", "hubclient"},
    "culling": {"moonhub_core", "hubclient"},
    "localcluster": {"moonhub_core"},
    "images": {"localcluster", "moonhub_core"},
    "storage_agent": {"moonhub_core"},
    # a proxy of someone else's index: nothing of the platform's
    "package_index": set(),
    # measuring tools drive any part
    "benchmarks": set(PACKAGES),
}
#: the one place the hub's parts are put together: it may import them
WIRING = {"hub_config/jupyterhub_config.py": {"admin_console"}}


def _imports(path: Path) -> set[str]:
    """Every absolute module a file imports (``from a import b``: ``a`` and ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _allowed(name: str, allowed: set[str]) -> bool:
    return any(name == a or name.startswith(f"{a}.") for a in allowed)


def violations(package: str) -> list[str]:
    out = []
    folder = REPO / PACKAGES[package]
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        allowed = ALLOWED[package] | WIRING.get(rel, set())
        for name in sorted(_imports(path)):
            top = name.split(".")[0]
            if top == package or top not in PACKAGES:
                continue
            # `from moonhub_core import uids` imports moonhub_core.uids: judge the
            # longest name, and a bare package only when nothing longer is imported
            if name == top and any(n.startswith(f"{top}.") for n in _imports(path)):
                continue
            if not _allowed(name, allowed):
                out.append(f"{rel} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_imports_follow_the_rule(package: str) -> None:
    assert violations(package) == []


def test_the_rule_catches_an_arrow_back_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "moonhub_core"
    fake.mkdir()
    (fake / "bad.py").write_text("from spawner_ext.spawner import MoonSpawner\nfrom hub_config import traits\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["REPO"]), "REPO", tmp_path)
    assert violations("moonhub_core") == [
        "moonhub_core/bad.py imports hub_config.traits",
        "moonhub_core/bad.py imports spawner_ext.spawner",
        "moonhub_core/bad.py imports spawner_ext.spawner.MoonSpawner",
    ]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_package_is_a_regular_package(package: str) -> None:
    """A folder without ``__init__.py`` imports as a namespace package from the repository
    but has no ``__file__`` once installed (its data files are not found from it)."""
    assert (REPO / PACKAGES[package] / "__init__.py").is_file()
