"""Runs as table rows: the columns of the runs CSV and the Compare table, safe to open in a spreadsheet."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from dpcore.audit.report import AUDIT_AUC_KEY, AUDIT_BOUND_KEY
from dpcore.data.datasets import test_size_or_none
from dpcore.privacy.explain import format_epsilon
from dpcore.results import (
    TRAIN_ACCURACY_KEY,
    TRAIN_LOSS_KEY,
)
from dpcore.runs.records import RunRecord

# The last epoch's training loss and accuracy, and the audit's figures, are named as not covered by ε
# (results.TRAIN_METRICS_NOTE, audit.report.AUDIT_NOTE).
CSV_COLUMNS = (
    "id",
    "name",
    "owner_name",
    "created",
    "status",
    "dataset",
    "csv_file",
    "model",
    "optimizer",
    "noise_multiplier",
    "l2_norm_clip",
    "batch_size",
    "epochs",
    "sampling",
    "accountant",
    "private",
    "test_accuracy",
    "validation_accuracy",
    "epsilon",
    "delta",
    TRAIN_LOSS_KEY,
    TRAIN_ACCURACY_KEY,
    "examples_per_second",
    "seconds",
    "error",
    AUDIT_AUC_KEY,
    AUDIT_BOUND_KEY,
)


# -- how sure a test accuracy is ----------------------------------------------------------------

ACCURACY_SPREAD_NOTE = (
    "± is one binomial standard error, √(acc·(1 − acc)/n) for n test rows: two runs whose accuracies "
    "differ by less than about twice that may differ only by which rows happened to be in the test split."
)


def accuracy_standard_error(accuracy: float, n_test: int) -> float:
    """The binomial standard error of an accuracy measured on ``n_test`` rows."""
    return math.sqrt(max(accuracy * (1.0 - accuracy), 0.0) / n_test)


def accuracy_spread_text(accuracy: Optional[float], n_test: Optional[int]) -> str:
    """ "±0.047 (n=61 test rows)", or "" when the accuracy or the test-set size is unknown."""
    if accuracy is None or not math.isfinite(accuracy) or not n_test:
        return ""
    return f"±{accuracy_standard_error(accuracy, n_test):.3f} (n={n_test:,} test rows)"


def accuracy_text(accuracy: Optional[float], n_test: Optional[int]) -> str:
    """A test accuracy with how sure it is: "0.836 (n=61 test rows, ±0.047)"; "—" while unknown."""
    if accuracy is None or not math.isfinite(accuracy):
        return "—"
    if not n_test:
        return f"{accuracy:.3f}"
    return f"{accuracy:.3f} (n={n_test:,} test rows, ±{accuracy_standard_error(accuracy, n_test):.3f})"


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?inf")


def spreadsheet_safe(cell: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, prefixed with ' so it stays text; others as they are.

    The check reads the cell as a spreadsheet may: without leading white space or line breaks, and with
    look-alike characters folded (NFKC: a full-width ＝ is =). Numbers, and text that is just a number
    such as "-0.5", pass unchanged; line breaks inside a cell are left to the csv writer, which quotes them.
    """
    if not isinstance(cell, str):
        return cell
    folded = unicodedata.normalize("NFKC", cell).lstrip()
    if (cell.startswith(_FORMULA_STARTS) or folded.startswith(_FORMULA_STARTS)) and not _PLAIN_NUMBER.fullmatch(folded):
        return "'" + cell
    return cell


def run_row(run: RunRecord) -> dict[str, Any]:
    """One run as named plain values (ε = ∞ for a baseline, None while unknown; ``created`` in ISO 8601).

    The one conversion of a stored run: the CSV, the Compare and Train tables and the CLI's listing
    and JSON all start from it.
    """
    c = run.config
    last = run.epochs[-1] if run.epochs else None
    return {
        "id": run.id,
        "name": run.name,
        "label": run.label,
        "owner": run.owner,
        "created": datetime.fromtimestamp(run.created, tz=timezone.utc).isoformat(timespec="seconds"),
        "status": run.status,
        "dataset": c.dataset,
        "csv_file": Path(c.csv_path).name if c.csv_path else None,
        "model": c.model,
        "optimizer": c.optimizer,
        "noise_multiplier": c.noise_multiplier,
        "l2_norm_clip": c.l2_norm_clip,
        "batch_size": c.batch_size,
        "epochs": c.epochs,
        "epochs_done": len(run.epochs),
        "sampling": c.sampling,
        "accountant": c.accountant,
        "private": c.private,
        "test_accuracy": run.test_accuracy,
        "n_test": test_size_or_none(c),
        "validation_accuracy": run.validation_accuracy,
        "epsilon": run.epsilon if c.private else math.inf,
        "delta": c.delta,
        TRAIN_LOSS_KEY: None if last is None else last.train_loss,
        TRAIN_ACCURACY_KEY: None if last is None else last.train_accuracy,
        "examples_per_second": run.examples_per_second,
        "seconds": run.seconds,
        "error": run.error,
        AUDIT_AUC_KEY: None if run.audit is None else run.audit.auc,
        AUDIT_BOUND_KEY: None if run.audit is None else run.audit.epsilon_lower_bound,
    }


def csv_row(
    run: RunRecord,
    *,
    shown_file: Optional[Callable[[str], str]] = None,
    owner_names: Optional[Mapping[str, str]] = None,
) -> list[Any]:
    """The CSV cells of one run, in ``CSV_COLUMNS`` order (ε of a baseline is ``inf``, unknowns are empty;
    ``shown_file`` as in ``RunStore.to_csv``; ``owner_name`` from ``owner_names``, owner id -> display name,
    empty for a run without a known participant)."""
    row = {**run_row(run), "owner_name": (owner_names or {}).get(run.owner, "")}
    if shown_file is not None and run.config.csv_path:
        row["csv_file"] = shown_file(run.config.csv_path)
    return [_csv_cell(name, row[name]) for name in CSV_COLUMNS]


def _csv_cell(name: str, value: Any) -> Any:
    if name == "epsilon":
        return format_epsilon(value, digits=None, infinity="inf", unknown="")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else value
