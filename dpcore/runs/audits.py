"""Audits of stored runs: the model of a finished run (its weights, or retrained from its seed), audited and kept with it."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Optional

import numpy as np

from dpcore.audit.model_audit import _check_canaries, audit_model
from dpcore.audit.report import AUDIT_SEED, MODEL_RETRAINED, MODEL_STORED, AuditError, AuditReport
from dpcore.data import datasets
from dpcore.results import FINISHED_STATUSES

if TYPE_CHECKING:
    from dpcore.runs.store import RunStore


def model_weights(store: RunStore, run_id: int) -> tuple[list[np.ndarray], str, tuple[str, ...]]:
    """A completed run's model: its stored weights, else the same config retrained from its seed.

    Returns (weights, where they came from, notes). A secure-mode run drew secret randomness, so
    without stored weights it cannot be rebuilt and is refused.
    """
    record = store.get_run(run_id)
    if record.status not in FINISHED_STATUSES:
        raise AuditError(
            f"run {run_id} is {record.status}; an audit needs the model of a finished run",
            allowed="a completed run, or one stopped by its ε budget",
        )
    weights = store.load_weights(run_id)
    if weights is not None:
        return weights, MODEL_STORED, ()
    if record.config.secure_mode:
        raise AuditError(
            f"run {run_id} was trained in secure mode (secret sampling and noise) and its weights were not "
            "kept, so it cannot be retrained identically",
            allowed="a completed run whose weights are stored, or one trained without secure mode",
        )
    from dpcore.dpsgd import training

    kept: list[list[np.ndarray]] = []
    result = training.train(record.config, on_weights=kept.append)
    if result.status != "completed" or not kept:
        raise AuditError(f"retraining run {run_id} did not complete: {result.error or result.status}")
    notes = []
    if record.test_accuracy is not None and result.test_accuracy != record.test_accuracy:
        notes.append(
            f"the retrained model's test accuracy ({result.test_accuracy:.4f}) differs from the "
            f"run's ({record.test_accuracy:.4f}): floating-point arithmetic did not repeat exactly, "
            "so the audited model is a close copy of the run's, not the same one"
        )
    return kept[0], MODEL_RETRAINED, tuple(notes)


def audit_run(
    store: RunStore, run_id: int, *, canaries: int = 0, seed: int = AUDIT_SEED, save: bool = True
) -> AuditReport:
    """Audit a stored run and (``save``) keep the report with it, replacing an earlier audit."""
    record = store.get_run(run_id)
    if canaries:
        _check_canaries(canaries, datasets.config_dataset_info(record.config).n_test)
    started = time.perf_counter()
    weights, source, notes = model_weights(store, run_id)
    report = audit_model(
        record.config,
        weights=weights,
        epsilon=record.epsilon,
        canaries=canaries,
        run_id=run_id,
        model_source=source,
        notes=notes,
        seed=seed,
    )
    report = dataclasses.replace(report, seconds=time.perf_counter() - started)
    if save:
        store.save_audit(run_id, report.to_json())
    return report


def stored_audit(store: RunStore, run_id: int) -> Optional[AuditReport]:
    """The latest audit kept with a run, or None when it has none."""
    text = store.get_audit(run_id)
    return None if text is None else AuditReport.from_json(text)
