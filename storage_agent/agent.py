"""The agent's loop: make volumes for new claims, remove released ones, grow what was asked
to grow, report use.

``python -m storage_agent --volume <gluster volume> --mount <where it is mounted>
--storage-class NAME [--kubeconfig F] [--interval 10] [--gluster-ssh USER@HOST ...]``

Runs where the volume is mounted, and either where Gluster's CLI reaches glusterd (a node
that is a Gluster peer) or with ``--gluster-ssh`` naming a Gluster server that runs its
quota commands; the chart runs it as a Deployment (docs/storage.md), on the local cluster
too. When the class names :data:`provision.PROVISIONER`, the agent provisions it: a watch
on claims makes a new claim's volume at once (:mod:`.provision`), and each pass makes what
the watch missed and removes released volumes. Each pass is idempotent: a grow or a make that failed halfway
(quota set, capacities not; folder made, volume not) is finished by the next pass.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config, watch

from moonhub_core import workspaces

from . import folders, gluster, metrics, provision
from .plan import Grow, plan

log = logging.getLogger("moonhub.storage-agent")


class Agent:
    def __init__(self, api: client.ApiClient, volume: str, mount: str, storage_class: str) -> None:
        self.core = client.CoreV1Api(api)
        self.ser = api.sanitize_for_serialization
        self.storage = client.StorageV1Api(api)
        self.volume, self.mount, self.storage_class = volume, mount, storage_class
        self._warned: set[str] = set()
        #: claims (uids) whose volume is being made now, or was made (while they wait to be
        #: bound), and refusals already said on them
        self._making: set[str] = set()
        self._made: set[str] = set()
        self._said: set[tuple[str, str]] = set()
        #: one folder change at a time (glusterd takes one volume transaction at a time)
        self._changing = asyncio.Lock()
        #: the class, when this agent provisions it (its provisioner is ours)
        self._class: dict[str, Any] | None = None
        self._tasks: set[asyncio.Future[int]] = set()

    async def read_class(self) -> dict[str, Any] | None:
        try:
            sc = self.ser(await self.storage.read_storage_class(self.storage_class))
        except client.ApiException as e:
            if e.status != 404:
                raise
            sc = None
        self._class = sc if sc and sc.get("provisioner") == provision.PROVISIONER else None
        return self._class

    async def once(self) -> dict[str, int]:
        pvs = [self.ser(v) for v in (await self.core.list_persistent_volume()).items]
        pvcs = [self.ser(c) for c in (await self.core.list_persistent_volume_claim_for_all_namespaces()).items]
        made = removed = 0
        if await self.read_class() is not None:
            pending = [c for c in pvcs if provision.pending(c, self.storage_class)]
            waiting = {c["metadata"].get("uid") for c in pending}
            # what is kept per claim is kept while the claim waits (bounded by the pending)
            self._made &= waiting
            self._said = {k for k in self._said if k[0] in waiting}
            volumes = {v["metadata"]["name"] for v in pvs}
            for claim in pending:
                uid = claim["metadata"].get("uid") or ""
                if provision.volume_name(uid) not in volumes:
                    self._made.discard(uid)  # (its volume deleted since, or this list is older)
                    made += await self.provide(claim)
            for gone in provision.released(pvs, self.mount, self.storage_class):
                removed += await self.remove(gone)
        quotas = await gluster.quotas(self.volume)
        steps = plan(pvs, pvcs, quotas, self.storage_class, self.mount, datetime.now(UTC))
        metrics.WORKSPACES.usage = steps.usage
        grown = 0
        for g in steps.grow:
            try:
                await self.grow(g)
                grown += 1
            except (gluster.GlusterError, client.ApiException) as e:
                log.error(
                    "growing %s/%s to %s failed (the next pass tries again): %s", g.namespace, g.claim, g.quantity, e
                )
        for r in steps.report:
            patch = {
                "metadata": {
                    "annotations": {
                        workspaces.USED_BYTES: str(r.used),
                        workspaces.USAGE_AT: datetime.now(UTC).isoformat(timespec="seconds"),
                    }
                }
            }
            try:
                await self.core.patch_namespaced_persistent_volume_claim(r.claim, r.namespace, patch)
            except client.ApiException as e:
                if e.status != 404:
                    log.warning("reporting the use of %s/%s failed: %s", r.namespace, r.claim, e.reason)
        for path in set(steps.unlimited) - self._warned:
            log.warning("folder %s of volume %s has no Gluster quota: its size is not enforced", path, self.volume)
            self._warned.add(path)
        return {"made": made, "removed": removed, "grown": grown, "reported": len(steps.report)}

    async def provide(self, claim: dict[str, Any]) -> int:
        """A pending claim's folder, quota and volume (1 when made now)."""
        meta = claim.get("metadata") or {}
        uid, where = meta.get("uid") or "", f"{meta.get('namespace')}/{meta.get('name')}"
        sc = self._class
        if sc is None or uid in self._making or uid in self._made:
            return 0  # (the watch sees a claim change again before the PV controller binds it)
        self._making.add(uid)
        try:
            try:
                make = provision.plan_make(claim, sc)
            except provision.Refused as e:
                await self.say(claim, str(e))
                return 0
            t0 = asyncio.get_running_loop().time()
            try:
                async with self._changing:
                    await folders.make(self.mount, self.volume, make)
                await self.core.create_persistent_volume(provision.volume(make, self.mount))  # type: ignore[arg-type]
            except client.ApiException as e:
                if e.status == 409:
                    self._made.add(uid)
                    return 0  # made by an earlier pass
                await self.say(claim, f"making its volume failed (tried again): {e.reason}")
                return 0
            except (gluster.GlusterError, OSError, RuntimeError) as e:
                await self.say(claim, f"making its folder failed (tried again): {e}")
                return 0
            self._made.add(uid)
            took = asyncio.get_running_loop().time() - t0
            log.info("made %s for %s: folder %s, %s, in %.2f s", make.volume, where, make.folder, make.quantity, took)
            return 1
        finally:
            self._making.discard(uid)

    async def remove(self, r: provision.Remove) -> int:
        """A released volume's quota and folder, then the volume (1 when removed now)."""
        try:
            async with self._changing:
                await folders.remove(self.mount, self.volume, r.folder, r.volume)
            await self.core.delete_persistent_volume(r.volume)
        except client.ApiException as e:
            if e.status == 404:
                return 0
            log.error("removing volume %s failed (the next pass tries again): %s", r.volume, e.reason)
            return 0
        except (gluster.GlusterError, OSError, RuntimeError) as e:
            log.error("removing folder %s of volume %s failed (the next pass tries again): %s", r.folder, r.volume, e)
            return 0
        log.info("removed volume %s and its folder %s", r.volume, r.folder)
        return 1

    async def say(self, claim: dict[str, Any], message: str) -> None:
        """A warning on the claim (``kubectl describe pvc``), once per claim and message."""
        meta = claim.get("metadata") or {}
        ns = str(meta.get("namespace") or "")
        key = (meta.get("uid") or "", message)
        if key in self._said:
            return
        self._said.add(key)
        log.warning("claim %s/%s: %s", meta.get("namespace"), meta.get("name"), message)
        now = datetime.now(UTC)
        event = {
            "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta.get("namespace"),
                "name": meta.get("name"),
                "uid": meta.get("uid"),
            },
            "reason": "ProvisioningFailed",
            "message": message,
            "type": "Warning",
            "source": {"component": provision.PROVISIONER},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.core.create_namespaced_event(ns, event)  # type: ignore[arg-type]
        except client.ApiException as e:
            log.warning("could not record the event on %s: %s", meta.get("name"), e.reason)

    async def watch_claims(self) -> None:
        """New claims as they come: each pending one of the class gets its volume at once."""
        while True:
            try:
                if await self.read_class() is None:
                    await asyncio.sleep(10)
                    continue
                listed = await self.core.list_persistent_volume_claim_for_all_namespaces()
                for c in listed.items:
                    self._spawn(self.ser(c))
                w = watch.Watch()
                async with w.stream(
                    self.core.list_persistent_volume_claim_for_all_namespaces,
                    resource_version=listed.metadata.resource_version,
                    timeout_seconds=300,
                ) as stream:
                    async for ev in stream:
                        if ev["type"] in ("ADDED", "MODIFIED"):
                            self._spawn(ev["raw_object"])
            except (client.ApiException, OSError, TimeoutError, ValueError) as e:
                log.warning("watch of claims ended (again in 1 s): %s", e)
                await asyncio.sleep(1)

    def _spawn(self, claim: dict[str, Any]) -> None:
        if provision.pending(claim, self.storage_class):
            task = asyncio.ensure_future(self.provide(claim))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def grow(self, g: Grow) -> None:
        if not g.quota_done:
            # a quota change like a make's: one at a time here, again while glusterd is busy
            async with self._changing:
                await gluster.change(gluster.limit_command(self.volume, g.path, g.size))
        body: dict[str, Any] = {"spec": {"capacity": {"storage": g.quantity}}}
        await self.core.patch_persistent_volume(g.volume, body)
        status = {
            "status": {"capacity": {"storage": g.quantity}, "conditions": None, "allocatedResourceStatuses": None}
        }
        await self.core.patch_namespaced_persistent_volume_claim_status(g.claim, g.namespace, status)
        log.info("grew %s/%s (volume %s, folder %s) to %s", g.namespace, g.claim, g.volume, g.path, g.quantity)

    async def forever(self, interval: float) -> None:
        watcher = asyncio.ensure_future(self.watch_claims())
        try:
            await self._passes(interval)
        finally:
            watcher.cancel()

    async def _passes(self, interval: float) -> None:
        while True:
            try:
                await self.once()
            except (gluster.GlusterError, client.ApiException, OSError) as e:
                log.error("storage pass failed (retrying in %.0f s): %s", interval, e)
            await asyncio.sleep(interval)


async def load_credentials(kubeconfig: str) -> None:
    """The agent's Kubernetes identity: the kubeconfig given, else the pod's service account."""
    if kubeconfig:
        await config.load_kube_config(config_file=kubeconfig)
    else:
        config.load_incluster_config()


def check_mount(volume: str, mount: str, mountinfo: str) -> str | None:
    """Why the agent can not work on ``mount`` (None: it can): volumes are folders of that
    path, and a folder made on a node's own disk would be a workspace nobody else sees."""
    found = gluster.mounted_volume(mountinfo, mount)
    if found == volume:
        return None
    if found is None:
        return (
            f"{mount} is not a Gluster mount here: mount the volume {volume} there on every node that "
            "runs users' servers and jobs, and on the agent's node (docs/storage.md)"
        )
    return f"{mount} is the Gluster volume {found}, not {volume} (storage.gluster.volume)"


async def _main(args: argparse.Namespace) -> None:
    problem = check_mount(args.volume, args.mount, Path("/proc/self/mountinfo").read_text())
    if problem:
        raise SystemExit(f"storage agent: {problem}")
    if args.gluster_ssh:
        gluster.REMOTE = gluster.Ssh(
            args.gluster_ssh, args.gluster_ssh_key, args.gluster_ssh_known_hosts, args.gluster_ssh_port
        )
        try:  # says at once when the server, its key or the gate refuses
            await gluster.quotas(args.volume)
        except gluster.GlusterError as e:
            raise SystemExit(f"storage agent: the Gluster server {args.gluster_ssh} refused: {e}") from None
    await load_credentials(args.kubeconfig)
    if args.metrics_address:
        host, _, port = args.metrics_address.rpartition(":")
        metrics.serve(host, int(port))
        log.info("metrics at http://%s/metrics", args.metrics_address)
    async with client.ApiClient() as api:
        agent = Agent(api, args.volume, args.mount, args.storage_class)
        via = f", Gluster commands through {args.gluster_ssh}" if args.gluster_ssh else ""
        log.info("storage agent: volume %s mounted at %s, class %s%s", args.volume, args.mount, args.storage_class, via)
        await agent.forever(args.interval)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m storage_agent", description=__doc__.split("\n\n")[0])
    p.add_argument("--volume", required=True, help="the Gluster volume the workspaces' folders are on")
    p.add_argument("--mount", required=True, help="where the provisioner has that volume mounted")
    p.add_argument(
        "--storage-class", required=True, help="the StorageClass of those claims (the catalog's storage.storage_class)"
    )
    p.add_argument("--kubeconfig", default="", help="default: the pod's service account")
    p.add_argument("--interval", type=float, default=10, help="seconds between passes")
    p.add_argument(
        "--metrics-address",
        default="",
        metavar="HOST:PORT",
        help="serve Prometheus metrics (workspaces' use against their quotas) here; default: none",
    )
    p.add_argument(
        "--gluster-ssh", default="", metavar="USER@HOST", help="run Gluster's commands on this server (default: here)"
    )
    p.add_argument("--gluster-ssh-port", type=int, default=22)
    p.add_argument("--gluster-ssh-key", default="/etc/moonhub/gluster-ssh/id", help="the private key's file")
    p.add_argument(
        "--gluster-ssh-known-hosts", default="/etc/moonhub/gluster-ssh/known_hosts", help="the server's host key"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[storage-agent %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    asyncio.run(_main(args))
