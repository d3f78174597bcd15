"""How the hub asks the jobs service for the secrets a user gives to their server, without a
round trip back to the hub.

As a server starts, the spawner asks the jobs service which of the user's secrets go into
the pod. It used to ask with the new server's token, and the jobs service checked that
token with the hub (``GET /hub/api/user``): one more hub request per spawn, made while the
hub is busiest (a burst of spawns). Now the spawner signs a short claim instead, "the hub
starts a server for <user>", with a key the hub and the jobs service both derive from the
jobs service's API token (which the hub gives the service, or the operator gives both).

The claim goes from the hub to the service and nowhere else: never into a pod or to a
user's process. It expires after ``TTL`` seconds and opens only the list of that user's
own secrets (names and how they are delivered, never values).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

#: the request header the claim travels in
HEADER = "X-MoonHub-Server-Claim"
#: seconds a claim is good for after it is made
TTL = 60
#: what the key is for (a key derived from the token for this use and no other)
PURPOSE = b"moonhub: the secrets given to a user's server"


class ClaimError(ValueError):
    """A claim that is malformed, signed with another key, or expired."""


def key_from_token(token: str) -> str:
    """The signing key (hex) for the jobs service whose API token is ``token``."""
    if not token:
        return ""
    return hmac.new(token.encode(), PURPOSE, hashlib.sha256).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: str, payload: str) -> str:
    return _b64(hmac.new(bytes.fromhex(key), payload.encode(), hashlib.sha256).digest())


def make(key: str, user: str, now: float | None = None) -> str:
    """A claim that the hub starts a server for ``user``, good for ``TTL`` seconds."""
    if not key:
        raise ClaimError("no key to sign with")
    payload = _b64(json.dumps({"user": user, "exp": int((time.time() if now is None else now) + TTL)}).encode())
    return f"{payload}.{_sign(key, payload)}"


def check(key: str, claim: str, now: float | None = None) -> str:
    """The user ``claim`` names, when ``key`` signed it and it has not expired."""
    if not key:
        raise ClaimError("this service has no key to check server claims with")
    payload, _, signature = claim.partition(".")
    if not payload or not signature or not hmac.compare_digest(_sign(key, payload), signature):
        raise ClaimError("the server claim is not signed with this service's key")
    try:
        body = json.loads(_unb64(payload))
        user, expires = body["user"], body["exp"]
    except (ValueError, KeyError, TypeError):
        raise ClaimError("the server claim is malformed") from None
    if not isinstance(user, str) or not user or not isinstance(expires, int):
        raise ClaimError("the server claim is malformed")
    if (time.time() if now is None else now) > expires:
        raise ClaimError("the server claim has expired")
    return user
