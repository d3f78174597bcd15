"""Secrets' pure parts: what a job may ask for, the pod parts that deliver them (references,
never values), whose Secret a name is, masking."""

from __future__ import annotations

import json

import pytest

from jobs_service import manifests, validation
from moonhub_core import choices as ch
from moonhub_core import secrets as sec
from moonhub_core.errors import FieldError
from moonhub_core.workload import build
from tests.helpers import example_catalog


def test_a_jobs_secrets_are_checked_when_saved() -> None:
    uses = sec.parse_uses(
        [{"name": "db", "env": "DB_PASSWORD"}, {"name": "gcp-key", "team": "ml-research", "file": "key.json"}]
    )
    assert [u.label() for u in uses] == ["db", "ml-research/gcp-key"]
    bad = [
        ([{"name": "DB", "env": "X"}], "lower-case"),
        ([{"name": "db", "env": "X", "file": "x"}], "either"),
        ([{"name": "db"}], "either"),
        ([{"name": "db", "env": "2X"}], "not an environment variable"),
        ([{"name": "db", "env": "MOONHUB_LAUNCH_KEY"}], "read by the platform"),
        ([{"name": "db", "env": "HOME"}], "read by the platform"),
        ([{"name": "db", "file": "../etc/passwd"}], "not a file name"),
        ([{"name": "a", "env": "X"}, {"name": "b", "env": "X"}], "given twice"),
        ([{"name": "db", "env": "X", "value": "s3cret"}], "each is"),
        ({"name": "db"}, "a list"),
        ([{"name": "x", "env": "V"}] * 21, "at most 20"),
    ]
    for value, words in bad:
        with pytest.raises(FieldError) as e:
            sec.parse_uses(value)
        assert e.value.field == "secrets" and words in e.value.message, (value, e.value.message)
    d = validation.parse({"name": "j", "notebook": "a.ipynb", "secrets": [{"name": "db", "env": "DB"}]})
    assert d.secrets == [{"name": "db", "env": "DB"}]


def test_names_say_whose_a_secret_is() -> None:
    assert sec.user_secret("ann", "db") != sec.user_secret("bob", "db")
    assert sec.user_secret("ann", "db") != sec.team_secret("ann", "db"), "a user and a group of one name differ"
    assert sec.user_secret("Ann.Lee@corp", "db").startswith("msec-u-") and len(sec.user_secret("a", "x" * 40)) <= 63


def test_pods_get_references_never_values() -> None:
    uses = sec.parse_uses([{"name": "db", "env": "DB_PASSWORD"}, {"name": "k", "team": "ml", "file": "key.json"}])
    env, volumes, mounts = sec.pod_parts(uses, "ann")
    assert env == [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": sec.user_secret("ann", "db"), "key": "value"}}}
    ]
    [source] = volumes[0]["projected"]["sources"]
    assert source["secret"]["name"] == sec.team_secret("ml", "k")
    assert source["secret"]["items"] == [{"key": "value", "path": "key.json", "mode": 0o440}]
    assert mounts == [{"name": "moonhub-secrets", "mountPath": "/var/run/secrets/moonhub", "readOnly": True}]
    assert sec.pod_parts([], "ann") == ([], [], [])

    d = validation.parse({"name": "j", "notebook": "a.ipynb", "secrets": [u.as_json() for u in uses]})
    w = build(example_catalog(), ch.parse({}, example_catalog(), ch.allowed(example_catalog(), [])), "claim-ann")
    launch = manifests.Launch("http://jobs/launch/x/1", "k", "0" * 64)
    pod = manifests.cronjob(d, manifests.Names("ann", "j"), 1, launch, w, "ns")["spec"]["jobTemplate"]["spec"][
        "template"
    ]["spec"]
    c = pod["containers"][0]
    assert env[0] in c["env"] and mounts[0] in c["volumeMounts"] and volumes[0] in pod["volumes"]


def test_a_server_gets_only_its_users_own_secrets_marked_for_it() -> None:
    listed = [
        {"name": "db", "team": None, "to_server": {"env": "DB_PASSWORD"}},
        {"name": "api", "team": None, "to_server": None},
        {"name": "shared", "team": "ml", "to_server": {"env": "SHARED"}},
        {"name": "key", "team": None, "to_server": {"file": "key.json"}},
    ]
    assert [u.label() for u in sec.for_server(listed)] == ["db", "key"]
    clash = [*listed, {"name": "db2", "team": None, "to_server": {"env": "DB_PASSWORD"}}]
    with pytest.raises(FieldError):
        sec.for_server(clash)


def test_logs_are_shown_masked() -> None:
    text = "connecting with hunter2-long and abc; token hunter2-longer"
    assert sec.mask(text, ["hunter2-long", "hunter2-longer", "abc"]) == "connecting with •••••• and abc; token ••••••"


def test_an_output_notebook_is_shown_masked_and_stays_json() -> None:
    """A value printed by a run (issue 32, item 10: job admins saw it in others' outputs)."""
    value = 'pa"ss\\wörd-42'
    nb = json.dumps({"cells": [{"outputs": [{"text": f"token={value}\n"}]}]}, ensure_ascii=False).encode()
    assert json.dumps(value, ensure_ascii=False)[1:-1].encode() in nb
    masked = sec.mask_bytes(nb, [value, "abc"])
    assert value.encode() not in masked and b'pa\\"ss' not in masked
    assert json.loads(masked)["cells"][0]["outputs"][0]["text"] == "token=******\n"
    assert sec.mask_bytes(b"abc and abcdefgh", ["abcdefgh", "abc"], shortest=8) == b"abc and ******"


@pytest.mark.parametrize(
    "env",
    [
        "NVIDIA_VISIBLE_DEVICES",
        "nvidia_driver_capabilities",
        "CUDA_VISIBLE_DEVICES",
        "LD_PRELOAD",
        "ld_library_path",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "JUPYTER_CONFIG_DIR",
        "JUPYTERHUB_API_TOKEN",
        "MOONHUB_LAUNCH_KEY",
        "KUBERNETES_SERVICE_HOST",
        "HTTP_PROXY",
        "https_proxy",
        "PIP_INDEX_URL",
        "BASH_ENV",
        "HOME",
        "PATH",
        "NB_UID",
    ],
)
def test_a_secret_may_not_set_what_the_platform_or_runtime_reads(env: str) -> None:
    with pytest.raises(FieldError, match="read by the platform or the runtime"):
        sec.check_delivery("delivery", {"env": env})
    with pytest.raises(FieldError):
        sec.parse_uses([{"name": "x", "env": env}])
    # a delivery saved before the rule is not built into a pod either
    with pytest.raises(FieldError):
        sec.pod_parts([sec.Use("x", sec.Delivery(env=env))], "ann")


def test_every_variable_the_platform_sets_on_its_pods_is_reserved() -> None:
    """Derived from the builders, so a variable added to a pod later is covered."""
    names = set(build(example_catalog(), ch.Choices("python", "medium"), "claim-a").env)
    names |= set(build(example_catalog(), ch.Choices("pytorch", "small", "a100", 1), "claim-a").env)
    assert "NVIDIA_VISIBLE_DEVICES" in names
    assert all(sec.reserved_env(n) for n in names), sorted(n for n in names if not sec.reserved_env(n))
    for ok in ("DB_PASSWORD", "WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN"):
        assert sec.check_delivery("d", {"env": ok}).env == ok
