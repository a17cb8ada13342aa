"""An audit's report: its attacks' ROC curves and ε lower bounds, the canary result, JSON, and how it reads.

The run store keeps a report as JSON text and the pages show it; nothing here trains or scores.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from dpcore.errors import UserInputError

if TYPE_CHECKING:
    from dpcore.config import DPConfig


CONFIDENCE = 0.95
AUDIT_SEED = 0
REPORT_FORMAT = 1

LOSS_ATTACK = "loss threshold"
LEARNED_ATTACK = "learned (logistic regression)"
ATTACKS = (LOSS_ATTACK, LEARNED_ATTACK)
FEATURES = ("log loss", "confidence", "entropy", "margin")

MODEL_STORED = "stored weights"
MODEL_RETRAINED = "retrained from the run's config and seed"
CANARY_KIND = "mislabelled held-out rows"


# Runs audited when training ends unless the person says otherwise, because the audit takes seconds
# there (docs/audit.md): those of these datasets (about a second for digits), and those trained on at
# most this many rows (the attack demo's 500 Fashion-MNIST rows: a few seconds).
AUDIT_BY_DEFAULT_DATASETS = ("digits",)
AUDIT_BY_DEFAULT_MAX_TRAIN_EXAMPLES = 2000

# What ε does not cover. The attacks score the model on the private training rows themselves, without
# noise, so their ROC curves, AUC, advantage and ε lower bounds are not covered by the run's ε; the
# canary audit trains once more on the same rows, and that training's ε is not added to the run's.
# Wherever these figures leave the library (CLI text and JSON, CSV, the pages) they carry these labels,
# as training loss and accuracy carry dpcore.results.TRAIN_METRICS_NOTE.
AUDIT_NOTE = (
    "Audit figures (the attacks' ROC curves, AUC, advantage and ε lower bounds) are computed on the "
    "private training rows without noise and are not covered by ε."
)
CANARY_NOTE = (
    "The canary audit is a second training run on the same private rows (plus the canaries), whose ε "
    "is not added to the run's ε."
)
AUDIT_LABEL = "computed on the private training rows without noise, not covered by ε"
AUDIT_AUC_TITLE = "attack AUC (not covered by ε)"
AUDIT_BOUND_TITLE = "audit ε ≥ (not covered by ε)"
AUDIT_AUC_KEY = "audit_auc_not_covered_by_epsilon"
AUDIT_BOUND_KEY = "audit_epsilon_lower_bound_not_covered_by_epsilon"

BOUND_TPR = "TPR ≤ e^ε·FPR + δ"
BOUND_TNR = "1 − FPR ≤ e^ε·(1 − TPR) + δ"


class AuditError(UserInputError):
    """A run cannot be audited as asked (not completed, secure mode without weights, too few examples)."""

    def __init__(self, message: str, *, field: str = "run", allowed: str = "") -> None:
        super().__init__(field, message, allowed=allowed)


# -- reports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RocCurve:
    """ROC points of one attack on the evaluation half, ordered by rising FPR (for plotting)."""

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]


@dataclass(frozen=True)
class EpsilonBound:
    """The ε lower bound of one attack: the threshold chosen on the selection half, judged on the other.

    ``inequality`` is the (ε, δ)-DP inequality the attack breaks (``BOUND_TPR`` or ``BOUND_TNR``);
    ``tpr_low`` and ``fpr_high`` are its Clopper–Pearson bounds at ``confidence``; ``epsilon`` is 0
    when the attack shows nothing.
    """

    epsilon: float
    threshold: float
    inequality: str
    tpr: float
    fpr: float
    tpr_low: float
    fpr_high: float
    confidence: float


@dataclass(frozen=True)
class AttackReport:
    """One membership-inference attack: its ROC, summary numbers and ε lower bound."""

    attack: str
    auc: float
    advantage: float
    tpr_at_1pct_fpr: float
    tpr_at_01pct_fpr: float
    bound: EpsilonBound
    roc: RocCurve
    eval_members: int
    eval_nonmembers: int

    @property
    def epsilon_lower_bound(self) -> float:
        return self.bound.epsilon


@dataclass(frozen=True)
class CanaryReport:
    """The one-run canary audit: m canaries, r guesses, v correct, and the ε lower bound they imply.

    The bound is for the canary training run (the run's config on the training set plus the
    included canaries), whose own theoretical ε is ``epsilon`` (∞ for a baseline).
    """

    canaries: int
    included: int
    guesses: int
    correct: int
    epsilon_lower_bound: float
    epsilon: float
    delta: float
    n_train: int
    test_accuracy: float
    confidence: float
    seconds: float
    kind: str = CANARY_KIND


@dataclass(frozen=True)
class AuditReport:
    """An empirical privacy audit of one model, with the theoretical (ε, δ) it is judged against.

    ``epsilon`` is the run's accounted ε (∞ for a non-private baseline). Each attack's bound holds at
    confidence 1 − (1 − ``confidence``)/2, so the larger of the two holds at ``confidence``.
    """

    run_id: Optional[int]
    epsilon: float
    delta: float
    private: bool
    model_source: str
    members: int
    nonmembers: int
    attacks: tuple[AttackReport, ...]
    canary: Optional[CanaryReport]
    confidence: float
    seconds: float
    created: float
    notes: tuple[str, ...] = ()

    @property
    def epsilon_lower_bound(self) -> float:
        """The largest membership-inference ε lower bound over the attacks (0 when none shows anything)."""
        return max((a.bound.epsilon for a in self.attacks), default=0.0)

    @property
    def auc(self) -> float:
        """The best attack's ROC AUC (0.5 is guessing)."""
        return max(a.auc for a in self.attacks)

    @property
    def advantage(self) -> float:
        """The best attack's advantage max(TPR − FPR) (0 is guessing, 1 is certainty)."""
        return max(a.advantage for a in self.attacks)

    def attack(self, name: str) -> AttackReport:
        """The report of the attack called ``name`` (one of ``ATTACKS``)."""
        for report in self.attacks:
            if report.attack == name:
                return report
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data: ∞ and NaN become null (``from_dict`` reads an ε of null back as ∞)."""
        data = _json_safe(dataclasses.asdict(self))
        data["format"] = REPORT_FORMAT
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditReport:
        if data.get("format") != REPORT_FORMAT:
            raise AuditError(
                f"audit report format {data.get('format')!r} is not supported",
                field="audit",
                allowed=str(REPORT_FORMAT),
            )
        canary = data["canary"]
        return cls(
            run_id=data["run_id"],
            epsilon=_inf_if_none(data["epsilon"]),
            delta=data["delta"],
            private=data["private"],
            model_source=data["model_source"],
            members=data["members"],
            nonmembers=data["nonmembers"],
            attacks=tuple(_attack_from_dict(a) for a in data["attacks"]),
            canary=None
            if canary is None
            else CanaryReport(
                **{
                    **canary,
                    "epsilon": _inf_if_none(canary["epsilon"]),
                    "test_accuracy": _nan_if_none(canary["test_accuracy"]),
                }
            ),
            confidence=data["confidence"],
            seconds=data["seconds"],
            created=data["created"],
            notes=tuple(data["notes"]),
        )

    @classmethod
    def from_json(cls, text: str) -> AuditReport:
        return cls.from_dict(json.loads(text))


def _attack_from_dict(data: dict[str, Any]) -> AttackReport:
    roc = data["roc"]
    return AttackReport(
        **{
            **data,
            "bound": EpsilonBound(**data["bound"]),
            "roc": RocCurve(fpr=tuple(roc["fpr"]), tpr=tuple(roc["tpr"])),
        }
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _inf_if_none(value: Optional[float]) -> float:
    return math.inf if value is None else float(value)


def _nan_if_none(value: Optional[float]) -> float:
    return math.nan if value is None else float(value)


def coverage_note(report: AuditReport) -> str:
    """What ε does not cover in ``report``: the audit figures, and the canary training when there is one."""
    return AUDIT_NOTE if report.canary is None else f"{AUDIT_NOTE} {CANARY_NOTE}"


def audit_by_default(config: DPConfig) -> bool:
    """Whether a run of ``config`` is audited when it ends unless the person turns it off (small data)."""
    small = config.max_train_examples is not None and config.max_train_examples <= AUDIT_BY_DEFAULT_MAX_TRAIN_EXAMPLES
    return config.dataset in AUDIT_BY_DEFAULT_DATASETS or small


def attack_rows(report: AuditReport) -> list[dict[str, Any]]:
    """One row per attack for a table: AUC, advantage, TPR at FPR 1% and 0.1%, the ε lower bound, the sample."""
    return [
        {
            "attack": a.attack,
            "AUC": a.auc,
            "advantage": a.advantage,
            "TPR at 1% FPR": a.tpr_at_1pct_fpr,
            "TPR at 0.1% FPR": a.tpr_at_01pct_fpr,
            "ε lower bound": a.bound.epsilon,
            "judged on": f"{a.eval_members} members + {a.eval_nonmembers} non-members",
        }
        for a in report.attacks
    ]


def verdict(report: AuditReport) -> str:
    """One sentence that sets the empirical ε lower bound against the accounted ε."""
    bound = report.epsilon_lower_bound
    level = f"{report.confidence:.0%}"
    if math.isinf(report.epsilon):
        if bound > 0:
            return (
                f"Non-private run: the attacks prove ε ≥ {bound:.2f} ({level} confidence); nothing "
                "limits what this model reveals about its training rows."
            )
        return (
            "Non-private run: these attacks prove nothing here, but no guarantee limits what the "
            "model reveals; a stronger attack may well succeed."
        )
    if bound > report.epsilon:
        return (
            f"The attacks prove ε ≥ {bound:.2f} ({level} confidence), above the accounted ε = "
            f"{report.epsilon:.2f}: the accounting or the training is wrong, or this is the "
            f"{1 - report.confidence:.0%} chance that the bound fails."
        )
    return (
        f"The attacks prove ε ≥ {bound:.2f} ({level} confidence), within the accounted "
        f"ε = {report.epsilon:.2f}, as a correctly accounted run must: the bound of a correct run "
        "can never exceed its ε. A gap means these attacks are weaker than the worst case ε allows."
    )
