"""A run's outputs, kept with the run: the executed notebook and the files the notebook wrote
to its run folder (``$MOONHUB_RUN_DIR``). The run's pod sends them as it ends (with its
launch key); they live in the service's store beside the snapshots and go when the run goes
(history trimmed, job deleted).

The notebook is shown rendered as HTML, sanitised, and served with a Content-Security-Policy
``sandbox`` (no script runs, and the page has no origin of its own to act with), so a
notebook's JavaScript or HTML output can not act in the lab's origin. Files are served as
downloads, never rendered.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from moonhub_core.errors import FieldError

#: what a rendered output or a file may do in a browser: nothing but show itself
CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:"
MAX_FILES = 200
PART = re.compile(r"[A-Za-z0-9._ -]{1,128}")


def check_file_path(path: str) -> str:
    """A path in the run folder: relative, at most 8 parts of letters, digits, '.', '_',
    '-' and spaces, no '..'."""
    p = PurePosixPath(path)
    parts = p.parts
    if p.is_absolute() or not parts or len(parts) > 8 or any(x in (".", "..") or not PART.fullmatch(x) for x in parts):
        raise FieldError("path", f"{path!r} is not a file path in the run folder")
    return str(p)


class OutputStore:
    """``<root>/<run>/output.ipynb.gz`` and ``<root>/<run>/files/...``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _run(self, run: str) -> Path:
        if not re.fullmatch(r"[a-z0-9-]{1,63}", run):
            raise FieldError("run", f"{run!r} is not a run's name")
        return self.root / run

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def put_notebook(self, run: str, gz: bytes) -> int:
        """Keep the executed notebook (gzip); returns its size unpacked."""
        size = len(gzip.decompress(gz))
        self._write(self._run(run) / "output.ipynb.gz", gz)
        return size

    def notebook(self, run: str) -> bytes | None:
        path = self._run(run) / "output.ipynb.gz"
        return gzip.decompress(path.read_bytes()) if path.exists() else None

    def used(self, run: str) -> int:
        folder = self._run(run)
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0

    def put_file(self, run: str, path: str, data: bytes) -> None:
        folder = self._run(run) / "files"
        if len(self.files(run)) >= MAX_FILES and not (folder / path).exists():
            raise FieldError("path", f"a run keeps at most {MAX_FILES} files")
        self._write(folder / check_file_path(path), data)

    def files(self, run: str) -> list[dict[str, Any]]:
        folder = self._run(run) / "files"
        if not folder.exists():
            return []
        return [
            {"path": str(p.relative_to(folder)), "bytes": p.stat().st_size}
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".incoming-")
        ]

    def file(self, run: str, path: str) -> Path | None:
        found = self._run(run) / "files" / check_file_path(path)
        return found if found.is_file() else None

    def remove(self, run: str) -> None:
        shutil.rmtree(self._run(run), ignore_errors=True)


def render(notebook: bytes) -> str:
    """The executed notebook as one HTML page: inputs and outputs, sanitised (no script, no
    event handler, no form survives), images inline."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.reads(notebook.decode("utf-8"), as_version=4)
    exporter = HTMLExporter(template_name="lab", sanitize_html=True, embed_images=True)
    html, _ = exporter.from_notebook_node(nb)
    return str(html)
