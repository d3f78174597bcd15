"""Images built after the hub starts (issue 34, item 3): which images `up` builds first and
which later, the progress document, and what an environment whose image is not ready says."""

from __future__ import annotations

from pathlib import Path

import pytest

from images import build
from moonhub_core import image_builds
from moonhub_core.catalog import EXAMPLE, load


def test_up_builds_what_the_hub_and_a_python_server_need_first_and_the_frameworks_later() -> None:
    spec = build.load_spec()
    first = build.wanted_images(spec, [], only="platform")
    later = build.wanted_images(spec, [], only="frameworks")
    assert set(first) | set(later) == set(build.wanted_images(spec, [])), "together: every CI image"
    assert not set(first) & set(later)
    assert {"hub", "base-notebook", "storage-helper"} <= set(first)
    assert later and all(spec.images[n].framework for n in later)
    # every image the example catalog's CPU environment and the platform use is built first
    cat = load(EXAMPLE)
    cpu = [e for e in cat.environments if not e.framework]
    assert cpu and all(image_builds.repository(e.image).removeprefix("moonhub/") in first for e in cpu)
    with pytest.raises(SystemExit, match="no image 'nope'"):
        build.wanted_images(spec, ["nope"])


def test_progress_is_written_whole_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "images" / "progress.json"
    progress = build.Progress(path, ["pytorch-notebook", "tensorflow-cpu-notebook"])
    entries = image_builds.read(path)
    assert [(e["name"], e["state"], e["position"], e["of"]) for e in entries] == [
        ("pytorch-notebook", "waiting", 1, 2),
        ("tensorflow-cpu-notebook", "waiting", 2, 2),
    ]
    progress.set("pytorch-notebook", "building")
    progress.set("base-notebook", "building")  # a parent: not among the entries, no change
    entries = image_builds.read(path)
    assert image_builds.words(entries[0]) == "building, 1 of 2"
    assert image_builds.words(entries[1]) == "waiting to be built, 2 of 2"
    assert [p.name for p in path.parent.iterdir()] == ["progress.json"], "no temporary file left"
    assert build.Progress(None, ["x"]).entries[0]["state"] == "waiting", "no file named: nothing written"


@pytest.mark.parametrize("content", [None, "", "{", "[]", '{"images": 3}', '{"images": [{"state": "x"}]}'])
def test_no_document_or_a_broken_one_means_nothing_is_being_built(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "progress.json"
    if content is not None:
        path.write_text(content)
    assert image_builds.read(path) == []
    assert image_builds.read("") == []


def test_an_environment_is_not_ready_while_its_images_build_is_not_done() -> None:
    entries = [
        {"name": "pytorch-notebook", "state": "pushing", "position": 1, "of": 2},
        {"name": "tensorflow-cpu-notebook", "state": "ready", "position": 2, "of": 2},
        {"name": "other", "state": "failed", "message": "pip: no matching distribution"},
    ]
    found = image_builds.not_ready("127.0.0.1:5000/moonhub/pytorch-notebook:pytorch-2.9-cuda12.8", entries)
    assert found is not None and image_builds.words(found) == "being pushed to the registry, 1 of 2"
    assert image_builds.not_ready("127.0.0.1:5000/moonhub/tensorflow-cpu-notebook:latest", entries) is None
    assert image_builds.not_ready("moonhub/base-notebook:python-3.11-lab-4.6", entries) is None
    assert image_builds.not_ready("quay.io/jupyter/pytorch-notebook:latest", entries) is None, "not MoonHub's own"
    failed = image_builds.not_ready("localhost:5000/moonhub/other@sha256:abc", entries)
    assert failed is not None and image_builds.words(failed) == "its build failed: pip: no matching distribution"


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("127.0.0.1:5000/moonhub/x:tag", "moonhub/x"),
        ("moonhub/x", "moonhub/x"),
        ("registry.example.org/team/moonhub/x:1.0", "team/moonhub/x"),
        ("localhost/moonhub/x@sha256:0", "moonhub/x"),
    ],
)
def test_repository_of_an_image_reference(image: str, repo: str) -> None:
    assert image_builds.repository(image) == repo


def test_the_spawn_form_names_the_environments_whose_image_is_building(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from spawner_ext.spawn_form import SpawnForm

    cat = load(EXAMPLE)
    path = tmp_path / "progress.json"
    form = SimpleNamespace(image_builds=str(path))
    assert SpawnForm.building(form, cat) == {}, "no document: every image is there"  # type: ignore[arg-type]
    image_builds.write(
        path,
        [
            {"name": "pytorch-notebook", "state": "building", "position": 1, "of": 2},
            {"name": "tensorflow-cpu-notebook", "state": "waiting", "position": 2, "of": 2},
        ],
    )
    building = SpawnForm.building(form, cat)  # type: ignore[arg-type]
    by_image = {e.name: image_builds.repository(e.image) for e in cat.environments}
    assert set(building) == {
        n for n, repo in by_image.items() if repo.endswith(("pytorch-notebook", "tensorflow-cpu-notebook"))
    }
    pytorch = next(n for n, repo in by_image.items() if repo.endswith("pytorch-notebook"))
    assert building[pytorch] == "building, 1 of 2"
