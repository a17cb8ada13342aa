"""Hand-made audit reports with chosen numbers, for tests of what stores, tables and charts do with them."""

from __future__ import annotations

import math
from typing import Optional

from dpcore.audit.report import (
    BOUND_TPR,
    LOSS_ATTACK,
    MODEL_STORED,
    AttackReport,
    AuditReport,
    CanaryReport,
    EpsilonBound,
    RocCurve,
)


def hand_made_report(
    epsilon: float, *, auc: float = 0.6, bound: float = 0.4, run_id: Optional[int] = 3, canary: bool = True
) -> AuditReport:
    """A report of one loss-threshold attack with ``auc`` and ε lower ``bound`` (and a canary part), judged
    against the accounted ``epsilon`` (∞: a non-private baseline)."""
    epsilon_bound = EpsilonBound(
        epsilon=bound,
        threshold=-1.5,
        inequality=BOUND_TPR,
        tpr=0.3,
        fpr=0.1,
        tpr_low=0.2,
        fpr_high=0.15,
        confidence=0.975,
    )
    attack = AttackReport(
        attack=LOSS_ATTACK,
        auc=auc,
        advantage=0.2,
        tpr_at_1pct_fpr=0.05,
        tpr_at_01pct_fpr=0.0,
        bound=epsilon_bound,
        roc=RocCurve(fpr=(0.0, 0.1, 1.0), tpr=(0.0, 0.3, 1.0)),
        eval_members=10,
        eval_nonmembers=10,
    )
    canary_report = (
        CanaryReport(
            canaries=20,
            included=9,
            guesses=10,
            correct=7,
            epsilon_lower_bound=0.0,
            epsilon=epsilon,
            delta=1e-5,
            n_train=100,
            test_accuracy=math.nan,
            confidence=0.95,
            seconds=1.0,
        )
        if canary
        else None
    )
    return AuditReport(
        run_id=run_id,
        epsilon=epsilon,
        delta=1e-5,
        private=math.isfinite(epsilon),
        model_source=MODEL_STORED,
        members=20,
        nonmembers=20,
        attacks=(attack,),
        canary=canary_report,
        confidence=0.95,
        seconds=2.0,
        created=1.0,
        notes=("a note",),
    )
