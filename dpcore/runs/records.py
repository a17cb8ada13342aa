"""What the store reads back: run and sweep records, rows set aside as unreadable, and the row conversions.

An infinite ε is stored as NULL and read back as ``math.inf``; NaN losses likewise. A row that
cannot be read (a config from a newer version, a value outside today's limits) becomes an
``UnreadableRun`` by id, so the others still list.
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional, Union

import numpy as np

from dpcore.audit.report import AuditError, AuditReport
from dpcore.config import DPConfig
from dpcore.results import (
    ACTIVE_STATUSES,
    STATUSES,
    EpochMetrics,
)
from dpcore.runs.process_identity import process_alive
from dpcore.safe_io import quote

# -- records ---------------------------------------------------------------------------

INTERRUPTED_MESSAGE = "the process running it stopped before it finished"


@dataclass(frozen=True)
class RunRecord:
    """One stored run as read back from the store; ``epochs`` holds every committed epoch, ``audit`` its
    latest empirical privacy audit (None: never audited)."""

    id: int
    name: str
    owner: str
    created: float
    config: DPConfig
    status: str
    error: Optional[str]
    epochs: tuple[EpochMetrics, ...]
    examples_per_second: Optional[float]
    seconds: Optional[float]
    started: Optional[float] = None
    finished: Optional[float] = None
    n_train: Optional[int] = None
    audit: Optional[AuditReport] = None

    @property
    def test_accuracy(self) -> Optional[float]:
        """The last committed epoch's test accuracy; None before the first epoch ends."""
        return self.epochs[-1].test_accuracy if self.epochs else None

    @property
    def validation_accuracy(self) -> Optional[float]:
        """The last committed epoch's validation accuracy (NaN without a validation split); None before
        the first epoch ends."""
        return self.epochs[-1].validation_accuracy if self.epochs else None

    @property
    def epsilon(self) -> Optional[float]:
        """The last committed epoch's ε (math.inf for a baseline); None before the first epoch ends."""
        return self.epochs[-1].epsilon if self.epochs else None

    @property
    def label(self) -> str:
        """The name if one was given, else ``run <id>``: what lists and legends show."""
        return self.name or f"run {self.id}"


@dataclass(frozen=True)
class SweepRecord:
    """One stored sweep as written by ``create_sweep``; ``dpcore.runs.sweeps`` reads the JSON texts."""

    id: int
    owner: str
    name: str
    mode: str
    knobs_json: str
    seeds: int
    baseline: bool
    selection_json: Optional[str]
    trial_count: Optional[int]
    base_config: DPConfig
    created: float
    run_ids: tuple[int, ...]


def sweep_record(row: sqlite3.Row, run_ids: Sequence[int]) -> SweepRecord:
    return SweepRecord(
        id=row["id"],
        owner=row["owner"],
        name=row["name"],
        mode=row["mode"],
        knobs_json=row["knobs_json"],
        seeds=row["seeds"],
        baseline=bool(row["baseline"]),
        selection_json=row["selection_json"],
        trial_count=row["trial_count"],
        base_config=DPConfig.from_json(row["base_config_json"]),
        created=row["created"],
        run_ids=tuple(run_ids),
    )


def weights_blob(weights: Sequence[np.ndarray]) -> bytes:
    """Model weights as an ``.npz`` archive (arrays arr_0, arr_1, ... in ``get_weights()`` order)."""
    buffer = io.BytesIO()
    np.savez(buffer, *[np.asarray(w) for w in weights])
    return buffer.getvalue()


def weights_from_blob(blob: bytes) -> list[np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]


@dataclass(frozen=True)
class UnreadableRun:
    """A stored run that cannot be read back, by id, with the reason; listings show it apart."""

    id: int
    reason: str


@dataclass(frozen=True)
class RunListing:
    """What a listing could read: the runs, the rows set aside, and the store's damage (None if sound)."""

    runs: tuple[RunRecord, ...]
    unreadable: tuple[UnreadableRun, ...] = ()
    damage: Optional[str] = None


def float_or_none(value: Optional[float]) -> Optional[float]:
    """NaN and ±∞ become NULL for SQLite; finite numbers pass through."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _nan_if_null(value: Optional[float]) -> float:
    return math.nan if value is None else float(value)


_EPOCH_COLUMNS = (
    "run_id",
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "epsilon",
    "seconds",
    "examples",
    "validation_loss",
    "validation_accuracy",
    "noise_multipliers",
    "clip_norms",
)


def insert_epochs_sql(verb: str) -> str:
    """``<verb> INTO epoch_metrics`` with every column, in ``_EPOCH_COLUMNS`` order."""
    return f"{verb} INTO epoch_metrics ({', '.join(_EPOCH_COLUMNS)}) VALUES ({', '.join('?' for _ in _EPOCH_COLUMNS)})"


def epoch_values(run_id: int, m: EpochMetrics) -> tuple[Any, ...]:
    return (
        run_id,
        int(m.epoch),
        float_or_none(m.train_loss),
        float_or_none(m.train_accuracy),
        float_or_none(m.test_loss),
        float_or_none(m.test_accuracy),
        float_or_none(m.epsilon),
        float_or_none(m.seconds),
        int(m.examples),
        float_or_none(m.validation_loss),
        float_or_none(m.validation_accuracy),
        json.dumps([float(v) for v in m.noise_multipliers]),
        json.dumps([float(v) for v in m.clip_norms]),
    )


def _floats(text: Optional[str]) -> tuple[float, ...]:
    return tuple(float(v) for v in json.loads(text)) if text else ()


def _epoch_from_row(row: sqlite3.Row) -> EpochMetrics:
    return EpochMetrics(
        epoch=row["epoch"],
        train_loss=_nan_if_null(row["train_loss"]),
        train_accuracy=_nan_if_null(row["train_accuracy"]),
        test_loss=_nan_if_null(row["test_loss"]),
        test_accuracy=_nan_if_null(row["test_accuracy"]),
        epsilon=math.inf if row["epsilon"] is None else float(row["epsilon"]),
        seconds=_nan_if_null(row["seconds"]),
        examples=row["examples"] or 0,
        validation_loss=_nan_if_null(row["validation_loss"]),
        validation_accuracy=_nan_if_null(row["validation_accuracy"]),
        noise_multipliers=_floats(row["noise_multipliers"]),
        clip_norms=_floats(row["clip_norms"]),
    )


def damage_message(where: str, detail: str) -> str:
    return (
        f"{where} is damaged ({quote(detail, limit=120)[1:-1]}): the runs that can still be read are "
        "listed, but nothing new is written to it. Keep a copy, then recover it with "
        "`sqlite3 OLD .recover | sqlite3 NEW` or move it aside to start a new store"
    )


_NUMBER_COLUMNS = ("created", "started", "finished", "examples_per_second", "seconds")
_EPOCH_NUMBER_COLUMNS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "epsilon", "seconds")


def readable_record(
    row: sqlite3.Row, epoch_rows: Sequence[sqlite3.Row], report_json: Optional[str] = None
) -> Union[RunRecord, UnreadableRun]:
    """The run of a row, with the status it has now (a dead process's run is interrupted), or why it cannot be read."""
    try:
        _check_row(row, epoch_rows)
        record = _record(row, epoch_rows, report_json)
    except (ValueError, TypeError, OverflowError) as exc:  # ConfigError is a ValueError
        return UnreadableRun(int(row["id"]), quote(str(exc), limit=200)[1:-1])
    if record.status in ACTIVE_STATUSES and not process_alive(row["process"] or ""):
        record = replace(record, status="interrupted", error=record.error or INTERRUPTED_MESSAGE)
    return record


def _check_row(row: sqlite3.Row, epoch_rows: Sequence[sqlite3.Row]) -> None:
    """Raise ValueError naming the column of a stored value that has the wrong type."""

    def number(column: str, value: Any, *, required: bool = False, whole: bool = False) -> None:
        kinds = (int,) if whole else (int, float)
        if (value is None and not required) or (isinstance(value, kinds) and not isinstance(value, bool)):
            return
        raise ValueError(f"{column} holds {quote(value)}, not a {'whole ' if whole else ''}number")

    if row["status"] not in STATUSES:
        raise ValueError(f"status holds {quote(row['status'])}, not one of {', '.join(STATUSES)}")
    for column in ("name", "owner", "config_json"):
        if not isinstance(row[column], str):
            raise ValueError(f"{column} holds {quote(row[column])}, not text")
    for column in _NUMBER_COLUMNS:
        number(column, row[column], required=column == "created")
    number("n_train", row["n_train"], whole=True)
    for metrics_row in epoch_rows:
        number("epoch", metrics_row["epoch"], required=True, whole=True)
        number("examples", metrics_row["examples"], whole=True)
        for column in _EPOCH_NUMBER_COLUMNS:
            number(f"epoch {metrics_row['epoch']} {column}", metrics_row[column])


def _audit_report(report_json: Optional[str]) -> Optional[AuditReport]:
    """A stored audit read back; one this version cannot read (another format) counts as none: audit again."""
    if report_json is None:
        return None
    try:
        return AuditReport.from_json(report_json)
    except (AuditError, ValueError, KeyError, TypeError):
        return None


def _record(row: sqlite3.Row, epoch_rows: Sequence[sqlite3.Row], report_json: Optional[str] = None) -> RunRecord:
    return RunRecord(
        id=row["id"],
        name=row["name"],
        owner=row["owner"],
        created=row["created"],
        config=DPConfig.from_json(row["config_json"]),
        status=row["status"],
        error=row["error"],
        epochs=tuple(_epoch_from_row(e) for e in epoch_rows),
        examples_per_second=row["examples_per_second"],
        seconds=row["seconds"],
        started=row["started"],
        finished=row["finished"],
        n_train=row["n_train"],
        audit=_audit_report(report_json),
    )
