import pytest

from moonhub_core import choices as ch
from moonhub_core.errors import NotEntitled, OverQuota, UnknownChoice
from tests.helpers import example_catalog

EVERYONE = ch.allowed(example_catalog(), [])
RESEARCH = ch.allowed(example_catalog(), ["ml-research"])


def test_entitlements_union_by_group() -> None:
    assert [g.name for g in EVERYONE.gpu_types] == ["t4"]
    assert [s.name for s in EVERYONE.sizes] == ["small", "medium"]
    assert EVERYONE.max_gpus_per_user == 1 and EVERYONE.quota_groups == {}
    assert {g.name for g in RESEARCH.gpu_types} == {"a100", "v100", "t4"}
    assert RESEARCH.max_gpus_per_user == 8 and RESEARCH.quota_groups == {"ml-research": 16}
    admin = ch.allowed(example_catalog(), [], admin=True)
    assert len(admin.sizes) == 3 and admin.max_gpus_per_user == 8


@pytest.mark.parametrize(
    ("raw", "ok", "want"),
    [
        ({}, EVERYONE, ch.Choices("python", "small")),
        (
            {"environment": ["pytorch"], "size": ["medium"], "gpu_type": ["t4"], "gpu_count": ["1"]},
            EVERYONE,
            ch.Choices("pytorch", "medium", "t4", 1),
        ),
        (
            {"environment": "pytorch", "gpu_type": "a100", "gpu_count": 4},
            RESEARCH,
            ch.Choices("pytorch", "small", "a100", 4),
        ),
        ({"environment": "pytorch", "gpu_type": "a100"}, RESEARCH, ch.Choices("pytorch", "small", "a100", 1)),
        ({"gpu_type": "", "gpu_count": "0"}, EVERYONE, ch.Choices("python", "small")),
    ],
)
def test_parse_accepts(raw: dict, ok: ch.Allowed, want: ch.Choices) -> None:
    assert ch.parse(raw, example_catalog(), ok) == want


@pytest.mark.parametrize(
    ("raw", "ok", "error", "field", "text"),
    [
        ({"image": "evil/miner"}, EVERYONE, UnknownChoice, "image", "choose an environment instead"),
        ({"env": {"NVIDIA_VISIBLE_DEVICES": "all"}}, RESEARCH, UnknownChoice, "env", "can not be set"),
        ({"node_selector": {"a": "b"}}, EVERYONE, UnknownChoice, "node_selector", "choose a GPU type"),
        ({"volumes": []}, EVERYONE, UnknownChoice, "volumes", "from the catalog"),
        ({"colour": "red"}, EVERYONE, UnknownChoice, "colour", "unknown option"),
        ({"environment": "julia"}, EVERYONE, UnknownChoice, "environment", "no environment named 'julia'"),
        ({"environment": ["python"], "size": "huge"}, EVERYONE, UnknownChoice, "size", "no size named 'huge'"),
        ({"size": "large"}, EVERYONE, NotEntitled, "size", "may not use size"),
        ({"environment": "pytorch", "gpu_type": "a100", "gpu_count": 1}, EVERYONE, NotEntitled, "gpu_type", "A100"),
        ({"environment": "pytorch", "gpu_type": "h100"}, RESEARCH, UnknownChoice, "gpu_type", "no GPU type"),
        (
            {"environment": "pytorch", "gpu_type": "a100", "gpu_count": 3},
            RESEARCH,
            UnknownChoice,
            "gpu_count",
            "comes in 1, 2, 4, 8 GPUs, not 3",
        ),
        (
            {"environment": "pytorch", "gpu_type": "t4", "gpu_count": "two"},
            EVERYONE,
            UnknownChoice,
            "gpu_count",
            "whole number",
        ),
        (
            {"environment": "pytorch", "gpu_type": "t4", "gpu_count": -1},
            EVERYONE,
            UnknownChoice,
            "gpu_count",
            "whole number",
        ),
        ({"gpu_count": 2}, RESEARCH, UnknownChoice, "gpu_count", "choose a GPU type"),
        (
            {"environment": "python", "gpu_type": "t4", "gpu_count": 1},
            EVERYONE,
            UnknownChoice,
            "environment",
            "has no CUDA",
        ),
        ({"environment": 3}, EVERYONE, UnknownChoice, "environment", "must be a name"),
    ],
)
def test_parse_refuses_naming_the_field(raw: dict, ok: ch.Allowed, error: type, field: str, text: str) -> None:
    with pytest.raises(error) as err:
        ch.parse(raw, example_catalog(), ok)
    assert err.value.field == field and text in err.value.message


def test_more_gpus_than_the_user_may_ever_hold_is_refused_before_anything_is_made() -> None:
    """Usage is Kueue's to judge (moonhub_core.queue_objects); the user's maximum is static."""
    with pytest.raises(OverQuota) as err:
        ch.parse({"environment": "pytorch", "gpu_type": "t4", "gpu_count": 2}, example_catalog(), EVERYONE)
    assert err.value.status == 403 and err.value.field == "gpu_count"
    assert "at most 1 GPUs at once, not 2" in err.value.message
    assert ch.parse({"environment": "pytorch", "gpu_type": "a100", "gpu_count": 8}, example_catalog(), RESEARCH)


def test_a_size_larger_than_the_users_bound_is_refused_with_403_naming_size() -> None:
    import dataclasses

    from moonhub_core.catalog import Compute

    ok = dataclasses.replace(EVERYONE, max_per_user=Compute(cpu=0.05, memory="64Gi", pods=20))
    with pytest.raises(OverQuota) as err:
        ch.parse({"size": "small"}, example_catalog(), ok)
    assert err.value.status == 403 and err.value.field == "size"
    assert "you may hold at most 0.05 at once" in str(err.value)
    small_memory = dataclasses.replace(EVERYONE, max_per_user=Compute(memory="1Mi"))
    with pytest.raises(OverQuota, match="of memory; you may hold at most 1Mi"):
        ch.parse({}, example_catalog(), small_memory)
    assert EVERYONE.max_per_user == Compute(cpu=8, memory="32Gi", pods=20)
    assert RESEARCH.max_per_user == Compute(cpu=64, memory="256Gi", pods=40), "the larger of each"
    from moonhub_core.catalog import Entitlement

    unset = dataclasses.replace(example_catalog(), entitlements=[Entitlement(groups=["*"])])
    assert ch.allowed(unset, []).max_per_user == Compute(pods=20), "unset: 20 pods, CPU and memory unbounded"
