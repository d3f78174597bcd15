"""Pushing an image to the local registry, where containerd pulls from (``images.build``
calls it for every image it builds)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from localcluster import registry

CACHE = Path(os.environ.get("MOONHUB_CACHE", Path.home() / ".cache" / "moonhub"))

#: skopeo's options for the local registry: plain HTTP both ways
SKOPEO = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--src-tls-verify=false"]
#: what skopeo pushed: per image reference, the local image's ID and the manifest it became
PUSHED = CACHE / "registry-pushed.json"


def push_image(name: str, tags: list[str], say: Callable[[str], None]) -> float:
    """Push ``moonhub/<name>`` with ``tags`` to the local registry (containerd pulls from there).

    With skopeo (``./moonhub`` installs Debian's), the layers go compressed with zstd, which
    uses both cores: the PyTorch image's first push took 127 s against ``docker push``'s
    253 s of gzip on one core (docs/images.md); containerd pulls zstd layers as it does gzip
    ones. An image skopeo pushed before is not read again while the registry still holds the
    manifest it became under that tag (``PUSHED`` records the pairs; the manifest is OCI, so
    its config digest is not the image's ID); the other tags are copied registry to registry
    (a manifest each, no layer). Without skopeo: ``docker push``, as before."""
    t0 = time.monotonic()
    repository = f"moonhub/{name}"
    copied = True
    if shutil.which("skopeo"):
        copied = False
        pushed = _pushed()
        image = subprocess.run(
            ["docker", "image", "inspect", f"{repository}:{tags[0]}", "-f", "{{.Id}}"],
            check=True,
            capture_output=True,
            text=True,
        )
        first = registry.ref(repository, tags[0])
        was = pushed.get(first) or {}
        if was.get("image") != image.stdout.strip() or was.get("manifest") != registry.manifest_digest(
            repository, tags[0]
        ):
            with tempfile.TemporaryDirectory() as tmp:
                digest = Path(tmp) / "digest"
                _skopeo(
                    f"docker-daemon:{repository}:{tags[0]}",
                    first,
                    "--dest-compress-format",
                    "zstd",
                    "--digestfile",
                    str(digest),
                )
                was = {"image": image.stdout.strip(), "manifest": digest.read_text().strip()}
                copied = True
            pushed[first] = was
            _write_pushed(pushed)
        for tag in tags[1:]:
            if registry.manifest_digest(repository, tag) != was["manifest"]:
                _skopeo(f"docker://{first}", registry.ref(repository, tag), "--preserve-digests")
                copied = True
    else:
        for tag in tags:
            local, remote = f"{repository}:{tag}", registry.ref(repository, tag)
            subprocess.run(["docker", "tag", local, remote], check=True)
            proc = subprocess.run(["docker", "push", "-q", remote], capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit(f"pushing {remote} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    if copied:
        say(f"pushed moonhub/{name} ({', '.join(tags)}) to {registry.REGISTRY} in {time.monotonic() - t0:.1f}s")
    else:
        say(f"moonhub/{name} ({', '.join(tags)}): the registry has it already")
    return time.monotonic() - t0


def _skopeo(source: str, dest: str, *options: str) -> None:
    proc = subprocess.run([*SKOPEO, *options, source, f"docker://{dest}"], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"pushing {dest} failed (skopeo): {proc.stderr.strip() or proc.stdout.strip()}")


def _pushed() -> dict[str, dict[str, str]]:
    try:
        found = json.loads(PUSHED.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _write_pushed(pushed: dict[str, dict[str, str]]) -> None:
    PUSHED.parent.mkdir(parents=True, exist_ok=True)
    tmp = PUSHED.with_name(f"{PUSHED.name}.{os.getpid()}")
    tmp.write_text(json.dumps(pushed, indent=1, sort_keys=True))
    os.replace(tmp, PUSHED)
