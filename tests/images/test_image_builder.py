"""The image builder's image (docs/environment-images.md): BuildKit and RootlessKit at the
spec's versions, newuidmap/newgidmap with file capabilities (a setuid-root newuidmap gets
EPERM on uid_map in a container), its user 1000, and a build run as the cluster runs it:
uid 1000, an Unconfined seccomp profile, nothing else granted. The build needs no registry
(FROM scratch), so it runs here; the cluster tests pull, push and bound real builds."""

from __future__ import annotations

import subprocess

import pytest

from images.build import image_exists, load_spec

IMAGE = "image-builder"
SPEC = load_spec()
REF = SPEC.images[IMAGE].ref


def _run(*argv: str, docker: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    if not image_exists(REF):
        pytest.fail(f"{REF} is not built: ./moonhub test builds it (python -m images.build)")
    return subprocess.run(["docker", "run", "--rm", *docker, REF, *argv], capture_output=True, text=True, timeout=300)


def test_the_programs_are_the_specs_and_newuidmap_has_a_capability_not_setuid() -> None:
    out = _run("sh", "-c", "buildkitd --version; rootlesskit --version; getcap /usr/bin/newuidmap /usr/bin/newgidmap; "
               "stat -c %A /usr/bin/newuidmap; id -u; grep builder /etc/subuid").stdout  # fmt: skip
    assert f"buildkitd github.com/moby/buildkit {SPEC.buildkit['buildkit']}" in out, out
    assert f"rootlesskit version {SPEC.buildkit['rootlesskit'].lstrip('v')}" in out, out
    assert "/usr/bin/newuidmap cap_setuid=ep" in out and "/usr/bin/newgidmap cap_setgid=ep" in out, out
    assert "-rwxr-xr-x" in out and "1000" in out.split() and "builder:100000:65536" in out, out


def test_a_build_runs_rootless_as_uid_1000_and_leaves_an_oci_archive() -> None:
    script = "moonhub-build && tar -tf /work/image.tar | grep -c blobs/sha256/ && id -u"
    r = _run(
        "sh", "-c", script,
        docker=(
            "--user", "1000:1000", "--security-opt", "seccomp=unconfined", "--tmpfs", "/work:uid=1000,gid=1000,exec",
            "-e", "BUILD_DOCKERFILE=FROM scratch\nCOPY requirements.txt /requirements.txt\n",
            "-e", "BUILD_REQUIREMENTS=tabulate==0.9.0", "-e", "BUILD_DISK_BYTES=1073741824",
        ),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "moonhub-build: starting BuildKit" in r.stdout and "moonhub-build: built:" in r.stdout, r.stdout
    blobs, uid = r.stdout.split()[-2:]
    assert int(blobs) >= 3 and uid == "1000", r.stdout  # a layer, a config, a manifest
