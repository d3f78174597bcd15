"""Waiting helpers for cluster tests: poll with a timeout, fail with what was last seen."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import requests
import yaml
from kubernetes_asyncio import client

from localcluster import cli
from localcluster.config import REPO, ClusterConfig
from localcluster.registry import ref
from moonhub_core import claims, unread
from moonhub_core.catalog import EXAMPLE, Catalog, load
from moonhub_core.security import container_security_context, pod_security_context

T = TypeVar("T")

#: test images, from the local registry (./moonhub images pushes them): a Debian shell
#: (the images' base OS) and the base notebook image (Python 3)
SHELL_IMAGE = ref("moonhub/debian", "bookworm")
PYTHON_IMAGE = ref("moonhub/base-notebook", "latest")


#: a notebook with a `parameters` cell (rows = 10) printing `rows: <rows>`
@functools.cache
def example_catalog() -> Catalog:
    """The shipped example catalog, read once, when a test first needs it (not at import)."""
    return load(EXAMPLE)


def notebook(*cells: str | tuple[str, list[str]]) -> dict[str, Any]:
    """A Python notebook of code cells, each given as its source or (source, tags)."""
    made: list[dict[str, Any]] = []
    for i, cell in enumerate(cells):
        source, tags = (cell, []) if isinstance(cell, str) else cell
        metadata = {"tags": tags} if tags else {}
        made.append(
            {
                "cell_type": "code",
                "id": f"cell-{i}",
                "metadata": metadata,
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
        )
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": kernel}, "cells": made}


def printed(nb: dict[str, Any]) -> str:
    """What an executed notebook's cells printed (their text outputs, in order)."""
    return "".join("".join(o.get("text", [])) for c in nb.get("cells", []) for o in c.get("outputs", []))


def parameter_notebook(parameters: str, work: str) -> dict[str, Any]:
    """A notebook whose first cell is papermill's ``parameters`` cell."""
    return notebook((parameters, ["parameters"]), work)


#: the tests' notebook: one parameter (rows), printed by the second cell
NOTEBOOK = parameter_notebook("rows = 10", "print('rows:', rows)")


def gpu_job(name: str, gpu_type: str, gpu_count: int, content: dict[str, Any] = NOTEBOOK) -> dict[str, Any]:
    """A jobs API body: a notebook run by hand only, on GPUs (PyTorch environment)."""
    return {
        "name": name,
        "notebook": f"{name}.ipynb",
        "notebook_content": content,
        "schedule": None,
        "environment": "pytorch",
        "gpu_type": gpu_type,
        "gpu_count": gpu_count,
    }


async def wait_for(
    probe: Callable[[], Awaitable[T] | T],
    done: Callable[[T], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.5,
) -> T:
    """Call ``probe`` (plain or async) until ``done(result)``; on timeout fail naming ``what``
    and the last result."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if inspect.isawaitable(last):
                last = await last
            if done(last):
                return last
        except client.ApiException as e:
            last = f"ApiException {e.status}: {e.reason}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {last}")
        await asyncio.sleep(interval)


async def runs_ended(call: Callable[..., Any], job_id: int, count: int = 1, timeout: float = 180) -> list[Any]:
    """Job ``job_id``'s runs (newest first, through a :func:`jobs_api` ``call``) once
    ``count`` of them ended."""
    ended = ("succeeded", "failed", "timed_out", "cancelled")
    return await wait_for(
        lambda: list(call("GET", f"/jobs/{job_id}/runs").json()["runs"]),
        lambda rs: sum(r["status"] in ended for r in rs) >= count,
        timeout=timeout,
        what=f"{count} run(s) of job {job_id} to end",
    )


async def create_pvc(core: client.CoreV1Api, ns: str, name: str, size: str = "1Gi") -> None:
    """A ReadWriteOnce claim from the cluster's default StorageClass."""
    await core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
        },  # type: ignore[arg-type]
    )


async def pod_ended(core: client.CoreV1Api, ns: str, name: str, timeout: float = 60) -> Any:
    """Wait for the pod to reach Succeeded or Failed; return it."""
    return await wait_for(
        lambda: core.read_namespaced_pod(name, ns),
        lambda p: p.status.phase in ("Succeeded", "Failed"),
        timeout=timeout,
        what=f"pod {name} to end",
    )


async def pod_scheduled(core: client.CoreV1Api, ns: str, name: str, timeout: float = 60) -> Any:
    """Wait for the scheduler to bind the pod to a node; return it."""
    return await wait_for(
        lambda: core.read_namespaced_pod(name, ns),
        lambda p: bool(p.spec.node_name),
        timeout=timeout,
        what=f"pod {name} to be scheduled",
    )


async def gone(read: Callable[[], Awaitable[Any]]) -> bool:
    """True when ``read()`` (e.g. ``lambda: core.read_namespaced_pod(name, ns)``) answers 404."""
    try:
        await read()
    except client.ApiException as e:
        return e.status == 404
    return False


async def pod_events(core: client.CoreV1Api, ns: str, pod: str) -> list[Any]:
    events = await core.list_namespaced_event(ns, field_selector=f"involvedObject.name={pod}")
    return list(events.items)


async def describe_pod(core: client.CoreV1Api, ns: str, name: str) -> str:
    """A short description for failure messages: phase, container states and events."""
    try:
        pod = await core.read_namespaced_pod(name, ns)
    except client.ApiException as e:
        return f"pod {ns}/{name}: {e.status} {e.reason}"
    states = [(c.name, c.state.to_dict()) for c in pod.status.container_statuses or []]
    events = [(e.reason, e.message) for e in await pod_events(core, ns, name)]
    return f"pod {ns}/{name} phase={pod.status.phase} node={pod.spec.node_name} containers={states} events={events}"


async def read_from_pvc(core: client.CoreV1Api, ns: str, claim: str, path: str) -> str:
    """``cat`` a file of a PVC from a short-lived pod (works on any cluster), as the uid the
    claim's folder belongs to (:mod:`moonhub_core.uids`)."""
    name = f"read-{claim}-{abs(hash(path)) % 10**6}"[:60]
    uid = await claims.uid_of(core, ns, claim)
    await core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": pod_security_context(uid),  # admitted where `restricted` is enforced
                "containers": [
                    {
                        "name": "cat",
                        "image": SHELL_IMAGE,
                        "command": ["cat", f"/pvc/{path}"],
                        "securityContext": container_security_context(uid),
                        "volumeMounts": [{"name": "v", "mountPath": "/pvc", "readOnly": True}],
                    }
                ],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}],
            },
        },  # type: ignore[arg-type]
    )
    pod = await pod_ended(core, ns, name)
    log = await pod_log(core, ns, name)
    await core.delete_namespaced_pod(name, ns)
    assert pod.status.phase == "Succeeded", f"reading {path} from {claim} failed: {log}"
    return log


async def pod_log(core: client.CoreV1Api, ns: str, name: str) -> str:
    """The pod's log as text (the typed client would parse a log that looks like JSON into
    a dict); a refusal raises, rather than coming back as the log."""
    raw = await unread.body(core.read_namespaced_pod_log(name, ns, _preload_content=False))
    return raw.decode("utf-8", "replace")


def kubectl(cfg: ClusterConfig, *args: str, timeout: float = 300) -> str:
    """``kubectl`` against ``cfg``'s cluster as its admin: its output, or an error with it."""
    argv = [str(cli.build() / "kubectl"), f"--kubeconfig={cfg.admin_kubeconfig}", *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise AssertionError(f"kubectl {' '.join(args)} exited {r.returncode}: {r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout + r.stderr


def jobs_api(hub: Any, s: requests.Session, user: str) -> Callable[..., requests.Response]:
    """The jobs API with a token of ``user`` (made through ``hub``'s API in session ``s``):
    ``call(method, path, body=None, timeout=30)``."""
    token = hub.token(s, user, "access:services!service=jobs")

    def call(method: str, path: str, body: Any = None, timeout: float = 30) -> requests.Response:
        return requests.request(
            method,
            f"{hub.url}/services/jobs/api/v1{path}",
            headers={"Authorization": f"token {token}"},
            data=json.dumps(body) if body is not None else None,
            timeout=timeout,
        )

    return call


def resolve_localhost_names() -> None:
    """Make this process resolve names under ``localhost`` (``ada.localhost``) to loopback,
    as browsers do (RFC 6761): glibc looks them up in /etc/hosts and DNS, where they are not.
    For Python clients of a hub with per-user host names (``./moonhub up``'s)."""
    if getattr(socket.getaddrinfo, "moonhub_localhost", False):
        return
    plain = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str | bytes):
            name = host.decode() if isinstance(host, bytes) else host
            if name.rstrip(".").lower().endswith(".localhost"):
                host = "127.0.0.1"
        return plain(host, *args, **kwargs)

    getaddrinfo.moonhub_localhost = True  # type: ignore[attr-defined]
    socket.getaddrinfo = getaddrinfo


async def run_in_kernel(
    hub: Any, s: requests.Session, user: str, code: str, timeout: float = 300, kernel: str = "python3"
) -> tuple[str, str]:
    """Run ``code`` in a new ``kernel`` of ``user``'s running server as JupyterLab does (the
    kernels API, then the kernel's websocket with the lab's cookies): (the reply's status,
    what the cell printed, errors' tracebacks included). The kernel is shut down after."""
    import aiohttp

    r = hub.lab(s, user, "api/kernels", "POST", json={"name": kernel})
    assert r.status_code == 201, r.text
    kernel = r.json()["id"]
    cookies = "; ".join(f"{c.name}={c.value}" for c in s.cookies if c.path in ("/", f"/user/{user}/", f"/user/{user}"))
    ws_url = f"{hub.url.replace('http', 'ws', 1)}/user/{user}/api/kernels/{kernel}/channels"
    msg_id = f"test-{time.monotonic_ns()}"
    request = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": user,
            "session": msg_id,
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
        },
        "channel": "shell",
        "buffers": [],
    }
    out: list[str] = []
    status = ""
    try:
        async with aiohttp.ClientSession(headers={"Cookie": cookies}) as session:
            async with session.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=10)) as ws:
                await ws.send_str(json.dumps(request))
                idle = False
                async with asyncio.timeout(timeout):
                    while not (idle and status):
                        msg = json.loads((await ws.receive()).data)
                        if msg.get("parent_header", {}).get("msg_id") != msg_id:
                            continue
                        kind, content = msg["msg_type"], msg["content"]
                        if kind == "stream":
                            out.append(content["text"])
                        elif kind == "error":
                            out.append("\n".join(content["traceback"]))
                        elif kind == "execute_reply":
                            status = content["status"]
                        elif kind == "status" and content["execution_state"] == "idle":
                            idle = True
    finally:
        hub.lab(s, user, f"api/kernels/{kernel}", "DELETE")
    return status, "".join(out)


#: the chart's Prometheus rules and Grafana dashboards (docs/observability.md)
MONITORING = REPO / "helm" / "moonhub" / "files" / "monitoring"


def monitoring_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every rule, every dashboard panel's target and every dashboard
    query variable (Grafana's ``label_values(SERIES, LABEL)``: its series)."""
    rules = yaml.safe_load((MONITORING / "rules.yaml").read_text())
    out = [(f"rule {r.get('record') or r.get('alert')}", r["expr"]) for g in rules["groups"] for r in g["rules"]]
    for path in sorted((MONITORING / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        out += [(f"{path.name}: {p['title']} ({t['refId']})", t["expr"]) for p in board["panels"] for t in p["targets"]]
        for v in board["templating"]["list"]:
            if v["type"] == "query":
                series = re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", v["query"]["query"])
                out.append((f"{path.name}: ${v['name']}", series))
    return out


@contextmanager
def team_folder_in_catalog(hub: Any, group: str, gid: int, capacity: str = "16Mi") -> Iterator[None]:
    """``hub``'s catalog gives ``group`` a team folder (an admin's edit), put back afterwards."""
    original = hub.catalog.read_text()
    doc = yaml.safe_load(original)
    doc["storage"]["team_folders"] = [{"group": group, "gid": gid, "capacity": capacity}]
    hub.catalog.write_text(yaml.safe_dump(doc))
    try:
        yield
    finally:
        hub.catalog.write_text(original)


async def team_folder_bound(core: client.CoreV1Api, ns: str, group: str) -> None:
    """Wait for ``group``'s team folder claim, made by the jobs service's reconcile, to bind."""
    await wait_for(
        lambda: core.list_namespaced_persistent_volume_claim(ns, field_selector=f"metadata.name=team-{group}"),
        lambda claims: bool(claims.items) and claims.items[0].status.phase == "Bound",
        timeout=90,
        what=f"team {group}'s folder claim, bound",
    )
