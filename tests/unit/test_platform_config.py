from pathlib import Path

import pytest

from hub_config.platform import ConfigError, PlatformConfig, load

EXAMPLES = Path(__file__).resolve().parents[2] / "hub_config" / "examples"


def test_example_config_loads() -> None:
    cfg = load(EXAMPLES / "local.yaml")
    assert cfg.auth.type == "development" and cfg.spawner.bind_pod_ip


def test_empty_document_gives_defaults(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("")
    assert load(tmp_path / "p.yaml") == PlatformConfig()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("spawner:\n  catalogue: x\n", "spawner.catalogue: unknown key (did you mean 'catalog'?)"),
        ("hubb: {}\n", "hubb: unknown key (did you mean 'hub'?)"),
        ("auth:\n  type: magic\n", "auth.type: must be one of 'development', not 'magic'"),
        ("spawner:\n  start_timeout: soon\n", "spawner.start_timeout: must be an integer, not 'soon'"),
        ("spawner:\n  bind_pod_ip: 'yes'\n", "spawner.bind_pod_ip: must be true or false"),
        ("auth:\n  admin_users: admin\n", "auth.admin_users: must be a list"),
        ("- a\n", "the document: must be a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path: Path, doc: str, message: str) -> None:
    path = tmp_path / "platform.yaml"
    path.write_text(doc)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)
