"""The chart's own values are a working catalog: the default catalog and the local-cluster
values validate as the hub validates them, and everyone may spawn their defaults (a chart
whose defaults let nobody spawn installs fine and then refuses every user)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helm.schema import CHART
from moonhub_core.catalog import load
from moonhub_core.choices import allowed, parse


@pytest.mark.parametrize("values", ["values.yaml", "ci/local-cluster.yaml"])
def test_everyone_may_spawn_the_default_choices(values: str, tmp_path: Path) -> None:
    catalog = yaml.safe_load((CHART / values).read_text())["catalog"]
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(catalog))
    cat = load(tmp_path / "catalog.yaml")
    choices = parse({}, cat, allowed(cat, groups=[]))
    default = {e.name for e in cat.environments if e.default}, {s.name for s in cat.sizes if s.default}
    assert ({choices.environment}, {choices.size}) == default
