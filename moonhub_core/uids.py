"""Each user's own Unix user id on the storage (issue 32, item 6).

A workspace claim's name is derived from the user name; if a claim were ever mounted by the
wrong pod, a shared uid would let that pod read and write everything in it. So every user's
pods run as a uid of their own, and their workspace folder belongs to it, mode 0700:

- a uid is handed out once, when the user's workspace claim is made, by whichever service
  makes it (the spawner or the jobs service), from one counter in the user namespace (the
  ConfigMap :data:`COUNTER`, changed only by compare-and-swap on its resourceVersion, so two
  services never hand out the same number); it is never handed out again;
- the claim carries it (:data:`UID`); the provisioner makes the folder with it (owner
  ``uid:uid``, mode 0700) and every server and run of the user reads it from the claim;
- the user's primary group is a group of their own with the same number (the pod's
  ``fsGroup`` too: storage that applies ``fsGroup`` gives the folder to the user alone);
  group 100 (the images' ``users``) and team folders' groups are supplementary;
- a claim made before uids (no annotation) keeps the images' shared user 1000:100 until an
  operator gives it one (``python -m storage_agent.migrate``): its uid is written with
  :data:`MIGRATING` while its files are handed over, and nothing mounts it meanwhile.

The uid range starts at :data:`FIRST`, above the host's and images' own accounts and the
usual subordinate-id ranges of rootless containers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client

from .errors import Conflict, Unavailable
from .pods import PREFIX

log = logging.getLogger("moonhub.storage")

#: on a workspace claim: the uid its folder belongs to and its owner's pods run as
UID = f"{PREFIX}uid"
#: on a workspace claim while its files are handed to its new uid: nothing mounts it (503)
MIGRATING = f"{PREFIX}uid-migrating"
#: the ConfigMap (in the user namespace) that holds the next uid to hand out
COUNTER = "moonhub-uids"
NEXT_KEY = "next"
#: the first uid handed out, and the last (the kernel's ids are 32-bit; Kubernetes takes
#: up to 2^31 - 1)
FIRST = 1_000_000
LAST = 2**31 - 1
#: compare-and-swap attempts before giving up (each is one read and one write)
ATTEMPTS = 20


def parse(value: object, where: str = "") -> int | None:
    """The uid a claim annotation gives; None when there is none (a claim made before uids).
    A value outside the range is a 409 (the claim is not mounted): only MoonHub's services
    write it, so anything else is damage, not something to run as."""
    if value is None or value == "":
        return None
    text = str(value)
    if text.isdigit() and text.isascii():
        uid = int(text)
        if FIRST <= uid <= LAST:
            return uid
    raise Conflict("workspace", f"volume {where or '?'} names uid {text!r}, not one MoonHub hands out: not mounted")


def of_claim(pvc: Any) -> int | None:
    """The uid of a claim (a client model or a dict) to run as; a 503 while its files are
    being handed to that uid (:data:`MIGRATING`)."""
    meta = pvc.metadata if hasattr(pvc, "metadata") else (pvc.get("metadata") or {})
    notes: Mapping[str, Any] = (meta.annotations if hasattr(meta, "annotations") else meta.get("annotations")) or {}
    name = meta.name if hasattr(meta, "name") else meta.get("name", "")
    uid = parse(notes.get(UID), name)
    if notes.get(MIGRATING):
        raise Unavailable(
            "workspace", f"volume {name} is being given a user id of its own (an operator's migration): try again soon"
        )
    return uid


async def allocate(core: client.CoreV1Api, namespace: str) -> int:
    """A uid nobody has had: the counter's value, which it moves past in the same write."""
    for _ in range(ATTEMPTS):
        try:
            cm = await core.read_namespaced_config_map(COUNTER, namespace)
        except client.ApiException as e:
            if e.status != 404:
                raise
            body = client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=COUNTER, labels={f"{PREFIX}storage": "uids"}),
                data={NEXT_KEY: str(FIRST + 1)},
            )
            try:
                await core.create_namespaced_config_map(namespace, body)
            except client.ApiException as e2:
                if e2.status == 409:  # another service made it meanwhile: take from it
                    continue
                raise
            log.info("uid counter %s/%s made: first uid %d", namespace, COUNTER, FIRST)
            return FIRST
        raw = (cm.data or {}).get(NEXT_KEY, "")
        if not raw.isdigit() or not FIRST <= int(raw) <= LAST:
            raise Conflict("workspace", f"the uid counter {namespace}/{COUNTER} holds {raw!r}: no uid handed out")
        uid = int(raw)
        cm.data = {**(cm.data or {}), NEXT_KEY: str(uid + 1)}
        try:
            # replace carries the resourceVersion read: a write in between is a 409, and we read again
            await core.replace_namespaced_config_map(COUNTER, namespace, cm)
        except client.ApiException as e:
            if e.status == 409:
                continue
            raise
        return uid
    raise Conflict("workspace", f"the uid counter {namespace}/{COUNTER} changed {ATTEMPTS} times in a row: try again")
