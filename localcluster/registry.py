"""The local image registry: distribution's ``registry`` (built from the Go module proxy) on
``127.0.0.1:5000``, its data in ``~/.cache/moonhub/registry``.

One per machine, shared by every local cluster (whose containerd pulls from it) and by
``./moonhub images`` (which pushes to it). It runs supervised with its own pid file and log
in ``~/.cache/moonhub/run`` and ``.../logs``; :func:`ensure` starts it when nothing answers,
:func:`stop` ends it (``./moonhub down``).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import yaml

from .supervisor import StartError, Supervisor, ensure_free, http_ok

#: Docker and containerd take 127.0.0.0/8 registries over plain HTTP
REGISTRY = os.environ.get("MOONHUB_REGISTRY", "127.0.0.1:5000")
CACHE = Path(os.environ.get("MOONHUB_CACHE", Path.home() / ".cache" / "moonhub"))
DATA = CACHE / "registry"
HERE = Path(__file__).resolve().parent


def url() -> str:
    return f"http://{REGISTRY}/v2/"


def ref(repository: str, tag: str) -> str:
    """``moonhub/base-notebook``, ``latest`` -> ``127.0.0.1:5000/moonhub/base-notebook:latest``."""
    return f"{REGISTRY}/{repository}:{tag}"


def images() -> list[str]:
    """Every ``moonhub/*`` reference the registry holds (repository:tag)."""

    def get(path: str) -> dict:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/{path}", timeout=10) as resp:
            return dict(json.load(resp))

    refs = []
    for repo in get("_catalog").get("repositories") or []:
        if repo.startswith("moonhub/"):
            refs += [ref(repo, tag) for tag in get(f"{repo}/tags/list").get("tags") or []]
    return sorted(refs)


#: the manifest types a push may leave (Docker's own; OCI's, as skopeo writes them)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


def manifest_digest(repository: str, tag: str) -> str | None:
    """The digest of the manifest ``repository:tag`` names in the registry; None when the
    tag is not there."""
    req = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.headers.get("Docker-Content-Digest") or None
    except (OSError, ValueError):
        return None


def config(addr: str = REGISTRY, *, read_only: bool = False, htpasswd: Path | None = None) -> str:
    """The registry's configuration, listening on ``addr``: the machine's on loopback, or a
    node's doors on its address for the image builder's pods (the same storage: one
    registry's content): one ``read_only`` (the base images' pulls; distribution answers a
    push 405), one that takes pushes only with a login from ``htpasswd`` (the push's)."""
    storage: dict[str, object] = {"filesystem": {"rootdirectory": str(DATA)}, "delete": {"enabled": True}}
    if read_only:
        storage["maintenance"] = {"readonly": {"enabled": True}}
    doc: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": storage,
        "http": {"addr": addr},
    }
    if htpasswd is not None:
        doc["auth"] = {"htpasswd": {"realm": "moonhub-builds", "path": str(htpasswd)}}
    return yaml.safe_dump(doc)


#: the user name of the node's push door (its password is the cluster's, made once)
PUSH_USER = "moonhub-builds"


def push_login(state: Path) -> tuple[str, str]:
    """The node's push door's login (user, password), made once per cluster state: the
    password in ``<state>/registry-push/password``, its bcrypt hash in ``htpasswd`` next to
    it (the one format distribution reads)."""
    import secrets

    import bcrypt

    folder = state / "registry-push"
    folder.mkdir(parents=True, exist_ok=True)
    password_file = folder / "password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(24))
        password_file.chmod(0o600)
    password = password_file.read_text().strip()
    htpasswd = folder / "htpasswd"
    line = htpasswd.read_text().strip() if htpasswd.exists() else ""
    if not line.startswith(f"{PUSH_USER}:") or not bcrypt.checkpw(password.encode(), line.split(":", 1)[1].encode()):
        htpasswd.write_text(f"{PUSH_USER}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()}\n")
    return PUSH_USER, password


def _supervisor() -> Supervisor:
    return Supervisor(CACHE / "run", CACHE / "logs", CACHE)


def ensure(bin_dir: Path | None = None) -> None:
    """Start the registry unless one answers."""
    if http_ok(url()):
        return
    if bin_dir is None:
        out = subprocess.run([str(HERE / "build.sh")], check=True, stdout=subprocess.PIPE, text=True)
        bin_dir = Path(out.stdout.strip().splitlines()[-1])
    DATA.mkdir(parents=True, exist_ok=True)
    conf = CACHE / "registry.yaml"
    conf.write_text(config())
    sup = _supervisor()
    if sup.pid("registry") is None:
        host, port = REGISTRY.rsplit(":", 1)
        ensure_free("the image registry", [(host, int(port))])
    sup.start("registry", [str(bin_dir / "registry"), "serve", str(conf)])
    try:
        sup.wait_healthy("registry", url(), timeout=30)
    except StartError as e:
        raise StartError(f"the image registry did not start: {e}") from None


def stop() -> bool:
    return _supervisor().stop("registry")
