"""Map container images to local Python environments (development and tests only).

There is no container runtime on the machine: a pod's container runs as a host process
whose ``PATH`` starts with the ``bin/`` folder of the environment its image maps to. The
mapping lives in ``localcluster/images.yaml``; an image that is not mapped leaves the
container waiting with reason ``ErrImageNeverPull`` and a message that names the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import REPO

MAPPING_FILE = Path(os.environ.get("MOONHUB_IMAGES", REPO / "localcluster" / "images.yaml"))
ENVS_DIR = os.environ.get("MOONHUB_ENVS", "/var/cache/moonhub/envs")


@dataclass(frozen=True)
class LocalImage:
    """What an image means on this machine."""

    #: folders prepended to PATH (a virtual environment's bin/), relative to the repo
    path: tuple[str, ...] = ()
    #: the image's ENTRYPOINT and CMD
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    user: int = 0
    workdir: str = "/"
    #: HOME of ``user``; made fresh (tmpfs) for every container unless a volume covers it
    home: str | None = None


class ImageNotMapped(LookupError):
    pass


def repository(image: str) -> str:
    """``registry/name:tag@digest`` -> ``registry/name``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


def load_mapping(path: Path = MAPPING_FILE) -> dict[str, LocalImage]:
    data = yaml.safe_load(path.read_text()) or {}
    out = {}
    for name, spec in (data.get("images") or {}).items():
        spec = dict(spec or {})
        for key in ("path", "entrypoint", "cmd"):
            spec[key] = tuple(spec.get(key) or ())
        out[name] = LocalImage(**spec)
    return out


def resolve(image: str, mapping: dict[str, LocalImage]) -> LocalImage:
    found = mapping.get(image) or mapping.get(repository(image))
    if found is None:
        raise ImageNotMapped(
            f"image {image!r} is not mapped to a local environment in {MAPPING_FILE} "
            f"(known: {', '.join(sorted(mapping))})"
        )
    return found


def local_value(text: str) -> str:
    """``$MOONHUB_ENVS`` and ``$MOONHUB_REPO`` (this checkout) in a mapping's paths and env."""
    return text.replace("$MOONHUB_ENVS", ENVS_DIR).replace("$MOONHUB_REPO", str(REPO))


def search_path(img: LocalImage) -> str:
    dirs = [str((REPO / local_value(p)).resolve()) for p in img.path]
    return ":".join([*dirs, "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"])
