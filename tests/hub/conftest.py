"""A real JupyterHub (with configurable-http-proxy) spawning into the test cluster."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from localcluster.config import REPO, ClusterConfig
from localcluster.hub import dev_password, hub_up
from localcluster.supervisor import Supervisor

HUB_STATE = REPO / ".state" / "test-hub"


@dataclass
class Hub:
    url: str
    password: str
    config: Path

    def login(self, user: str) -> requests.Session:
        """A browser-like session logged in through the hub's login form."""
        s = requests.Session()
        s.get(f"{self.url}/hub/login").raise_for_status()
        r = s.post(
            f"{self.url}/hub/login", data={"username": user, "password": self.password, "_xsrf": s.cookies.get("_xsrf")}
        )
        r.raise_for_status()
        assert any(c.name.startswith("jupyterhub-session") for c in s.cookies), f"login of {user} failed: {r.url}"
        return s


@pytest.fixture(scope="session")
def hub(local_cluster: ClusterConfig | None) -> Iterator[Hub]:
    if local_cluster is None:
        pytest.skip("hub tests start the hub on the host against the local cluster")
    if HUB_STATE.exists():
        shutil.rmtree(HUB_STATE)
    HUB_STATE.mkdir(parents=True)
    doc = yaml.safe_load((REPO / "hub_config" / "examples" / "local.yaml").read_text())
    doc["hub"] |= {
        "public_url": "http://127.0.0.1:18000",
        "api_url": "http://127.0.0.1:18081",
        "proxy_api_url": "http://127.0.0.1:18001",
        "state_dir": ".",
    }
    config = HUB_STATE / "platform.yaml"
    config.write_text(yaml.safe_dump(doc))
    sup = Supervisor(local_cluster.run, local_cluster.logs, REPO)
    url = hub_up(local_cluster, sup, config)
    yield Hub(url=url, password=dev_password(config) or "", config=config)
    sup.stop("hub")
