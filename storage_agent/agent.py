"""The agent's loop: read volumes, claims and quotas; grow what was asked to grow; report use.

``python -m storage_agent --volume <gluster volume> --mount <where it is mounted>
--storage-class NAME [--kubeconfig F] [--interval 10]``

Runs where Gluster's CLI reaches glusterd (a Gluster server, or a node that is a Gluster
peer); on the local cluster ``localcluster`` runs it on the machine. Each pass is idempotent:
a grow that failed halfway (quota set, capacities not) is finished by the next pass.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client, config

from moonhub_core import workspaces

from . import gluster
from .plan import Grow, plan

log = logging.getLogger("moonhub.storage-agent")


class Agent:
    def __init__(self, api: client.ApiClient, volume: str, mount: str, storage_class: str) -> None:
        self.core = client.CoreV1Api(api)
        self.ser = api.sanitize_for_serialization
        self.volume, self.mount, self.storage_class = volume, mount, storage_class
        self._warned: set[str] = set()

    async def once(self) -> dict[str, int]:
        pvs = [self.ser(v) for v in (await self.core.list_persistent_volume()).items]
        pvcs = [self.ser(c) for c in (await self.core.list_persistent_volume_claim_for_all_namespaces()).items]
        quotas = await gluster.quotas(self.volume)
        steps = plan(pvs, pvcs, quotas, self.storage_class, self.mount, datetime.now(UTC))
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
        return {"grown": grown, "reported": len(steps.report)}

    async def grow(self, g: Grow) -> None:
        if not g.quota_done:
            await gluster.run(gluster.limit_command(self.volume, g.path, g.size))
        body: dict[str, Any] = {"spec": {"capacity": {"storage": g.quantity}}}
        await self.core.patch_persistent_volume(g.volume, body)
        status = {
            "status": {"capacity": {"storage": g.quantity}, "conditions": None, "allocatedResourceStatuses": None}
        }
        await self.core.patch_namespaced_persistent_volume_claim_status(g.claim, g.namespace, status)
        log.info("grew %s/%s (volume %s, folder %s) to %s", g.namespace, g.claim, g.volume, g.path, g.quantity)

    async def forever(self, interval: float) -> None:
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


async def _main(args: argparse.Namespace) -> None:
    await load_credentials(args.kubeconfig)
    async with client.ApiClient() as api:
        agent = Agent(api, args.volume, args.mount, args.storage_class)
        log.info("storage agent: volume %s mounted at %s, class %s", args.volume, args.mount, args.storage_class)
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
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[storage-agent %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    asyncio.run(_main(args))
