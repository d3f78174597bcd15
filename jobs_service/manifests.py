"""Pure builders: a job definition -> its snapshot ConfigMap, CronJob and run-now Job.

The pod comes from the spawner's workload builder, so a job runs with the image,
resources, GPUs, placement, volumes and security context its notebook was developed with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client import V1PersistentVolumeClaim
from kubespawner.objects import make_pvc
from kubespawner.slugs import safe_slug

from moonhub_core import pods, secrets
from moonhub_core.catalog import Storage, team_claim
from moonhub_core.security import with_umask
from moonhub_core.workload import Workload

from .jobspec import CONCURRENCY_POLICY, Definition

#: an emptyDir the runner fetches the notebook version into
SNAPSHOT_MOUNT = "/snapshot"
#: where outputs land in the owner's workspace: jobs/<definition>/<k8s job name>.ipynb
OUTPUT_DIR = "jobs"
RUNNER = "moonhub-run-notebook"
#: how the runner gets its notebook: "launch" (fetched from the service); CronJobs made
#: before it (a ConfigMap) are replaced at the next reconcile
RUNNER_API_LABEL = "moonhub.io/runner-api"
RUNNER_API = "launch"
#: on a CronJob: the uid its runs run as (its owner's workspace's, moonhub_core/uids.py);
#: reconcile makes a CronJob again when its owner's workspace got another (a migration)
RUN_AS_LABEL = "moonhub.io/run-as"
#: the time a run MoonHub starts stands for (a CronJob's Job has Kubernetes' own)
SCHEDULED = "moonhub.io/scheduled-time"
#: a pipeline's run is a suspended Job that never gets a pod (the CronJob makes one per tick,
#: and its concurrency policy counts it while the run lasts); each task is a Job of its own,
#: labelled with its task and the run it belongs to (the run's own Job's name)
PIPELINE = "moonhub.io/pipeline"
TASK = "moonhub.io/task"
PIPELINE_RUN = "moonhub.io/pipeline-run"
#: where a task's notebook writes what it publishes (``moonhub.publish``); the runner sends it
PUBLISH_FILE = f"{SNAPSHOT_MOUNT}/published.json"


#: a team's principal is this followed by the group's name (``/`` is never in a hub user's)
TEAM_PRINCIPAL = "team/"


def team_of(runner: str) -> str | None:
    """The team a runner's name stands for (``Names.runner``), or None for a user's name."""
    return runner[len(TEAM_PRINCIPAL) :] if runner.startswith(TEAM_PRINCIPAL) else None


@dataclass(frozen=True)
class Names:
    """Kubernetes names of one definition's objects; CronJob names are at most 52 chars.

    The CronJob's name ends in a hash of the (owner, job) pair, so two pairs never share a
    name ("alice" + "bob-x" and "alice-bob" + "x" once did): readable parts for people, the
    hash for uniqueness. A definition keeps the name it was created with (``stored``)."""

    owner: str
    definition: str
    #: the CronJob name recorded when the definition was created (names made by older
    #: versions stay as they were)
    stored: str = ""
    #: the team that owns the job (its folder is the runs' workspace), or "" (the owner's)
    team: str = ""

    @property
    def owner_slug(self) -> str:
        return safe_slug(self.owner, max_length=16)

    @property
    def cronjob(self) -> str:
        if self.stored:
            return self.stored
        digest = hashlib.sha256(f"{self.owner}\0{self.definition}".encode()).hexdigest()[:8]
        return f"nb-{self.owner_slug}-{self.definition[:22]}-{digest}"

    @property
    def runner(self) -> str:
        """Whom the runs run as: the team's principal (``teams``), or the owner. Its
        secrets are the ones a run's pod is given."""
        return f"{TEAM_PRINCIPAL}{self.team}" if self.team else self.owner

    @property
    def workspace_claim(self) -> str:
        """The owner's workspace PVC, named as MoonSpawner (KubeSpawner's slugs) names it; a
        team job's is the team folder's claim."""
        if self.team:
            return team_claim(self.team)
        return f"claim-{safe_slug(self.owner, max_length=48)}"

    def labels(self) -> dict[str, str]:
        return {
            pods.COMPONENT: pods.NOTEBOOK_JOB,
            pods.OWNER: self.owner_slug,
            pods.JOB: self.definition,
        }


@dataclass(frozen=True)
class Launch:
    """Where a run's pod fetches its notebook version and parameters (``launch``): the
    version's address at the service, the key that opens it, the notebook's digest."""

    url: str
    key: str
    sha256: str


def workspace_pvc(names: Names, storage: Storage, storage_class: str, namespace: str) -> V1PersistentVolumeClaim:
    """The owner's workspace PVC, made by KubeSpawner's own builder as the spawner makes it,
    for owners who never started a server."""
    pvc: V1PersistentVolumeClaim = make_pvc(
        name=names.workspace_claim,
        storage_class=storage_class,
        access_modes=[storage.access_mode],
        selector=None,
        storage=storage.capacity,
        labels={
            "app.kubernetes.io/component": "singleuser-storage",
            "component": "singleuser-storage",
            pods.OWNER: names.owner_slug,
        },
        annotations={pods.HUB_USER: names.owner},
    )
    pvc.metadata.namespace = namespace
    return pvc


def literal_env(value: str) -> str:
    """``value`` as a container environment value that Kubernetes passes on unchanged: it
    expands ``$(NAME)`` in values and turns ``$$`` into ``$``, so every ``$`` is doubled."""
    return value.replace("$", "$$")


def pod_spec(defn: Definition, names: Names, launch: Launch, w: Workload) -> dict[str, Any]:
    """The run's pod: the workload's (HOME, the working folder and the output under the
    workspace's mount, the catalog's ``storage.mount_path``), the runner and the secrets."""
    workspace = w.home
    output = f"{workspace}/{OUTPUT_DIR}/{defn.name}/$(MOONHUB_RUN).ipynb"
    secret_env, secret_volumes, secret_mounts = secrets.pod_parts(defn.secret_uses(), names.runner)
    env = [
        {"name": "MOONHUB_RUN", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}}},
        {"name": "MOONHUB_LAUNCH_URL", "value": literal_env(launch.url)},
        {"name": "MOONHUB_LAUNCH_KEY", "value": launch.key},
        {"name": "MOONHUB_SNAPSHOT_SHA256", "value": launch.sha256},
        # the run folder: files the notebook writes here are kept with the run
        {"name": "MOONHUB_RUN_DIR", "value": f"{workspace}/{OUTPUT_DIR}/{defn.name}/$(MOONHUB_RUN)"},
        *({"name": k, "value": v} for k, v in sorted(w.env.items())),
        *secret_env,
    ]
    resources = {
        "requests": {"cpu": str(w.cpu_guarantee), "memory": w.mem_guarantee, **w.extra_resource_guarantees},
        "limits": {"cpu": str(w.cpu_limit), "memory": w.mem_limit, **w.extra_resource_limits},
    }
    volumes = [*w.volumes, {"name": "snapshot", "emptyDir": {"sizeLimit": "1Gi"}}, *secret_volumes]
    mounts = [*w.volume_mounts, {"name": "snapshot", "mountPath": SNAPSHOT_MOUNT}, *secret_mounts]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": w.pod_security_context,
        "containers": [
            {
                "name": "notebook",
                "image": w.image,
                "command": with_umask(
                    [RUNNER, "--launch", f"{SNAPSHOT_MOUNT}/notebook.ipynb", output, "--cwd", workspace]
                    + (["--kernel", defn.kernel] if defn.kernel else [])
                ),
                "workingDir": workspace,
                "env": env,
                "resources": resources,
                "volumeMounts": mounts,
                "securityContext": w.container_security_context,
            }
        ],
        "volumes": volumes,
    }
    if w.node_selector:
        spec["nodeSelector"] = w.node_selector
    if w.tolerations:
        spec["tolerations"] = w.tolerations
    if w.node_affinity_required:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": w.node_affinity_required}
            }
        }
    return spec


def job_spec(defn: Definition, names: Names, version: int, launch: Launch, w: Workload) -> dict[str, Any]:
    return {
        "activeDeadlineSeconds": defn.timeout_seconds,
        "backoffLimit": defn.retries,
        "ttlSecondsAfterFinished": 24 * 3600,
        "template": {
            "metadata": {
                "labels": {**names.labels(), **w.labels, pods.VERSION: str(version)},
                # the owner's hub name (labels hold only a slug): the admin console shows it
                "annotations": {pods.OWNER: names.owner},
            },
            "spec": pod_spec(defn, names, launch, w),
        },
    }


def marker_job_spec(names: Names, version: int, image: str) -> dict[str, Any]:
    """A pipeline run's own Job: suspended for its whole life, so it never has a pod (a
    pod template is required; this one is never used). MoonHub deletes it when the run ends."""
    return {
        "suspend": True,
        "backoffLimit": 0,
        "template": {
            "metadata": {"labels": {**names.labels(), pods.VERSION: str(version)}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": [{"name": "pipeline", "image": image, "command": ["true"]}],
            },
        },
    }


def task_job(
    defn: Definition,
    names: Names,
    version: int,
    launch: Launch,
    w: Workload,
    namespace: str,
    job_name: str,
    task: str,
    run_name: str,
    trigger: str,
) -> dict[str, Any]:
    """The Job of one task of a pipeline run (``defn``: the job as that task runs it)."""
    spec = job_spec(defn, names, version, launch, w)
    spec["template"]["spec"]["containers"][0]["env"].append({"name": "MOONHUB_PUBLISH_FILE", "value": PUBLISH_FILE})
    extra = {TASK: task, PIPELINE_RUN: run_name}
    spec["template"]["metadata"]["labels"].update(extra)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": namespace,
            "labels": {**names.labels(), pods.VERSION: str(version), pods.TRIGGER: trigger, **extra},
        },
        "spec": spec,
    }


def cronjob(
    defn: Definition, names: Names, version: int, launch: Launch, w: Workload, namespace: str
) -> dict[str, Any]:
    labels = {**names.labels(), pods.VERSION: str(version), RUNNER_API_LABEL: RUNNER_API}
    if defn.tasks:
        labels[PIPELINE] = "true"
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": names.cronjob,
            "namespace": namespace,
            "labels": {**labels, RUN_AS_LABEL: str(w.pod_security_context.get("runAsUser", ""))},
        },
        "spec": {
            # a definition without a schedule exists only to be run by hand: it stays suspended
            "schedule": defn.schedule or "0 0 1 1 *",
            "timeZone": defn.timezone,
            "concurrencyPolicy": CONCURRENCY_POLICY[defn.concurrency],
            "suspend": not (defn.active and defn.schedule),
            "startingDeadlineSeconds": 300,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": marker_job_spec(names, version, w.image)
                if defn.tasks
                else job_spec(defn, names, version, launch, w),
            },
        },
    }


def manual_job(cron: dict[str, Any], run_name: str, trigger: str = "manual", scheduled: str = "") -> dict[str, Any]:
    """A Job made from a CronJob's template, as ``kubectl create job --from=cronjob`` does;
    ``scheduled``: the time the run stands for (ISO 8601; empty: when it is made)."""
    tmpl = cron["spec"]["jobTemplate"]
    notes = {"cronjob.kubernetes.io/instantiate": "manual"}
    if scheduled:
        notes[SCHEDULED] = scheduled
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": run_name,
            "namespace": cron["metadata"]["namespace"],
            "labels": {**tmpl["metadata"]["labels"], pods.TRIGGER: trigger},
            "annotations": notes,
        },
        "spec": tmpl["spec"],
    }
