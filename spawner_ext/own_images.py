"""A server started with an image its user built from one of their environments
(docs/environment-images.md): the spawn option ``own_image`` (a build's id) names it. The
jobs service keeps the builds; the hub asks it, with a claim it signs for that user
(``moonhub_core.server_claim``), which of the user's images passed their checks: the answer
holds only theirs, so one user's option can never start another's image. The image runs with
everything of the catalog environment it was built on (its entitlement included); only the
image differs, by its digest."""

from __future__ import annotations

import json
import logging
from typing import Any

from jupyterhub.utils import url_path_join
from tornado.httpclient import HTTPRequest

from moonhub_core import server_claim
from moonhub_core.errors import ChoiceError, NotEntitled, UnknownChoice
from moonhub_core.pods import PREFIX

from .server_secrets import _client

#: the spawn option naming an own image (a build's id), and the pod's label saying which
OPTION = "own_image"
LABEL = f"{PREFIX}own-image"


class Unavailable(ChoiceError):
    """The jobs service can not say which images are the user's now: try again."""

    status = 503


def parse(value: Any) -> int | None:
    """The build id an ``own_image`` option names; None when none is (pure)."""
    if isinstance(value, list):  # HTML forms give lists
        value = value[0] if value else None
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not str(value).isdigit():
        raise UnknownChoice(OPTION, f"must be the number of one of your images, not {value!r}")
    return int(value)


def pick(images: list[dict[str, Any]], build_id: int, environment: Any) -> dict[str, Any]:
    """The image ``build_id`` among the user's ready ``images``, checked against the
    environment the spawn names (none, or the one it was built on). Pure."""
    found = next((i for i in images if i.get("id") == build_id and i.get("image")), None)
    if found is None:
        raise NotEntitled(OPTION, f"you have no image {build_id} ready to run (Images: build one, wait for its checks)")
    if isinstance(environment, list):
        environment = environment[0] if environment else None
    if environment not in (None, "", found["base"]):
        raise UnknownChoice(
            OPTION, f"image {build_id} is built on {found['base']!r}: choose that environment, or none, with it"
        )
    return found


async def ready(
    jobs_url: str, user: str, claim_key: str, token: str, log: logging.Logger | Any
) -> list[dict[str, Any]]:
    """The user's images that passed their checks; 503 when the jobs service can not tell."""
    if not jobs_url or not (claim_key or token):
        raise Unavailable(OPTION, "images built from environments need the jobs service, which is not configured")
    if claim_key:
        auth = {server_claim.HEADER: server_claim.make(claim_key, user)}
    else:
        auth = {"Authorization": f"token {token}"}
    req = HTTPRequest(
        url_path_join(jobs_url, "api/v1/images"), headers=auth, request_timeout=10, follow_redirects=False
    )
    try:
        resp = await _client().fetch(req, raise_error=False)
    except OSError as e:
        raise Unavailable(OPTION, f"the jobs service does not answer ({e}); try again") from None
    if resp.code == 404:  # builds are off on this platform
        return []
    if resp.code != 200:
        log.warning("images of %s not read from the jobs service: %s", user, resp.code)
        raise Unavailable(OPTION, f"the jobs service answered {resp.code} for your images; try again")
    try:
        images = json.loads(resp.body).get("images") or []
    except (ValueError, AttributeError):
        raise Unavailable(OPTION, "the jobs service's answer for your images did not read; try again") from None
    return [i for i in images if isinstance(i, dict)]
