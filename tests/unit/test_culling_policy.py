"""When a server is warned, reclaimed or left alone (table-driven, short clocks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from culling.policy import Server, Settings, decide

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CFG = Settings(idle_timeout=3600, gpu_idle_timeout=1800, warn_before=600)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        (Server("a", "", ago(5)), []),  # active CPU server
        (Server("a", "", ago(51)), [("warn", "idle")]),  # 9 min to the idle culler
        (Server("a", "", None), []),  # no activity known yet
        (Server("g", "", ago(1), gpu_count=2, gpu_idle_seconds=600), []),
        (Server("g", "", ago(1), gpu_count=2, gpu_idle_seconds=1300), [("warn", "gpu-idle")]),
        # GPUs idle long enough: reclaimed even though the tab is active
        (Server("g", "", ago(1), gpu_count=2, gpu_idle_seconds=1800), [("reclaim", "gpu-idle")]),
        # both clocks close: two warnings
        (Server("g", "", ago(55), gpu_count=1, gpu_idle_seconds=1500), [("warn", "gpu-idle"), ("warn", "idle")]),
        # a server without GPUs never counts as GPU-idle
        (Server("c", "", ago(1), gpu_count=0, gpu_idle_seconds=99999), []),
    ],
)
def test_decide(server: Server, expected: list[tuple[str, str]]) -> None:
    assert [(a.kind, a.reason) for a in decide(server, NOW, CFG)] == expected


def test_deadlines_and_words() -> None:
    (warn,) = decide(Server("g", "", ago(1), gpu_count=1, gpu_idle_seconds=1500), NOW, CFG)
    assert warn.deadline == NOW + timedelta(seconds=300)
    assert "12:05 UTC" in warn.message and "Your files are kept" in warn.message
    (idle,) = decide(Server("a", "", ago(55)), NOW, CFG)
    assert idle.deadline == ago(55) + timedelta(hours=1)


def test_switched_off_clocks() -> None:
    off = Settings(idle_timeout=0, gpu_idle_timeout=0, warn_before=600)
    assert decide(Server("g", "", ago(500), gpu_count=4, gpu_idle_seconds=99999), NOW, off) == []
