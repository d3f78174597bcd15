"""The catalog's edit history: every edit made in the admin console, who made it, when and
what it did, with the whole document after it, so that any earlier version can be restored
(the restore is an edit too, and audited the same way).

Kept as files in a folder (``spawner.catalog_history``; by default ``.catalog-history/``
next to the catalog file, on a Helm install the hub's state volume): ``log.jsonl`` (one
JSON object per revision) and ``<revision>.yaml`` (the document after it). Revision 0 is
the catalog as it was before the first console edit. The newest :data:`KEEP` documents are
kept; the log keeps every entry.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from moonhub_core.errors import NotFound

from .catalog_source import write_atomically

#: documents kept for restoring (the audit log itself is never cut)
KEEP = 50


@dataclass(frozen=True)
class Revision:
    revision: int
    at: str
    by: str
    #: what the edit did, in words ("added environment r-lang", "restored revision 3")
    summary: str
    #: the edit as the console sent it (none for revision 0)
    edit: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FileRevisions:
    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self._log = self.dir / "log.jsonl"

    def entries(self) -> list[Revision]:
        """Every revision, newest first."""
        try:
            lines = self._log.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [Revision(**json.loads(line)) for line in reversed(lines) if line.strip()]

    def latest(self) -> Revision | None:
        """The newest revision (None: no console edit yet); only its line is parsed."""
        try:
            lines = self._log.read_text().splitlines()
        except FileNotFoundError:
            return None
        last = next((line for line in reversed(lines) if line.strip()), None)
        return Revision(**json.loads(last)) if last else None

    def current(self) -> int:
        """The newest revision's number (-1: no console edit yet)."""
        latest = self.latest()
        return latest.revision if latest else -1

    def document(self, revision: int) -> str:
        """The catalog as it was after ``revision``; NotFound (404) for one never made or
        no longer kept."""
        path = self.dir / f"{revision}.yaml"
        try:
            return path.read_text()
        except (FileNotFoundError, ValueError):
            raise NotFound("revision", f"no revision {revision} is kept (the newest {KEEP} are)") from None

    def record(self, before: str, after: str, by: str, summary: str, edit: dict[str, Any]) -> Revision:
        """Records an edit (and, the first time, the catalog before it as revision 0)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        last = self.current()
        if last < 0:
            self._append(Revision(0, now, "", "the catalog before the first console edit"), before)
            last = 0
        rev = Revision(last + 1, now, by, summary, edit)
        self._append(rev, after)
        for old in self.dir.glob("*.yaml"):
            if old.stem.isdigit() and int(old.stem) <= rev.revision - KEEP:
                old.unlink(missing_ok=True)
        return rev

    def _append(self, rev: Revision, text: str) -> None:
        write_atomically(self.dir / f"{rev.revision}.yaml", text)
        with self._log.open("a") as f:
            f.write(json.dumps(rev.as_dict()) + "\n")
