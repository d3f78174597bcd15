"""Where the admin console reads and writes the catalog.

- **The file** (the local platform, a hub run by hand): read and replaced in place; the
  hub's store sees the new file at its next read.
- **A ConfigMap** (a Helm install: ``spawner.catalog_configmap``): read and replaced through
  the Kubernetes API, with its ``resourceVersion`` (an edit another hub made meanwhile is
  refused, not lost). The hub and the jobs service read the ConfigMap as a mounted file,
  which the kubelet updates within a minute or so; the hub uses its own edit at once.

Either way the document is checked as the hub's own load checks it before anything is
written, and a refusal (400 naming ``catalog``) writes nothing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiException

from moonhub_core.catalog import Catalog, CatalogError, load, shared_store
from moonhub_core.errors import Conflict, FieldError, ReadOnly, Unavailable

KEY = "catalog.yaml"
HEADER = "# edited in the MoonHub admin console\n"


def render(doc: dict[str, Any]) -> tuple[str, Catalog]:
    """The document as written, and the catalog it loads as; FieldError ``catalog`` (400)
    when the hub would refuse it."""
    text = HEADER + yaml.safe_dump(doc, sort_keys=False)
    fd, tmp = tempfile.mkstemp(prefix=".catalog-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return text, load(Path(tmp))
    except CatalogError as e:
        raise FieldError("catalog", str(e).replace(f"{tmp}: ", "")) from None
    finally:
        os.unlink(tmp)


def write_atomically(path: Path, text: str) -> None:
    """``path`` replaced by ``text`` at once (readers see the old file or the new one), world
    readable as the catalog must be."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def parse(text: str, where: str) -> dict[str, Any]:
    """The catalog document in ``text``; ReadOnly (409) when it is not a YAML mapping."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ReadOnly("catalog", f"{where} can not be read as YAML: {e}; fix it") from None
    if doc is not None and not isinstance(doc, dict):
        raise ReadOnly("catalog", f"{where} is not a YAML mapping; fix it")
    return dict(doc or {})


class CatalogSource(Protocol):
    #: what an admin is told the catalog is (a path, or the ConfigMap)
    where: str

    async def read(self) -> str: ...

    async def write(self, doc: dict[str, Any]) -> str:
        """Writes ``doc`` (checked first); returns the text written."""
        ...


class FileSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    async def read(self) -> str:
        try:
            return self.path.read_text()
        except OSError as e:
            raise ReadOnly("catalog", f"{self.path} can not be read: {e.strerror}; fix the file") from None

    async def write(self, doc: dict[str, Any]) -> str:
        text, _ = render(doc)
        write_atomically(self.path, text)
        return text


class ConfigMapSource:
    def __init__(self, core: client.CoreV1Api, ref: str, mounted: Path) -> None:
        self.core = core
        self.namespace, _, self.name = ref.partition("/")
        self.mounted = mounted
        self.where = f"ConfigMap {self.namespace}/{self.name}"
        self._version: str | None = None

    async def read(self) -> str:
        try:
            cm = await self.core.read_namespaced_config_map(self.name, self.namespace)
        except ApiException as e:
            raise Unavailable("catalog", f"{self.where} can not be read: {e.status} {e.reason}") from None
        self._version = cm.metadata.resource_version
        return str((cm.data or {}).get(KEY, ""))

    async def write(self, doc: dict[str, Any]) -> str:
        text, catalog = render(doc)
        if self._version is None:
            await self.read()
        body = {"metadata": {"name": self.name, "resourceVersion": self._version}, "data": {KEY: text}}
        try:
            # a merge patch naming the version read: refused (409) if it changed since
            await self.core.patch_namespaced_config_map(self.name, self.namespace, body)
        except ApiException as e:
            if e.status == 409:
                raise Conflict("catalog", f"{self.where} changed while this edit was made; try again") from None
            raise Unavailable("catalog", f"{self.where} can not be written: {e.status} {e.reason}") from None
        finally:
            self._version = None
        shared_store(self.mounted).put(catalog)  # this hub uses it now; the mount follows
        return text
