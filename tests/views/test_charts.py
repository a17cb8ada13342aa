"""The figure builders plot the data they are given, with the labels the app promises."""

from __future__ import annotations

import math

import pytest

from dpcore.results import TRAIN_ACCURACY_TITLE
from dpcore.views import charts, teaching


def test_epsilon_vs_epochs_has_one_line_per_series_and_marks_the_epoch() -> None:
    fig = charts.epsilon_vs_epochs(
        {"RDP, poisson": (0.5, 0.8, 1.0), "PLD, poisson": (0.4, 0.7, 0.9)}, current_epochs=3, delta=1e-5
    )
    assert [t.name for t in fig.data] == ["RDP, poisson", "PLD, poisson"]
    assert list(fig.data[0].x) == [1, 2, 3] and list(fig.data[1].y) == [0.4, 0.7, 0.9]
    assert fig.layout.shapes[0].x0 == 3


def test_epsilon_vs_noise_marks_the_current_setting_and_the_target() -> None:
    fig = charts.epsilon_vs_noise(
        (0.5, 1.0, 2.0),
        {"RDP": (8.0, 2.0, 0.7)},
        current_noise=1.0,
        current_epsilon=2.0,
        delta=1e-5,
        target_epsilon=3.0,
    )
    traces = {t.name: t for t in fig.data}
    assert list(traces["current"].y) == [2.0]
    assert fig.data[0].mode == "lines+markers"  # each computed σ is a point a click can pick
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.type == "log"
    (target,) = fig.layout.shapes
    assert (target.y0, target.y1) == (3.0, 3.0)
    # Named in the legend, in the line's own dash, not by a label inside the plot that curves would cross.
    assert traces["target ε = 3"].line.dash == "dash" and traces["target ε = 3"].showlegend
    assert not fig.layout.annotations and list(traces["target ε = 3"].y) == [None]


def test_log_axes_read_as_plain_numbers_over_the_data() -> None:
    noises = (0.4, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0)
    fig = charts.epsilon_vs_noise(
        noises, {"RDP": tuple(4.0 / s**2 for s in noises)}, current_noise=1.1, current_epsilon=3.3, delta=1e-5
    )
    assert list(fig.layout.xaxis.ticktext) == ["0.5", "1", "2", "5", "10"]
    assert list(fig.layout.xaxis.tickvals) == [0.5, 1.0, 2.0, 5.0, 10.0]
    # The axis spans the σ computed, not more: 0.4 to 2 takes almost half of it.
    low, high = fig.layout.xaxis.range
    assert low == pytest.approx(math.log10(0.4 / 1.08)) and high == pytest.approx(math.log10(10 * 1.08))
    assert (math.log10(2) - low) / (high - low) > 0.45
    assert list(fig.layout.yaxis.ticktext) == ["0.05", "0.1", "0.2", "0.5", "1", "2", "5", "10", "20"]
    assert fig.layout.shapes == ()  # no target given, no line


@pytest.mark.parametrize(
    ("low", "high", "texts"),
    [
        (0.4, 10.0, ("0.5", "1", "2", "5", "10")),
        (0.01, 100.0, ("0.01", "0.03", "0.1", "0.3", "1", "3", "10", "30", "100")),
        (1e-5, 1.0, ("0.00001", "0.0001", "0.001", "0.01", "0.1", "1")),
        (2.1, 8.4, ("3", "4", "5", "6", "7", "8")),
        (1.13, 1.87, ("1.2", "1.8")),
    ],
)
def test_log_ticks_are_plain_and_few(low: float, high: float, texts: tuple[str, ...]) -> None:
    ticks, labels = charts.log_ticks(low, high)
    assert labels == texts and all(low <= t <= high for t in ticks) and len(ticks) <= 9
    with pytest.raises(ValueError):
        charts.log_ticks(0.0, 1.0)


def test_error_chart_has_no_si_prefixes() -> None:
    epsilons = (0.05, 0.5, 5.0, 20.0)
    errors = {
        "n = 100": tuple(teaching.private_mean_error(epsilon=e, delta=1e-5, n=100) for e in epsilons),
        "n = 10,000": tuple(teaching.private_mean_error(epsilon=e, delta=1e-5, n=10_000) for e in epsilons),
    }
    fig = charts.error_vs_epsilon(epsilons, errors)
    labels = list(fig.layout.yaxis.ticktext) + list(fig.layout.xaxis.ticktext)
    assert labels and not any(unit in label for label in labels for unit in "μmk")
    assert all(float(label) > 0 for label in labels)


def test_epsilon_vs_epochs_draws_the_target() -> None:
    fig = charts.epsilon_vs_epochs({"RDP, poisson": (0.5, 0.8)}, current_epochs=2, delta=1e-5, target_epsilon=0.7)
    assert [(s.y0, s.line.dash) for s in fig.layout.shapes if s.type == "line" and s.y0 == s.y1] == [(0.7, "dash")]
    assert [t.name for t in fig.data] == ["RDP, poisson", "target ε = 0.7"] and not fig.layout.annotations


def test_run_colours_come_from_the_run_id() -> None:
    assert charts.run_color(1) == charts.RUN_COLORS[0] and charts.run_color(3) == charts.RUN_COLORS[2]
    assert charts.run_color(1 + len(charts.RUN_COLORS)) == charts.run_color(1)


def test_training_progress_shows_epsilon_only_for_private_runs() -> None:
    private = charts.training_progress([1, 2], [0.5, 0.6], [0.3, 0.5], epochs_total=4, private=True)
    baseline = charts.training_progress(
        [1, 2], [0.5, 0.6], [float("inf")] * 2, epochs_total=4, private=False, projected=(0.3, 0.5, 0.6, 0.7)
    )
    assert len(private.data) == 2 and len(baseline.data) == 1
    assert "non-private" in baseline.layout.annotations[1].text
    assert not baseline.layout.showlegend  # one line: nothing to tell apart


def test_training_progress_titles_are_short_enough_for_a_phone() -> None:
    fig = charts.training_progress(
        [1, 2],
        [0.5, 0.6],
        [0.3, 0.5],
        epochs_total=4,
        private=True,
        projected=(0.3, 0.5, 0.6, 0.7),
        train_accuracies=[0.55, 0.7],
    )
    # Each panel is about 165 px wide at 390 px; at 13 px a title of up to 24 characters fits in it.
    assert [a.text for a in fig.layout.annotations] == ["test accuracy", "ε spent"]
    assert all(a.font.size == 13 for a in fig.layout.annotations)
    assert fig.layout.showlegend and fig.layout.legend.orientation == "h"
    assert [t.name for t in fig.data] == ["test accuracy", "projected ε", "ε spent", TRAIN_ACCURACY_TITLE]
    baseline = charts.training_progress([1], [0.5], [float("inf")], epochs_total=4, private=False)
    assert len(baseline.layout.annotations[1].text) <= 24


def test_training_progress_draws_the_projected_epsilon_under_the_spent_one() -> None:
    fig = charts.training_progress(
        [1, 2], [0.5, 0.6], [0.3, 0.5], epochs_total=4, private=True, projected=(0.3, 0.5, 0.6, 0.7)
    )
    projected, spent = fig.data[1], fig.data[2]
    assert projected.name == "projected ε" and list(projected.x) == [1, 2, 3, 4] and projected.line.width >= 8
    assert list(spent.y) == [0.3, 0.5] and projected.xaxis == spent.xaxis == "x2"
    assert spent.name == "ε spent" and fig.layout.showlegend  # the legend tells the band from the line


def test_training_progress_draws_training_accuracy_dotted_and_titled_as_not_covered_by_epsilon() -> None:
    fig = charts.training_progress(
        [1, 2], [0.5, 0.6], [0.3, 0.5], epochs_total=4, private=True, train_accuracies=[0.55, 0.7]
    )
    training = fig.data[-1]
    assert training.name == TRAIN_ACCURACY_TITLE and list(training.y) == [0.55, 0.7]
    assert training.line.dash == "dot" and training.xaxis == fig.data[0].xaxis
    assert fig.layout.showlegend  # the legend names it as not covered by ε


def test_teaching_figures() -> None:
    count = charts.count_mechanism(teaching.count_example(count=10, sigma=1.0, delta=1e-5))
    assert len(count.data) == 2 and "ε =" in count.layout.title.text
    clip = charts.clipping(teaching.clipping_example(clip=1.0))
    assert max(clip.data[1].y) <= 1.0


def test_privacy_region_shades_what_dp_allows_and_draws_the_curves() -> None:
    from dpcore.audit.bounds import max_tpr
    from dpcore.audit.report import RocCurve

    attack = RocCurve(fpr=(0.0, 0.2, 1.0), tpr=(0.0, 0.4, 1.0))
    fig = charts.privacy_region(epsilon=1.0, delta=1e-5, curves={"loss threshold": attack})
    names = [t.name for t in fig.data]
    assert names[1:] == ["allowed region", "guessing", "loss threshold"]
    upper = fig.data[1]
    assert upper.fill == "tonexty" and list(upper.y) == [
        float(t) for t in max_tpr(list(upper.x), epsilon=1.0, delta=1e-5)
    ]
    lower = fig.data[0]  # the reversed test bounds TPR from below: the region is symmetric
    assert lower.y[40] == pytest.approx(1.0 - upper.y[360]) and lower.x[40] == pytest.approx(1.0 - upper.x[360])
    assert list(fig.data[-1].y) == [0.0, 0.4, 1.0]
    baseline = charts.privacy_region(epsilon=math.inf, delta=1e-5, curves={})
    assert set(baseline.data[1].y) == {1.0} and "ε = ∞" in baseline.layout.title.text
    # ε as the app writes it (explain.format_epsilon), never rounded to two significant digits (10.76 as 11).
    assert "(ε = 10.76, δ = 1e-05)" in charts.privacy_region(epsilon=10.76, delta=1e-5, curves={}).layout.title.text
    assert "(ε = 0.70," in charts.privacy_region(epsilon=0.7, delta=1e-5, curves={}).layout.title.text


def test_audit_chart_sets_auc_and_bound_against_epsilon_with_baselines_at_infinity() -> None:
    from dpcore.runs.comparison import AuditPoint

    points = [
        AuditPoint(4, "sigma 1", "digits", 1.0, 0.52, 0.0, 0.95),
        AuditPoint(7, "sigma 0.5", "digits", 8.0, 0.55, 0.3, 0.95),
        AuditPoint(9, "baseline", "digits", math.inf, 0.60, 0.9, 0.95),
    ]
    fig = charts.audit_vs_epsilon(points)
    markers = [t for t in fig.data if t.mode == "markers"]
    assert [(t.name, t.xaxis, t.y[0]) for t in markers][:2] == [("sigma 1", "x", 0.52), ("sigma 1", "x2", 0.0)]
    assert [t.showlegend for t in markers] == [True, False] * 3  # each run once in the legend
    assert {t.marker.color for t in markers if t.name == "sigma 0.5"} == {charts.run_color(7)}
    infinity = fig.layout.xaxis.tickvals[-1]
    assert [t.x[0] for t in markers if t.name == "baseline"] == [infinity] * 2
    # ∞ in words and level with the numbers, never turned on its side where it reads as an "8".
    assert infinity > 8.0 and list(fig.layout.xaxis.ticktext) == ["1", "2", "5", "10", "∞ (non-private)"]
    assert fig.layout.xaxis.tickangle == 0 and fig.layout.xaxis2.tickangle == 0
    diagonal = next(t for t in fig.data if t.name.startswith("bound = ε"))
    assert list(diagonal.x) == list(diagonal.y) and diagonal.xaxis == "x2"
    only_baselines = charts.audit_vs_epsilon(points[2:])
    assert list(only_baselines.layout.xaxis.ticktext) == [charts.INFINITY_TICK]


def test_noise_schedule_draws_the_steps_where_sigma_changes_the_floor_and_the_budget_stop() -> None:
    from dpcore.config import DPConfig
    from dpcore.privacy.accounting import noise_schedule_values

    config = DPConfig(
        noise_multiplier=2.0, noise_schedule="time", noise_decay_rate=0.01, noise_floor=0.8, batch_size=64, epochs=3
    )
    values = noise_schedule_values(config, n=6400)
    fig = charts.noise_schedule(values, floor=0.8, stop_step=20)
    (line,) = fig.data
    assert line.line.shape == "hv" and line.x[0] == 0 and line.x[-1] == len(values) - 1
    # Every step's σ is the value drawn at the last change point at or before it.
    for t, sigma in enumerate(values):
        last_change = max(i for i, x in enumerate(line.x) if x <= t)
        assert line.y[last_change] == sigma
    assert len(line.x) < len(values) and line.y[0] == 2.0 and line.y[-1] == 0.8
    floor, stop = fig.layout.shapes
    assert (floor.y0, floor.line.dash) == (0.8, "dot") and (stop.x0, stop.line.dash) == (20, "dash")
    assert "budget" in fig.layout.annotations[1].text
    # No budget stop inside the run, no line for it.
    assert len(charts.noise_schedule(values, stop_step=len(values)).layout.shapes) == 0


def test_clip_norm_chart_draws_each_step_and_thins_long_runs() -> None:
    norms = tuple(1.0 + 0.001 * t for t in range(500))
    fig = charts.clip_norm_over_steps(norms, target_quantile=0.9)
    assert list(fig.data[0].x) == list(range(500)) and list(fig.data[0].y) == list(norms)
    assert "0.9 quantile" in fig.layout.title.text and fig.layout.xaxis.title.text == "step t"
    long = tuple(float(t) for t in range(5001))
    thin = charts.clip_norm_over_steps(long, target_quantile=0.5)
    assert len(thin.data[0].x) <= charts.MAX_STEP_POINTS + 1 and thin.data[0].x[-1] == 5000
    assert list(thin.data[0].y) == [long[t] for t in thin.data[0].x]
    assert "one step in 3 drawn" in thin.layout.xaxis.title.text


def test_test_and_validation_draws_both_splits_for_accuracy_and_loss() -> None:
    fig = charts.test_and_validation(
        [1, 2],
        test_accuracy=[0.5, 0.6],
        validation_accuracy=[0.45, 0.58],
        test_loss=[1.2, 1.0],
        validation_loss=[1.3, 1.1],
        epochs_total=3,
    )
    assert [(t.name, t.xaxis, list(t.y)) for t in fig.data] == [
        ("test", "x", [0.5, 0.6]),
        ("validation", "x", [0.45, 0.58]),
        ("test", "x2", [1.2, 1.0]),
        ("validation", "x2", [1.3, 1.1]),
    ]
    assert [t.showlegend for t in fig.data] == [True, True, False, False]
    assert fig.data[1].line.dash == "dash"


def test_a_sweeps_points_are_labelled_with_their_setting() -> None:
    from dpcore.runs.sweeps import SeedGroup

    key = ("digits", None, None, 128)
    low = SeedGroup(1, key, "Noise multiplier σ = 0.8", True, (1, 2), 2.0, 0.7, 0.05, label="σ 0.8")
    high = SeedGroup(1, key, "Noise multiplier σ = 1.5", True, (3, 4), 1.0, 0.6, 0.02, label="σ 1.5")
    baseline = SeedGroup(1, key, "non-private baseline", False, (5,), math.inf, 0.9, 0.0, label="baseline")
    fig = charts.sweep_accuracy_vs_epsilon([high, low, baseline], {key: (high, low)}, title="σ sweep")
    settings = next(t for t in fig.data if t.name == "settings")
    assert settings.mode == "markers+text" and list(settings.text) == ["σ 1.5", "σ 0.8"]
    assert list(settings.customdata) == ["Noise multiplier σ = 1.5 (2 seed(s))", "Noise multiplier σ = 0.8 (2 seed(s))"]
    assert list(settings.error_y.array) == [0.02, 0.05]
    assert list(settings.textposition) == ["bottom right", "top left"] and settings.cliponaxis is False


def test_participant_styles_differ_for_48_participants_then_repeat() -> None:
    owners = [f"p{i}" for i in range(60)]
    styles = charts.participant_styles(owners)
    first = [styles[o] for o in owners[: charts.DISTINCT_PARTICIPANTS]]
    assert len(set(first)) == charts.DISTINCT_PARTICIPANTS == 48
    assert len({s.color for s in first[:12]}) == 12 and {s.symbol for s in first[:12]} == {"circle"}
    assert styles["p12"] == charts.ParticipantStyle(styles["p0"].color, "square")
    assert styles["p48"] == styles["p0"]  # beyond 48 they repeat (the page says so)


def _curve(run_id: int, owner: str, epsilon: float, accuracy: float):
    from dpcore.runs.comparison import RunCurve

    return RunCurve(run_id, f"run {run_id}", "digits", "completed", (epsilon,), (accuracy,), owner, owner.title())


def test_more_than_a_handful_of_runs_are_named_by_participant_in_the_legend() -> None:
    from dpcore.runs.comparison import MAX_RUN_LEGEND, Baseline, ComparisonView

    curves = tuple(_curve(i, f"p{i % 3}", 0.5 + i / 10, 0.6 + i / 100) for i in range(1, 11))
    styles = charts.participant_styles(["p0", "p1", "p2"])
    view = ComparisonView(curves, (Baseline(11, "plain", "digits", 0.97, "p1", "P1"),), ())
    fig = charts.accuracy_vs_epsilon(view, styles=styles)
    assert len(curves) > MAX_RUN_LEGEND
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["P1", "P2", "P0", "dotted: non-private baseline (ε = ∞)"]  # never one entry per run
    colours = {t.legendgroup: t.line.color for t in fig.data if t.legendgroup}
    assert colours == {o: styles[o].color for o in ("p0", "p1", "p2")}
    assert "run 1</b> by P1" in fig.data[0].hovertemplate
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0  # below: the plot keeps its width
    unstyled = charts.accuracy_vs_epsilon(view)  # Learn's chart: each participant a style of their own still
    assert len({t.line.color for t in unstyled.data if t.legendgroup}) == 3
    few = charts.accuracy_vs_epsilon(ComparisonView(curves[:3], (), ()), styles=styles)
    assert [t.name for t in few.data] == ["run 1", "run 2", "run 3"]


def test_class_chart_draws_final_points_by_participant_the_frontier_infinity_and_the_cap() -> None:
    from dpcore.runs.comparison import ClassView, FinalPoint, Point

    points = tuple(
        FinalPoint(i, f"run {i}", "digits", f"p{i % 2}", f"P{i % 2}", eps, acc)
        for i, (eps, acc) in enumerate([(0.5, 0.6), (1.0, 0.7), (2.0, 0.8), (4.0, 0.75)], start=1)
    )
    baseline = FinalPoint(5, "plain", "digits", "p2", "P2", math.inf, 0.95)
    frontier = (Point(0.5, 0.6, 1), Point(1.0, 0.7, 2), Point(2.0, 0.8, 3))
    view = ClassView(points, (baseline,), frontier, 360, 0)
    styles = charts.participant_styles(["p0", "p1", "p2"])
    fig = charts.class_accuracy_vs_epsilon(view, styles=styles, cap=1.0)
    markers = {t.name: t for t in fig.data if t.mode == "markers"}
    assert list(markers) == ["P0", "P1", "P2"]  # one legend entry per participant, in their own order
    assert list(markers["P1"].x) == [0.5, 2.0] and list(markers["P0"].y) == [0.7, 0.75]
    assert markers["P2"].x[0] == fig.layout.xaxis.tickvals[-1] and fig.layout.xaxis.ticktext[-1] == charts.INFINITY_TICK
    assert markers["P2"].marker.color == styles["p2"].color and markers["P2"].marker.symbol == styles["p2"].symbol
    assert fig.layout.xaxis.tickangle == 0 and fig.layout.yaxis.range[1] == 1.0  # no accuracy above 1
    front = next(t for t in fig.data if t.name == "Pareto frontier")
    assert list(front.x) == [0.5, 1.0, 2.0]
    assert any(a.text == "challenge: ε ≤ 1" for a in fig.layout.annotations)
    assert any(shape.x0 == 1.0 and shape.x1 == 1.0 for shape in fig.layout.shapes)
    assert "by P1" in markers["P1"].text[0] and fig.layout.legend.orientation == "h"


def test_audit_chart_colours_runs_by_participant_and_names_them_below_the_plot() -> None:
    from dpcore.runs.comparison import AuditPoint

    styles = charts.participant_styles(["o-a", "o-b"])
    few = [AuditPoint(1, "quiet", "digits", 1.0, 0.52, 0.0, 0.95, "Ana", "o-a")]
    fig = charts.audit_vs_epsilon(few, styles=styles)
    assert fig.data[0].name == "quiet (Ana)" and fig.data[0].marker.color == styles["o-a"].color
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0
    many = [
        AuditPoint(i, f"r{i}", "digits", 0.5 + i, 0.5, 0.0, 0.95, "AB"[i % 2], f"o-{'ab'[i % 2]}") for i in range(10)
    ]
    legend = [t.name for t in charts.audit_vs_epsilon(many, styles=styles).data if t.showlegend is not False]
    assert legend == ["A", "B", "bound = ε: a correct run stays below"]
    # A narrow range keeps to a few ticks, so a half-width panel's labels never run together.
    assert charts.log_ticks(3.0, 9.0)[1] == ("3", "4", "5", "6", "7", "8", "9")
    assert charts.log_ticks(3.0, 9.0, max_ticks=5)[1] == ("3", "9")
