"""The hub image: JupyterHub, the proxy and MoonHub's packages, run as non-root."""

from __future__ import annotations

import subprocess

import pytest

from images.build import image_exists

from .conftest import SPEC

REF = SPEC.images["hub"].ref


def run(*argv: str) -> str:
    if not image_exists(REF):
        pytest.fail(f"{REF} is not built: ./moonhub test builds it (python -m images.build)")
    r = subprocess.run(["docker", "run", "--rm", REF, *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


def test_hub_proxy_and_moonhub_packages() -> None:
    assert run("jupyterhub", "--version") == "6.1.1"
    assert run("configurable-http-proxy", "--version").startswith("5.")
    out = run(
        "python",
        "-c",
        "import moonhub_core, hub_config, spawner_ext, jobs_service, culling, admin_console;"
        "import kubespawner, oauthenticator;"
        "from moonhub_core.catalog import load; from pathlib import Path;"
        "print(len(load(Path(moonhub_core.__file__).parent / 'examples/catalog.yaml').environments))",
    )
    assert out == "3"
    assert run("id", "-u") == "1000"


def test_the_jobs_database_migrations_are_in_the_image() -> None:
    """The chart's init container: the migrations are packaged and bring an empty database
    to the newest revision."""
    from jobs_service import schema

    out = run("python", "-m", "jobs_service.schema", "--db", "sqlite:////tmp/jobs.sqlite")
    assert out == f"jobs database at revision {schema.head()} (was none)", out


def test_the_example_platform_config_loads_in_the_image() -> None:
    out = run(
        "python",
        "-c",
        "import hub_config, os; from moonhub_core.platform import load; from pathlib import Path;"
        "print(load(Path(hub_config.__file__).parent / 'examples/keycloak.yaml').auth.type)",
    )
    assert out == "oidc"


def test_the_proxy_runs_in_the_image() -> None:
    out = run(
        "sh",
        "-c",
        "configurable-http-proxy --port 8000 --api-port 8001 >/tmp/chp.log 2>&1 & "
        'for i in $(seq 50); do python -c "import urllib.request as u; '
        "print(u.urlopen('http://127.0.0.1:8001/api/routes').read().decode())\" 2>/dev/null && exit 0; "
        "sleep 0.2; done; "
        "cat /tmp/chp.log; exit 1",
    )
    assert out.startswith("{"), out


def test_the_default_command_runs_jupyterhub_with_moonhubs_config() -> None:
    cmd = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}", REF],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert cmd == ['["tini","--"]', '["python","-m","hub_config"]'], "the chart passes its own args after tini"
    assert run("python", "-m", "hub_config", "--version") == "6.1.1"
