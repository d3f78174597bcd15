"""The chart's values.schema.json is generated from values.yaml (the one documented
source) and committed up to date; every key is documented."""

from __future__ import annotations

import json

import pytest

from helm.schema import CHART, comments, generate, schema_of


def test_committed_schema_is_generated_from_values() -> None:
    assert (CHART / "values.schema.json").read_text() == generate()


def test_mappings_refuse_unknown_keys_except_free_form_ones() -> None:
    schema = json.loads(generate())
    assert schema["additionalProperties"] is False
    assert schema["properties"]["hub"]["additionalProperties"] is False
    assert "additionalProperties" not in schema["properties"]["platform"], "validated by the hub itself"
    gluster = schema["properties"]["storage"]["properties"]["gluster"]
    assert gluster["properties"]["enabled"]["type"] == "boolean" and gluster["additionalProperties"] is False
    assert "additionalProperties" not in gluster["properties"]["agent"]["properties"]["nodeSelector"], "@map"


def test_an_undocumented_key_is_refused() -> None:
    text = "# Documented.\na:\n  # Also documented.\n  b: 1\n  c: 2\n"
    with pytest.raises(SystemExit, match=r"a\.c has no description"):
        schema_of({"a": {"b": 1, "c": 2}}, (), comments(text))
