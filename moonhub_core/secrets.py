"""Users' and teams' secrets: names, what a job or server asks for, and the pod parts that
deliver them (pure).

A secret is a Kubernetes Secret in the users' namespace that MoonHub made: a user's own
(``msec-u-<owner digest>-<name>``) or a team's, granted to a hub group
(``msec-t-<group digest>-<name>``). The name says whose it is, so a pod is only ever built
with the secrets of the user it runs for and of their groups. A value reaches a pod as an
environment variable or as a file under ``/var/run/secrets/moonhub``; it is never written
into a manifest, a notebook version or an API answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import FieldError

NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")
ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
FILE = re.compile(r"[A-Za-z0-9._-]{1,100}")
#: What a secret may not be delivered as, compared without case: variables the platform sets
#: on its pods, or that the container runtime, the dynamic loader, the shell, Python, pip or
#: Jupyter read to decide what runs and what the pod may use. A team's secret reaches every
#: member's pods: as one of these it would run code as them or undo what the platform set
#: (``NVIDIA_VISIBLE_DEVICES=all`` on a CPU server). docs/jobs.md states the rule.
RESERVED_ENV = frozenset(
    {
        # the shell and the user
        "HOME", "PATH", "USER", "LOGNAME", "SHELL", "PWD", "LANG", "LANGUAGE", "ENV", "BASH_ENV",
        "IFS", "PS4", "PROMPT_COMMAND", "TMPDIR",
        # devices (the NVIDIA and ROCm runtimes, CUDA)
        "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL",
        # where traffic goes and whom TLS trusts
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    }
)  # fmt: skip
RESERVED_PREFIXES = (
    "MOONHUB_", "JUPYTERHUB_", "JPY_", "JUPYTER_", "KUBERNETES_",  # the platform's and Kubernetes'
    "NVIDIA_",  # the NVIDIA container runtime: which GPUs and driver parts a container gets
    "LD_",  # the dynamic loader (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT)
    "PYTHON", "PIP_", "CONDA_", "MAMBA_",  # the interpreter and installers (PYTHONPATH, PYTHONSTARTUP)
    "NB_", "CHOWN_", "GRANT_",  # the notebook images' start-up (docker-stacks)
    "LC_",  # locale
)  # fmt: skip


def reserved_env(name: str) -> bool:
    """Whether a secret may not be delivered as the variable ``name``."""
    upper = name.upper()
    return upper in RESERVED_ENV or upper.startswith(RESERVED_PREFIXES)


MOUNT = "/var/run/secrets/moonhub"
KEY = "value"
MAX_VALUE = 64 * 1024
MAX_USES = 20
USER_COMPONENT = "user-secret"
TEAM_COMPONENT = "team-secret"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def check_name(field: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise FieldError(field, "a secret's name is 1 to 40 lower-case letters, digits and '-' (not first or last)")
    return name


def user_secret(owner: str, name: str) -> str:
    """The Kubernetes Secret of ``owner``'s secret ``name``."""
    return f"msec-u-{_digest(owner)}-{name}"


def team_secret(group: str, name: str) -> str:
    """The Kubernetes Secret of group ``group``'s secret ``name``."""
    return f"msec-t-{_digest(group)}-{name}"


@dataclass(frozen=True)
class Delivery:
    """How a pod receives one secret: as the environment variable ``env`` or as the file
    ``file`` under :data:`MOUNT`."""

    env: str = ""
    file: str = ""

    def as_json(self) -> dict[str, str]:
        return {"env": self.env} if self.env else {"file": self.file}


def check_delivery(field: str, value: Any) -> Delivery:
    if not isinstance(value, dict) or len(value) != 1 or not ({"env", "file"} & set(value)):
        raise FieldError(field, 'give either {"env": "NAME"} or {"file": "name"}')
    if "env" in value:
        env = value["env"]
        if not isinstance(env, str) or not ENV.fullmatch(env):
            raise FieldError(field, f"{env!r} is not an environment variable name")
        if reserved_env(env):
            raise FieldError(
                field, f"{env} is read by the platform or the runtime (it decides what runs); use another name"
            )
        return Delivery(env=env)
    file = value["file"]
    if not isinstance(file, str) or not FILE.fullmatch(file) or file in (".", ".."):
        raise FieldError(field, f"{file!r} is not a file name (letters, digits, '.', '_', '-')")
    return Delivery(file=file)


@dataclass(frozen=True)
class Use:
    """One secret a job (or server) asks for: a user's own, or ``team``'s."""

    name: str
    delivery: Delivery
    team: str = ""

    def label(self) -> str:
        return f"{self.team}/{self.name}" if self.team else self.name

    def secret(self, owner: str) -> str:
        return team_secret(self.team, self.name) if self.team else user_secret(owner, self.name)

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, **({"team": self.team} if self.team else {}), **self.delivery.as_json()}


def parse_uses(value: Any, field: str = "secrets") -> list[Use]:
    """What a job asks for: ``[{"name": "db", "env": "DB_PASSWORD"}, {"name": "key",
    "team": "ml", "file": "key.json"}]``; each variable and file once."""
    if value in (None, []):
        return []
    if not isinstance(value, list) or len(value) > MAX_USES:
        raise FieldError(field, f"must be a list of at most {MAX_USES} secrets")
    uses: list[Use] = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"name", "team", "env", "file"}:
            raise FieldError(field, 'each is {"name": ..., "env": ...} or {"name": ..., "file": ...} (and "team")')
        name = check_name(field, item.get("name"))
        team = item.get("team") or ""
        if not isinstance(team, str) or len(team) > 255:
            raise FieldError(field, f"{name}: team must be a group's name")
        delivery = check_delivery(field, {k: v for k, v in item.items() if k in ("env", "file")})
        uses.append(Use(name, delivery, team))
    envs = [u.delivery.env for u in uses if u.delivery.env]
    files = [u.delivery.file for u in uses if u.delivery.file]
    for kind, names in (("environment variable", envs), ("file", files)):
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise FieldError(field, f"{kind} {dup[0]} is given twice")
    return uses


def pod_parts(uses: list[Use], owner: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Environment variables, volumes and mounts that deliver ``uses`` to ``owner``'s pod:
    references to the Secrets, never their values. A delivery saved before its variable was
    reserved is refused here too, never built into a pod."""
    for u in uses:
        if u.delivery.env:
            check_delivery("secrets", {"env": u.delivery.env})
    env = [
        {"name": u.delivery.env, "valueFrom": {"secretKeyRef": {"name": u.secret(owner), "key": KEY}}}
        for u in uses
        if u.delivery.env
    ]
    files = [u for u in uses if u.delivery.file]
    if not files:
        return env, [], []
    sources = [
        {"secret": {"name": u.secret(owner), "items": [{"key": KEY, "path": u.delivery.file, "mode": 0o440}]}}
        for u in files
    ]
    volume = {"name": "moonhub-secrets", "projected": {"sources": sources, "defaultMode": 0o440}}
    mount = {"name": "moonhub-secrets", "mountPath": MOUNT, "readOnly": True}
    return env, [volume], [mount]


def for_server(entries: list[dict[str, Any]]) -> list[Use]:
    """From the secrets list the jobs service answers a user: those they give to their own
    server (``to_server``); team secrets never are."""
    uses = [
        Use(e["name"], check_delivery("to_server", e["to_server"]))
        for e in entries
        if e.get("to_server") and not e.get("team") and isinstance(e.get("name"), str) and NAME.fullmatch(e["name"])
    ]
    for kind in ("env", "file"):
        given = [getattr(u.delivery, kind) for u in uses if getattr(u.delivery, kind)]
        if len(set(given)) != len(given):
            raise FieldError("secrets", f"two of your secrets are given to your server as the same {kind}")
    return uses


def mask(text: str, values: list[str]) -> str:
    """``text`` with every secret value of at least 4 characters replaced (a log as MoonHub
    shows it)."""
    for v in sorted((v for v in values if len(v) >= 4), key=len, reverse=True):
        text = text.replace(v, "••••••")
    return text


def mask_bytes(data: bytes, values: list[str], shortest: int = 4) -> bytes:
    """``data`` with every value of at least ``shortest`` characters replaced, as written and
    as a JSON string holds it (an output notebook is JSON), by ASCII stars: a notebook stays
    valid JSON."""
    forms = {f for v in values if len(v) >= shortest for f in (v, json.dumps(v, ensure_ascii=False)[1:-1])}
    for form in sorted(forms, key=len, reverse=True):
        data = data.replace(form.encode(), b"******")
    return data
