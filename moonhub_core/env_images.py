"""Images built from users' environments (issue 35, item 3; docs/environment-images.md): the
pure parts. What a build request may say, the Dockerfile and the build pod MoonHub makes of
it, where the image goes, and the checks a built image must pass before anyone runs it.

A build is ``FROM`` the catalog image the user chose (by the digest the catalog recorded),
plus the environment's packages, installed into the image's own Python environment from the
platform's package index: the image's default kernel, its notebook server and its job runner
then have them. The image runs as the catalog's do (uid 1000, ``jupyterhub-singleuser``), so
it is checked like an image an admin offers: its config names a non-root user, and it starts
as a notebook server.

The build pod has two containers, in turn: ``build`` (rootless BuildKit; the package
installs run here, and a package's setup script is code its author wrote) writes the image
to an ``emptyDir`` as an OCI archive and holds no credential; ``push`` (skopeo) sends it to
the registry, with the registry's login when there is one, and runs nothing the build made.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from .errors import FieldError
from .pods import COMPONENT, GPU_NODE_LABEL, OWNER, PREFIX

#: an environment's name (the lab's ``moonhub-env`` makes them with the same rule)
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
#: one line of a frozen environment, as ``pip freeze`` writes it: a package by name, its
#: extras, and one exact version. Nothing else is built: no URLs, paths, options or ranges
PINNED = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(\[[A-Za-z0-9._,-]+\])?==([A-Za-z0-9.+!_-]{1,64})")
MAX_PACKAGES = 300
#: the component label of build pods, and of the pods that remove a build's image
BUILD = "image-build"
REMOVAL = "image-removal"
BUILD_ID = f"{PREFIX}image-build"
#: where the image's own Python environment is (images/base-notebook) and who it runs as
VENV = "/opt/moonhub/venv"
RUN_AS = 1000
#: the build container's exit status when its own watch stopped it past ``builds.disk``
#: (images/image-builder/moonhub-buildkitd)
OVER_DISK = 75
#: the states of a build, in order; the last three are ends
STATES = ("queued", "building", "checking", "ready", "failed", "cancelled")
ENDED = ("ready", "failed", "cancelled")


@dataclass(frozen=True)
class Request:
    """A build request, checked: the environment's name, its frozen packages, and the catalog
    environment whose image it builds on."""

    environment: str
    packages: tuple[str, ...]
    base: str


def check_request(body: Any) -> Request:
    """A build request from its JSON body; FieldError (400) naming the field that is wrong.
    Pure."""
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object with environment, packages and base")
    unknown = sorted(set(body) - {"environment", "packages", "base"})
    if unknown:
        raise FieldError(unknown[0], "unknown field; a build has environment, packages and base")
    env = body.get("environment")
    if not isinstance(env, str) or not NAME.fullmatch(env):
        raise FieldError("environment", "must be an environment's name: 1-40 lowercase letters, digits, '-' and '_'")
    base = body.get("base")
    if not isinstance(base, str) or not base.strip():
        raise FieldError("base", "must name the catalog environment whose image the build starts from")
    return Request(env, check_packages(body.get("packages")), base.strip())


def check_packages(packages: Any) -> tuple[str, ...]:
    """The frozen packages of an environment: each ``name==version`` (extras allowed), at most
    :data:`MAX_PACKAGES`, none twice. The refusal names the entry. Pure."""
    if not isinstance(packages, list) or not packages:
        raise FieldError("packages", "must be a non-empty list of name==version (the environment, frozen)")
    if len(packages) > MAX_PACKAGES:
        raise FieldError("packages", f"{len(packages)} packages: at most {MAX_PACKAGES} may be built into an image")
    seen: dict[str, str] = {}
    out = []
    for n, p in enumerate(packages):
        where = f"packages[{n}]"
        if not isinstance(p, str):
            raise FieldError(where, "must be a string, name==version")
        m = PINNED.fullmatch(p.strip())
        if not m:
            raise FieldError(
                where,
                f"{p[:80]!r}: only packages by name with one exact version (name==1.2.3), from the platform's "
                "index: no URLs, paths, options or ranges",
            )
        key = re.sub(r"[-_.]+", "-", m.group(1)).lower()
        if key in seen:
            raise FieldError(where, f"{m.group(1)!r} is named twice ({seen[key]!r} and {p.strip()!r})")
        seen[key] = p.strip()
        out.append(p.strip())
    return tuple(out)


def repository(prefix: str, owner: str, environment: str) -> str:
    """The repository of ``owner``'s images of ``environment``: ``<prefix>/<owner>/<env>``,
    with the user name made a valid path component (lowercase letters, digits, ``.``, ``_``,
    ``-``; a name that had to change gets a short hash of itself, so two names never meet).
    Pure."""
    safe = re.sub(r"[^a-z0-9._-]+", "-", owner.lower()).strip("._-") or "user"
    if safe != owner:
        safe = f"{safe[:40]}-{hashlib.sha256(owner.encode()).hexdigest()[:8]}"
    return f"{prefix.strip('/')}/{safe}/{environment}"


def tag(build_id: int) -> str:
    return f"build-{build_id}"


def dockerfile(base_image: str, owner: str, environment: str, index_url: str, trusted_host: str) -> str:
    """The Dockerfile of a build: ``base_image`` (pinned by digest) plus ``requirements.txt``
    installed into the image's environment from ``index_url``, and nothing else. Every value
    in it is MoonHub's or checked (the packages go in the file, not here). Pure."""
    labels = json.dumps({f"{PREFIX}built-by": owner, f"{PREFIX}environment-image": environment})
    trusted = f" --trusted-host {trusted_host}" if trusted_host else ""
    return "\n".join(
        [
            # no `# syntax=` line: BuildKit's own Dockerfile frontend, not an image from a registry
            "# MoonHub: an environment's packages on a catalog image (docs/environment-images.md)",
            f"FROM {base_image}",
            "USER root",
            "COPY requirements.txt /opt/moonhub/environment-requirements.txt",
            f"RUN {VENV}/bin/pip install --no-cache-dir --progress-bar off --index-url {index_url}{trusted}"
            " -r /opt/moonhub/environment-requirements.txt",
            f"USER {RUN_AS}",
            *(f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in json.loads(labels).items()),
            "",
        ]
    )


@dataclass(frozen=True)
class Bounds:
    cpu: str
    memory: str
    disk: str
    timeout: int
    max_image_bytes: int


#: the push login's file in the containers that mount it (``builds.push_secret``)
PUSH_AUTHFILE = "/run/push-login/config.json"
#: the push and removal containers: the builder image's user, nothing added
PUSH_SECURITY: dict[str, Any] = {
    "runAsUser": RUN_AS,
    "runAsGroup": RUN_AS,
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _push_login(push_secret: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The volume and mount of ``push_secret`` (``namespace/name``; none when empty)."""
    if not push_secret:
        return [], []
    volume = {"name": "push-login", "secret": {"secretName": push_secret.split("/", 1)[1], "defaultMode": 0o440}}
    return [volume], [{"name": "push-login", "mountPath": PUSH_AUTHFILE.rsplit("/", 1)[0], "readOnly": True}]


def _one_off_pod(
    name: str, component: str, build_id: int, owner: str, deadline: int, spec: dict[str, Any]
) -> dict[str, Any]:
    """A pod of the builds' namespace that runs once: labelled with its build, its owner
    annotated, no service-account token, no service links, ``deadline`` seconds at most."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {COMPONENT: component, BUILD_ID: str(build_id)},
            "annotations": {OWNER: owner},
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "activeDeadlineSeconds": deadline,
            "terminationGracePeriodSeconds": 5,
            **spec,
        },
    }


def build_pod(
    *,
    name: str,
    build_id: int,
    owner: str,
    builder_image: str,
    dockerfile_text: str,
    packages: tuple[str, ...],
    push_to: str,
    plain_http_registries: list[str],
    push_secret: str,
    bounds: Bounds,
) -> dict[str, Any]:
    """The pod of one build (pure). ``build`` runs first (an init container): rootless
    BuildKit, bounded by the pod's CPU, memory, disk and deadline, no credential; ``push``
    then sends the archive, with ``push_secret``'s login mounted in it alone."""
    work = {"name": "work", "mountPath": "/work"}
    resources = {
        "requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "1Gi"},
        "limits": {"cpu": bounds.cpu, "memory": bounds.memory, "ephemeral-storage": bounds.disk},
    }
    # BuildKit is root in a user namespace of its own (RootlessKit: newuidmap, a setuid
    # program, maps /etc/subuid's range), which the runtime's default seccomp profile and
    # no_new_privs would refuse; the user stays 1000 and nothing is added to its capabilities
    build_security = {
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": True,
        "seccompProfile": {"type": "Unconfined"},
    }
    login_volumes, login_mounts = _push_login(push_secret)
    push_mounts: list[dict[str, Any]] = [work, *login_mounts]
    volumes: list[dict[str, Any]] = [{"name": "work", "emptyDir": {"sizeLimit": bounds.disk}}, *login_volumes]
    push_env = [
        {"name": "PUSH_TO", "value": push_to},
        {"name": "PUSH_TLS_VERIFY", "value": "false" if push_to.split("/")[0] in plain_http_registries else "true"},
        {"name": "PUSH_MAX_BYTES", "value": str(bounds.max_image_bytes)},
    ]
    if push_secret:
        push_env.append({"name": "PUSH_AUTHFILE", "value": PUSH_AUTHFILE})
    return _one_off_pod(
        name,
        BUILD,
        build_id,
        owner,
        bounds.timeout,
        {
            "securityContext": {"fsGroup": RUN_AS},
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": GPU_NODE_LABEL, "operator": "DoesNotExist"}]}
                        ]
                    }
                }
            },
            "initContainers": [
                {
                    "name": "build",
                    "image": builder_image,
                    "command": ["moonhub-build"],
                    "env": [
                        {"name": "BUILD_DOCKERFILE", "value": dockerfile_text},
                        {"name": "BUILD_REQUIREMENTS", "value": "\n".join(packages)},
                        {"name": "BUILD_PLAIN_HTTP_REGISTRIES", "value": ",".join(plain_http_registries)},
                        {"name": "BUILD_DISK_BYTES", "value": str(int(parse_quantity(bounds.disk)))},
                    ],
                    "volumeMounts": [work],
                    "resources": resources,
                    "securityContext": build_security,
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
            "containers": [
                {
                    "name": "push",
                    "image": builder_image,
                    "command": ["moonhub-push"],
                    "env": push_env,
                    "volumeMounts": push_mounts,
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"cpu": "1", "memory": "512Mi"},
                    },
                    "securityContext": dict(PUSH_SECURITY),
                }
            ],
            "volumes": volumes,
        },
    )


def removal_pod(
    *,
    name: str,
    build_id: int,
    owner: str,
    builder_image: str,
    ref: str,
    plain_http_registries: list[str],
    push_secret: str,
) -> dict[str, Any]:
    """The pod that deletes a removed build's image (``ref``, ``registry/repository@digest``)
    from the registry, with the push login (pure). The registry's own clean-up then frees the
    layers no other image holds; without the delete, the image's tag would keep them."""
    if "@sha256:" not in ref:
        raise ValueError(f"{ref!r}: an image is removed by its digest only")
    volumes, mounts = _push_login(push_secret)
    argv = ["skopeo", "delete", "--retry-times", "3"]
    argv.append(f"--tls-verify={'false' if ref.split('/')[0] in plain_http_registries else 'true'}")
    if push_secret:
        argv += ["--authfile", PUSH_AUTHFILE]
    return _one_off_pod(
        name,
        REMOVAL,
        build_id,
        owner,
        120,
        {
            # the login's file is root's and its group's (mode 0440): the pod's group reads it
            "securityContext": {"fsGroup": RUN_AS},
            "containers": [
                {
                    "name": "remove",
                    "image": builder_image,
                    "command": [*argv, f"docker://{ref}"],
                    "volumeMounts": mounts,
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "64Mi"},
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                    },
                    "securityContext": dict(PUSH_SECURITY),
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
            "volumes": volumes,
        },
    )


def removal_outcome(pod: Mapping[str, Any]) -> tuple[bool, str] | None:
    """Pure: ``(removed, what was said)`` of a removal pod that has ended; None while it runs."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase == "Succeeded":
        return True, ""
    if phase != "Failed":
        return None
    for c in status.get("containerStatuses") or []:
        done = (c.get("state") or {}).get("terminated") or {}
        if done:
            said = (done.get("message") or "").strip() or f"exit {done.get('exitCode')}"
            return False, said[-500:]
    return False, status.get("message") or status.get("reason") or "the pod failed"


def still_used(digest: str, catalog_images: list[str], other_digests: list[str]) -> str | None:
    """Why an image must stay in the registry though its build is removed (pure): a catalog
    environment runs it (an admin promoted it), or another build came out as the same image.
    None: nothing else uses it."""
    if not digest:
        return "nothing was pushed"
    for image in catalog_images:
        if digest in image:
            return f"the catalog's image {image} is it"
    if digest in other_digests:
        return "another build is the same image"
    return None


def pod_outcome(pod: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """Pure: ``(state, what to say, what the push reported)`` of a build pod that has ended:
    ``("pushed", ...)`` or ``("failed", why)``; None while it goes on."""
    status = pod.get("status") or {}
    reason, message = status.get("reason") or "", status.get("message") or ""
    if reason == "DeadlineExceeded":
        return "failed", "the build ran past its time limit (builds.timeout) and was stopped", {}
    if reason == "Evicted":
        if "ephemeral" in message.lower() or "emptydir" in message.lower():
            return "failed", f"the build used more disk than it may (builds.disk): {message}", {}
        return "failed", f"the node evicted the build: {message}", {}
    for cs in status.get("initContainerStatuses") or []:
        done = (cs.get("state") or {}).get("terminated") or {}
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
            return "failed", f"the builder image could not be pulled: {waiting.get('message', '')}", {}
        if done and done.get("exitCode") == OVER_DISK:
            return (
                "failed",
                f"the build used more disk than it may (builds.disk): {reason_in_log(done.get('message') or '')}",
                {},
            )
        if done and done.get("exitCode") != 0:
            # the kernel's OOM killer: BuildKit itself (the container's reason), or a step's
            # process (its exit code 137 in BuildKit's summary)
            if done.get("reason") == "OOMKilled" or "exit code: 137" in (done.get("message") or ""):
                return "failed", "the build ran out of memory (builds.memory)", {}
            why = reason_in_log(done.get("message") or "")
            return "failed", f"the build failed (exit {done.get('exitCode')}){': ' + why if why else ''}", {}
    for cs in status.get("containerStatuses") or []:
        done = (cs.get("state") or {}).get("terminated") or {}
        if not done:
            continue
        try:
            told = json.loads(done.get("message") or "{}")
        except ValueError:
            told = {}
        if not isinstance(told, dict):
            told = {}
        if done.get("exitCode") == 0 and isinstance(told.get("digest"), str):
            return "pushed", "", told
        if told.get("refused") == "too-large":
            return (
                "failed",
                f"the image is {told.get('bytes')} bytes, over the platform's limit (builds.max_image_bytes)",
                {},
            )
        return "failed", f"the push failed (exit {done.get('exitCode')})", {}
    if status.get("phase") == "Failed":
        return "failed", message or reason or "the build pod failed", {}
    return None


def reason_in_log(log: str) -> str:
    """Pure: why a build failed, from the end of its output: the first error a step printed
    (pip's ``ERROR: No matching distribution found for x``), not BuildKit's summary that a
    step failed; else the last line."""
    lines = [ln.strip() for ln in log.strip().splitlines() if ln.strip()]
    errors = [ln[ln.index("ERROR:") :] for ln in lines if "ERROR:" in ln]
    own = [e for e in errors if "did not complete successfully" not in e and "failed to solve" not in e]
    if own:
        return own[0][:500]
    if errors:
        return errors[-1][:500]
    return lines[-1][:500] if lines else ""


def config_problems(config: Mapping[str, Any]) -> list[str]:
    """Pure: what an image's config (the OCI config blob) breaks of the catalog's rules: it
    must run as a non-root user, by number or name, and start the notebook server's way."""
    c = config.get("config") or {}
    user = str(c.get("User") or "")
    problems = []
    name = user.split(":", 1)[0]
    if name in ("", "0", "root"):
        problems.append(f"runs as root (USER {user or 'unset'}); images run as a non-root user")
    return problems


def added_bytes(manifest: Mapping[str, Any], base: Mapping[str, Any]) -> int:
    """Pure: the compressed bytes of the layers an image has that its base has not."""
    have = {layer.get("digest") for layer in base.get("layers") or []}
    return sum(int(layer.get("size") or 0) for layer in manifest.get("layers") or [] if layer.get("digest") not in have)
