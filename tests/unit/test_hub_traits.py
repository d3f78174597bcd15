"""The platform config onto JupyterHub: services, roles and token scopes are exactly
what each part needs; secrets come from files or the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from culling import service as culling_service
from hub_config import services
from hub_config.auth import client_secret
from hub_config.traits import apply
from jobs_service import settings
from jobs_service.app import JobsServiceApp
from moonhub_core import pods, server_claim, sharing
from moonhub_core.platform import HUB_SETTING, ConfigError, JobsLimits, JobsSection, catalog_path, load

EXAMPLE = Path(__file__).resolve().parents[2] / "hub_config" / "examples" / "local.yaml"


def _configured(tmp_path: Path, **sections: dict) -> Config:  # type: ignore[type-arg]
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["hub"]["state_dir"] = "."
    doc["spawner"]["catalog"] = str(EXAMPLE.parents[2] / "moonhub_core" / "examples" / "catalog.yaml")
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value}
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(doc))
    c = Config()
    apply(c, load(path), path)
    return c


def test_roles_and_scopes_are_exactly_what_each_part_needs(tmp_path: Path) -> None:
    c = _configured(tmp_path)
    assert c.Spawner.server_token_scopes == [
        "users:activity!user",
        "access:servers!server",
        "access:services!service=jobs",
        "read:shares!server",
        "access:services!service=gpu-reclaim",
    ]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["user"]["scopes"] == ["self", "access:services!service=jobs", "access:services!service=gpu-reclaim"]
    # the jobs service reads users, and shares servers for their owners (only what it holds
    # may be shared: access to servers and the write scope)
    assert roles["moonhub-jobs"]["scopes"] == [
        "list:users",
        "read:users",
        "shares",
        "read:users:name",
        "read:groups",
        "read:groups:name",
        "custom:moonhub:server-write",
    ]
    assert c.JupyterHub.custom_scopes == {"custom:moonhub:server-write": {"description": sharing.WRITE_SCOPE_HELP}}

    culler_scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    assert roles["moonhub-idle-culler"]["scopes"] == culler_scopes
    assert set(roles["moonhub-gpu-reclaim"]["scopes"]) == {
        "list:users",
        "read:users:activity",
        "read:servers",
        "delete:servers",
    }, "the reclaim service never calls users' servers (no access:servers)"
    # Prometheus: reads metrics (the hub's, and the jobs service's, which takes read:metrics)
    assert roles["moonhub-metrics-scraper"]["scopes"] == ["read:metrics", "access:services!service=jobs"]
    assert not any("admin" in s for r in roles.values() for s in r["scopes"]), "no service is an admin"
    assert [s["name"] for s in c.JupyterHub.services] == ["jobs", "idle-culler", "gpu-reclaim", "metrics-scraper"]
    culler = next(s for s in c.JupyterHub.services if s["name"] == "idle-culler")
    assert "--timeout=3600" in culler["command"]
    reclaim = next(s for s in c.JupyterHub.services if s["name"] == "gpu-reclaim")
    # servers pull their own warnings from it (their token may call only it and the jobs service)
    assert c.KubeSpawner.environment["MOONHUB_NOTICES_URL"] == reclaim["url"] + "/services/gpu-reclaim/notices"


def test_culling_off_and_short_clocks(tmp_path: Path) -> None:
    c = _configured(tmp_path, culling={"enabled": False})
    assert [s["name"] for s in c.JupyterHub.services] == ["jobs", "metrics-scraper"]
    with pytest.raises(ConfigError, match=r"culling\.warn_before: must be shorter than culling\.gpu_idle_timeout"):
        _configured(tmp_path, culling={"gpu_idle_timeout": 60, "warn_before": 600})


def test_the_metrics_scrapers_token_is_kept_or_read_from_the_file_named(tmp_path: Path) -> None:
    """Prometheus's token: made once in the hub's state (the same at the next start, readable
    by the hub's user only), or the operator's file (the chart's Secret); a missing or short
    one is refused by name. The service has no URL and no process: it is only a token."""

    def scraper(c: Config) -> dict:  # type: ignore[type-arg]
        return next(s for s in c.JupyterHub.services if s["name"] == "metrics-scraper")

    kept = scraper(_configured(tmp_path))
    assert set(kept) == {"name", "api_token"} and len(kept["api_token"]) == 64
    path = tmp_path / "metrics-scraper.token"
    assert path.stat().st_mode & 0o077 == 0
    assert scraper(_configured(tmp_path))["api_token"] == kept["api_token"], "kept across restarts"
    given = tmp_path / "secret" / "token"
    with pytest.raises(ConfigError, match=r"metrics\.scraper_token_file: cannot read .*secret/token"):
        _configured(tmp_path, metrics={"scraper_token_file": "secret/token"})
    given.parent.mkdir()
    given.write_text("short\n")
    with pytest.raises(ConfigError, match=r"metrics\.scraper_token_file: .* shorter than 32"):
        _configured(tmp_path, metrics={"scraper_token_file": "secret/token"})
    given.write_text("t" * 48 + "\n")
    assert scraper(_configured(tmp_path, metrics={"scraper_token_file": "secret/token"}))["api_token"] == "t" * 48
    # without the jobs service it reads the hub's metrics only
    roles = {
        r["name"]: r
        for r in _configured(tmp_path, jobs={"enabled": False}, builds={"enabled": False}).JupyterHub.load_roles
    }
    assert roles["moonhub-metrics-scraper"]["scopes"] == ["read:metrics"]


def test_database_url_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _configured(tmp_path).JupyterHub.db_url.startswith("sqlite:///")
    monkeypatch.setenv("MOONHUB_HUB_DB_URL", "postgresql+psycopg://hub@db/hub")
    assert _configured(tmp_path).JupyterHub.db_url == "postgresql+psycopg://hub@db/hub"


def test_client_secret_from_file_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "p.yaml"
    doc.write_text(
        "auth:\n  type: gitlab\n  oauth: {client_id: hub, allowed_groups: [ml], client_secret_file: s.txt}\n"
    )
    cfg = load(doc)
    with pytest.raises(ConfigError, match=r"client_secret_file: cannot read"):
        client_secret(cfg, tmp_path)
    (tmp_path / "s.txt").write_text("from-file\n")
    assert client_secret(cfg, tmp_path) == "from-file"
    doc.write_text("auth:\n  type: gitlab\n  oauth: {client_id: hub, allowed_groups: [ml]}\n")
    monkeypatch.delenv("MOONHUB_OAUTH_CLIENT_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"MOONHUB_OAUTH_CLIENT_SECRET is empty"):
        client_secret(load(doc), tmp_path)
    monkeypatch.setenv("MOONHUB_OAUTH_CLIENT_SECRET", "from-env")
    assert client_secret(load(doc), tmp_path) == "from-env"


def test_jobs_service_and_proxy_on_their_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOONHUB_JOBS_API_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"MOONHUB_JOBS_API_TOKEN"):
        _configured(tmp_path, jobs={"managed": False, "url": "http://moonhub-jobs:8090"})
    monkeypatch.setenv("MOONHUB_JOBS_API_TOKEN", "t0ken")
    c = _configured(tmp_path, jobs={"managed": False, "url": "http://moonhub-jobs:8090"}, hub={"start_proxy": False})
    jobs = next(s for s in c.JupyterHub.services if s["name"] == "jobs")
    assert jobs == {"name": "jobs", "url": "http://moonhub-jobs:8090", "api_token": "t0ken", "oauth_no_confirm": True}
    assert c.ConfigurableHTTPProxy.should_start is False


def test_hub_in_a_cluster_is_reached_by_name_and_keeps_servers(tmp_path: Path) -> None:
    default = _configured(tmp_path)
    assert "hub_connect_url" not in default.JupyterHub and default.JupyterHub.cleanup_servers is True
    hub = {"api_url": "http://0.0.0.0:8081", "connect_url": "http://mh-moonhub-hub:8081", "cleanup_servers": False,
           "route_check_interval": 30}  # fmt: skip
    c = _configured(tmp_path, hub=hub)
    assert (c.JupyterHub.hub_bind_url, c.JupyterHub.hub_connect_url) == (hub["api_url"], hub["connect_url"])
    assert c.JupyterHub.cleanup_servers is False, "an upgrade of the hub leaves users' servers running"
    assert c.JupyterHub.last_activity_interval == 30, "a restarted proxy gets its routes back within 30 s"
    read_only = _configured(tmp_path, spawner={"catalog_managed_by": "the Helm release"})
    assert read_only.JupyterHub.tornado_settings[HUB_SETTING].config.spawner.catalog_managed_by == "the Helm release"


def test_user_config_and_subdomains_are_the_operators_choice(tmp_path: Path) -> None:
    c = _configured(tmp_path)
    assert c.Spawner.disable_user_config is False, "workspace kernels work by default"
    # the local set-up (issue 32, item 8): a host name per user under localhost, plain http
    assert c.JupyterHub.subdomain_host == "http://localhost:8000"
    assert "cookie_host_prefix_enabled" not in c.JupyterHub, "__Host- cookies need https"
    assert "subdomain_host" not in _configured(tmp_path, hub={"subdomain_host": ""}).JupyterHub
    c = _configured(
        tmp_path,
        spawner={"disable_user_config": True},
        hub={"public_url": "https://moonhub.example.com", "subdomain_host": "https://moonhub.example.com"},
    )
    assert c.Spawner.disable_user_config is True
    assert c.JupyterHub.subdomain_host == "https://moonhub.example.com"
    assert c.JupyterHub.cookie_host_prefix_enabled is True, "host-only cookies over https"
    with pytest.raises(ConfigError, match=r"hub\.subdomain_host"):
        _configured(tmp_path, hub={"subdomain_host": "moonhub.example.com/path"})


def test_every_service_reads_the_document_the_hub_read(tmp_path: Path) -> None:
    c = _configured(tmp_path, jobs={"smtp": "mail.example.org:2525"})
    doc = str((tmp_path / "platform.yaml").resolve())
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert services["jobs"]["environment"]["MOONHUB_CONFIG"] == doc
    assert services["gpu-reclaim"]["environment"]["MOONHUB_CONFIG"] == doc
    assert services["gpu-reclaim"]["command"][-2:] == ["-m", "culling"], "no settings passed on the side"
    assert set(services["jobs"]["environment"]) == {
        "MOONHUB_CONFIG",
        "MOONHUB_JOBS_KUBECONFIG",
        "MOONHUB_JOBS_DB",
        "MOONHUB_JOBS_SNAPSHOTS",
    }
    assert c.MoonSpawner.catalog_path == str(c.JupyterHub.tornado_settings[HUB_SETTING].catalog)


def test_the_jobs_service_takes_its_settings_from_the_document(tmp_path: Path) -> None:
    """Every setting of the jobs service is the document's (declared once, with its default),
    and where it keeps its state comes from the environment the hub gives it."""
    _configured(
        tmp_path,
        spawner={"namespace": "team-pods", "storage_class_override": "fast", "catalog": "cat.yaml"},
        jobs={"smtp": "mail.example.org:2525", "emails_per_hour": 7, "sync_interval": 3, "url": "http://10.0.0.5:8090"},
    )
    path = tmp_path / "platform.yaml"
    env = {
        settings.DB_ENV: "sqlite:////x/j.sqlite",
        settings.SNAPSHOTS_ENV: "/x/snap",
        settings.SMTP_PASSWORD_ENV: "pw",
    }
    got = settings.from_platform(load(path), path, env)
    assert (got.namespace, got.storage_class_override) == ("team-pods", "fast")
    assert got.catalog_path == (tmp_path / "cat.yaml").resolve() == catalog_path(load(path), path)
    assert (got.smtp.host, got.smtp.port, got.smtp.password, got.emails.per_hour) == ("mail.example.org", 2525, "pw", 7)
    assert (got.sync_interval, got.reconcile_interval) == (3, JobsSection.reconcile_interval)
    assert got.launch_url == "http://10.0.0.5:8090/services/jobs/launch"
    assert (got.db_url, str(got.snapshot_dir), got.kubeconfig) == ("sqlite:////x/j.sqlite", "/x/snap", "")
    assert got.limits.jobs_per_user == JobsLimits.jobs_per_user and got.admin_groups == ("job-admins",)
    app = JobsServiceApp(platform=str(path))
    assert app.platform == str(path) and not [t for t in app.class_own_traits(config=True) if t != "platform"], (
        "no setting of the service's own beside the document"
    )


def test_the_reclaim_service_takes_its_settings_from_the_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configured(tmp_path, spawner={"namespace": "team-pods"}, culling={"idle_timeout": 7200, "every": 9})
    monkeypatch.setenv("MOONHUB_CONFIG", str(tmp_path / "platform.yaml"))
    seen: dict[str, object] = {}

    async def serve(r: culling_service.Reclaimer, listen: str, every: float, sample: float) -> None:
        seen.update(namespace=r.namespace, timeout=r.settings.idle_timeout, every=every, listen=listen)
        seen.update(metrics=r.metrics_urls)

    monkeypatch.setattr(culling_service, "serve", serve)
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t")
    culling_service.main([])
    cu = load(tmp_path / "platform.yaml").culling
    assert seen == {
        "namespace": "team-pods",
        "timeout": 7200,
        "every": 9,
        "listen": cu.url,
        "metrics": list(cu.gpu_metrics_urls),
    }
    assert cu.gpu_metrics_urls, "the example names a metrics URL, so the test shows it is passed on"
    monkeypatch.delenv("MOONHUB_CONFIG")
    seen.clear()
    culling_service.main(["--platform", str(tmp_path / "platform.yaml")])
    assert seen["namespace"] == "team-pods", "--platform names the document"


def test_the_hub_config_file_mounts_the_admin_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy

    _configured(tmp_path)
    monkeypatch.setenv("MOONHUB_CONFIG", str(tmp_path / "platform.yaml"))
    c = Config()
    runpy.run_path(str(EXAMPLE.parents[1] / "jupyterhub_config.py"), init_globals={"get_config": lambda: c})
    assert next(h[0] for h in c.JupyterHub.extra_handlers) == r"/moonhub-admin/?"
    assert c.JupyterHub.tornado_settings[HUB_SETTING].config.spawner.namespace == "moonhub-users"


def test_the_hub_signs_server_claims_with_a_key_from_the_jobs_services_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The managed service's token is kept with the hub's state (the same across restarts);
    the spawner's claim key derives from it, and no pod is given it."""
    c = _configured(tmp_path)
    jobs = next(s for s in c.JupyterHub.services if s["name"] == "jobs")
    kept = tmp_path / services.JOBS_TOKEN_FILE
    assert jobs["api_token"] == kept.read_text().strip() and len(jobs["api_token"]) == 64
    assert kept.stat().st_mode & 0o077 == 0, "readable by the hub's user only"
    assert c.MoonSpawner.server_claim_key == server_claim.key_from_token(jobs["api_token"])
    assert _configured(tmp_path).JupyterHub.services[0]["api_token"] == jobs["api_token"], "kept across starts"
    assert c.MoonSpawner.server_claim_key not in str(c.KubeSpawner.environment)
    assert jobs["api_token"] not in str(c.KubeSpawner.environment)

    monkeypatch.setenv("MOONHUB_JOBS_API_TOKEN", "t0ken")
    c = _configured(tmp_path, jobs={"managed": False, "url": "http://moonhub-jobs:8090"})
    assert c.MoonSpawner.server_claim_key == server_claim.key_from_token("t0ken")


def test_the_hub_labels_its_pods_with_an_id_from_its_public_url(tmp_path: Path) -> None:
    c = _configured(tmp_path, hub={"public_url": "https://moonhub.example.com"})
    assert c.MoonSpawner.hub_id == pods.hub_id("https://moonhub.example.com")
    assert c.MoonSpawner.orphan_pod_grace == 600
    assert _configured(tmp_path, spawner={"orphan_pod_grace": 0}).MoonSpawner.orphan_pod_grace == 0
    with pytest.raises(ConfigError, match=r"spawner\.orphan_pod_grace"):
        _configured(tmp_path, spawner={"orphan_pod_grace": 5})


def test_a_server_pod_has_time_to_write_open_documents_when_stopped(tmp_path: Path) -> None:
    c = _configured(tmp_path)
    assert c.KubeSpawner.delete_grace_period == 15
    assert _configured(tmp_path, spawner={"stop_grace": 30}).KubeSpawner.delete_grace_period == 30
    with pytest.raises(ConfigError, match=r"spawner\.stop_grace"):
        _configured(tmp_path, spawner={"stop_grace": 0})


def test_managed_services_start_in_an_empty_folder_and_the_state_is_the_hubs_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service renders and stores what users send: started in the hub's folder (locally the
    repository, whose .state holds the cluster's admin kubeconfig), a relative path a user
    wrote would name the hub's files (issue 32, item 1)."""
    monkeypatch.chdir(tmp_path)
    c = _configured(tmp_path)
    managed = [s for s in c.JupyterHub.services if "command" in s]
    assert [s["name"] for s in managed] == ["jobs", "idle-culler", "gpu-reclaim"]
    cwds = {Path(s["cwd"]) for s in managed}
    assert len(cwds) == 1
    [cwd] = cwds
    assert cwd.is_dir() and not list(cwd.iterdir()) and cwd.resolve() != tmp_path.resolve()
    assert cwd.stat().st_mode & 0o222 == 0, "nobody writes into it"
    assert tmp_path.stat().st_mode & 0o077 == 0, "the hub's state folder is its own"
    (cwd / "x").parent.chmod(0o755)
    (cwd / "x").write_text("left")
    with pytest.raises(ConfigError, match="must be empty"):
        _configured(tmp_path)


def test_the_login_page_of_a_plain_http_set_up_says_it_is_for_development(tmp_path: Path) -> None:
    """(issue 32, item 8) whatever the login, and one origin for all users said too."""
    one = _configured(tmp_path, hub={"subdomain_host": ""}).JupyterHub.template_vars["announcement_login"]
    assert "Development login" in one and "plain http" in one and "shares the hub's origin" in one
    local = _configured(tmp_path).JupyterHub.template_vars["announcement_login"]  # ./moonhub up's
    assert "Development login" in local and "plain http" in local and "shares the hub's origin" not in local
    https = _configured(tmp_path, hub={"public_url": "https://hub.example.org", "subdomain_host": ""})
    assert "plain http" not in https.JupyterHub.template_vars["announcement_login"]


def test_the_hubs_services_stop_at_the_first_sigint_even_when_the_hub_ignores_it() -> None:
    """A hub started without job control inherits SIGINT ignored; its services must not."""
    import signal
    import subprocess
    import sys

    from hub_config.services import stop_services_promptly

    before = signal.getsignal(signal.SIGINT)
    probe = [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"]
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        ignored = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
        assert ignored == "True", "the inheritance this guards against"
        stop_services_promptly()
        assert subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip() == "False"
        stop_services_promptly()  # a handler already set is left alone
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
