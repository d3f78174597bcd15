from pathlib import Path

import pytest
import yaml

from moonhub_core.catalog import CatalogError, CatalogStore, load

EXAMPLE = Path(__file__).resolve().parents[2] / "moonhub_core" / "examples" / "catalog.yaml"


def _doc() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def _write(tmp_path: Path, doc: dict) -> Path:
    p = tmp_path / "catalog.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_example_catalog_is_valid() -> None:
    cat = load(EXAMPLE)
    assert cat.default_environment.name == "python"
    assert {g.name for g in cat.gpu_types} == {"a100", "v100", "t4"}


def _edit(doc: dict, path: str, value: object) -> dict:
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is KeyError:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("environments.0.imagee", "x", "environments[0].imagee: unknown key (did you mean 'image'?)"),
        ("environments.0.image", KeyError, "environments[0]: missing required key(s) image"),
        ("environments.1.name", "python", "environments[1].name: 'python' is used twice"),
        ("environments.1.default", True, "environments: more than one is marked default"),
        ("sizes.0.cpu_limit", "two", "sizes[0].cpu_limit: must be a number, not 'two'"),
        ("sizes.0.cpu_guarantee", 4, "sizes[0]: needs 0 < cpu_guarantee <= cpu_limit"),
        ("sizes.0.memory_limit", "4 GB", "sizes[0].memory_limit: '4 GB' is not a Kubernetes quantity"),
        ("sizes.0.memory_guarantee", "8Gi", "sizes[0]: memory_guarantee is larger than memory_limit"),
        ("gpu_types.0.node_selector", {}, "gpu_types[0].node_selector: must name at least one node label"),
        ("gpu_types.0.counts", [0, 1], "gpu_types[0].counts: must be a non-empty list of positive integers"),
        ("storage.access_mode", "RWX", "storage.access_mode: 'RWX' is not a Kubernetes access mode"),
        ("storage.named_servers", "each", "storage.named_servers: must be 'shared' or 'per_server'"),
        ("entitlements.1.gpu_types", ["h100"], "entitlements[1].gpu_types[0]: unknown gpu type 'h100'"),
        ("entitlements.0.sizes", ["huge"], "entitlements[0].sizes[0]: unknown size 'huge'"),
        ("group_gpu_quotas.ml-research", -1, "group_gpu_quotas.ml-research: must not be negative"),
        ("group_gpu_quotas.ml-research", "lots", "group_gpu_quotas.ml-research: must be an integer"),
        ("entitlements.0.max_per_user", {"pods": 0}, "entitlements[0].max_per_user.pods: must be at least 1"),
        ("entitlements.0.max_per_user", {"cpu": -2}, "entitlements[0].max_per_user.cpu: must be more than 0"),
        ("entitlements.0.max_per_user", {"memory": "lots"}, "entitlements[0].max_per_user.memory: 'lots' is not"),
        ("entitlements.0.max_per_user", {"gpus": 2}, "entitlements[0].max_per_user.gpus: unknown key"),
        ("group_compute_quotas", {"vision": {"memory": "0"}}, "group_compute_quotas.vision.memory: must be more"),
        ("group_compute_quotas", {"vision": {"pods": "many"}}, "group_compute_quotas.vision.pods: must be an integer"),
    ],
)
def test_bad_catalog_names_file_path_and_problem(tmp_path: Path, path: str, value: object, message: str) -> None:
    p = _write(tmp_path, _edit(_doc(), path, value))
    with pytest.raises(CatalogError) as err:
        load(p)
    assert str(err.value).startswith(f"{p}: ")
    assert message in str(err.value)


def test_store_reloads_edits_and_keeps_last_good(tmp_path: Path) -> None:
    p = _write(tmp_path, _doc())
    store = CatalogStore(p)
    assert store.get().default_size.name == "small"
    doc = _doc()
    doc["sizes"][0]["default"], doc["sizes"][1]["default"] = False, True
    _write(tmp_path, doc)
    assert store.get().default_size.name == "medium" and store.error is None
    p.write_text("environments: [oops\n")
    assert store.get().default_size.name == "medium", "a broken edit keeps the last good catalog"
    assert store.error and "not valid YAML" in store.error
    _write(tmp_path, _doc())
    assert store.get().default_size.name == "small" and store.error is None


def test_one_shared_store_per_catalog_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from moonhub_core.catalog import EXAMPLE, shared_store

    (tmp_path / "catalog.yaml").write_text(EXAMPLE.read_text())
    monkeypatch.chdir(tmp_path)
    store = shared_store(tmp_path / "catalog.yaml")
    assert shared_store("catalog.yaml") is store is shared_store(str(tmp_path / "catalog.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("sizes: []\n")
    with pytest.raises(CatalogError, match=r"broken\.yaml"):
        shared_store(broken)
    broken.write_text(EXAMPLE.read_text())
    assert shared_store(broken).get().sizes, "a first load that failed is tried again"
