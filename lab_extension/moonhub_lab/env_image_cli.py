"""``moonhub-env image`` and ``moonhub-env images``: images built from environments, asked of
the jobs service from a terminal of the user's server, with the server's own token (the
user's, in their own server's environment; docs/environment-images.md). The build's log is
followed as it runs, like ``docker build``'s, until the image is ready or fails."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from . import settings as lab_settings
from .environments import EnvironmentError_, frozen

#: seconds between two reads of a build's log while it runs
EVERY = 2.0
ENDED = ("ready", "failed", "cancelled")


def _call(method: str, path: str, body: Any = None) -> Any:
    told = lab_settings.from_env()
    if not told.jobs_url or not told.api_token:
        raise EnvironmentError_("images need the jobs service, which this server is not told of (MOONHUB_JOBS_URL)")
    url = f"{told.jobs_url.rstrip('/')}/api/v1/{path}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": f"token {told.api_token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        try:
            said = json.load(e)
            raise EnvironmentError_(f"{said.get('field', 'request')}: {said.get('message', e.reason)}") from None
        except ValueError:
            raise EnvironmentError_(f"the jobs service answered {e.code} {e.reason}") from None
    except OSError as e:
        raise EnvironmentError_(f"the jobs service does not answer ({e}); try again") from None


def build(name: str, base: str | None, follow: bool = True, out: Any = sys.stdout) -> int:
    """Queue a build of environment ``name`` on ``base`` (default: this server's catalog
    environment), then print its log as it comes; 0 once it is ready."""
    packages = frozen(name)
    base = base or lab_settings.from_env().environment
    if not base:
        raise EnvironmentError_("base: name the catalog environment to build on (--base)")
    made = _call("POST", "images", {"environment": name, "packages": packages, "base": base})
    print(f"moonhub-env: image build {made['id']} of {name} on {base} ({len(packages)} packages): {made['state']}",
          file=out, flush=True)  # fmt: skip
    if not follow:
        return 0
    shown, state, said = "", made["state"], made.get("message", "")
    while True:
        log = _call("GET", f"images/{made['id']}/log")
        text = log.get("log") or ""
        if text.startswith(shown):
            out.write(text[len(shown) :])
        else:  # the kept log is the end of a long one: start again from it
            out.write(text)
        out.flush()
        shown = text
        now = _call("GET", f"images/{made['id']}")
        if now["state"] != state or now.get("message") != said:
            state, said = now["state"], now.get("message", "")
            print(f"moonhub-env: {state}: {said}", file=out, flush=True)
        if state in ENDED:
            break
        time.sleep(EVERY)
    if state == "ready":
        print(f'moonhub-env: {now["image"]}\n  start a server with it: the spawn form\'s "Your images"', file=out)
        return 0
    return 1


def listing(out: Any = sys.stdout) -> int:
    for i in _call("GET", "images")["images"]:
        print(f"{i['id']:>5}  {i['environment']:<20} on {i['base']:<16} {i['state']:<10} {i['message']}", file=out)
    return 0
