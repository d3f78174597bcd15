"""The workload builder: (catalog, choices, user) -> the pieces of a pod. Pure.

The spawner applies a :class:`Workload` to KubeSpawner's traits; the jobs service builds
its CronJob pod template from the same object, so a scheduled notebook runs with exactly
the image, resources, GPUs, placement and volumes it was developed with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import packages, workspaces
from .catalog import Catalog
from .choices import Choices
from .pods import GPU_NODE_LABEL, GPU_RESOURCE, choice_labels
from .security import NB_HOME, container_security_context, pod_security_context, user_env

WORKSPACE_VOLUME = "workspace"


@dataclass(frozen=True)
class Workload:
    image: str
    cpu_guarantee: float
    cpu_limit: float
    mem_guarantee: str
    mem_limit: str
    extra_resource_limits: dict[str, str] = field(default_factory=dict)
    extra_resource_guarantees: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    node_affinity_required: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    pod_security_context: dict[str, Any] = field(default_factory=pod_security_context)
    container_security_context: dict[str, Any] = field(default_factory=container_security_context)
    #: the workspace's mount: HOME, and where a job runs and writes its output
    home: str = NB_HOME

    @property
    def gpus(self) -> int:
        return int(self.extra_resource_limits.get(GPU_RESOURCE, "0"))


def build(
    catalog: Catalog,
    choices: Choices,
    claim_name: str,
    groups: Iterable[str] = (),
    uid: int | None = None,
    package_index: str = "",
) -> Workload:
    """The pod pieces for ``choices``; ``claim_name`` is the owner's workspace PVC, ``groups``
    their groups (which datasets and team folders they get), ``uid`` the one their workspace
    belongs to (:mod:`.uids`; None for a workspace made before uids), ``package_index`` where
    its pip installs from (:mod:`.packages`; "": nowhere)."""
    groups = set(groups)
    env_ = catalog.environment(choices.environment)
    size = catalog.size(choices.size)
    if env_ is None or size is None:  # parse() guarantees both; a stale catalog may not
        raise LookupError(f"catalog has no environment {choices.environment!r} or size {choices.size!r}")
    st = catalog.storage
    volumes: list[dict[str, Any]] = [
        {"name": WORKSPACE_VOLUME, "persistentVolumeClaim": {"claimName": claim_name}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": st.shm_size}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": WORKSPACE_VOLUME, "mountPath": st.mount_path},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    for ds in st.datasets:
        if ds.groups and not groups & set(ds.groups):
            continue
        name = f"dataset-{ds.name}"
        volumes.append({"name": name, "persistentVolumeClaim": {"claimName": ds.claim, "readOnly": True}})
        mounts.append({"name": name, "mountPath": ds.mount_path, "readOnly": True})
    gids = []
    for tf in workspaces.team_folders(st, groups):
        claim = workspaces.team_claim(tf.group)
        volumes.append({"name": claim, "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": claim, "mountPath": st.team_folder_path(tf)})
        gids.append(tf.gid)
    # the team folders' groups (mode 2770): other teams' processes can not enter them
    security = pod_security_context(uid, gids)

    labels = choice_labels(env_.name, size.name, choices.gpu_type, choices.gpu_count)
    # the choices, for what runs in the pod (the lab extension defaults a job to them)
    chosen = {
        **user_env(st.mount_path),
        **packages.pod_env(package_index),
        "MOONHUB_ENVIRONMENT": env_.name,
        "MOONHUB_SIZE": size.name,
        "MOONHUB_GPU_TYPE": choices.gpu_type or "",
        "MOONHUB_GPU_COUNT": str(choices.gpu_count),
    }
    common: dict[str, Any] = dict(
        image=env_.pinned_image,
        cpu_guarantee=size.cpu_guarantee,
        cpu_limit=size.cpu_limit,
        mem_guarantee=size.memory_guarantee,
        mem_limit=size.memory_limit,
        volumes=volumes,
        volume_mounts=mounts,
        labels=labels,
        pod_security_context=security,
        container_security_context=container_security_context(uid),
        home=st.mount_path,
    )
    gpu = catalog.gpu_type(choices.gpu_type) if choices.gpu_type else None
    if gpu is None or choices.gpu_count == 0:
        return Workload(
            **common,
            node_affinity_required=[{"matchExpressions": [{"key": GPU_NODE_LABEL, "operator": "DoesNotExist"}]}],
            # no GPU is visible even where the NVIDIA runtime would expose all by default
            env={**chosen, "NVIDIA_VISIBLE_DEVICES": "void"},
        )
    count = str(choices.gpu_count)
    return Workload(
        **common,
        env=chosen,
        extra_resource_limits={GPU_RESOURCE: count},
        extra_resource_guarantees={GPU_RESOURCE: count},
        node_selector=dict(gpu.node_selector),
        tolerations=[dict(t) for t in gpu.tolerations],
    )
