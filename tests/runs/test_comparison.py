"""Stored runs become curves, baselines, a frontier and table rows for the Compare page."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dpcore.audit.report import AUDIT_AUC_TITLE, AUDIT_BOUND_TITLE
from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.results import TRAIN_ACCURACY_TITLE, TRAIN_LOSS_TITLE, EpochMetrics
from dpcore.runs.comparison import (
    ALL,
    CHALLENGE_EPSILON_CAP,
    RUN_TABLE_FORMATS,
    TEST_SPREAD_COLUMN,
    Point,
    audit_points,
    build_view,
    busy_runs,
    check_epsilon_cap,
    class_view,
    config_summary,
    dataset_choices,
    dataset_key,
    default_dataset,
    filter_runs,
    leaderboard,
    pareto_frontier,
    participant_name,
    participants,
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


def _digits(store: RunStore) -> list:
    return filter_runs(store.list_runs(), dataset="digits")


def test_view_has_curves_baselines_and_frontier(store: RunStore) -> None:
    view = build_view(_digits(store))
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
    fig = charts.accuracy_vs_epsilon(build_view(_digits(store)))
    names = [t.name for t in fig.data]
    assert names.count("Pareto frontier") == 1 and len(names) == 5
    baseline = fig.data[-1]  # named in the legend, not in an annotation that could cover another
    assert baseline.name == "run 4, non-private (ε = ∞): 0.950" and not fig.layout.annotations
    assert list(baseline.y) == [0.95, 0.95] and list(baseline.x) == [0.0, fig.layout.xaxis.range[1]]
    assert baseline.line.dash == "dot" and baseline.line.color == charts.run_color(4)
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0  # below: the plot keeps its width
    assert "run" in fig.data[0].hovertemplate and "σ" in fig.data[0].hovertemplate


def test_a_run_keeps_its_colour_when_others_are_deleted(store: RunStore) -> None:
    def colours() -> dict[str, str]:
        fig = charts.accuracy_vs_epsilon(build_view(_digits(store)))
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
    assert (rows[runs[1].id][AUDIT_AUC_TITLE], rows[runs[1].id][AUDIT_BOUND_TITLE]) == (0.55, 0.2)
    assert rows[runs[0].id][AUDIT_AUC_TITLE] is None and rows[runs[0].id][AUDIT_BOUND_TITLE] is None
    assert "not covered by ε" in AUDIT_AUC_TITLE and "not covered by ε" in AUDIT_BOUND_TITLE


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
    assert pending["ε"] == "" and pending["test accuracy"] == "" and pending[AUDIT_AUC_TITLE] == ""
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


# -- one dataset at a time, the class view and the challenge ------------------------------------------


def _finished(store: RunStore, config: DPConfig, owner: str, epsilon: float, accuracy: float, **kwargs) -> int:
    run_id = store.create_run(config, owner=owner, name=kwargs.get("name", ""))
    store.record_epoch(run_id, _metrics(1, accuracy, epsilon))
    store.set_status(run_id, kwargs.get("status", "completed"))
    return run_id


def test_datasets_are_offered_with_their_run_counts_most_first_and_a_csv_file_is_its_own(store: RunStore) -> None:
    heart = DPConfig(dataset="csv", csv_path="/data/heart.csv", csv_label="target", model="logreg")
    for label in ("target", "target", "sex"):
        store.create_run(heart.replace(csv_label=label), owner="me")
    choices = dataset_choices(store.list_runs())
    assert [(c.key, c.runs) for c in choices] == [
        ("digits", 4),
        ("csv:target:/data/heart.csv", 2),
        ("csv:sex:/data/heart.csv", 1),
        ("fashion_mnist", 1),
    ]
    assert choices[1].csv_path == "/data/heart.csv" and choices[1].csv_label == "target"
    assert dataset_key(heart) == "csv:target:/data/heart.csv"
    assert len(filter_runs(store.list_runs(), dataset=dataset_key(heart))) == 2
    assert default_dataset(choices) == "digits"
    assert default_dataset(choices, preferred="fashion_mnist") == "fashion_mnist"
    assert default_dataset(choices, preferred="mnist") == "digits"  # no run has it: the one with most runs


def test_a_frontier_never_mixes_datasets(store: RunStore) -> None:
    fashion = _finished(store, DPConfig(dataset="fashion_mnist", model="cnn"), "me", 0.2, 0.99)
    with pytest.raises(ValueError, match="one dataset"):
        build_view(store.list_runs())
    with pytest.raises(ValueError, match="one dataset"):
        class_view(store.list_runs())
    # The fashion run at (0.2, 0.99) would beat every digits point; on its own dataset it is alone.
    assert [p.key for p in build_view(filter_runs(store.list_runs(), dataset="digits")).frontier] == [1, 2]
    assert [p.key for p in class_view(filter_runs(store.list_runs(), dataset="fashion_mnist")).frontier] == [fashion]


def test_class_view_has_one_final_point_per_finished_run_with_its_participant(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "class.sqlite3")
    ana = _finished(store, DPConfig(noise_multiplier=2.0), "o-ana", 0.5, 0.70, name="quiet")
    ben = _finished(store, DPConfig(noise_multiplier=1.0), "o-ben", 1.0, 0.80)
    plain = _finished(store, DPConfig(private=False), "o-ben", math.inf, 0.95)
    training = _finished(store, DPConfig(), "o-ana", 0.3, 0.99, status="running")
    _finished(store, DPConfig(), "o-ana", 0.2, 0.99, status="cancelled")
    view = class_view(store.list_runs(), names={"o-ana": "Ana"})
    assert [(p.run_id, p.participant, p.epsilon, p.accuracy) for p in view.points] == [
        (ana, "Ana", 0.5, 0.70),
        (ben, "o-ben…", 1.0, 0.80),  # a participant the host removed: a short id
    ]
    assert [(b.run_id, b.epsilon) for b in view.baselines] == [(plain, math.inf)]
    assert [p.key for p in view.frontier] == [ana, ben] and view.unfinished == 1
    assert view.test_rows == 360 and training not in [p.run_id for p in view.points]
    assert view.points[0].label == "quiet"


def test_participants_keep_their_order_of_first_run_and_unnamed_runs_are_named(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "order.sqlite3")
    for owner in ("b", "a", "b", ""):
        store.create_run(DPConfig(), owner=owner)
    runs = store.list_runs()
    assert participants(runs) == ("b", "a", "") == participants(list(reversed(runs)))
    assert participant_name("", {}) == "command line" and participant_name("abcdefghij", {}) == "abcdefg…"
    assert participant_name("a", {"a": "Ana"}) == "Ana"


def test_leaderboard_ranks_each_participants_best_run_within_the_cap(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "board.sqlite3")
    digits = DPConfig()
    ana_best = _finished(store, digits, "ana", 0.9, 0.81)
    _finished(store, digits, "ana", 0.5, 0.70)  # Ana's worse run: only her best is ranked
    _finished(store, digits, "ana", 3.0, 0.95)  # above the cap
    ben = _finished(store, digits, "ben", 1.0, 0.81)  # ties Ana's accuracy at a larger ε: ranked after her
    cy = _finished(store, digits, "cy", 0.8, 0.75)
    dee = _finished(store, digits, "dee", 0.8, 0.75)  # ties Cy exactly: the same rank
    _finished(store, DPConfig(private=False), "eve", math.inf, 0.99)  # a baseline is never within a cap
    names = {"ana": "Ana", "ben": "Ben", "cy": "Cy", "dee": "Dee", "eve": "Eve"}
    board = leaderboard(class_view(store.list_runs(), names=names), cap=CHALLENGE_EPSILON_CAP)
    assert [(e.rank, e.participant, e.run_id, e.accuracy) for e in board] == [
        (1, "Ana", ana_best, 0.81),
        (2, "Ben", ben, 0.81),
        (3, "Cy", cy, 0.75),
        (3, "Dee", dee, 0.75),
    ]
    assert CHALLENGE_EPSILON_CAP == 1.0
    wide = leaderboard(class_view(store.list_runs(), names=names), cap=5.0)
    assert [(e.participant, e.accuracy) for e in wide][:2] == [("Ana", 0.95), ("Ben", 0.81)]
    assert leaderboard(class_view(store.list_runs(), names=names), cap=0.1) == ()


@pytest.mark.parametrize("cap", [0, -1.0, math.inf, math.nan, "1", True, None])
def test_an_epsilon_cap_out_of_range_is_refused_naming_the_field(cap: object) -> None:
    with pytest.raises(UserInputError) as refused:
        check_epsilon_cap(cap)
    assert refused.value.field == "ε cap" and "above 0" in str(refused.value)
    assert check_epsilon_cap(2) == 2.0


def test_audit_points_name_who_ran_each_run(store: RunStore) -> None:
    from tests.audit_samples import hand_made_report

    run = store.list_runs()[0]
    store.save_audit(run.id, hand_made_report(0.6, auc=0.5, bound=0.0, run_id=run.id).to_json())
    assert [p.participant for p in audit_points(store.list_runs(), names={"me": "Me"})] == ["Me"]


def test_each_accuracy_is_shown_with_its_test_rows_and_standard_error(store: RunStore) -> None:
    rows = run_rows(store.list_runs())
    digits = next(r for r in rows if r["dataset"] == "digits" and r["test accuracy"] == 0.60)
    assert digits[TEST_SPREAD_COLUMN] == "±0.026 (n=360 test rows)"  # √(0.6·0.4/360)
    pending = next(r for r in rows if r["dataset"] == "fashion_mnist")
    assert pending[TEST_SPREAD_COLUMN] == ""
