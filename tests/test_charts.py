"""The figure builders plot the data they are given, with the labels the app promises."""
from __future__ import annotations

import math

import pytest

from dpcore import charts, teaching


def test_epsilon_vs_epochs_has_one_line_per_series_and_marks_the_epoch() -> None:
    fig = charts.epsilon_vs_epochs({"RDP, poisson": (0.5, 0.8, 1.0), "PLD, poisson": (0.4, 0.7, 0.9)},
                                   current_epochs=3, delta=1e-5)
    assert [t.name for t in fig.data] == ["RDP, poisson", "PLD, poisson"]
    assert list(fig.data[0].x) == [1, 2, 3] and list(fig.data[1].y) == [0.4, 0.7, 0.9]
    assert fig.layout.shapes[0].x0 == 3


def test_epsilon_vs_noise_marks_the_current_setting() -> None:
    fig = charts.epsilon_vs_noise((0.5, 1.0, 2.0), {"RDP": (8.0, 2.0, 0.7)}, current_noise=1.0,
                                  current_epsilon=2.0, delta=1e-5)
    assert fig.data[-1].name == "current" and list(fig.data[-1].y) == [2.0]
    assert fig.layout.yaxis.type == "log"


def test_training_progress_shows_epsilon_only_for_private_runs() -> None:
    private = charts.training_progress([1, 2], [0.5, 0.6], [0.3, 0.5], epochs_total=4, private=True)
    baseline = charts.training_progress([1, 2], [0.5, 0.6], [float("inf")] * 2, epochs_total=4, private=False)
    assert len(private.data) == 2 and len(baseline.data) == 1
    assert "non-private" in baseline.layout.annotations[1].text


def test_teaching_figures() -> None:
    count = charts.count_mechanism(teaching.count_example(count=10, sigma=1.0, delta=1e-5))
    assert len(count.data) == 2 and "ε =" in count.layout.title.text
    clip = charts.clipping(teaching.clipping_example(clip=1.0))
    assert max(clip.data[1].y) <= 1.0


def test_privacy_region_shades_what_dp_allows_and_draws_the_curves() -> None:
    from dpcore.audit import RocCurve, max_tpr

    attack = RocCurve(fpr=(0.0, 0.2, 1.0), tpr=(0.0, 0.4, 1.0))
    fig = charts.privacy_region(epsilon=1.0, delta=1e-5, curves={"loss threshold": attack})
    names = [t.name for t in fig.data]
    assert names[1:] == ["allowed region", "guessing", "loss threshold"]
    upper = fig.data[1]
    assert upper.fill == "tonexty" and list(upper.y) == [float(t) for t in max_tpr(list(upper.x), epsilon=1.0, delta=1e-5)]
    lower = fig.data[0]  # the reversed test bounds TPR from below: the region is symmetric
    assert lower.y[40] == pytest.approx(1.0 - upper.y[360]) and lower.x[40] == pytest.approx(1.0 - upper.x[360])
    assert list(fig.data[-1].y) == [0.0, 0.4, 1.0]
    baseline = charts.privacy_region(epsilon=math.inf, delta=1e-5, curves={})
    assert set(baseline.data[1].y) == {1.0} and "ε = ∞" in baseline.layout.title.text
