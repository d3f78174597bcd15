"""An in-memory Kubernetes API server: the Kubernetes edge of the middle tier's tests.

It keeps objects of any group and kind (core, batch, Kueue's custom objects) as the JSON the
client sent, and answers the REST verbs the way the API server does where MoonHub's code
depends on it: ``create`` refuses a name in use (409 AlreadyExists) and fills in uid,
resourceVersion and creationTimestamp; ``replace`` with a stale resourceVersion is a 409
Conflict (the compare-and-swap of :mod:`moonhub_core.uids`); merge and strategic-merge
patches merge (lists replaced), JSON patches apply their operations; lists honour label
selectors (``=``, ``!=``, ``in``, ``notin``, ``key``, ``!key``) and field selectors (``=``,
``!=`` on any path); a missing object is a 404 with a Status. Pod logs are whatever a test
stored (or the failure it set).

No controller runs: a test plays the cluster's part (a Job's pod appears, a Job succeeds) by
writing objects with :meth:`FakeKube.put` and :meth:`FakeKube.patch_status`. Hooks
(:meth:`FakeKube.on_create`) stand for controllers that answer at once (a provisioner that
binds a claim). Watches are not served: nothing the middle tier runs watches.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tornado import web

#: (API root, plural, namespace, name): API root is "api/v1" or "apis/<group>/<version>"
Key = tuple[str, str, str, str]
#: kinds that have no status (every other new object is given an empty one)
WITHOUT_STATUS = {"configmaps", "secrets", "serviceaccounts", "roles", "rolebindings", "events", "endpoints"}
Hook = Callable[[dict[str, Any]], None]

_TERM = re.compile(r"\s*(!?)([\w./-]+)\s*(?:(==|=|!=)\s*([\w./-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*")


def selector_terms(selector: str) -> list[Callable[[dict[str, str]], bool]]:
    """Pure: one test of a label map per term of a label selector."""
    out: list[Callable[[dict[str, str]], bool]] = []
    pos = 0
    while pos < len(selector):
        m = _TERM.match(selector, pos)
        if not m or m.end() == pos:
            raise ValueError(f"bad label selector {selector!r} at {pos}")
        bang, key, op, value, setop, values = m.groups()
        if op in ("=", "=="):
            out.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif op == "!=":
            out.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif setop:
            choices = {v.strip() for v in values.split(",")}
            if setop == "in":
                out.append(lambda labels, k=key, c=choices: labels.get(k) in c)
            else:
                out.append(lambda labels, k=key, c=choices: labels.get(k) not in c)
        elif bang:
            out.append(lambda labels, k=key: k not in labels)
        else:
            out.append(lambda labels, k=key: k in labels)
        pos = m.end()
        if pos < len(selector):
            if selector[pos] != ",":
                raise ValueError(f"bad label selector {selector!r} at {pos}")
            pos += 1
    return out


def field_terms(selector: str) -> list[Callable[[dict[str, Any]], bool]]:
    """Pure: one test of an object per term of a field selector (``a.b=v``, ``a.b!=v``)."""
    out: list[Callable[[dict[str, Any]], bool]] = []
    for term in filter(None, selector.split(",")):
        path, op, value = re.fullmatch(r"([\w.]+)\s*(!=|==|=)\s*(.*)", term.strip()).groups()  # type: ignore[union-attr]

        def test(obj: dict[str, Any], path: str = path, op: str = op, value: str = value) -> bool:
            have: Any = obj
            for part in path.split("."):
                have = have.get(part) if isinstance(have, dict) else None
            same = str(have if have is not None else "") == value
            return same if op != "!=" else not same

        out.append(test)
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """Pure: RFC 7386 (maps merge, ``null`` removes, anything else replaces)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(target: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Pure: RFC 6902's add, replace, remove and test."""
    doc = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        kind = op["op"]
        if kind == "test":
            have = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if have != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        else:
            raise ValueError(f"unsupported JSON patch op {kind!r}")
    return doc


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class FakeKube:
    """The objects, and the operations on them (thread-safe: a test reads and writes them
    from its own thread while the service's loop serves requests)."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        #: pods whose log the "node" does not give: the API server's answer then (a status)
        self.log_failures: dict[tuple[str, str], int] = {}
        self.hooks: list[tuple[str, Hook]] = []
        self._rv = itertools.count(1)
        self._lock = threading.RLock()

    # ---- what tests use ---------------------------------------------------------------
    def on_create(self, plural: str, hook: Hook) -> None:
        """Call ``hook`` with each new object of ``plural`` (it may change it in place)."""
        self.hooks.append((plural, hook))

    def get(self, root: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self.objects.get((root, plural, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def list(self, root: str, plural: str, namespace: str = "", selector: str = "") -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._select(root, plural, namespace, selector, ""))

    def put(self, root: str, plural: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace ``obj`` as the cluster would have (a controller's write)."""
        with self._lock:
            key = (root, plural, namespace, obj["metadata"]["name"])
            if key in self.objects:
                return self._replace(key, obj, check=False)
            return self._create(root, plural, namespace, obj)

    def patch_status(self, root: str, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        with self._lock:
            key = (root, plural, namespace, name)
            self._replace(key, {**self.objects[key], "status": status}, check=False)

    def delete(self, root: str, plural: str, namespace: str, name: str) -> None:
        with self._lock:
            self.objects.pop((root, plural, namespace, name), None)

    # ---- the API's semantics ----------------------------------------------------------
    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        return obj

    def _select(self, root: str, plural: str, namespace: str, labels: str, fields: str) -> list[dict[str, Any]]:
        tests = selector_terms(labels) if labels else []
        wants = field_terms(fields)
        out = []
        for (r, p, ns, _name), obj in sorted(self.objects.items()):
            if r != root or p != plural or (namespace and ns != namespace):
                continue
            have = obj["metadata"].get("labels") or {}
            if all(t(have) for t in tests) and all(t(obj) for t in wants):
                out.append(obj)
        return out

    def _create(self, root: str, plural: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", "name or generateName is required")
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        key = (root, plural, namespace, meta["name"])
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists')
        if namespace:
            meta["namespace"] = namespace
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        if plural not in WITHOUT_STATUS:
            obj.setdefault("status", {})  # as the API server answers a new object
        for plural_of, hook in self.hooks:
            if plural_of == plural:
                hook(obj)
        self.objects[key] = self._stamp(obj)
        return obj

    def _replace(self, key: Key, obj: dict[str, Any], check: bool = True) -> dict[str, Any]:
        current = self.objects.get(key)
        if current is None:
            raise ApiError(404, "NotFound", f'{key[1]} "{key[3]}" not found')
        given = (obj.get("metadata") or {}).get("resourceVersion")
        if check and given and given != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409, "Conflict", "the object has been modified; please apply your changes to the latest version"
            )
        obj = copy.deepcopy(obj)
        keep = {
            k: current["metadata"][k] for k in ("uid", "creationTimestamp", "namespace") if k in current["metadata"]
        }
        obj["metadata"] = {**obj.get("metadata", {}), **keep}
        self.objects[key] = self._stamp(obj)
        return obj

    def serve(self, method: str, path: str, query: dict[str, str], body: bytes, ctype: str) -> tuple[int, Any]:
        """One request: (status, answer: a JSON-able value, or str for a log)."""
        with self._lock:
            try:
                return self._serve(method, path, query, body, ctype)
            except ApiError as e:
                return e.code, {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": e.reason,
                    "message": e.message,
                    "code": e.code,
                }

    def _serve(self, method: str, path: str, query: dict[str, str], body: bytes, ctype: str) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            root, rest = "api/v1", parts[2:]
        elif parts and parts[0] == "apis" and len(parts) >= 3:
            root, rest = "/".join(parts[:3]), parts[3:]
        else:
            raise ApiError(404, "NotFound", f"no API at {path}")
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = [*rest, "", "", ""][:3]
        if query.get("watch") in ("true", "1"):
            raise ApiError(405, "MethodNotAllowed", "the fake API server serves no watches")
        if not name:
            if method == "GET":
                items = self._select(
                    root, plural, namespace, query.get("labelSelector", ""), query.get("fieldSelector", "")
                )
                kind = (items[0].get("kind", "") + "List") if items else "List"
                meta = {"resourceVersion": str(next(self._rv))}
                return 200, {"kind": kind, "apiVersion": "v1", "metadata": meta, "items": items}
            if method == "POST":
                return 201, self._create(root, plural, namespace, json.loads(body))
            if method == "DELETE":
                gone = self._select(
                    root, plural, namespace, query.get("labelSelector", ""), query.get("fieldSelector", "")
                )
                for obj in gone:
                    self.objects.pop((root, plural, namespace, obj["metadata"]["name"]), None)
                return 200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": gone}
            raise ApiError(405, "MethodNotAllowed", f"{method} on a collection")
        key = (root, plural, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        if method == "GET":
            if sub == "log":
                if (namespace, name) in self.log_failures:
                    code = self.log_failures[(namespace, name)]
                    raise ApiError(
                        code, "InternalError", f"Get https://node:10250/containerLogs/{namespace}/{name}: refused"
                    )
                return 200, self.logs.get((namespace, name), "")
            return 200, current
        if method == "DELETE":
            del self.objects[key]
            return 200, current
        if method == "PUT":
            given = json.loads(body)
            if sub == "status":
                given = {**current, "status": given.get("status"), "metadata": given.get("metadata", {})}
            return 200, self._replace(key, given)
        if method == "PATCH":
            patch = json.loads(body)
            if "json-patch" in ctype:
                try:
                    changed = json_patch(current, patch)
                except (ValueError, KeyError, IndexError) as e:
                    raise ApiError(422, "Invalid", str(e)) from e
            else:
                # a merge patch naming a resourceVersion is a precondition (the API server's)
                given = ((patch.get("metadata") or {}) if isinstance(patch, dict) else {}).get("resourceVersion")
                if given and given != current["metadata"]["resourceVersion"]:
                    raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{name}"')
                changed = merge_patch(current, patch)
            changed["metadata"].pop("resourceVersion", None)
            return 200, self._replace(key, changed)
        raise ApiError(405, "MethodNotAllowed", method)


class _Handler(web.RequestHandler):
    def initialize(self, kube: FakeKube) -> None:
        self.kube = kube

    def check_xsrf_cookie(self) -> None:
        return None

    async def _any(self) -> None:
        query = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        code, answer = self.kube.serve(
            self.request.method or "GET",
            self.request.path,
            query,
            self.request.body,
            self.request.headers.get("Content-Type", ""),
        )
        self.set_status(code)
        if isinstance(answer, str):
            self.set_header("Content-Type", "text/plain")
            self.finish(answer)
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(answer))

    get = post = put = patch = delete = _any


def app(kube: FakeKube) -> web.Application:
    return web.Application([(r"/.*", _Handler, {"kube": kube})])
