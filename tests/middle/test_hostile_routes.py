"""Every route of the jobs service, called by every kind of caller and given hostile input
(issue 32, "Tests"), in the middle tier: the service's real handlers and database, the hub's
and Kubernetes' answers from the fakes (``tests/middle/conftest.py``).

The routes come from the service's own OpenAPI document (a route added later is in the
table at once). Callers: nobody (no credentials), a made-up token, another user, the owner,
a job admin. No answer is a 5xx; nobody but the owner and a job admin learns a job exists;
what a refused call sent changes nothing. The table of route x caller x answer is written to
``.state/reports/route-table.md`` (the closing note quotes it).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from jobs_service.api import OPENAPI
from tests.helpers import NOTEBOOK
from tests.middle.conftest import Middle

REPORT = Path(__file__).resolve().parents[2] / ".state" / "reports" / "route-table.md"
CALLERS = ("nobody", "bogus token", "other user", "owner", "job admin")
#: a refused caller: not logged in (a GET may be sent to the login page)
REFUSED = {302, 401, 403}


def _body(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "notebook": "h.ipynb", "notebook_content": NOTEBOOK, "schedule": None, **extra}


class Caller:
    def __init__(self, base: str, token: str | None) -> None:
        self.base = base
        self.headers = {"Authorization": f"token {token}"} if token else {}

    def __call__(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> requests.Response:
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return requests.request(
            method, f"{self.base}{path}", headers=self.headers, data=data, timeout=60, allow_redirects=False
        )


@pytest.fixture(scope="module")
def callers(middle: Middle) -> dict[str, Caller]:
    out = {"nobody": Caller(middle.base, None), "bogus token": Caller(middle.base, "0" * 32)}
    middle.hub.add("admin", admin=True)
    middle.hub.add("hostile-quinn", groups=["ml-research"])
    middle.hub.add("hostile-rita")
    for label, user in (("other user", "hostile-rita"), ("owner", "hostile-quinn"), ("job admin", "admin")):
        out[label] = Caller(middle.base, middle.hub.token(user))
    return out


def _routes() -> list[tuple[str, str]]:
    doc = yaml.safe_load(OPENAPI.read_text())["paths"]
    return [(m.upper(), p) for p, ops in doc.items() for m in ops if m != "parameters"]


# what each route is sent by every caller (a valid request of the owner's)
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/jobs"): _body("hostile-made"),
    ("PATCH", "/jobs/{job_id}"): {"parameters": {"rows": 3}},
    ("POST", "/jobs/{job_id}/runs/{run_id}/rerun"): {},
    ("POST", "/jobs/{job_id}/runs/{run_id}/repair"): {},
    ("POST", "/jobs/{job_id}/backfill"): {"from": "2026-01-01", "to": "2026-01-01"},
    ("PUT", "/secrets/{name}"): {"value": "hostile-secret-value"},
    ("PUT", "/team-secrets/{team}/{name}"): {"value": "hostile-team-value"},
}
#: the owner's calls that remove what the rest of the table uses: made last
LAST = {("DELETE", "/jobs/{job_id}")}


def test_every_route_by_every_caller(callers: dict[str, Caller]) -> None:
    owner = callers["owner"]
    made = owner("POST", "/jobs", _body("hostile-target"))
    assert made.status_code == 201, made.text
    job = made.json()
    run = owner("POST", f"/jobs/{job['id']}/run")
    assert run.status_code in (201, 202), run.text
    values = {
        "job_id": str(job["id"]),
        "run_id": str(run.json()["id"]),
        "name": "hostile-db",
        "team": "ml-research",
        "path": "metrics.csv",
        "kind": "user",
        "build_id": "1",
    }
    routes = sorted(_routes(), key=lambda r: (r in LAST, r[1], r[0]))
    table: dict[tuple[str, str], dict[str, int]] = {}
    for method, template in routes:
        path = template.format(**values)
        for label in CALLERS:
            if (method, template) in LAST and label in ("owner", "job admin"):
                continue  # below, after everyone else
            r = callers[label](method, path, BODIES.get((method, template)))
            table.setdefault((method, template), {})[label] = r.status_code
            assert r.status_code < 500, (method, path, label, r.status_code, r.text[:300])
            if label in ("nobody", "bogus token"):
                assert r.status_code in REFUSED, (method, path, label, r.status_code)
            if label == "other user" and "{job_id}" in template:
                assert r.status_code == 404, (method, path, r.status_code, "another user's job looks missing")
            if label == "other user" and template == "/jobs":
                assert job["name"] not in r.text
    # nothing a refused caller sent changed the owner's job
    still = owner("GET", f"/jobs/{job['id']}").json()
    assert still["name"] == "hostile-target" and still.get("parameters", {}).get("rows") == 3, "only the owner's edit"
    for method, template in LAST:  # a job admin may delete another's job; then it is gone for its owner
        r = callers["job admin"](method, template.format(**values))
        table[(method, template)]["job admin"] = r.status_code
        assert r.status_code in (200, 204), r.text
        r = owner(method, template.format(**values))
        table[(method, template)]["owner"] = r.status_code
        assert r.status_code == 404, r.text
    # what every caller made goes again (the tests after these share the hub and the node)
    for label in ("other user", "owner", "job admin"):
        for j in callers[label]("GET", "/jobs").json()["jobs"]:
            if j["name"] == "hostile-made" and j["owner"].startswith(("hostile-", "admin")):
                callers[label]("DELETE", f"/jobs/{j['id']}")
        callers[label]("DELETE", "/secrets/hostile-db")
    callers["job admin"]("DELETE", "/team-secrets/ml-research/hostile-db")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    lines = ["| route | " + " | ".join(CALLERS) + " |", "|---|" + "---|" * len(CALLERS)]
    for (method, template), answers in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        lines.append(f"| `{method} {template}` | " + " | ".join(str(answers.get(c, "")) for c in CALLERS) + " |")
    REPORT.write_text("\n".join(lines) + "\n")


HOSTILE_JSON: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "x" * 5000, [], [1], {}, {"a": {"b": [None]}}]
HOSTILE_RAW = [b"{", b"\xff\xfe\x00", b'{"name": "\xff"}', b"[" * 100_000, b"NaN", b'{"a": Infinity}']


def test_every_body_route_takes_any_json_and_raw_bytes_without_a_5xx(callers: dict[str, Caller]) -> None:
    owner = callers["owner"]
    job = owner("POST", "/jobs", _body("hostile-bodies")).json()
    run = owner("POST", f"/jobs/{job['id']}/run").json()
    values = {
        "job_id": job["id"],
        "run_id": run["id"],
        "name": "hostile-b",
        "team": "ml-research",
        "kind": "user",
        "build_id": 1,
    }
    before = {j["name"] for j in owner("GET", "/jobs").json()["jobs"]}
    for method, template in _routes():
        if method not in ("POST", "PUT", "PATCH") or template.endswith("/run"):
            continue
        path = template.format(**values)
        for body in HOSTILE_JSON:
            r = owner(method, path, body, raw=b"null" if body is None else None)
            assert r.status_code < 500, (method, path, body, r.status_code, r.text[:300])
        for raw in HOSTILE_RAW:
            r = owner(method, path, raw=raw)
            assert r.status_code < 500, (method, path, raw[:20], r.status_code, r.text[:300])
            assert 400 <= r.status_code < 500, (method, path, raw[:20], r.status_code)
        r = owner(method, path, raw=b'{"x": "' + b"y" * (65 * 2**20) + b'"}')
        assert r.status_code == 413, (method, path, r.status_code)
    # every field of a job, given every JSON type: made whole, or refused naming the field
    base = _body("hostile-fields")
    for field in ("name", "schedule", "timezone", "environment", "gpu_count", "parameters", "timeout_seconds"):
        for value in HOSTILE_JSON:
            r = owner("POST", "/jobs", {**base, field: value})
            assert r.status_code < 500, (field, value, r.status_code, r.text[:300])
            if r.status_code == 201:
                owner("DELETE", f"/jobs/{r.json()['id']}")
            else:
                assert r.json().get("field", "").split(".")[0].split("[")[0] in (field, "name", "body"), r.text
    after = {j["name"] for j in owner("GET", "/jobs").json()["jobs"]}
    assert after == before, "nothing half-made"
    owner("DELETE", f"/jobs/{job['id']}")


@pytest.mark.parametrize(
    "query", ["/audit?limit=%C2%B2", "/audit?limit=" + "9" * 5000, "/gpu-usage?days=%D9%A3", "/gpu-usage?days=0"]
)
def test_numbers_in_queries_are_named_not_a_crash(callers: dict[str, Caller], query: str) -> None:
    r = callers["job admin"]("GET", query)
    assert r.status_code == 400 and r.json()["field"] in ("limit", "days"), (query, r.status_code, r.text[:200])


def test_ids_of_any_length_or_script_name_nothing(callers: dict[str, Caller]) -> None:
    owner = callers["owner"]
    for path in ("/jobs/" + "9" * 5000, "/jobs/1/runs/" + "7" * 4400 + "/log", "/jobs/%D9%A3"):
        r = owner("GET", path)
        assert r.status_code == 404, (path[:40], r.status_code, r.text[:200])


def _headers_only(host: str, port: int, path: str, length: int, headers: str = "") -> str:
    """Announce a ``length``-byte body and send none of it: what the service answers then
    (its status line, "closed" when it hung up) or "waits" when it waits for the body."""
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n{headers}\r\n".encode())
        s.settimeout(15)
        try:
            return s.makefile("rb").readline().decode(errors="replace").strip() or "closed"
        except TimeoutError:
            return "waits"
        except (ConnectionError, OSError):
            return "closed"


def test_the_service_reads_no_body_of_a_caller_it_does_not_know(middle: Middle) -> None:
    """Straight to the service (as a pod may reach it), served as the service serves itself
    (the same small body limit before a caller is known): the body of a caller it does not know
    (no credentials, a wrong launch key) is refused before it is sent; before, the service
    waited for it and held it in memory (issue 32, item 2; the figures: benchmarks/body_memory.py)."""
    host, _, port_text = middle.url.split("//", 1)[1].partition(":")
    port = int(port_text)
    wrong_key = "X-MoonHub-Launch-Key: " + "0" * 64 + "\r\n"
    for path, extra in (
        ("/services/jobs/api/v1/jobs", ""),
        ("/services/jobs/api/v1/secrets/x", "Authorization: token " + "0" * 32 + "\r\n"),
        ("/services/jobs/launch/nb-nobody-x/1/runs/nb-nobody-x-1/output", wrong_key),
        ("/services/jobs/launch/nb-nobody-x/1/runs/nb-nobody-x-1/published", wrong_key),
        ("/services/jobs/health", ""),
        ("/services/jobs/oauth_callback", ""),
    ):
        answer = _headers_only(host, port, path, 60 * 2**20, extra)
        assert answer == "closed" or answer.split(" ")[1] in ("400", "403", "404", "405", "413"), (path, answer)
