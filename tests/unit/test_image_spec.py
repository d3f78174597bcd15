"""The image spec is the one place images are declared: the example catalog names exactly
its notebook images, tags and framework versions; parents resolve."""

from __future__ import annotations

from pathlib import Path

from images.build import load_spec, target_flags
from localcluster.registry import ref
from spawner_ext.catalog import load

CATALOG = load(Path(__file__).resolve().parents[2] / "spawner_ext" / "examples" / "catalog.yaml")
SPEC = load_spec()


def test_catalog_names_exactly_the_notebook_images() -> None:
    notebook_images = {ref(f"moonhub/{n}", i.tags[0]) for n, i in SPEC.images.items() if n.endswith("-notebook")}
    assert {e.image for e in CATALOG.environments} == notebook_images
    for env in CATALOG.environments:
        img = SPEC.images[env.image.split("/")[-1].split(":")[0]]
        if img.framework:
            assert (env.framework, env.framework_version, env.cuda) == (
                img.framework["name"],
                img.framework["version"],
                img.framework["cuda"],
            )
            # the tag says the framework's and CUDA's version
            major_minor = ".".join(img.framework["version"].split(".")[:2])
            assert img.tags[0] == f"{img.framework['name']}-{major_minor}-cuda{img.framework['cuda']}"


def test_lineage_and_descendants() -> None:
    assert [i.name for i in SPEC.lineage("pytorch-notebook")] == ["base-notebook", "pytorch-notebook"]
    assert set(SPEC.descendants("base-notebook")) == {"base-notebook", "pytorch-notebook", "tensorflow-notebook"}
    assert SPEC.parent_ref(SPEC.images["base-notebook"]) == "moonhub/debian:bookworm"
    assert {n for n, i in SPEC.images.items() if i.ci} == {"base-notebook", "hub"}


def test_wheels_are_resolved_for_the_images_python() -> None:
    flags = target_flags({"python": "3.11.2", "glibc": "2.36"})
    assert "--python-version=3.11.2" in flags and "--abi=cp311" in flags
    assert "--platform=manylinux_2_36_x86_64" in flags and "--platform=manylinux2014_x86_64" in flags
