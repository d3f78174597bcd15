"""The OpenAPI document in the repo describes exactly the routes the service serves."""

import re

import yaml

from jobs_service.api import OPENAPI, routes


def _served() -> dict[str, type]:
    """OpenAPI path -> handler, from the service's own route list."""
    out = {}
    for pattern, handler in routes("/services/jobs/"):
        if "/api/v1" not in pattern:
            continue
        path = pattern.split("/api/v1", 1)[1]
        for name in ("{job_id}", "{run_id}"):
            path = re.sub(r"\(\[0-9\]\+\)", name, path, count=1)
        path = re.sub(r"\(\?P<(\w+)>(\[0-9\]\+|[^)]*)\)", r"{\1}", path)
        out[path] = handler
    return out


def test_every_route_is_documented_and_nothing_else() -> None:
    assert set(_served()) == set(yaml.safe_load(OPENAPI.read_text())["paths"])


def test_methods_match_the_handlers() -> None:
    doc = yaml.safe_load(OPENAPI.read_text())["paths"]
    for path, handler in _served().items():
        implemented = {m for m in ("get", "post", "put", "patch", "delete") if m in vars(handler)}
        assert implemented == set(doc[path]) - {"parameters"}, path
