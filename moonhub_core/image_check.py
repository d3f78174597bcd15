"""Checks an image before the catalog offers it: its registry must know the reference, and
the manifest digest it answers is what the catalog records (``image_digest``), so pods run
that image even if the tag moves later.

Asks the registry's API (the OCI distribution spec's ``HEAD /v2/<repo>/manifests/<ref>``),
anonymously, with the bearer-token exchange registries such as Docker Hub ask for. A
registry on a loopback address, or one named in ``insecure`` (the platform document's
``spawner.insecure_registries``), is asked over plain HTTP; every other over HTTPS.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from .errors import FieldError

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TIMEOUT = 15.0


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    #: a tag, or a digest (``sha256:...``)
    reference: str


def parse(image: str) -> Reference:
    """Pure: an image reference's registry, repository and tag or digest, as Docker and
    containerd read it (no registry host: Docker Hub; no tag: ``latest``)."""
    rest, _, digest = image.partition("@")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = "registry-1.docker.io", rest
        if "/" not in path:
            path = f"library/{path}"
    name, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
    if not name or not re.fullmatch(r"[a-z0-9]+([._/-][a-z0-9]+)*", name):
        raise FieldError("image", f"{image!r} is not an image reference (e.g. registry.example.com/team/image:tag)")
    if digest and not DIGEST.match(digest):
        raise FieldError("image", f"{digest!r} is not a sha256 digest")
    return Reference(registry, name, digest or tag or "latest")


def plain_http(registry: str, insecure: list[str]) -> bool:
    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry.split("]")[0] + "]"
    return registry in insecure or host in ("localhost", "[::1]") or host.startswith("127.")


def _challenge(header: str) -> dict[str, str]:
    """``Bearer realm="...",service="...",scope="..."`` as a dict (pure)."""
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


async def _ask(url: str, method: str, headers: dict[str, str]) -> HTTPResponse:
    """One request to a registry, with the bearer-token exchange when it asks for one."""
    client = AsyncHTTPClient()

    async def fetch() -> HTTPResponse:
        return await client.fetch(
            HTTPRequest(url, method=method, headers=headers, request_timeout=TIMEOUT, follow_redirects=True),
            raise_error=False,
        )

    resp = await fetch()
    if resp.code == 401 and "bearer" in resp.headers.get("WWW-Authenticate", "").lower():
        c = _challenge(resp.headers["WWW-Authenticate"])
        query = urlencode({k: v for k, v in c.items() if k in ("service", "scope")})
        token = await client.fetch(f"{c.get('realm', '')}?{query}", request_timeout=TIMEOUT)
        body = json.loads(token.body)
        headers["Authorization"] = f"Bearer {body.get('token') or body.get('access_token')}"
        resp = await fetch()
    return resp


def _refusal(image: str, registry: str, resp: HTTPResponse) -> FieldError | None:
    if resp.code == 404:
        return FieldError("image", f"{image} is not in the registry {registry} (no such repository or tag)")
    if resp.code in (401, 403):
        return FieldError("image", f"the registry {registry} does not let the hub read {image} ({resp.code})")
    if resp.code != 200:
        why = resp.error or resp.reason
        return FieldError("image", f"the registry {registry} answered {resp.code} for {image}: {why}")
    return None


async def digest_of(image: str, insecure: list[str] | None = None) -> str:
    """The manifest digest the registry answers for ``image``; FieldError ``image`` (400)
    saying what the registry said when it does not know it or can not be asked."""
    ref = parse(image)
    scheme = "http" if plain_http(ref.registry, insecure or []) else "https"
    url = f"{scheme}://{ref.registry}/v2/{ref.repository}/manifests/{ref.reference}"
    try:
        resp = await _ask(url, "HEAD", {"Accept": ACCEPT})
    except (OSError, HTTPClientError, ValueError) as e:
        raise FieldError("image", f"the registry {ref.registry} could not be asked for {image}: {e}") from None
    refused = _refusal(image, ref.registry, resp)
    if refused:
        raise refused
    digest = resp.headers.get("Docker-Content-Digest", "")
    if not DIGEST.match(digest):
        raise FieldError("image", f"the registry {ref.registry} gave no sha256 digest for {image}")
    return digest


async def manifest_and_config(image: str, insecure: list[str] | None = None) -> tuple[dict, dict]:
    """An image's manifest and its config (the OCI config blob: user, command, labels), as
    the registry holds them; FieldError ``image`` as :func:`digest_of`. A multi-platform index
    is refused: MoonHub's images are built for one platform."""
    ref = parse(image)
    scheme = "http" if plain_http(ref.registry, insecure or []) else "https"
    base = f"{scheme}://{ref.registry}/v2/{ref.repository}"
    try:
        resp = await _ask(f"{base}/manifests/{ref.reference}", "GET", {"Accept": ACCEPT})
        refused = _refusal(image, ref.registry, resp)
        if refused:
            raise refused
        manifest = json.loads(resp.body)
        config_digest = (manifest.get("config") or {}).get("digest", "")
        if not DIGEST.match(config_digest):
            raise FieldError("image", f"{image}: its manifest names no config (a multi-platform index?)")
        resp = await _ask(f"{base}/blobs/{config_digest}", "GET", {})
        refused = _refusal(image, ref.registry, resp)
        if refused:
            raise refused
        return manifest, json.loads(resp.body)
    except (OSError, HTTPClientError, ValueError) as e:
        raise FieldError("image", f"the registry {ref.registry} could not be asked for {image}: {e}") from None
