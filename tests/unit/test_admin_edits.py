"""Admin console edits to the catalog document (pure) and their write-back."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from admin_console.edits import apply, write
from admin_console.usage import usage
from moonhub_core.catalog import load
from moonhub_core.errors import FieldError

EXAMPLE = Path(__file__).resolve().parents[2] / "moonhub_core" / "examples" / "catalog.yaml"
DOC = yaml.safe_load(EXAMPLE.read_text())


def test_enable_default_and_groups() -> None:
    doc = apply(DOC, {"op": "environment", "name": "tensorflow", "enabled": False, "groups": ["ml", "ml", " ops"]})
    tf = next(e for e in doc["environments"] if e["name"] == "tensorflow")
    assert tf["enabled"] is False and tf["groups"] == ["ml", "ops"]
    doc = apply(doc, {"op": "environment", "name": "pytorch", "default": True})
    assert [e["name"] for e in doc["environments"] if e.get("default")] == ["pytorch"]
    doc = apply(doc, {"op": "environment", "name": "tensorflow", "groups": []})
    assert "groups" not in next(e for e in doc["environments"] if e["name"] == "tensorflow")
    assert DOC == yaml.safe_load(EXAMPLE.read_text()), "the input is not changed"


def test_quota_set_and_removed() -> None:
    doc = apply(DOC, {"op": "gpu_quota", "group": "vision", "gpus": 6})
    assert doc["group_gpu_quotas"]["vision"] == 6
    assert "vision" not in apply(doc, {"op": "gpu_quota", "group": "vision", "gpus": 0})["group_gpu_quotas"]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ("nope", "body"),
        ({"op": "delete-everything"}, "op"),
        ({"op": "environment", "name": "cobol"}, "name"),
        ({"op": "environment", "name": "python", "enabled": "no"}, "enabled"),
        ({"op": "environment", "name": "python", "image": "evil/miner"}, "image"),
        ({"op": "gpu_type", "name": "a100", "enabled": False}, "enabled"),
        ({"op": "gpu_type", "name": "a100", "groups": "ml"}, "groups"),
        ({"op": "gpu_quota", "group": "", "gpus": 1}, "group"),
        ({"op": "gpu_quota", "group": "ml", "gpus": True}, "gpus"),
    ],
)
def test_bad_edits_name_the_field(edit: object, field: str) -> None:
    with pytest.raises(FieldError) as e:
        apply(DOC, edit)
    assert e.value.field == field and e.value.status == 400


def test_write_back_validates_and_keeps_the_file_on_refusal(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(EXAMPLE.read_text())
    write(path, apply(DOC, {"op": "gpu_quota", "group": "vision", "gpus": 2}))
    assert load(path).group_gpu_quotas["vision"] == 2
    before = path.read_text()
    none_left = DOC
    for name in ("python", "pytorch", "tensorflow"):
        none_left = apply(none_left, {"op": "environment", "name": name, "enabled": False})
    with pytest.raises(FieldError) as e:
        write(path, none_left)
    assert e.value.field == "catalog" and "at least one enabled environment" in str(e.value)
    assert path.read_text() == before and list(tmp_path.iterdir()) == [path], "no temporary file left"


def test_usage_per_user_and_gpu_type() -> None:
    cat = load(EXAMPLE)
    nodes = [
        {
            "metadata": {"name": "a", "labels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}},
            "spec": {},
            "status": {"allocatable": {"nvidia.com/gpu": "8"}, "conditions": [{"type": "Ready", "status": "True"}]},
        }
    ]
    job_pod = {
        "metadata": {
            "name": "nb-ada-train-1-x",
            "labels": {
                "moonhub.io/component": "notebook-job",
                "moonhub.io/job": "train",
                "moonhub.io/gpu-type": "a100",
            },
            "annotations": {"moonhub.io/owner": "ada"},
        },
        "spec": {"nodeName": "a", "containers": [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
        "status": {"phase": "Running"},
    }
    server_pod = {
        "metadata": {"name": "jupyter-bo", "labels": {}},
        "spec": {"nodeName": "a", "containers": [{"resources": {"limits": {"nvidia.com/gpu": "4"}}}]},
        "status": {"phase": "Running"},
    }
    servers = [{"user": "bo", "name": "", "environment": "pytorch", "gpu_type": "a100", "gpu_count": 4}]
    got = usage(cat.gpu_types, servers, nodes, [job_pod, server_pod])
    assert [(u["user"], u["gpus"]) for u in got["users"]] == [("bo", 4), ("ada", 2)]
    assert got["users"][1]["jobs"][0]["job"] == "train"
    a100 = next(g for g in got["gpu_types"] if g["name"] == "a100")
    assert (a100["total"], a100["used"], a100["free"]) == (8, 6, 2)
