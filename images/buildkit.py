"""The image builder's programs (``images/image-builder``): BuildKit's ``buildkitd`` and
``buildctl`` and RootlessKit's ``rootlesskit``, built on the host from the Go module proxy once
per version (``images/spec.yaml``, ``buildkit:``) and copied into the image's build context
(docs/environment-images.md).

BuildKit's module can not be ``go install``-ed by version (its ``go.mod`` has ``exclude``
lines, which Go refuses outside the main module), so its source is taken from the module
cache and built as the main module; RootlessKit installs by version. Static binaries
(``CGO_ENABLED=0``): the image needs no Go and no C library of the host's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

#: what the image gets, by the module and package that build it
PROGRAMS = ("buildkitd", "buildctl", "rootlesskit")


def install(buildkit: str, rootlesskit: str, cache: Path, into: Path, say: Callable[[str], None]) -> None:
    """The three programs of ``buildkit`` and ``rootlesskit`` (versions), built once into the
    cache, copied to ``into``."""
    cached = cache / "buildkit" / f"{buildkit}-rootlesskit-{rootlesskit}-v2"
    if not all((cached / p).exists() for p in PROGRAMS):
        say(f"BuildKit {buildkit} and RootlessKit {rootlesskit}: go build (a few minutes, once)")
        t0 = time.monotonic()
        building = cached.with_name(cached.name + ".partial")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
        flags = ["-trimpath", "-ldflags", "-s -w"]
        got = subprocess.run(
            ["go", "mod", "download", "-json", f"github.com/moby/buildkit@{buildkit}"],
            check=True,
            capture_output=True,
            text=True,
            cwd=building,
            env=env,
        )
        src = building / "src"
        shutil.copytree(json.loads(got.stdout)["Dir"], src)
        for p in src.rglob("*"):  # the module cache's files are read-only; go.sum is written
            p.chmod(p.stat().st_mode | 0o200)
        # its version as BuildKit's own release builds stamp it (`buildkitd --version`)
        stamp = f"-s -w -X github.com/moby/buildkit/version.Version={buildkit}"
        subprocess.run(
            [
                "go",
                "build",
                "-trimpath",
                "-ldflags",
                stamp,
                "-o",
                str(building) + "/",
                "./cmd/buildkitd",
                "./cmd/buildctl",
            ],
            check=True,
            cwd=src,
            env=env,
        )
        subprocess.run(
            ["go", "install", *flags, f"github.com/rootless-containers/rootlesskit/v2/cmd/rootlesskit@{rootlesskit}"],
            check=True,
            cwd=building,
            env={**env, "GOBIN": str(building), "GOFLAGS": ""},
        )
        shutil.rmtree(src)
        shutil.rmtree(cached, ignore_errors=True)
        building.rename(cached)
        say(f"BuildKit built in {time.monotonic() - t0:.0f}s")
    into.mkdir(parents=True, exist_ok=True)
    for program in PROGRAMS:
        shutil.copy2(cached / program, into / program)
