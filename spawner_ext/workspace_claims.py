"""The workspace claims of a user's servers (issue 32, items 5 and 6), between KubeSpawner
and MoonSpawner: the claim is made with a uid of its own (``moonhub_core.uids``); before
every pod, the claim found under the derived name must be this user's and this account's,
and the pod runs as its uid; a deleted user's workspace is left to reclaim.
"""

from __future__ import annotations

from typing import Any

from kubespawner import KubeSpawner
from tornado import web

from moonhub_core import claims, identity, uids
from moonhub_core.errors import FieldError
from moonhub_core.workload import build


class WorkspaceClaims(KubeSpawner):
    #: (catalog, choices, groups) of this start, set by MoonSpawner's load_user_options: the
    #: pod's security context is built again from them once the claim's uid is known
    _chosen: tuple[Any, Any, list[str]] | None = None

    async def delete_forever(self) -> None:
        """A deleted user's workspace is not deleted here: reclaim (the jobs service) archives
        it and deletes it after the catalog's grace, with audit lines (docs/storage.md). A
        named server with a volume of its own (``per_server``) deleted by its user takes its
        volume with it, as KubeSpawner does."""
        if self.name and "{user_server}" in self.pvc_name_template:
            await super().delete_forever()
            return
        self.log.info("%s deleted: workspace %s is left to reclaim", self._log_name, self.pvc_name)

    #: the uid handed out for a workspace this spawn makes (kept across KubeSpawner's retries)
    _new_uid: int | None = None

    async def _make_create_pvc_request(self, pvc: Any, request_timeout: float) -> bool:
        """KubeSpawner's create (an existing claim is fine); a new claim gets a uid of its own
        (:mod:`moonhub_core.uids`), handed out once per spawn whatever the retries."""
        try:
            if await claims.read(self.api, self.namespace, pvc.metadata.name) is None:
                uid = self._new_uid
                if uid is None:
                    uid = self._new_uid = await uids.allocate(self.api, self.namespace)
                pvc.metadata.annotations = {**(pvc.metadata.annotations or {}), uids.UID: str(uid)}
        except FieldError as e:
            raise web.HTTPError(e.status, str(e)) from None
        return bool(await super()._make_create_pvc_request(pvc, request_timeout))

    async def get_pod_manifest(self) -> Any:
        """Before every pod (KubeSpawner makes the claim only at a server's first start, and
        remembers it): the claim's name is derived, so the one found must have been made for
        this user (issue 32, item 6) and for this account of the name (its stamp:
        :mod:`moonhub_core.identity`, item 5); the pod runs as the claim's uid. A claim gone
        since (deleted by an admin) is made again."""
        if self.storage_pvc_ensure:
            try:
                created = identity.stamp(getattr(self.user, "created", None))
                found = await claims.check_workspace(self.api, self.namespace, self.pvc_name, self.user.name, created)
                if found is None:
                    self.log.warning("%s: workspace %s is gone: made again", self._log_name, self.pvc_name)
                    await self._make_create_pvc_request(self.get_pvc_manifest(), self.k8s_api_request_timeout)
                    found = await claims.check_workspace(
                        self.api, self.namespace, self.pvc_name, self.user.name, created
                    )
                self._run_as(uids.of_claim(found) if found is not None else None)
            except FieldError as e:  # another's claim (409), one being migrated (503)
                self.log.error("spawn of %s refused: %s", self._log_name, e)
                raise web.HTTPError(e.status, str(e)) from None
        return await super().get_pod_manifest()

    def _run_as(self, uid: int | None) -> None:
        """The pod's security context for a workspace of ``uid`` (None: made before uids)."""
        chosen = self._chosen
        if chosen is None:  # (no options were loaded: nothing of the workload to redo)
            return
        cat, choice, groups = chosen
        w = build(cat, choice, self.pvc_name, groups, uid)
        self.pod_security_context = dict(w.pod_security_context)
        self.container_security_context = dict(w.container_security_context)
        self._new_uid = None
        self.log.info("%s runs as uid %s", self._log_name, w.pod_security_context["runAsUser"])
