"""Stored runs turned into what the Compare page shows: curves, the Pareto frontier of one dataset, the class's
final points and the challenge's leaderboard, a table, a filter."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from dpcore.audit.report import AUDIT_AUC_KEY, AUDIT_AUC_TITLE, AUDIT_BOUND_KEY, AUDIT_BOUND_TITLE
from dpcore.config import ACCOUNTANT_TITLES, NOISE_SCHEDULE_TITLES, DPConfig
from dpcore.errors import UserInputError
from dpcore.privacy.explain import format_epsilon
from dpcore.results import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    TRAIN_ACCURACY_KEY,
    TRAIN_ACCURACY_TITLE,
    TRAIN_LOSS_KEY,
    TRAIN_LOSS_TITLE,
)
from dpcore.runs.records import RunRecord
from dpcore.runs.run_table import accuracy_spread_text, run_row

ALL = "all"
# The class challenge: the best test accuracy at ε at most this, unless the page sets another cap.
CHALLENGE_EPSILON_CAP = 1.0
# Beyond this many runs a chart's legend names participants, not runs (a longer legend scrolls).
MAX_RUN_LEGEND = 8
# The audit's columns, titled as not covered by ε (audit.report.AUDIT_NOTE).
AUDIT_AUC_COLUMN = AUDIT_AUC_TITLE
AUDIT_BOUND_COLUMN = AUDIT_BOUND_TITLE
# Beside the test accuracy: its standard error and the test rows it was measured on.
TEST_SPREAD_COLUMN = "± (test rows)"
# How the run table writes its cells (pandas Styler formats; an unknown value is an empty cell): ε of a
# baseline as "∞", by explain.format_epsilon. The values stay numbers, so the columns sort as numbers.
RUN_TABLE_FORMATS: dict[str, Union[str, Callable[[Any], str]]] = {
    "noise": "{:g}",
    "clip": "{:g}",
    "test accuracy": "{:.3f}",
    TRAIN_ACCURACY_TITLE: "{:.3f}",
    TRAIN_LOSS_TITLE: "{:.4f}",
    "ε": lambda value: format_epsilon(value, unknown=""),
    "δ": "{:.0e}",
    AUDIT_AUC_COLUMN: "{:.3f}",
    AUDIT_BOUND_COLUMN: "{:.2f}",
}


def config_summary(config: DPConfig) -> str:
    """A short one-line description of a config for hover text and tables; the recipe settings are
    named only when they are on."""
    validation = f", {config.validation_fraction:.0%} validation" if config.validation_fraction else ""
    if not config.private:
        return (
            f"{config.dataset}/{config.model}, {config.optimizer} lr {config.learning_rate:g}, "
            f"batch {config.batch_size}, {config.epochs} epochs{validation}, non-private (ε = ∞)"
        )
    return (
        f"{config.dataset}/{config.model}, {config.optimizer} lr {config.learning_rate:g}, "
        f"σ {config.noise_multiplier:g}, clip {config.l2_norm_clip:g}, batch {config.batch_size}, "
        f"{config.epochs} epochs, {ACCOUNTANT_TITLES[config.accountant]}/{config.sampling}, δ {config.delta:.0e}"
        + _recipe_summary(config)
        + validation
        + (", secure mode" if config.secure_mode else "")
    )


def _recipe_summary(config: DPConfig) -> str:
    parts = []
    if config.noise_schedule != "constant":
        parts.append(
            f"σ by {NOISE_SCHEDULE_TITLES[config.noise_schedule]} (r {config.noise_decay_rate:g}, "
            f"floor {config.noise_floor:g})"
        )
    if config.adaptive_clipping:
        parts.append(f"adaptive clip ({config.clip_update}, quantile {config.target_unclipped_quantile:g})")
    if config.epsilon_budget is not None:
        parts.append(f"ε budget {config.epsilon_budget:g}")
    return "".join(f", {part}" for part in parts)


@dataclass(frozen=True)
class Point:
    """One finished run as a point: lower ε is better, higher accuracy is better."""

    epsilon: float
    accuracy: float
    key: Hashable = None


def pareto_frontier(points: Iterable[Point]) -> tuple[Point, ...]:
    """The points no other point beats on both ε and accuracy, ordered by ε; infinite ε (baselines)
    and NaN accuracy are left out."""
    usable = [p for p in points if math.isfinite(p.epsilon) and p.accuracy is not None and math.isfinite(p.accuracy)]
    usable.sort(key=lambda p: (p.epsilon, -p.accuracy))
    frontier: list[Point] = []
    best = -math.inf
    for point in usable:
        if point.accuracy > best:
            frontier.append(point)
            best = point.accuracy
    return tuple(frontier)


def dataset_key(config: DPConfig) -> str:
    """The test set a run's accuracy is measured on: a built-in dataset's name, or a CSV file with its label
    column (``csv:<label>:<path>``). Accuracies, frontiers and baselines compare only within one key."""
    if config.dataset != "csv":
        return config.dataset
    return f"csv:{config.csv_label or ''}:{config.csv_path or ''}"


@dataclass(frozen=True)
class DatasetChoice:
    """One dataset the runs were trained on, as Compare offers it: its key (``dataset_key``) and run count."""

    key: str
    dataset: str
    csv_path: Optional[str]
    csv_label: Optional[str]
    runs: int


def dataset_choices(runs: Sequence[RunRecord]) -> tuple[DatasetChoice, ...]:
    """Each dataset among ``runs`` once, the one with most runs first (ties by key)."""
    counts: dict[str, int] = {}
    first: dict[str, DPConfig] = {}
    for run in runs:
        key = dataset_key(run.config)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, run.config)
    return tuple(
        DatasetChoice(key, first[key].dataset, first[key].csv_path, first[key].csv_label, counts[key])
        for key in sorted(counts, key=lambda k: (-counts[k], k))
    )


def default_dataset(choices: Sequence[DatasetChoice], *, preferred: Optional[str] = None) -> str:
    """The dataset Compare opens on: ``preferred`` (the current config's key) when some run has it, else the
    one with most runs. ``choices`` must not be empty."""
    keys = [c.key for c in choices]
    return preferred if preferred in keys else keys[0]


def participant_name(owner: str, names: Mapping[str, str]) -> str:
    """Who ran a run, as charts and tables name them: the display name, else a short id (a participant the
    host removed), else "command line" (a run stored without an owner)."""
    if owner in names and names[owner]:
        return names[owner]
    return f"{owner[:7]}…" if owner else "command line"


def participants(runs: Sequence[RunRecord]) -> tuple[str, ...]:
    """The owners of ``runs``, each once, in the order of their first run: a participant's place (and so
    their colour) never moves when later runs come or another dataset is chosen."""
    return tuple(dict.fromkeys(run.owner for run in sorted(runs, key=lambda r: r.id)))


def _one_dataset(runs: Sequence[RunRecord]) -> None:
    keys = {dataset_key(run.config) for run in runs}
    if len(keys) > 1:
        raise ValueError(f"runs of one dataset only (a frontier across test sets compares nothing); got {sorted(keys)}")


@dataclass(frozen=True)
class RunCurve:
    """One private run's accuracy against ε after each finished epoch; ``participant`` names its owner."""

    run_id: int
    label: str
    summary: str
    status: str
    epsilons: tuple[float, ...]
    accuracies: tuple[float, ...]
    owner: str = ""
    participant: str = ""


@dataclass(frozen=True)
class Baseline:
    """A non-private run's final accuracy: a reference at ε = ∞."""

    run_id: int
    label: str
    summary: str
    accuracy: float
    owner: str = ""
    participant: str = ""


@dataclass(frozen=True)
class ComparisonView:
    """Everything the accuracy-vs-ε chart needs, for runs of one dataset."""

    curves: tuple[RunCurve, ...]
    baselines: tuple[Baseline, ...]
    frontier: tuple[Point, ...]


@dataclass(frozen=True)
class AuditPoint:
    """One audited run: the ε its accountant promised (∞ for a baseline) against what the attacks reached."""

    run_id: int
    label: str
    summary: str
    epsilon: float
    auc: float
    epsilon_lower_bound: float
    confidence: float
    participant: str = ""
    owner: str = ""


def audit_points(runs: Sequence[RunRecord], *, names: Optional[Mapping[str, str]] = None) -> tuple[AuditPoint, ...]:
    """A point for each run with a stored audit (``RunRecord.audit``), in the runs' order; ``names`` maps
    owner ids to the display names the hover shows."""
    return tuple(
        AuditPoint(
            run.id,
            run.label,
            config_summary(run.config),
            run.audit.epsilon,
            run.audit.auc,
            run.audit.epsilon_lower_bound,
            run.audit.confidence,
            participant=participant_name(run.owner, names or {}),
            owner=run.owner,
        )
        for run in runs
        if run.audit is not None
    )


def filter_runs(runs: Sequence[RunRecord], *, dataset: str = ALL, model: str = ALL) -> list[RunRecord]:
    """The runs on ``dataset`` (a ``dataset_key``: a built-in's name or a CSV file with its label) with
    ``model`` (``"all"`` matches any)."""
    return [
        r
        for r in runs
        if (dataset == ALL or dataset_key(r.config) == dataset) and (model == ALL or r.config.model == model)
    ]


def busy_runs(runs: Sequence[RunRecord]) -> list[int]:
    """Ids of the runs still queued or training (not to be deleted under the trainer's feet)."""
    return [r.id for r in runs if r.status in ACTIVE_STATUSES]


def build_view(runs: Sequence[RunRecord], *, names: Optional[Mapping[str, str]] = None) -> ComparisonView:
    """Curves for private runs with at least one epoch, baselines for finished non-private runs, and the
    frontier of the curves' last points; ``names`` maps owner ids to display names.

    The runs must share one dataset (``dataset_key``); runs of several raise ValueError.
    """
    _one_dataset(runs)
    names = names or {}
    curves: list[RunCurve] = []
    baselines: list[Baseline] = []
    for run in runs:
        points = [
            (m.epsilon, m.test_accuracy)
            for m in run.epochs
            if m.test_accuracy is not None and math.isfinite(m.test_accuracy)
        ]
        if not points:
            continue
        who = participant_name(run.owner, names)
        if not run.config.private:
            baselines.append(
                Baseline(run.id, run.label, config_summary(run.config), points[-1][1], owner=run.owner, participant=who)
            )
            continue
        finite = [(e, a) for e, a in points if math.isfinite(e)]
        if finite:
            curves.append(
                RunCurve(
                    run.id,
                    run.label,
                    config_summary(run.config),
                    run.status,
                    tuple(e for e, _ in finite),
                    tuple(a for _, a in finite),
                    owner=run.owner,
                    participant=who,
                )
            )
    frontier = pareto_frontier(Point(c.epsilons[-1], c.accuracies[-1], c.run_id) for c in curves)
    return ComparisonView(tuple(curves), tuple(baselines), frontier)


@dataclass(frozen=True)
class FinalPoint:
    """A finished run at its final ε (∞ for a baseline) and test accuracy, with who ran it."""

    run_id: int
    label: str
    summary: str
    owner: str
    participant: str
    epsilon: float
    accuracy: float


@dataclass(frozen=True)
class ClassView:
    """The class's finished runs on one dataset: private runs' final points, baselines, the frontier of the
    private points, the test rows every accuracy is measured on (None when the data cannot be read now), and
    how many runs are still queued or training (drawn once they finish)."""

    points: tuple[FinalPoint, ...]
    baselines: tuple[FinalPoint, ...]
    frontier: tuple[Point, ...]
    test_rows: Optional[int]
    unfinished: int


def class_view(runs: Sequence[RunRecord], *, names: Optional[Mapping[str, str]] = None) -> ClassView:
    """One point per finished run (completed, or stopped by its ε budget) of one dataset at its final ε and
    accuracy; runs of several datasets raise ValueError. Cancelled and failed runs are left out."""
    _one_dataset(runs)
    names = names or {}
    points: list[FinalPoint] = []
    baselines: list[FinalPoint] = []
    for run in runs:
        epsilon, accuracy = run.epsilon, run.test_accuracy
        if run.status not in FINISHED_STATUSES or epsilon is None or accuracy is None or not math.isfinite(accuracy):
            continue
        point = FinalPoint(
            run.id,
            run.label,
            config_summary(run.config),
            run.owner,
            participant_name(run.owner, names),
            epsilon,
            accuracy,
        )
        (points if run.config.private and math.isfinite(epsilon) else baselines).append(point)
    frontier = pareto_frontier(Point(p.epsilon, p.accuracy, p.run_id) for p in points)
    return ClassView(
        points=tuple(points),
        baselines=tuple(baselines),
        frontier=frontier,
        test_rows=_test_rows(runs[0].config) if runs else None,
        unfinished=len(busy_runs(runs)),
    )


def _test_rows(config: DPConfig) -> Optional[int]:
    from dpcore.data import datasets  # here: the data room loads the privacy mathematics, seconds at import

    try:
        return datasets.test_size(config)
    except UserInputError:  # a CSV file deleted or unreadable now: the size is not known
        return None


@dataclass(frozen=True)
class LeaderboardEntry:
    """One participant's best run within the challenge's ε cap; equal accuracy and ε share a rank."""

    rank: int
    owner: str
    participant: str
    run_id: int
    run: str
    epsilon: float
    accuracy: float


def check_epsilon_cap(cap: Any) -> float:
    """The challenge's ε cap as a float; anything but a finite number above 0 is refused naming the field."""
    allowed = "a number above 0, such as 1"
    if isinstance(cap, bool) or not isinstance(cap, (int, float)):
        raise UserInputError("ε cap", f"{type(cap).__name__} is not a number", allowed=allowed)
    if not math.isfinite(cap) or cap <= 0:
        raise UserInputError("ε cap", f"{cap!r} is out of range", allowed=allowed)
    return float(cap)


def leaderboard(view: ClassView, *, cap: float) -> tuple[LeaderboardEntry, ...]:
    """The challenge "best accuracy at ε ≤ cap": each participant's best private run within the cap (higher
    accuracy, then lower ε, then the earlier run), ranked by accuracy, then ε; equal both, equal rank."""
    cap = check_epsilon_cap(cap)
    best: dict[str, FinalPoint] = {}
    for point in sorted(view.points, key=lambda p: (-p.accuracy, p.epsilon, p.run_id)):
        if point.epsilon <= cap:
            best.setdefault(point.owner, point)
    ordered = sorted(best.values(), key=lambda p: (-p.accuracy, p.epsilon, p.run_id))
    entries: list[LeaderboardEntry] = []
    for place, point in enumerate(ordered, start=1):
        tied = entries and (entries[-1].accuracy, entries[-1].epsilon) == (point.accuracy, point.epsilon)
        entries.append(
            LeaderboardEntry(
                rank=entries[-1].rank if tied else place,
                owner=point.owner,
                participant=point.participant,
                run_id=point.run_id,
                run=point.label,
                epsilon=point.epsilon,
                accuracy=point.accuracy,
            )
        )
    return tuple(entries)


def run_rows(runs: Sequence[RunRecord], *, train_metrics: bool = False) -> list[dict[str, Any]]:
    """One row per run for a sortable table, from ``store.run_row`` (ε = ∞ for baselines, None while unknown;
    the audit's best attack AUC and ε lower bound, None for a run never audited).

    ``train_metrics`` adds the last epoch's training accuracy and loss after the test accuracy, in
    columns titled as not covered by ε (``results.TRAIN_ACCURACY_TITLE``, ``TRAIN_LOSS_TITLE``).
    """
    rows = []
    for row in map(run_row, runs):
        private = row["private"]
        train = {TRAIN_ACCURACY_TITLE: row[TRAIN_ACCURACY_KEY], TRAIN_LOSS_TITLE: row[TRAIN_LOSS_KEY]}
        rows.append(
            {
                "id": row["id"],
                "name": row["label"],
                "status": row["status"],
                "created": row["created"],
                "dataset": row["dataset"],
                "model": row["model"],
                "optimizer": row["optimizer"],
                "private": private,
                "noise": row["noise_multiplier"] if private else None,
                "clip": row["l2_norm_clip"] if private else None,
                "batch": row["batch_size"],
                "epochs": f"{row['epochs_done']}/{row['epochs']}",
                "accountant": f"{ACCOUNTANT_TITLES[row['accountant']]}/{row['sampling']}" if private else "non-private",
                "test accuracy": row["test_accuracy"],
                TEST_SPREAD_COLUMN: accuracy_spread_text(row["test_accuracy"], row["n_test"]),
                **(train if train_metrics else {}),
                "ε": row["epsilon"],
                "δ": row["delta"] if private else None,
                AUDIT_AUC_COLUMN: row[AUDIT_AUC_KEY],
                AUDIT_BOUND_COLUMN: row[AUDIT_BOUND_KEY],
                "error": row["error"] or "",
            }
        )
    return rows
