"""The chart's Prometheus rules and the local Prometheus's configuration, checked by
Prometheus's own promtool (built with the local cluster's binaries): the rules parse, each
alert fires on what it is for and not on what is normal (rules_test.yaml, beside this file),
and the configuration the local cluster writes is one Prometheus takes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from localcluster import cli, prometheus
from localcluster.config import ClusterConfig

UNIT_TESTS = Path(__file__).with_name("rules_test.yaml")


@pytest.fixture(scope="module")
def promtool() -> Path:
    return cli.build() / "promtool"


def _promtool(promtool: Path, *args: str) -> str:
    r = subprocess.run([str(promtool), *args], capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    print(out)
    assert r.returncode == 0, out
    return out


def test_the_rules_parse_and_their_alerts_fire_on_what_they_are_for(promtool: Path) -> None:
    out = _promtool(promtool, "check", "rules", str(prometheus.RULES))
    assert "SUCCESS: 11 rules found" in out
    out = _promtool(promtool, "test", "rules", str(UNIT_TESTS))
    assert "SUCCESS" in out


def test_the_local_prometheus_configuration_is_one_prometheus_takes(promtool: Path, tmp_path: Path) -> None:
    cfg = ClusterConfig(tmp_path, simulated_gpus=1)
    prometheus.write_config(cfg)
    hub = prometheus.hub_job(
        "hub", "http://10.85.0.2:18081/hub/metrics", "http://10.85.0.2:18090/services/jobs/metrics", tmp_path / "t"
    )
    (prometheus.folder(cfg) / "scrape.d" / "hub.yaml").write_text(yaml.safe_dump(hub))
    # (the files it names, certificates and the token, exist only in a running cluster)
    out = _promtool(promtool, "check", "config", "--syntax-only", str(prometheus.folder(cfg) / "prometheus.yml"))
    assert "SUCCESS" in out
