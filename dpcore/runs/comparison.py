"""Stored runs turned into what the Compare page shows: curves, the Pareto frontier, a table, a filter."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Union

from dpcore.config import ACCOUNTANT_TITLES, NOISE_SCHEDULE_TITLES, DPConfig
from dpcore.privacy.explain import format_epsilon
from dpcore.results import ACTIVE_STATUSES, TRAIN_ACCURACY_KEY, TRAIN_ACCURACY_TITLE, TRAIN_LOSS_KEY, TRAIN_LOSS_TITLE
from dpcore.runs.records import RunRecord
from dpcore.runs.run_table import run_row

ALL = "all"
AUDIT_AUC_COLUMN = "attack AUC"
AUDIT_BOUND_COLUMN = "audit ε ≥"
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


@dataclass(frozen=True)
class RunCurve:
    """One private run's accuracy against ε after each finished epoch."""

    run_id: int
    label: str
    summary: str
    status: str
    epsilons: tuple[float, ...]
    accuracies: tuple[float, ...]


@dataclass(frozen=True)
class Baseline:
    """A non-private run's final accuracy: a reference line at ε = ∞."""

    run_id: int
    label: str
    summary: str
    accuracy: float


@dataclass(frozen=True)
class ComparisonView:
    """Everything the accuracy-vs-ε chart needs."""

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


def audit_points(runs: Sequence[RunRecord]) -> tuple[AuditPoint, ...]:
    """A point for each run with a stored audit (``RunRecord.audit``), in the runs' order."""
    return tuple(
        AuditPoint(
            run.id,
            run.label,
            config_summary(run.config),
            run.audit.epsilon,
            run.audit.auc,
            run.audit.epsilon_lower_bound,
            run.audit.confidence,
        )
        for run in runs
        if run.audit is not None
    )


def filter_runs(runs: Sequence[RunRecord], *, dataset: str = ALL, model: str = ALL) -> list[RunRecord]:
    """The runs on ``dataset`` with ``model`` (``"all"`` matches any)."""
    return [
        r for r in runs if (dataset == ALL or r.config.dataset == dataset) and (model == ALL or r.config.model == model)
    ]


def busy_runs(runs: Sequence[RunRecord]) -> list[int]:
    """Ids of the runs still queued or training (not to be deleted under the trainer's feet)."""
    return [r.id for r in runs if r.status in ACTIVE_STATUSES]


def build_view(runs: Sequence[RunRecord]) -> ComparisonView:
    """Curves for private runs with at least one epoch, baselines for finished non-private runs."""
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
        if not run.config.private:
            baselines.append(Baseline(run.id, run.label, config_summary(run.config), points[-1][1]))
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
                )
            )
    frontier = pareto_frontier(Point(c.epsilons[-1], c.accuracies[-1], c.run_id) for c in curves)
    return ComparisonView(tuple(curves), tuple(baselines), frontier)


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
                **(train if train_metrics else {}),
                "ε": row["epsilon"],
                "δ": row["delta"] if private else None,
                AUDIT_AUC_COLUMN: row["audit_auc"],
                AUDIT_BOUND_COLUMN: row["audit_epsilon_lower_bound"],
                "error": row["error"] or "",
            }
        )
    return rows
