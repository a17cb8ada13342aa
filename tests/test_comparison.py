"""Stored runs become curves, baselines, a frontier and table rows for the Compare page."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dpcore.config import DPConfig
from dpcore.results import TRAIN_ACCURACY_TITLE, TRAIN_LOSS_TITLE, EpochMetrics
from dpcore.runs.comparison import (
    ALL,
    RUN_TABLE_FORMATS,
    Point,
    audit_points,
    build_view,
    busy_runs,
    config_summary,
    filter_runs,
    pareto_frontier,
    run_rows,
)
from dpcore.runs.store import RunStore
from dpcore.views import charts


def _metrics(epoch: int, accuracy: float, epsilon: float) -> EpochMetrics:
    return EpochMetrics(
        epoch=epoch,
        train_loss=1.0,
        train_accuracy=accuracy,
        test_loss=1.0,
        test_accuracy=accuracy,
        epsilon=epsilon,
        seconds=0.1,
        examples=100,
    )


@pytest.fixture()
def store(tmp_path: Path) -> RunStore:
    store = RunStore(tmp_path / "runs.sqlite3")
    runs = [
        (DPConfig(noise_multiplier=2.0), [(1, 0.50, 0.4), (2, 0.60, 0.6)]),
        (DPConfig(noise_multiplier=1.0), [(1, 0.65, 1.0), (2, 0.80, 1.5)]),
        (DPConfig(noise_multiplier=0.8), [(1, 0.70, 2.0), (2, 0.75, 3.0)]),
        (DPConfig(private=False), [(1, 0.90, math.inf), (2, 0.95, math.inf)]),
        (DPConfig(dataset="fashion_mnist", model="cnn", epochs=10), []),
    ]
    for config, epochs in runs:
        run_id = store.create_run(config, owner="me")
        for epoch, acc, eps in epochs:
            store.record_epoch(run_id, _metrics(epoch, acc, eps))
    return store


def test_view_has_curves_baselines_and_frontier(store: RunStore) -> None:
    view = build_view(store.list_runs())
    assert len(view.curves) == 3
    assert [b.accuracy for b in view.baselines] == [0.95]
    assert all(len(c.epsilons) == 2 for c in view.curves)
    # Final points: (0.6, 0.60), (1.5, 0.80), (3.0, 0.75): the last is dominated.
    assert [(p.epsilon, p.accuracy) for p in view.frontier] == [(0.6, 0.60), (1.5, 0.80)]


def test_filter_by_dataset_and_model(store: RunStore) -> None:
    runs = store.list_runs()
    assert len(filter_runs(runs)) == 5
    assert len(filter_runs(runs, dataset="fashion_mnist")) == 1
    assert len(filter_runs(runs, dataset=ALL, model="mlp")) == 4
    assert filter_runs(runs, dataset="digits", model="cnn") == []


def test_rows_label_baselines_as_infinite_epsilon(store: RunStore) -> None:
    rows = {row["id"]: row for row in run_rows(store.list_runs())}
    baseline = next(r for r in rows.values() if not r["private"])
    assert baseline["ε"] == math.inf and baseline["accountant"] == "non-private"
    pending = next(r for r in rows.values() if r["dataset"] == "fashion_mnist")
    assert pending["ε"] is None and pending["epochs"] == "0/10"


def test_summary_says_non_private_for_a_baseline() -> None:
    assert "non-private (ε = ∞)" in config_summary(DPConfig(private=False))
    assert "RDP/poisson" in config_summary(DPConfig())
    assert "secure mode" in config_summary(DPConfig(secure_mode=True))
    assert "secure" not in config_summary(DPConfig())


def test_summary_names_the_recipe_settings_that_are_on() -> None:
    plain = config_summary(DPConfig())
    assert not any(word in plain for word in ("decay", "adaptive", "budget", "validation"))
    recipe = config_summary(
        DPConfig(
            noise_schedule="step",
            noise_decay_rate=0.001,
            noise_floor=0.7,
            adaptive_clipping=True,
            target_unclipped_quantile=0.9,
            clip_update="linear",
            epsilon_budget=3.0,
            validation_fraction=0.2,
        )
    )
    assert recipe.startswith(plain)
    assert recipe.endswith(
        ", σ by step decay (r 0.001, floor 0.7), adaptive clip (linear, quantile 0.9), ε budget 3, 20% validation"
    )
    assert config_summary(DPConfig(private=False, validation_fraction=0.2, adaptive_clipping=True)).endswith(
        "20 epochs, 20% validation, non-private (ε = ∞)"
    )


def test_chart_has_one_trace_per_run_plus_frontier_and_a_baseline_line(store: RunStore) -> None:
    fig = charts.accuracy_vs_epsilon(build_view(store.list_runs()))
    names = [t.name for t in fig.data]
    assert names.count("Pareto frontier") == 1 and len(names) == 5
    baseline = fig.data[-1]  # named in the legend, not in an annotation that could cover another
    assert baseline.name == "run 4, non-private (ε = ∞): 0.950" and not fig.layout.annotations
    assert list(baseline.y) == [0.95, 0.95] and list(baseline.x) == [0.0, fig.layout.xaxis.range[1]]
    assert baseline.line.dash == "dot" and baseline.line.color == charts.run_color(4)
    assert fig.layout.legend.orientation == "v" and fig.layout.legend.x > 1  # beside the plot, clear of the title
    assert "run" in fig.data[0].hovertemplate and "σ" in fig.data[0].hovertemplate


def test_a_run_keeps_its_colour_when_others_are_deleted(store: RunStore) -> None:
    def colours() -> dict[str, str]:
        fig = charts.accuracy_vs_epsilon(build_view(store.list_runs()))
        return {t.name: t.line.color for t in fig.data if t.name.startswith("run ")}

    before = colours()
    store.delete_run(1)
    after = colours()
    assert "run 1" not in after and after == {name: c for name, c in before.items() if name != "run 1"}


def test_audited_runs_become_points_and_table_columns(store: RunStore) -> None:
    from tests.audit_samples import hand_made_report

    runs = store.list_runs()
    store.save_audit(runs[1].id, hand_made_report(1.5, auc=0.55, bound=0.2, run_id=runs[1].id).to_json())
    store.save_audit(runs[3].id, hand_made_report(math.inf, auc=0.7, bound=1.1, run_id=runs[3].id).to_json())
    points = audit_points(store.list_runs())
    assert [(p.run_id, p.epsilon, p.auc, p.epsilon_lower_bound) for p in points] == [
        (runs[1].id, 1.5, 0.55, 0.2),
        (runs[3].id, math.inf, 0.7, 1.1),
    ]
    rows = {row["id"]: row for row in run_rows(store.list_runs())}
    assert (rows[runs[1].id]["attack AUC"], rows[runs[1].id]["audit ε ≥"]) == (0.55, 0.2)
    assert rows[runs[0].id]["attack AUC"] is None and rows[runs[0].id]["audit ε ≥"] is None


def test_training_figures_join_the_table_only_when_asked_and_titled_as_not_covered_by_epsilon(store: RunStore) -> None:
    runs = store.list_runs()
    plain, with_train = run_rows(runs), run_rows(runs, train_metrics=True)
    assert not {TRAIN_ACCURACY_TITLE, TRAIN_LOSS_TITLE} & set(plain[0])
    for run, row in zip(runs, with_train):
        last = run.epochs[-1] if run.epochs else None
        assert row[TRAIN_ACCURACY_TITLE] == (last.train_accuracy if last else None)
        assert row[TRAIN_LOSS_TITLE] == (last.train_loss if last else None)
    assert "not covered by ε" in TRAIN_ACCURACY_TITLE and "not covered by ε" in TRAIN_LOSS_TITLE


def test_table_cells_show_infinity_and_leave_unknowns_empty(store: RunStore) -> None:
    import pandas as pd

    frame = pd.DataFrame(run_rows(store.list_runs()))
    text = frame.style.format(RUN_TABLE_FORMATS, na_rep="").hide(axis="index").to_string(delimiter="\t")
    header, *lines = [line.split("\t") for line in text.splitlines()]
    body = [dict(zip(header, cells)) for cells in lines]
    baseline = next(r for r in body if r["private"] == "False")
    assert baseline["ε"] == "∞" and baseline["noise"] == "" and baseline["δ"] == ""
    pending = next(r for r in body if r["dataset"] == "fashion_mnist")
    assert pending["ε"] == "" and pending["test accuracy"] == "" and pending["attack AUC"] == ""
    assert not any("None" in str(v) or "nan" in str(v) for row in body for v in row.values())
    assert frame["ε"].dtype == float  # the cells read as text but sort as numbers


def test_busy_runs_are_the_queued_and_running_ones(store: RunStore) -> None:
    runs = store.list_runs()
    store.set_status(runs[0].id, "running")
    store.set_status(runs[1].id, "completed")
    busy = busy_runs(store.list_runs())
    assert runs[0].id in busy and runs[1].id not in busy


def test_frontier_keeps_only_undominated_points_in_epsilon_order() -> None:
    points = [
        Point(1.0, 0.80, "a"),
        Point(2.0, 0.85, "b"),
        Point(1.5, 0.70, "c"),
        Point(3.0, 0.84, "d"),
        Point(0.5, 0.60, "e"),
        Point(math.inf, 0.99, "baseline"),
        Point(1.0, 0.75, "a2"),
    ]
    assert [p.key for p in pareto_frontier(points)] == ["e", "a", "b"]
    assert pareto_frontier([]) == ()


def _beaten(point: Point, others: list[Point]) -> bool:
    """Whether another point has ε no larger and accuracy no smaller, and is better in one."""
    return any(
        o.epsilon <= point.epsilon
        and o.accuracy >= point.accuracy
        and (o.epsilon < point.epsilon or o.accuracy > point.accuracy)
        for o in others
    )


@given(st.lists(st.tuples(st.floats(0.01, 50), st.floats(0, 1)), max_size=30))
def test_frontier_is_exactly_the_unbeaten_set(raw: list[tuple[float, float]]) -> None:
    points = [Point(e, a, i) for i, (e, a) in enumerate(raw)]
    frontier = pareto_frontier(points)
    assert not any(_beaten(p, points) for p in frontier)
    # Every unbeaten point is on the frontier or ties one exactly.
    for p in points:
        if not _beaten(p, points):
            assert any(q.epsilon == p.epsilon and q.accuracy == p.accuracy for q in frontier)
