from pathlib import Path

import pytest

from moonhub_core.platform import AuthSection, ConfigError, PlatformConfig, load

EXAMPLES = Path(__file__).resolve().parents[2] / "hub_config" / "examples"


@pytest.mark.parametrize("name", ["local.yaml", "keycloak.yaml", "github.yaml", "gitlab.yaml"])
def test_every_example_loads(name: str) -> None:
    assert load(EXAMPLES / name).auth.type in ("development", "oidc", "github", "gitlab")


def test_github_teams_become_groups() -> None:
    from hub_config.authenticators import github_teams

    state = {"teams": [{"organization": {"login": "acme-ml"}, "slug": "platform"}]}
    assert github_teams(state) == ["acme-ml:platform"] and github_teams({}) == []


def test_example_config_loads() -> None:
    cfg = load(EXAMPLES / "local.yaml")
    assert cfg.auth.type == "development"
    assert cfg.spawner.storage_class_override == "", "the catalog names the class (glusterfs)"


def test_development_login_only_when_named(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("auth:\n  type: development\n")
    assert load(tmp_path / "p.yaml") == PlatformConfig(auth=AuthSection(type="development"))
    # an empty document does not fall back to it: identity must be configured
    (tmp_path / "p.yaml").write_text("")
    with pytest.raises(ConfigError, match=r"auth\.oauth\.client_id: required for auth\.type oidc"):
        load(tmp_path / "p.yaml")


OIDC = "auth:\n  type: oidc\n  oidc: {issuer: 'https://id.example.com/realms/ml'}\n"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("spawner:\n  catalogue: x\n", "spawner.catalogue: unknown key (did you mean 'catalog'?)"),
        ("hubb: {}\n", "hubb: unknown key (did you mean 'hub'?)"),
        ("auth:\n  type: magic\n", "auth.type: must be one of 'oidc', 'gitlab', 'github', 'development', not 'magic'"),
        (
            OIDC + "  oauth: {client_id: hub, client_secret: abc}\n",
            "auth.oauth.client_secret: secrets never go in this document; use auth.oauth.client_secret_file",
        ),
        ("hub:\n  db_url: postgresql://u:p@db/hub\n", "hub.db_url: secrets never go in this document"),
        ("hub:\n  cookie_secret: abc\n", "hub.cookie_secret: secrets never go in this document"),
        ("auth:\n  type: oidc\n  oauth: {client_id: hub}\n", "auth.oidc.issuer: required for auth.type oidc"),
        (OIDC + "  oauth: {client_id: hub}\n", "auth.oauth.allowed_groups: nobody could log in"),
        (OIDC + "  oauth: {client_id: hub, allowed_groups: ml}\n", "auth.oauth.allowed_groups: must be a list"),
        (OIDC + "  oidc: {isuer: x}\n", "auth.oidc.isuer: unknown key (did you mean 'issuer'?)"),
        ("auth:\n  type: github\n  oauth: {allowed_groups: [acme]}\n", "auth.oauth.client_id: required"),
        ("spawner:\n  start_timeout: soon\n", "spawner.start_timeout: must be an integer, not 'soon'"),
        ("hub:\n  cleanup_servers: 'yes'\n", "hub.cleanup_servers: must be true or false"),
        ("spawner:\n  queue_prefix: MoonHub\n", "spawner.queue_prefix: 'MoonHub' must be 1-20 lowercase letters"),
        ("spawner:\n  queue_prefix: a-very-long-prefix-indeed\n", "spawner.queue_prefix: 'a-very-long"),
        ("spawner:\n  bind_pod_ip: true\n", "spawner.bind_pod_ip: unknown key"),
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


def test_a_complete_oidc_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "auth:\n  type: oidc\n  oidc: {issuer: 'https://id.example.com/realms/ml'}\n"
        "  oauth: {client_id: hub, client_secret_file: secret, allowed_groups: [ml], admin_groups: [ops]}\n"
    )
    cfg = load(path)
    assert cfg.auth.oauth.allowed_groups == ["ml"] and cfg.auth.oidc.require_verified_email


@pytest.mark.parametrize("value", ["pypi-proxy:3141", "ftp://mirror/simple/", "http:///index/"])
def test_a_package_index_that_is_not_a_url_is_refused_by_name(tmp_path: Path, value: str) -> None:
    (tmp_path / "p.yaml").write_text(f"auth: {{type: development}}\nspawner: {{package_index: '{value}'}}\n")
    with pytest.raises(ConfigError, match=r"spawner\.package_index: .* is not an http\(s\) URL"):
        load(tmp_path / "p.yaml")


def test_a_package_index_with_a_credential_is_refused_every_users_pod_would_hold_it(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "auth: {type: development}\nspawner: {package_index: 'https://ci:s3cret@nexus.example.com/simple/'}\n"
    )
    with pytest.raises(ConfigError, match=r"spawner\.package_index: carries a credential"):
        load(tmp_path / "p.yaml")
