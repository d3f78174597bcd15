"""The scale benchmark's rounds: each round's ratio of the two hubs' figures."""

from __future__ import annotations

import pytest

from benchmarks.hub_scale import round_ratios


def test_each_round_gives_one_ratio_per_figure_and_missing_figures_are_left_out() -> None:
    cpu, ready = "burst: hub CPU s per spawn", "burst: request->ready p50 s"
    by_round = [
        {"moonhub": {cpu: "0.0440", ready: "0.30"}, "baseline": {cpu: "0.0400", ready: "0.60"}},
        {"baseline": {cpu: "0.0500", ready: "n/a"}, "moonhub": {cpu: "0.0450", ready: "0.20"}},
        {"moonhub": {cpu: "0.0400"}},  # the baseline's run of this round did not finish
    ]
    got = round_ratios(by_round, ["moonhub", "baseline"])
    assert got[cpu] == pytest.approx([1.10, 0.90])
    assert got[ready] == pytest.approx([0.50])
    assert got["idle hub CPU % at that count"] == []
