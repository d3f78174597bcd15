"""Kubernetes answers a caller does not need decoded.

The typed clients turn every answer into client models (a created pod comes back whole,
decoded field by field), and check an answer's status only when they decode it. A call made
with ``_preload_content=False`` skips the decoding; :func:`body` then reads the answer and
raises what the typed call would have raised for a refusal.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

from kubernetes_asyncio.client import ApiException
from kubernetes_asyncio.client.rest import RESTResponse


async def body(call: Awaitable[Any]) -> bytes:
    """The body of the answer to ``call`` (a typed client's method called with
    ``_preload_content=False``); :class:`ApiException` for a status outside 2xx, with the
    status, reason, headers and body a typed call's exception carries."""
    raw = await call
    try:
        data: bytes = await raw.read()
        if not 200 <= raw.status <= 299:
            raise ApiException(http_resp=RESTResponse(raw, data))  # type: ignore[arg-type]  # as rest.py does
        return data
    finally:
        raw.release()


def message(e: ApiException) -> str:
    """The API server's own words for a refusal (its Status ``message``), else the reason."""
    try:
        said = json.loads(e.body or b"{}").get("message")
    except (ValueError, AttributeError):
        said = None
    return str(said or e.reason or e.status)
