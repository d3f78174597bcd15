"""Admin console edits to the catalog document (pure), their write-back and the history."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from admin_console.catalog_source import FileSource
from admin_console.edits import apply
from admin_console.usage import usage
from moonhub_core.catalog import load
from moonhub_core.errors import FieldError


def write(path: Path, doc: dict[str, object]) -> None:
    """The console's write-back of the catalog file (checked first; nothing written on refusal)."""
    asyncio.run(FileSource(path).write(doc))


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


# ---- curation: add, update, remove; what an edit offers and whom it touches ----------------

R_LANG = {"name": "r-lang", "display_name": "R 4.4", "image": "127.0.0.1:5000/moonhub/r-notebook:4.4"}


def test_an_environment_added_changed_and_removed() -> None:
    doc = apply(DOC, {"op": "add", "kind": "environment", "item": {**R_LANG, "groups": ["stats"], "default": True}})
    r = next(e for e in doc["environments"] if e["name"] == "r-lang")
    assert r["groups"] == ["stats"] and [e["name"] for e in doc["environments"] if e.get("default")] == ["r-lang"]
    doc = apply(doc, {"op": "update", "kind": "environment", "name": "r-lang", "set": {"display_name": " R "}})
    assert next(e for e in doc["environments"] if e["name"] == "r-lang")["display_name"] == "R"
    # an entitlement that names it loses the name with it; the catalog still loads
    doc["entitlements"][1]["environments"] = ["python", "r-lang"]
    doc = apply(doc, {"op": "remove", "kind": "environment", "name": "r-lang"})
    assert "r-lang" not in [e["name"] for e in doc["environments"]]
    assert doc["entitlements"][1]["environments"] == ["python"]


def test_a_size_and_a_gpu_type_added_and_a_gpu_type_removed_from_quotas() -> None:
    size = {"name": "xl", "display_name": "XL", "cpu_guarantee": 4, "cpu_limit": 8}
    doc = apply(DOC, {"op": "add", "kind": "size", "item": {**size, "memory_guarantee": "8Gi", "memory_limit": "16Gi"}})
    assert doc["sizes"][-1]["name"] == "xl"
    gpu = {"name": "h100", "display_name": "H100", "node_selector": {"nvidia.com/gpu.product": "H100"}}
    doc = apply(doc, {"op": "add", "kind": "gpu_type", "item": {**gpu, "counts": [2, 1, 2]}})
    assert doc["gpu_types"][-1]["counts"] == [1, 2]
    doc["group_gpu_type_quotas"] = {"ml-research": {"h100": 2, "a100": 2}}
    doc = apply(doc, {"op": "remove", "kind": "gpu_type", "name": "h100"})
    assert doc["group_gpu_type_quotas"] == {"ml-research": {"a100": 2}}


@pytest.mark.parametrize(
    ("edit", "field", "status"),
    [
        ({"op": "add", "kind": "kernel", "item": R_LANG}, "kind", 400),
        ({"op": "add", "kind": "environment", "item": "r"}, "item", 400),
        ({"op": "add", "kind": "environment", "item": {**R_LANG, "name": "R Lang"}}, "name", 400),
        ({"op": "add", "kind": "environment", "item": {**R_LANG, "name": "python"}}, "name", 409),
        ({"op": "add", "kind": "environment", "item": {**R_LANG, "image": " "}}, "image", 400),
        ({"op": "add", "kind": "environment", "item": {**R_LANG, "image": "a b"}}, "image", 400),
        ({"op": "add", "kind": "environment", "item": {**R_LANG, "privileged": True}}, "privileged", 400),
        ({"op": "add", "kind": "environment", "item": {"name": "x", "image": "i"}}, "display_name", 400),
        (
            {
                "op": "add",
                "kind": "size",
                "item": {
                    "name": "bad",
                    "display_name": "Bad",
                    "cpu_guarantee": 4,
                    "cpu_limit": 2,
                    "memory_guarantee": "1Gi",
                    "memory_limit": "2Gi",
                },
            },
            "cpu_limit",
            400,
        ),
        ({"op": "update", "kind": "size", "name": "small", "set": {"memory_limit": "100Mi"}}, "memory_limit", 400),
        (
            {"op": "update", "kind": "size", "name": "small", "set": {"memory_guarantee": "lots"}},
            "memory_guarantee",
            400,
        ),
        ({"op": "update", "kind": "size", "name": "small", "set": {"cpu_guarantee": True}}, "cpu_guarantee", 400),
        ({"op": "update", "kind": "size", "name": "huge", "set": {"cpu_limit": 2}}, "name", 404),
        ({"op": "update", "kind": "size", "name": "small", "set": {"name": "tiny"}}, "name", 400),
        ({"op": "update", "kind": "size", "name": "small", "set": {}}, "set", 400),
        ({"op": "update", "kind": "gpu_type", "name": "t4", "set": {"counts": [0]}}, "counts", 400),
        ({"op": "update", "kind": "gpu_type", "name": "t4", "set": {"node_selector": {}}}, "node_selector", 400),
        ({"op": "remove", "kind": "environment", "name": "cobol"}, "name", 404),
    ],
)
def test_bad_curation_names_the_field(edit: dict[str, object], field: str, status: int) -> None:
    with pytest.raises(FieldError) as e:
        apply(DOC, edit)
    assert (e.value.field, e.value.status) == (field, status), e.value


def test_the_images_an_edit_offers_are_checked_and_pinned() -> None:
    from admin_console.edits import describe, offered_images, pin

    add = {"op": "add", "kind": "environment", "item": R_LANG}
    doc = apply(DOC, add)
    assert offered_images(DOC, doc, add) == [("r-lang", R_LANG["image"])], "only the new image"
    quota = {"op": "gpu_quota", "group": "x", "gpus": 1}
    assert offered_images(DOC, apply(DOC, quota), quota) == [], "an edit offering nothing checks nothing"
    same = {"op": "update", "kind": "environment", "name": "python", "set": {"image": DOC["environments"][0]["image"]}}
    assert [n for n, _ in offered_images(DOC, apply(DOC, same), same)] == ["python"], "naming the image pins it"
    digest = "sha256:" + "ab" * 32
    pinned = pin(doc, {"r-lang": digest})
    assert next(e for e in pinned["environments"] if e["name"] == "r-lang")["image_digest"] == digest
    # a new image drops the old digest
    again = apply(pinned, {"op": "update", "kind": "environment", "name": "r-lang", "set": {"image": "x/r:5"}})
    assert "image_digest" not in next(e for e in again["environments"] if e["name"] == "r-lang")
    assert describe(add) == "added environment r-lang"
    assert describe({"op": "environment", "name": "python", "enabled": False}) == "environment python: enabled=false"
    assert (
        describe({"op": "update", "kind": "size", "name": "s", "set": {"cpu_limit": 1, "b": 2}})
        == "changed size s: b, cpu_limit"
    )


def test_a_pinned_environment_runs_its_digest(tmp_path: Path) -> None:
    from admin_console.edits import pin

    digest = "sha256:" + "cd" * 32
    path = tmp_path / "catalog.yaml"
    write(path, pin(apply(DOC, {"op": "add", "kind": "environment", "item": R_LANG}), {"r-lang": digest}))
    env = load(path).environment("r-lang")
    assert env is not None and env.pinned_image == f"{R_LANG['image']}@{digest}"
    bad = yaml.safe_load(path.read_text())
    bad["environments"][-1]["image_digest"] = "latest"
    with pytest.raises(FieldError) as e:
        write(path, bad)
    assert "image_digest" in e.value.message


def test_servers_using_what_an_edit_removed_or_changed_are_named() -> None:
    from admin_console.edits import in_use

    servers = [
        {"user": "ada", "name": "", "environment": "tensorflow", "size": "small", "gpu_type": None},
        {"user": "bo", "name": "gpu", "environment": "pytorch", "size": "large", "gpu_type": "a100"},
    ]
    doc = apply(DOC, {"op": "remove", "kind": "environment", "name": "tensorflow"})
    doc = apply(doc, {"op": "update", "kind": "environment", "name": "pytorch", "set": {"image": "x/torch:3"}})
    found = in_use(DOC, doc, servers)
    assert [(f["user"], f["environment"]) for f in found] == [("ada", "tensorflow"), ("bo", "pytorch")]
    assert "removed" in found[0]["what"] and "new image" in found[1]["what"]
    assert in_use(DOC, apply(DOC, {"op": "remove", "kind": "gpu_type", "name": "a100"}), servers)[0]["user"] == "bo"


def test_image_references_are_read_as_docker_reads_them() -> None:
    from moonhub_core.image_check import Reference, _challenge, parse, plain_http

    assert parse("python") == Reference("registry-1.docker.io", "library/python", "latest")
    assert parse("jupyter/base:2024") == Reference("registry-1.docker.io", "jupyter/base", "2024")
    assert parse("127.0.0.1:5000/moonhub/base-notebook:py-3.11") == Reference(
        "127.0.0.1:5000", "moonhub/base-notebook", "py-3.11"
    )
    digest = "sha256:" + "0" * 64
    assert parse(f"ghcr.io/a/b@{digest}").reference == digest
    assert parse("localhost/x").registry == "localhost"
    for bad in ("UPPER/case", "a//b", f"x@{digest[:20]}"):
        with pytest.raises(FieldError) as e:
            parse(bad)
        assert e.value.field == "image"
    assert plain_http("127.0.0.1:5000", []) and plain_http("localhost:5000", [])
    assert plain_http("registry.internal:5000", ["registry.internal:5000"]) and not plain_http("ghcr.io", [])
    said = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull"'
    assert _challenge(said)["scope"] == "repository:library/python:pull"


def test_the_history_records_each_edit_and_keeps_the_newest_documents(tmp_path: Path) -> None:
    from admin_console import revisions
    from admin_console.revisions import FileRevisions

    revs = FileRevisions(tmp_path / "history")
    assert revs.entries() == [] and revs.current() == -1
    first = revs.record("v0", "v1", "ada", "added environment r", {"op": "add"})
    assert first.revision == 1 and revs.document(0) == "v0" and revs.document(1) == "v1"
    assert [r.revision for r in revs.entries()] == [1, 0] and revs.entries()[1].by == ""
    for n in range(2, revisions.KEEP + 3):
        revs.record(f"v{n - 1}", f"v{n}", "bo", f"edit {n}", {"op": "x"})
    assert revs.current() == revisions.KEEP + 2 and len(revs.entries()) == revisions.KEEP + 3, "the log keeps all"
    assert revs.document(revisions.KEEP + 2) == f"v{revisions.KEEP + 2}"
    with pytest.raises(FieldError) as e:
        revs.document(1)
    assert (e.value.field, e.value.status) == ("revision", 404), "older documents are not kept"


def test_the_image_probe_runs_as_a_server_would_and_reads_the_kubelets_answer() -> None:
    from moonhub_core.image_probe import COMMAND, probe_pod, verdict
    from moonhub_core.pods import GPU_NODE_LABEL

    pod = probe_pod("p", "r/x@sha256:" + "0" * 64)
    spec = pod["spec"]
    c = spec["containers"][0]
    assert c["command"][-2:] == COMMAND and c["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"] == [{"key": GPU_NODE_LABEL, "operator": "DoesNotExist"}], "never on a GPU node"

    def status(**state: object) -> dict[str, object]:
        return {"status": {"phase": "Running", "containerStatuses": [{"state": state}]}}

    assert verdict(status(waiting={"reason": "ContainerCreating"}), "") is None
    assert verdict(status(terminated={"exitCode": 0}), "5.4.2\n") == (True, "5.4.2")
    ok, said = verdict(status(terminated={"exitCode": 127}), "sh: jupyterhub-singleuser: not found")  # type: ignore[misc]
    assert not ok and "exited with 127" in said and "not found" in said
    ok, said = verdict(status(waiting={"reason": "ErrImagePull", "message": "manifest unknown"}), "")  # type: ignore[misc]
    assert not ok and said == "ErrImagePull: manifest unknown"
