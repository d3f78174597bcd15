"""A run's start: fetch its notebook version and its parameters from the jobs service.

The pod's template says where (``$MOONHUB_LAUNCH_URL``: the job's version at the service),
with what key (``$MOONHUB_LAUNCH_KEY``, which opens only that version) and what the
notebook's SHA-256 must be (``$MOONHUB_SNAPSHOT_SHA256``); ``$MOONHUB_RUN`` names the run.
A notebook whose digest differs is refused: the run executes exactly its version.

The service may be restarting when a run starts: connection errors and 5xx / 429 answers
are retried for ``WAIT_SECONDS`` (each try printed); any other refusal ends the run at once,
with the service's words in the pod's termination message.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HEADER = "X-MoonHub-Launch-Key"
WAIT_SECONDS = 300.0
TIMEOUT = 120.0


class LaunchError(Exception):
    """The run can not start: what the service (or the digest check) said."""


def _fetch(url: str, key: str, wait: float, say: Any, body: bytes | None = None) -> bytes:
    deadline = time.monotonic() + wait
    delay = 2.0
    while True:
        req = urllib.request.Request(
            url, data=body, headers={HEADER: key}, method="POST" if body is not None else "GET"
        )
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as e:
            try:
                why = json.loads(e.read() or b"{}").get("message") or e.reason
            except (ValueError, AttributeError):
                why = e.reason
            if e.code not in (429, 502, 503, 504) and e.code < 500:
                raise LaunchError(f"the jobs service refused ({e.code}): {why}") from None
            problem = f"{e.code} {why}"
        except (urllib.error.URLError, OSError) as e:
            problem = str(getattr(e, "reason", e))
        if time.monotonic() + delay > deadline:
            raise LaunchError(f"the jobs service did not answer for {wait:.0f} s ({problem})")
        say(f"moonhub-run-notebook: waiting for the jobs service ({problem}); trying again in {delay:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 30.0)


def fetch(destination: Path, wait: float = WAIT_SECONDS, say: Any = print) -> dict[str, Any]:
    """Write the run's notebook to ``destination`` (checked against its digest) and return
    its parameters."""
    base = os.environ["MOONHUB_LAUNCH_URL"].rstrip("/")
    key = os.environ["MOONHUB_LAUNCH_KEY"]
    want = os.environ["MOONHUB_SNAPSHOT_SHA256"]
    run = os.environ["MOONHUB_RUN"]
    data = gzip.decompress(_fetch(f"{base}/notebook", key, wait, say))
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise LaunchError(f"the notebook fetched has SHA-256 {got[:12]}..., not its version's {want[:12]}...")
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(data)
    answer = json.loads(_fetch(f"{base}/runs/{run}", key, wait, say))
    params = answer.get("parameters") or {}
    if not isinstance(params, dict):
        raise LaunchError("the jobs service sent parameters that are not an object")
    say(f"moonhub-run-notebook: version {want[:12]} ({len(data)} bytes), run stands for {answer.get('scheduled_time')}")
    return params


def send_published(wait: float = 60.0, say: Any = print) -> None:
    """Send what the notebook published (``moonhub.publish``) to the service, for the
    pipeline tasks after this one. Nothing when it published nothing."""
    where = os.environ.get("MOONHUB_PUBLISH_FILE")
    if not where or not Path(where).exists():
        return
    base = os.environ["MOONHUB_LAUNCH_URL"].rstrip("/")
    key, run = os.environ["MOONHUB_LAUNCH_KEY"], os.environ["MOONHUB_RUN"]
    data = Path(where).read_bytes()
    try:
        _fetch(f"{base}/runs/{run}/published", key, wait, say, data)
    except LaunchError as e:
        say(f"moonhub-run-notebook: published values not sent ({e})")
        return
    say(f"moonhub-run-notebook: published {', '.join(sorted(json.loads(data)))}")


#: files of the run folder sent at most (the service keeps at most 200)
MAX_FILES = 200


def send_outputs(output: Path, folder: Path, wait: float = 60.0, say: Any = print) -> None:
    """Send the executed notebook and the run folder's files to the service, which keeps
    them with the run. A refusal (over the run's limit, say) is printed; the run's outcome
    does not change, and the copies stay in the workspace."""
    base = os.environ["MOONHUB_LAUNCH_URL"].rstrip("/")
    key, run = os.environ["MOONHUB_LAUNCH_KEY"], os.environ["MOONHUB_RUN"]
    sent = 0
    try:
        if output.exists():
            _fetch(f"{base}/runs/{run}/output", key, wait, say, gzip.compress(output.read_bytes()))
        files = sorted(p for p in folder.rglob("*") if p.is_file())[:MAX_FILES] if folder.is_dir() else []
        for p in files:
            rel = urllib.parse.quote(str(p.relative_to(folder)))
            _fetch(f"{base}/runs/{run}/files/{rel}", key, wait, say, p.read_bytes())
            sent += 1
    except (LaunchError, OSError) as e:
        say(f"moonhub-run-notebook: outputs not kept with the run ({e}); they are in the workspace")
        return
    say(f"moonhub-run-notebook: the executed notebook and {sent} file(s) kept with the run")
