"""Give each workspace made before uids a uid of its own (issue 32, item 6).

``python -m storage_agent.migrate --mount <where the Gluster volume is mounted>
--storage-class NAME [--kubeconfig F] [--dry-run]``

Workspaces made before ``moonhub.io/uid`` belong to the images' shared user 1000:100. For
each one that no pod mounts, this hands out a uid (:mod:`moonhub_core.uids`), writes it on
the claim together with ``moonhub.io/uid-migrating`` (the spawner and the jobs service
mount nothing marked so: a 503 that says to try again), hands every file and folder in it
to that uid and group (symbolic links are not followed), makes the folder mode 0700, and
takes the mark off. A claim that a pod mounts is left for the next run; one whose hand-over
failed halfway keeps its mark and uid, and the next run finishes it. Nothing is deleted.

The jobs service makes each CronJob again at its next reconcile once the owner's
workspace has another uid (``moonhub.io/run-as``). Run this where the Gluster volume is
mounted, as root, in a quiet hour: a scheduled run that starts from a CronJob that was
not yet made again, while its owner's files are handed over, can fail on permissions.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from moonhub_core import uids, workspaces
from moonhub_core.errors import FieldError
from moonhub_core.pods import HUB_USER

from .agent import load_credentials

log = logging.getLogger("moonhub.storage-agent")


@dataclass(frozen=True)
class Legacy:
    """A workspace to hand to a uid: its claim, its folder on this machine, the uid already
    written on it by a run that did not finish (None: none yet)."""

    namespace: str
    claim: str
    folder: str
    uid: int | None
    resource_version: str


@dataclass
class Report:
    migrated: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def legacy(
    pvs: Iterable[Mapping[str, Any]], pvcs: Iterable[Mapping[str, Any]], storage_class: str, mount: str
) -> list[Legacy]:
    """The workspaces (claims naming a hub user, not team folders) on ``mount`` with no uid,
    or with one whose hand-over did not finish. Pure."""
    claims = {((c["metadata"].get("namespace") or ""), c["metadata"]["name"]): c for c in pvcs}
    root = mount.rstrip("/") + "/"
    out = []
    for pv in pvs:
        spec = pv.get("spec") or {}
        ref = spec.get("claimRef") or {}
        path = (spec.get("hostPath") or {}).get("path") or ""
        if spec.get("storageClassName") != storage_class or not path.startswith(root):
            continue
        pvc = claims.get((ref.get("namespace") or "", ref.get("name") or ""))
        if pvc is None:
            continue
        meta = pvc["metadata"]
        ann = meta.get("annotations") or {}
        if not ann.get(HUB_USER) or workspaces.usage(pvc).kind != workspaces.WORKSPACE:
            continue
        if ann.get(uids.UID) and not ann.get(uids.MIGRATING):
            continue  # has its own uid already
        uid = uids.parse(ann.get(uids.UID), meta["name"])
        out.append(Legacy(meta.get("namespace") or "", meta["name"], path, uid, meta.get("resourceVersion", "")))
    return sorted(out, key=lambda w: (w.namespace, w.claim))


def mounted(pods: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(namespace, claim) of every claim a pod that has not ended mounts. Pure."""
    out = set()
    for p in pods:
        if ((p.get("status") or {}).get("phase")) in ("Succeeded", "Failed"):
            continue
        ns = (p.get("metadata") or {}).get("namespace") or ""
        for v in (p.get("spec") or {}).get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                out.add((ns, claim))
    return out


def hand_over(folder: str, uid: int) -> int:
    """Every file and folder under ``folder`` (itself too) to ``uid:uid``, without following
    symbolic links (a link is changed itself, not what it names); the folder mode 0700. The
    number of entries changed."""
    top = Path(folder)
    n = 0
    for here, dirs, files in os.walk(top, followlinks=False):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(here, name), uid, uid)
            n += 1
    os.lchown(top, uid, uid)
    top.chmod(0o700)
    return n + 1


class Migration:
    def __init__(self, api: client.ApiClient, mount: str, storage_class: str, dry_run: bool = False) -> None:
        self.core = client.CoreV1Api(api)
        self.ser = api.sanitize_for_serialization
        self.mount, self.storage_class, self.dry_run = mount, storage_class, dry_run

    async def _pods(self) -> set[tuple[str, str]]:
        pods = await self.core.list_pod_for_all_namespaces()
        return mounted(self.ser(p) for p in pods.items)

    async def run(self) -> Report:
        pvs = [self.ser(v) for v in (await self.core.list_persistent_volume()).items]
        pvcs = [self.ser(c) for c in (await self.core.list_persistent_volume_claim_for_all_namespaces()).items]
        todo = legacy(pvs, pvcs, self.storage_class, self.mount)
        report = Report()
        log.info("%d workspace(s) without a uid of their own on %s", len(todo), self.mount)
        for w in todo:
            name = f"{w.namespace}/{w.claim}"
            if (w.namespace, w.claim) in await self._pods():
                report.in_use.append(name)
                log.info("%s: mounted by a pod now: left for the next run", name)
                continue
            if self.dry_run:
                report.migrated.append(name)
                log.info("%s: would be handed to a uid of its own (%s)", name, w.folder)
                continue
            try:
                await self._one(w, name, report)
            except (client.ApiException, OSError, FieldError) as e:
                report.failed.append(name)
                log.error("%s: not finished (the next run goes on from here): %s", name, e)
        log.info(
            "done: %d handed over, %d in use (run again later), %d failed",
            len(report.migrated),
            len(report.in_use),
            len(report.failed),
        )
        return report

    async def _one(self, w: Legacy, name: str, report: Report) -> None:
        uid = w.uid
        if uid is None:
            uid = await uids.allocate(self.core, w.namespace)
            # at the version listed: a claim changed meanwhile (a spawn stamping it) is a 409
            mark = {
                "metadata": {
                    "resourceVersion": w.resource_version,
                    "annotations": {uids.UID: str(uid), uids.MIGRATING: "true"},
                }
            }
            await self.core.patch_namespaced_persistent_volume_claim(w.claim, w.namespace, mark)
            log.info("%s: uid %d written, marked while its files are handed over", name, uid)
        # a pod that started between the check and the mark runs as the shared user
        if (w.namespace, w.claim) in await self._pods():
            report.in_use.append(name)
            log.info("%s: a pod mounted it meanwhile: marked, handed over by the next run", name)
            return
        n = await asyncio.to_thread(hand_over, w.folder, uid)
        unmark = {"metadata": {"annotations": {uids.MIGRATING: None}}}
        await self.core.patch_namespaced_persistent_volume_claim(w.claim, w.namespace, unmark)
        report.migrated.append(name)
        log.info("%s: %d entries handed to uid %d; mounted again from now", name, n, uid)


async def _main(args: argparse.Namespace) -> Report:
    await load_credentials(args.kubeconfig)
    async with client.ApiClient() as api:
        return await Migration(api, args.mount, args.storage_class, args.dry_run).run()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m storage_agent.migrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--mount", required=True, help="where the Gluster volume is mounted on this machine")
    p.add_argument(
        "--storage-class",
        required=True,
        help="the StorageClass of the workspaces (the catalog's storage.storage_class)",
    )
    p.add_argument("--kubeconfig", default="", help="default: the pod's service account")
    p.add_argument("--dry-run", action="store_true", help="say what would be handed over; change nothing")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[migrate-uids %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    report = asyncio.run(_main(args))
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
