"""The image spec is the one place images are declared: the example catalog names exactly
its notebook images, tags and framework versions; parents resolve."""

from __future__ import annotations

from images.build import HERE, load_spec, target_flags
from localcluster.registry import ref
from tests.helpers import example_catalog

SPEC = load_spec()


def test_catalog_names_exactly_the_ci_notebook_images() -> None:
    """The local example catalog offers what CI and ``./moonhub up`` build: every CI
    notebook image, at its first tag, with the spec's framework and CUDA versions."""
    ci_notebooks = {ref(f"moonhub/{n}", i.tags[0]) for n, i in SPEC.images.items() if n.endswith("-notebook") and i.ci}
    assert {e.image for e in example_catalog().environments} == ci_notebooks
    for env in example_catalog().environments:
        img = SPEC.images[env.image.split("/")[-1].split(":")[0]]
        if img.framework:
            assert (env.framework, env.framework_version) == (img.framework["name"], img.framework["version"])
            # a CPU build has no CUDA libraries: its environment offers no GPUs
            assert env.cuda == ("" if img.cpu_build_of else img.framework["cuda"])
            # the tag says the framework's version and CUDA's (or cpu)
            major_minor = ".".join(img.framework["version"].split(".")[:2])
            accel = "cpu" if img.cpu_build_of else f"cuda{img.framework['cuda']}"
            assert img.tags[0] == f"{img.framework['name']}-{major_minor}-{accel}"


def test_cpu_builds_follow_their_cuda_image() -> None:
    """A CPU build is its CUDA image's Dockerfile, parent and framework; only the framework's
    requirements file differs, and that file pins the same framework version."""
    cpu_builds = [i for i in SPEC.images.values() if i.cpu_build_of]
    assert [i.name for i in cpu_builds] == ["tensorflow-cpu-notebook"]
    for cpu in cpu_builds:
        cuda = SPEC.images[cpu.cpu_build_of]
        assert (cpu.parent, cpu.context, cpu.framework) == (cuda.parent, cuda.context, cuda.framework)
        assert cpu.requirements[1:] == cuda.requirements[1:]
        pins = [
            line.split("==")
            for f in (cpu.requirements[0], cuda.requirements[0])
            for line in (HERE / cpu.context / f).read_text().splitlines()
            if "==" in line and not line.startswith("#")
        ]
        assert {(name.split("[")[0], version) for name, version in pins} == {
            (cuda.framework["name"], cuda.framework["version"])
        }


def test_lineage_and_descendants() -> None:
    assert [i.name for i in SPEC.lineage("pytorch-notebook")] == ["base-notebook", "pytorch-notebook"]
    assert set(SPEC.descendants("base-notebook")) == {
        "base-notebook",
        "pytorch-notebook",
        "tensorflow-notebook",
        "tensorflow-cpu-notebook",
    }
    assert SPEC.parent_ref(SPEC.images["base-notebook"]) == "moonhub/debian:bookworm"
    assert [i.name for i in SPEC.lineage("storage-agent")] == ["hub", "storage-agent"]
    ci = {
        "base-notebook",
        "hub",
        "pytorch-notebook",
        "tensorflow-cpu-notebook",
        "storage-helper",
        "storage-agent",
        "image-builder",
    }
    assert {n for n, i in SPEC.images.items() if i.ci} == ci


def test_wheels_are_resolved_for_the_images_python() -> None:
    flags = target_flags({"python": "3.11.2", "glibc": "2.36"})
    assert "--python-version=3.11.2" in flags and "--abi=cp311" in flags
    assert "--platform=manylinux_2_36_x86_64" in flags and "--platform=manylinux2014_x86_64" in flags
