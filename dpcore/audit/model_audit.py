"""Auditing a trained model: membership attacks on its logits, and the one-run canary audit's second training.

For a correctly accounted run both bounds stay below the run's ε (up to the 5% chance that a 95%
bound fails); a bound above it means the accounting, or the implementation, is wrong. TensorFlow
is imported only inside the functions that need a model.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

import numpy as np

from dpcore.audit.attacks import example_losses, membership_attacks
from dpcore.audit.bounds import best_canary_bound
from dpcore.audit.report import AUDIT_SEED, CONFIDENCE, MODEL_STORED, AuditError, AuditReport, CanaryReport
from dpcore.data import datasets
from dpcore.privacy import accounting

if TYPE_CHECKING:
    from dpcore.config import DPConfig
    from dpcore.data.types import Dataset


MIN_CANARIES = 10


# -- auditing a model and a run -----------------------------------------------------------------


def audit_model(
    config: DPConfig,
    *,
    weights: Sequence[np.ndarray],
    epsilon: Optional[float] = None,
    canaries: int = 0,
    run_id: Optional[int] = None,
    model_source: str = MODEL_STORED,
    notes: Sequence[str] = (),
    seed: int = AUDIT_SEED,
    confidence: float = CONFIDENCE,
) -> AuditReport:
    """Audit the model ``config`` describes with ``weights`` (trained on ``datasets.load(config)``).

    ``epsilon`` is the run's accounted ε (default: accounted here from the config); ``canaries``
    > 0 adds the canary audit, which trains the config once more.
    """
    from dpcore.dpsgd import models

    started = time.perf_counter()
    dataset = datasets.load(config)
    if canaries:
        _check_canaries(canaries, len(dataset.y_test))
    if epsilon is None:
        epsilon = accounting.epsilon_for_config(config, n=len(dataset.y_train)) if config.private else math.inf
    classes = dataset.info.num_classes
    attacks = membership_attacks(
        member_logits=models.predict_logits(config, weights=weights, x=dataset.x_train, num_classes=classes),
        member_labels=np.asarray(dataset.y_train),
        nonmember_logits=models.predict_logits(config, weights=weights, x=dataset.x_test, num_classes=classes),
        nonmember_labels=np.asarray(dataset.y_test),
        delta=config.delta,
        seed=seed,
        confidence=confidence,
    )
    k = min(len(dataset.y_train), len(dataset.y_test))
    canary = (
        canary_audit(config, dataset=dataset, canaries=canaries, seed=seed, confidence=confidence) if canaries else None
    )
    return AuditReport(
        run_id=run_id,
        epsilon=float(epsilon),
        delta=config.delta,
        private=config.private,
        model_source=model_source,
        members=k,
        nonmembers=k,
        attacks=attacks,
        canary=canary,
        confidence=confidence,
        seconds=time.perf_counter() - started,
        created=time.time(),
        notes=tuple(notes),
    )


def _check_canaries(canaries: int, n_test: int) -> None:
    """Canaries come from the held-out rows, and fewer than ``MIN_CANARIES`` can show nothing."""
    if isinstance(canaries, bool) or not isinstance(canaries, int) or not MIN_CANARIES <= canaries <= n_test:
        raise AuditError(
            f"{canaries!r} is out of range for a dataset with {n_test} held-out rows",
            field="canaries",
            allowed=f"a whole number from {MIN_CANARIES} to {n_test}",
        )


def canary_audit(
    config: DPConfig, *, dataset: Dataset, canaries: int, seed: int = AUDIT_SEED, confidence: float = CONFIDENCE
) -> CanaryReport:
    """Train ``config`` once on its training set plus a coin-flipped half of ``canaries`` mislabelled
    held-out rows, and bound ε from how well the canaries' losses tell which were included.

    The canary rows leave the test set of that training; its ε (the trainer's, for the larger n) is
    the one the bound is set against.
    """
    from dpcore.data.types import Dataset
    from dpcore.dpsgd import models, training

    started = time.perf_counter()
    n_test = len(dataset.y_test)
    _check_canaries(canaries, n_test)
    classes = dataset.info.num_classes
    rng = np.random.default_rng([seed, canaries])
    rows = rng.choice(n_test, size=canaries, replace=False)
    x_canary = np.asarray(dataset.x_test[rows])
    y_canary = ((dataset.y_test[rows] + rng.integers(1, classes, size=canaries)) % classes).astype(np.int32)
    included = rng.random(canaries) < 0.5
    keep = np.ones(n_test, dtype=bool)
    keep[rows] = False
    x_train = np.concatenate([dataset.x_train, x_canary[included]])
    y_train = np.concatenate([dataset.y_train, y_canary[included]])
    n_train = len(y_train)
    info = dataclasses.replace(dataset.info, n_train=n_train, n_test=int(keep.sum()))
    with_canaries = Dataset(
        info=info, x_train=x_train, y_train=y_train, x_test=dataset.x_test[keep], y_test=dataset.y_test[keep]
    )

    kept: list[list[np.ndarray]] = []
    result = training.train(config, dataset=with_canaries, on_weights=kept.append)
    if result.status != "completed" or not kept:
        raise AuditError(f"the canary training did not complete: {result.error or result.status}", field="canaries")
    logits = models.predict_logits(config, weights=kept[0], x=x_canary, num_classes=classes)
    scores = -example_losses(logits, y_canary)
    r, v, bound = best_canary_bound(scores, included, delta=config.delta, confidence=confidence)
    return CanaryReport(
        canaries=canaries,
        included=int(included.sum()),
        guesses=r,
        correct=v,
        epsilon_lower_bound=bound,
        epsilon=float(result.epsilon),
        delta=config.delta,
        n_train=n_train,
        test_accuracy=float(result.test_accuracy),
        confidence=confidence,
        seconds=time.perf_counter() - started,
    )
