"""Single-layer images of a few static files, pushed to the local registry over its HTTP API.

The node's own images (the pause container and CoreDNS) are one static binary each; making
them needs no Docker: :func:`layer` tars the files, :func:`manifest` describes the image
(Docker's v2 schema 2, what containerd and every registry take), :func:`push` uploads the
blobs and the manifest (`distribution`'s API: POST an upload, PUT it with its digest).
The builders are pure and unit-tested; :func:`push` talks to the registry.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return _digest(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "size": len(self.data), "digest": self.digest}


def layer(files: dict[str, Path]) -> tuple[Blob, str]:
    """A gzipped tar of ``files`` (path in the image -> file on the host, mode kept, owned by
    root, time 0 so the same files give the same digest) and its uncompressed digest."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, src in sorted(files.items()):
            info = tarfile.TarInfo(name.lstrip("/"))
            data = src.read_bytes()
            info.size, info.mode, info.mtime = len(data), src.stat().st_mode & 0o7777, 0
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return Blob(gzip.compress(tar_bytes, mtime=0), LAYER_TYPE), _digest(tar_bytes)


def image_config(diff_id: str, entrypoint: list[str], user: str) -> Blob:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "User": user, "Env": ["PATH=/"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    return Blob(json.dumps(doc, sort_keys=True).encode(), CONFIG_TYPE)


def manifest(config: Blob, layer_blob: Blob) -> Blob:
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config.descriptor(),
        "layers": [layer_blob.descriptor()],
    }
    return Blob(json.dumps(doc, sort_keys=True).encode(), MANIFEST_TYPE)


def _request(method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    return urllib.request.urlopen(req, timeout=60)


def push(registry: str, repository: str, tag: str, files: dict[str, Path], entrypoint: list[str], user: str) -> str:
    """Push a one-layer image of ``files`` as ``registry/repository:tag``; return the reference."""
    base = f"http://{registry}/v2/{repository}"
    layer_blob, diff_id = layer(files)
    config = image_config(diff_id, entrypoint, user)
    for blob in (layer_blob, config):
        try:
            _request("HEAD", f"{base}/blobs/{blob.digest}")
            continue  # already there
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
        with _request("POST", f"{base}/blobs/uploads/") as resp:
            location = resp.headers["Location"]
        if location.startswith("/"):
            location = f"http://{registry}{location}"
        sep = "&" if "?" in location else "?"
        _request(
            "PUT",
            f"{location}{sep}digest={blob.digest}",
            blob.data,
            {"Content-Type": "application/octet-stream"},
        ).close()
    m = manifest(config, layer_blob)
    _request("PUT", f"{base}/manifests/{tag}", m.data, {"Content-Type": MANIFEST_TYPE}).close()
    return f"{registry}/{repository}:{tag}"
