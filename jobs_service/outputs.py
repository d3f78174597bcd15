"""A run's outputs, kept with the run: the executed notebook and the files the notebook wrote
to its run folder (``$MOONHUB_RUN_DIR``). The run's pod sends them as it ends (with its
launch key); they live in the service's store beside the snapshots and go when the run goes
(history trimmed, job deleted). The run's log is kept there too when the run ends
(:mod:`.run_logs`), so it outlives the run's Job and pod.

The notebook is shown rendered as HTML, sanitised, and served with a Content-Security-Policy
``sandbox`` (no script runs, and the page has no origin of its own to act with), so a
notebook's JavaScript or HTML output can not act in the lab's origin. Files are served as
downloads, never rendered.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

from moonhub_core.errors import FieldError

from . import bodies

#: what a rendered output or a file may do in a browser: nothing but show itself
CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:"
MAX_FILES = 200
#: executed notebooks larger than this (unpacked) are offered as a download, not rendered
RENDER_BYTES = 32 * 1024 * 1024
PART = re.compile(r"[A-Za-z0-9._ -]{1,128}")


def check_file_path(path: str) -> str:
    """A path in the run folder: relative, at most 8 parts of letters, digits, '.', '_',
    '-' and spaces, no '..'."""
    p = PurePosixPath(path)
    parts = p.parts
    if p.is_absolute() or not parts or len(parts) > 8 or any(x in (".", "..") or not PART.fullmatch(x) for x in parts):
        raise FieldError("path", f"{path!r} is not a file path in the run folder")
    return str(p)


#: the kept log in a run's folder (a run's or a pipeline task's Job: one log each), and the
#: mark left when it went to make room for its owner's newer ones
LOG, LOG_DROPPED = "log.json", "log.dropped"
#: what the run used, from Prometheus (:mod:`.run_resources`)
RESOURCES = "resources.json"


class OutputStore:
    """``<root>/<run>/output.ipynb.gz``, ``<root>/<run>/files/...``, ``<root>/<run>/log.json``
    and ``<root>/<run>/resources.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _run(self, run: str) -> Path:
        if not re.fullmatch(r"[a-z0-9-]{1,63}", run):
            raise FieldError("run", f"{run!r} is not a run's name")
        return self.root / run

    def incoming(self, run: str) -> tuple[IO[bytes], Path]:
        """A new file in the run's folder to receive an upload into (then ``put_*_from``)."""
        folder = self._run(run)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".incoming-")
        return os.fdopen(fd, "wb"), Path(tmp)

    def put_notebook_from(self, run: str, received: Path, limit: int) -> int:
        """Keep the executed notebook (gzip, in ``received``, moved into place); returns its
        size unpacked, which may be at most ``limit`` (unpacked in bounded steps)."""
        with received.open("rb") as f:
            size = bodies.gunzip_to(f, None, limit)
        os.replace(received, self._run(run) / "output.ipynb.gz")
        return size

    def put_notebook(self, run: str, gz: bytes, limit: int = 128 * 2**20) -> int:
        """:meth:`put_notebook_from` for a notebook in memory."""
        f, tmp = self.incoming(run)
        with f:
            f.write(gz)
        try:
            return self.put_notebook_from(run, tmp, limit)
        finally:
            tmp.unlink(missing_ok=True)

    def notebook(self, run: str) -> bytes | None:
        path = self._run(run) / "output.ipynb.gz"
        return gzip.decompress(path.read_bytes()) if path.exists() else None

    def used(self, run: str) -> int:
        folder = self._run(run)
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0

    def put_file_from(self, run: str, path: str, received: Path) -> None:
        """Keep a file of the run folder (received into ``received``, moved into place)."""
        folder = self._run(run) / "files"
        target = folder / check_file_path(path)
        if len(self.files(run)) >= MAX_FILES and not target.exists():
            raise FieldError("path", f"a run keeps at most {MAX_FILES} files")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            raise FieldError("path", f"{path!r} is a folder of the run's files")
        os.replace(received, target)

    def put_file(self, run: str, path: str, data: bytes) -> None:
        """:meth:`put_file_from` for a file in memory."""
        f, tmp = self.incoming(run)
        with f:
            f.write(data)
        try:
            self.put_file_from(run, path, tmp)
        finally:
            tmp.unlink(missing_ok=True)

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

    def _put_json(self, run: str, name: str, doc: dict[str, Any]) -> None:
        """``doc`` as the run's file ``name``, replacing one kept before (whole or not at all)."""
        folder = self._run(run)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".incoming-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.replace(tmp, folder / name)

    def put_log(self, run: str, kept: dict[str, Any]) -> None:
        """Keep the run's log (a JSON document: pod, text, truncated), replacing one kept before."""
        self._put_json(run, LOG, kept)

    def put_resources(self, run: str, doc: dict[str, Any]) -> None:
        """Keep what the run used (a JSON document: :func:`.run_resources.summary`)."""
        self._put_json(run, RESOURCES, doc)

    def resources(self, run: str) -> dict[str, Any] | None:
        """What the run used, as kept when it ended; None when nothing was kept."""
        try:
            found = json.loads((self._run(run) / RESOURCES).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return found if isinstance(found, dict) else None

    def kept_log(self, run: str) -> dict[str, Any] | None:
        """The kept log; ``{"dropped": True}`` when it went for newer ones; None when none was kept."""
        folder = self._run(run)
        try:
            found = json.loads((folder / LOG).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"dropped": True} if (folder / LOG_DROPPED).exists() else None
        return found if isinstance(found, dict) else None

    def log_sizes(self, runs: list[str]) -> list[tuple[float, int, str]]:
        """(kept at, bytes, run) of each of ``runs`` that has a kept log, the oldest first."""
        out = []
        for run in runs:
            try:
                st = (self._run(run) / LOG).stat()
            except FileNotFoundError:
                continue
            out.append((st.st_mtime, st.st_size, run))
        return sorted(out)

    def drop_log(self, run: str) -> None:
        """The run's kept log goes (to make room); a mark says so to whoever asks for it."""
        folder = self._run(run)
        (folder / LOG_DROPPED).touch()
        (folder / LOG).unlink(missing_ok=True)


def render(notebook: bytes) -> str:
    """The executed notebook as one HTML page: inputs and outputs, sanitised (no script, no
    event handler, no form survives). Reads no file: the notebook is the run's, so hostile.

    Images show when the notebook carries them (outputs, and a markdown cell's attachments);
    a markdown image that names a path (``![x](.state/hub/dev-password)``) is left a
    reference that the page's CSP keeps from loading, never read and inlined: nbconvert's
    ``embed_images`` would read any file the service can, relative to its working folder."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.reads(notebook.decode("utf-8"), as_version=4)
    exporter = HTMLExporter(template_name="lab", sanitize_html=True, embed_images=False)
    # no ``metadata.path`` either: nothing in the page is resolved against a folder here
    html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": "output"}})
    return str(html)
