"""What the Schedule dialog offers (``GET /options``) is what saving accepts, for every kind
of caller (issue 34, item 1): a user without groups, a member of a team the catalog gives
more to, a job admin (who manages others' jobs but uses only their own groups' entries), and
a hub admin (the whole catalog). Every choice offered saves; a choice beyond the offer is
refused naming its field, and nothing is made."""

from __future__ import annotations

from typing import Any

import pytest

from moonhub_core import catalog
from tests.hub.jobs_client import job_body
from tests.middle.conftest import Middle

CALLERS: dict[str, dict[str, Any]] = {
    "no groups": {"groups": []},
    "team member": {"groups": ["ml-research"]},
    "job admin": {"groups": ["job-admins"]},
    "hub admin": {"groups": [], "admin": True},
}


def _choices(offer: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination the dialog lets a caller pick: each environment with each size, and
    each GPU type and count offered with each environment built for CUDA."""
    out = [{"environment": e["name"], "size": z["name"]} for e in offer["environments"] for z in offer["sizes"]]
    cuda = [e["name"] for e in offer["environments"] if e["cuda"]]
    for g in offer["gpu_types"]:
        for count in g["counts"]:
            out += [{"environment": e, "gpu_type": g["name"], "gpu_count": count} for e in cuda]
    return out


@pytest.mark.parametrize("kind", list(CALLERS))
def test_every_offered_choice_saves_and_nothing_beyond_it(middle: Middle, kind: str) -> None:
    name = "opt-" + kind.replace(" ", "-")
    caller = middle.user(name, **CALLERS[kind])
    offer = caller.call("GET", "/options").json()
    picked = _choices(offer)
    assert picked, offer
    for i, choice in enumerate(picked):
        r = caller.call("POST", "/jobs", job_body(f"o{i}", **choice))
        assert r.status_code == 201, (kind, choice, r.text)
        assert caller.call("DELETE", f"/jobs/{r.json()['id']}").status_code == 204
    everything = catalog.load(middle.service.settings.catalog_path)
    beyond: list[tuple[dict[str, Any], str]] = []
    offered_env = {e["name"] for e in offer["environments"]}
    offered_size = {z["name"] for z in offer["sizes"]}
    offered_gpu = {g["name"]: g["counts"] for g in offer["gpu_types"]}
    cuda_env = next((e.name for e in everything.environments if e.cuda), None)
    beyond += [({"environment": e.name}, "environment") for e in everything.environments if e.name not in offered_env]
    beyond += [({"size": z.name}, "size") for z in everything.sizes if z.name not in offered_size]
    for g in everything.gpu_types:
        if g.name not in offered_gpu and cuda_env:
            beyond.append(({"environment": cuda_env, "gpu_type": g.name, "gpu_count": 1}, "gpu_type"))
    if cuda_env:
        top = max((c for counts in offered_gpu.values() for c in counts), default=0)
        gpu = next(iter(offered_gpu), None)
        if gpu:
            beyond.append(({"environment": cuda_env, "gpu_type": gpu, "gpu_count": top + 1}, "gpu_count"))
    if kind == "hub admin":
        assert [b for b in beyond if b[1] != "gpu_count"] == [], "a hub admin is offered the whole catalog"
    for choice, field in beyond:
        r = caller.call("POST", "/jobs", job_body("beyond", **choice))
        assert r.status_code in (400, 403) and r.json()["field"] == field, (kind, choice, r.text)
    assert caller.call("GET", "/jobs").json()["jobs"] == [] or kind in ("job admin", "hub admin")
    assert not [j for j in caller.call("GET", "/jobs").json()["jobs"] if j["owner"] == name], "nothing half-made"


def test_a_gpu_needs_an_environment_built_for_cuda(middle: Middle) -> None:
    caller = middle.user("opt-cpu-gpu", groups=["ml-research"])
    offer = caller.call("GET", "/options").json()
    cpu_only = next(e["name"] for e in offer["environments"] if not e["cuda"])
    gpu = offer["gpu_types"][0]
    r = caller.call("POST", "/jobs", job_body("cpu-gpu", environment=cpu_only, gpu_type=gpu["name"], gpu_count=1))
    assert r.status_code == 400 and r.json()["field"] in ("gpu_type", "environment"), r.text
    assert caller.call("GET", "/jobs").json()["jobs"] == []
