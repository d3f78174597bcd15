"""The locks hold every package asked for, at a version the ask accepts: the hub image's
(images/hub/constraints.txt, ``python -m images.lock``) and the development environment's
(constraints.txt, a ``pip freeze`` of ``.venv``). A dependency added to pyproject.toml or to
the hub's requirements without regenerating them fails here, not as an install that quietly
takes whatever PyPI has that day."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from images import lock
from localcluster.config import REPO


def _locked(path: Path = lock.LOCK) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _asked() -> list[Requirement]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (lock.HUB / "requirements.txt").read_text().splitlines()
    return [Requirement(r) for r in [*deps, *lines] if r.strip() and not r.lstrip().startswith("#")]


def test_every_package_the_hub_image_asks_for_is_locked_at_a_version_it_accepts() -> None:
    locked = _locked()
    for req in _asked():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in {lock.LOCK.name}: run python -m images.lock"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"{req} asked, {locked[name]} locked: run python -m images.lock"
        )


def test_every_package_of_the_development_environment_is_pinned() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    locked = _locked(REPO / "constraints.txt")
    for req in map(Requirement, [*project["dependencies"], *project["optional-dependencies"]["dev"]]):
        version = locked.get(canonicalize_name(req.name))
        assert version is not None, f"{req.name} is not in constraints.txt: regenerate it (its header says how)"
        assert req.specifier.contains(version, prereleases=True), f"{req} asked, {version} in constraints.txt"


def test_the_lock_is_what_pip_resolved_without_our_own_packages() -> None:
    report = {
        "install": [
            {"metadata": {"name": "moonhub", "version": "0.1.0"}},
            {"metadata": {"name": "tornado", "version": "6.5"}},
            {"metadata": {"name": "Jinja2", "version": "3.1.6"}},
        ]
    }
    assert lock.resolved(report) == ["Jinja2==3.1.6", "tornado==6.5"]
