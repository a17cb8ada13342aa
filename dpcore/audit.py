"""Empirical privacy: what an attacker can actually do to a finished run, next to the ε theory promises.

Two audits of a run's model (its stored weights, or the same model retrained from its config and seed):

- **Membership inference** on balanced member / non-member sets: training rows against held-out
  test rows the model never saw. Two attacks score every example: a loss threshold (a low loss
  says "member") and a learned attack (logistic regression on per-example loss, confidence,
  entropy and margin). Members and non-members are each split into two halves: the learned
  attack is fitted on the first half, and the threshold behind the ε bound is chosen on the first
  half, so the second half judges one fixed attack and picking the best of many thresholds gains
  nothing by chance. AUC, best advantage and TPR at a low FPR are point estimates on the second
  half; the ε lower bound uses Clopper–Pearson bounds (TPR from below, FPR from above) there.
  Approximate: that bound treats the run's fixed train/test split as if each example's
  membership were an independent fair coin, which the split only approximates.
- **Canaries** (Steinke, Nasr & Jagielski, "Privacy auditing with one (1) training run", NeurIPS
  2023): m mislabelled test rows, each added to the training set with probability 1/2, one
  training run of the same config, then a guess "in" for the k lowest-loss canaries and "out"
  for the k highest. Their theorem turns the number of correct guesses into an ε lower bound that
  holds for that training run with no independence assumption beyond the coins themselves.

For a correctly accounted run both bounds stay below the run's ε (up to the 5% chance that a 95%
bound fails); a bound above it means the accounting, or the implementation, is wrong.
TensorFlow is imported only inside the functions that need a model.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from dpcore.errors import UserInputError

if TYPE_CHECKING:
    from dpcore.config import DPConfig
    from dpcore.data import Dataset
    from dpcore.store import RunStore

CONFIDENCE = 0.95
AUDIT_SEED = 0
REPORT_FORMAT = 1

LOSS_ATTACK = "loss threshold"
LEARNED_ATTACK = "learned (logistic regression)"
ATTACKS = (LOSS_ATTACK, LEARNED_ATTACK)
FEATURES = ("log loss", "confidence", "entropy", "margin")

MODEL_STORED = "stored weights"
MODEL_RETRAINED = "retrained from the run's config and seed"

# Each side needs two examples per half at the very least.
MIN_EXAMPLES_PER_SIDE = 4
MIN_CANARIES = 10
# Canary guesses tried: these fractions of m, half guessed "in" and half "out"; Bonferroni over them.
CANARY_GUESS_FRACTIONS = (0.1, 0.2, 0.5, 1.0)
CANARY_KIND = "mislabelled held-out rows"

# Datasets whose runs are audited when training ends unless the person says otherwise: the audit
# takes seconds there (docs/audit.md: about a second for digits).
AUDIT_BY_DEFAULT_DATASETS = ("digits",)

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
    def from_dict(cls, data: dict[str, Any]) -> "AuditReport":
        if data.get("format") != REPORT_FORMAT:
            raise AuditError(f"audit report format {data.get('format')!r} is not supported",
                             field="audit", allowed=str(REPORT_FORMAT))
        canary = data["canary"]
        return cls(
            run_id=data["run_id"], epsilon=_inf_if_none(data["epsilon"]), delta=data["delta"],
            private=data["private"], model_source=data["model_source"], members=data["members"],
            nonmembers=data["nonmembers"],
            attacks=tuple(_attack_from_dict(a) for a in data["attacks"]),
            canary=None if canary is None else CanaryReport(**{
                **canary, "epsilon": _inf_if_none(canary["epsilon"]),
                "test_accuracy": _nan_if_none(canary["test_accuracy"])}),
            confidence=data["confidence"], seconds=data["seconds"], created=data["created"],
            notes=tuple(data["notes"]),
        )

    @classmethod
    def from_json(cls, text: str) -> "AuditReport":
        return cls.from_dict(json.loads(text))


def _attack_from_dict(data: dict[str, Any]) -> AttackReport:
    roc = data["roc"]
    return AttackReport(**{**data, "bound": EpsilonBound(**data["bound"]),
                           "roc": RocCurve(fpr=tuple(roc["fpr"]), tpr=tuple(roc["tpr"]))})


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


# -- what (ε, δ)-DP allows ----------------------------------------------------------------------


def max_tpr(fpr: np.ndarray | float, *, epsilon: float, delta: float) -> np.ndarray:
    """The highest TPR any attack can reach at ``fpr`` against an (ε, δ)-DP mechanism.

    Both inequalities bind: TPR ≤ e^ε·FPR + δ and 1 − FPR ≤ e^ε·(1 − TPR) + δ, i.e.
    TPR ≤ 1 − e^−ε·(1 − δ − FPR); the region also stays inside [0, 1].
    """
    fpr = np.asarray(fpr, dtype=float)
    if math.isinf(epsilon):
        return np.where(fpr >= 0, 1.0, 0.0)
    direct = math.exp(epsilon) * fpr + delta
    mirror = 1.0 - math.exp(-epsilon) * (1.0 - delta - fpr)
    return np.clip(np.minimum(direct, mirror), 0.0, 1.0)


def inequality_epsilons(tpr: np.ndarray | float, fpr: np.ndarray | float, *,
                        delta: float) -> tuple[np.ndarray, np.ndarray]:
    """The smallest ε each (ε, δ)-DP inequality allows for (TPR, FPR): log((TPR − δ)/FPR) and
    log((1 − FPR − δ)/(1 − TPR)); −∞ where an inequality holds for every ε, +∞ where none."""
    tpr, fpr = np.asarray(tpr, dtype=float), np.asarray(fpr, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = np.where(tpr > delta, np.log(tpr - delta) - np.log(fpr), -np.inf)
        mirror = np.where(1.0 - fpr > delta, np.log(1.0 - fpr - delta) - np.log(1.0 - tpr), -np.inf)
    return direct, mirror


def epsilon_from_rates(*, tpr: float, fpr: float, delta: float) -> float:
    """The smallest ε that an attack with this TPR and FPR proves at ``delta`` (0 when it proves nothing)."""
    direct, mirror = inequality_epsilons(tpr, fpr, delta=delta)
    return float(max(0.0, direct, mirror))


# -- metrics on scores --------------------------------------------------------------------------


def clopper_pearson(successes: int | np.ndarray, trials: int, *,
                    confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """The two-sided Clopper–Pearson interval for a binomial rate: each end is a one-sided 1 − α/2 bound."""
    from scipy.stats import beta

    k = np.asarray(successes, dtype=float)
    alpha = 1.0 - confidence
    low = np.where(k > 0, beta.ppf(alpha / 2, k, trials - k + 1), 0.0)
    high = np.where(k < trials, beta.ppf(1 - alpha / 2, k + 1, trials - k), 1.0)
    return low, high


def roc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> RocCurve:
    """The ROC curve of ``scores`` (higher means "member") against ``labels`` (1 member, 0 not)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(labels), np.asarray(scores, dtype=float))
    return RocCurve(fpr=tuple(float(x) for x in fpr), tpr=tuple(float(y) for y in tpr))


def roc_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random member outscores a random non-member."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(labels), np.asarray(scores, dtype=float)))


def best_advantage(curve: RocCurve) -> float:
    """max(TPR − FPR) over the curve: the attacker's best edge over guessing."""
    return float(max(t - f for f, t in zip(curve.fpr, curve.tpr)))


def tpr_at_fpr(curve: RocCurve, fpr: float) -> float:
    """The highest TPR among the curve's points whose FPR is at most ``fpr`` (no interpolation)."""
    return float(max((t for f, t in zip(curve.fpr, curve.tpr) if f <= fpr + 1e-12), default=0.0))


def _counts_at(labels: np.ndarray, scores: np.ndarray,
               thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """True and false positives when "member" means score ≥ threshold, and the two class sizes."""
    members = np.sort(scores[labels == 1])
    others = np.sort(scores[labels == 0])
    tp = len(members) - np.searchsorted(members, thresholds, side="left")
    fp = len(others) - np.searchsorted(others, thresholds, side="left")
    return tp, fp, len(members), len(others)


def _bounds(tp: np.ndarray, fp: np.ndarray, positives: int, negatives: int, *, delta: float,
            confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per threshold: ε from each inequality with TPR bounded below and FPR above, and those bounds."""
    tpr_low, _ = clopper_pearson(tp, positives, confidence=confidence)
    _, fpr_high = clopper_pearson(fp, negatives, confidence=confidence)
    direct, mirror = inequality_epsilons(tpr_low, fpr_high, delta=delta)
    return direct, mirror, tpr_low, fpr_high


def epsilon_lower_bound(*, select_labels: np.ndarray, select_scores: np.ndarray, eval_labels: np.ndarray,
                        eval_scores: np.ndarray, delta: float,
                        confidence: float = CONFIDENCE) -> EpsilonBound:
    """An ε lower bound that holds with probability ``confidence``, without a multiple-comparison gain.

    The threshold (and which inequality to test) is the one with the largest Clopper–Pearson bound
    on the selection half; the bound is then computed once, on the evaluation half, at that
    threshold. The selection half may be the learned attack's training half.
    """
    select_labels, select_scores = np.asarray(select_labels), np.asarray(select_scores, dtype=float)
    eval_labels, eval_scores = np.asarray(eval_labels), np.asarray(eval_scores, dtype=float)
    thresholds = np.unique(select_scores)
    direct, mirror, _, _ = _bounds(*_counts_at(select_labels, select_scores, thresholds),
                                   delta=delta, confidence=confidence)
    use_mirror = bool(np.max(mirror) > np.max(direct))
    threshold = float(thresholds[int(np.argmax(mirror if use_mirror else direct))])
    tp, fp, positives, negatives = _counts_at(eval_labels, eval_scores, np.array([threshold]))
    direct, mirror, tpr_low, fpr_high = _bounds(tp, fp, positives, negatives, delta=delta, confidence=confidence)
    value = float((mirror if use_mirror else direct)[0])
    return EpsilonBound(
        epsilon=max(0.0, value), threshold=threshold, inequality=BOUND_TNR if use_mirror else BOUND_TPR,
        tpr=float(tp[0]) / positives, fpr=float(fp[0]) / negatives, tpr_low=float(tpr_low[0]),
        fpr_high=float(fpr_high[0]), confidence=confidence,
    )


# -- per-example features -----------------------------------------------------------------------


def example_features(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Columns ``FEATURES`` for each example: log of the cross-entropy loss, the probability of the true
    label, the entropy of the prediction, and the true label's logit minus the largest other logit."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(y))
    shifted = z - z.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    probs = np.exp(log_probs)
    loss = -log_probs[rows, y]
    entropy = -(probs * log_probs).sum(axis=1)
    others = z.copy()
    others[rows, y] = -np.inf
    margin = z[rows, y] - others.max(axis=1)
    return np.column_stack([np.log(np.maximum(loss, 1e-300)), probs[rows, y], entropy, margin])


def example_losses(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each example's cross-entropy loss."""
    return np.exp(example_features(logits, labels)[:, 0])


# -- membership inference -----------------------------------------------------------------------


def membership_attacks(*, member_logits: np.ndarray, member_labels: np.ndarray, nonmember_logits: np.ndarray,
                       nonmember_labels: np.ndarray, delta: float, seed: int = AUDIT_SEED,
                       confidence: float = CONFIDENCE) -> tuple[AttackReport, ...]:
    """Run the loss-threshold and the learned attack on equally many members and non-members.

    The larger side is subsampled to the smaller; each side is split into a selection half and an
    evaluation half. Each attack's bound is at confidence 1 − (1 − confidence)/2, so that the larger
    of the two bounds holds at ``confidence``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    k = min(len(member_labels), len(nonmember_labels))
    if k < MIN_EXAMPLES_PER_SIDE:
        raise AuditError(f"{k} member or non-member example(s) is too few for an audit",
                         field="dataset", allowed=f"at least {MIN_EXAMPLES_PER_SIDE} of each")
    members = rng.permutation(len(member_labels))[:k]
    others = rng.permutation(len(nonmember_labels))[:k]
    features = np.concatenate([example_features(member_logits[members], member_labels[members]),
                               example_features(nonmember_logits[others], nonmember_labels[others])])
    labels = np.concatenate([np.ones(k, np.int64), np.zeros(k, np.int64)])
    half = k // 2
    select = np.concatenate([np.arange(half), k + np.arange(half)])
    evaluate = np.concatenate([np.arange(half, k), k + np.arange(half, k)])

    learned = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    learned.fit(features[select], labels[select])
    scores = {
        LOSS_ATTACK: -features[:, 0],  # a low loss says "member"
        LEARNED_ATTACK: learned.decision_function(features),
    }
    per_attack = 1.0 - (1.0 - confidence) / len(scores)
    reports = []
    for name, score in scores.items():
        curve = roc(labels[evaluate], score[evaluate])
        reports.append(AttackReport(
            attack=name, auc=roc_auc(labels[evaluate], score[evaluate]), advantage=best_advantage(curve),
            tpr_at_1pct_fpr=tpr_at_fpr(curve, 0.01), tpr_at_01pct_fpr=tpr_at_fpr(curve, 0.001),
            bound=epsilon_lower_bound(select_labels=labels[select], select_scores=score[select],
                                      eval_labels=labels[evaluate], eval_scores=score[evaluate],
                                      delta=delta, confidence=per_attack),
            roc=curve, eval_members=k - half, eval_nonmembers=k - half,
        ))
    return tuple(reports)


# -- the one-run canary bound (Steinke, Nasr & Jagielski 2023) ----------------------------------


def canary_p_value(*, m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """The p-value of v correct out of r guesses on m canaries if the run were (ε, δ)-DP.

    Steinke, Nasr & Jagielski's Corollary 5.4 (the ``p_value_DP_audit`` of their Appendix D): with
    q = e^ε / (1 + e^ε), P[Binomial(r, q) ≥ v] + 2mδ · max over i = 1..v of P[v − i ≤ Binomial(r, q) < v] / i.
    """
    from scipy.stats import binom

    _check_counts(m=m, r=r, v=v)
    q = 1.0 / (1.0 + math.exp(-epsilon)) if epsilon < 700 else 1.0
    tail = float(binom.sf(v - 1, r, q))
    if delta == 0 or v == 0:
        return min(1.0, tail)
    steps = np.arange(1, v + 1)
    below = binom.sf(v - steps - 1, r, q) - tail  # P[v - i <= B < v]
    return min(1.0, tail + 2.0 * m * delta * float(np.max(below / steps)))


def canary_epsilon_bound(*, m: int, r: int, v: int, delta: float, confidence: float = CONFIDENCE) -> float:
    """The ε lower bound from v correct of r guesses on m canaries: every smaller ε is rejected at ``confidence``.

    The p-value grows with ε, so the bound is where it crosses 1 − confidence (0 if it never
    falls below there, i.e. the guesses are no better than chance).
    """
    significance = 1.0 - confidence
    if canary_p_value(m=m, r=r, v=v, epsilon=0.0, delta=delta) >= significance:
        return 0.0
    low, high = 0.0, 1.0
    while canary_p_value(m=m, r=r, v=v, epsilon=high, delta=delta) < significance:
        low, high = high, 2.0 * high
        if high > 1e3:
            return math.inf
    from scipy.optimize import brentq

    return float(brentq(lambda e: canary_p_value(m=m, r=r, v=v, epsilon=e, delta=delta) - significance,
                        low, high, xtol=1e-9))


def canary_guess_counts(m: int) -> tuple[int, ...]:
    """The guess counts r tried for m canaries: ``CANARY_GUESS_FRACTIONS`` of m, even, at least 2."""
    counts = {min(m - m % 2, max(2, 2 * round(f * m / 2))) for f in CANARY_GUESS_FRACTIONS}
    return tuple(sorted(counts))


def canary_guesses(scores: np.ndarray, included: np.ndarray, *, guesses: int) -> int:
    """How many of ``guesses`` guesses are right: "in" for the top half by score, "out" for the bottom half."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    k = guesses // 2
    included = np.asarray(included, dtype=bool)
    return int(included[order[:k]].sum() + (~included[order[len(order) - k:]]).sum())


def best_canary_bound(scores: np.ndarray, included: np.ndarray, *, delta: float,
                      confidence: float = CONFIDENCE) -> tuple[int, int, float]:
    """(r, v, ε bound) for the guess count with the largest bound; Bonferroni over the counts tried."""
    m = len(scores)
    counts = canary_guess_counts(m)
    each = 1.0 - (1.0 - confidence) / len(counts)
    results = []
    for r in counts:
        v = canary_guesses(scores, included, guesses=r)
        results.append((canary_epsilon_bound(m=m, r=r, v=v, delta=delta, confidence=each), r, v))
    bound, r, v = max(results)
    return r, v, bound


def _check_counts(*, m: int, r: int, v: int) -> None:
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got m={m}, r={r}, v={v}")


# -- auditing a model and a run -----------------------------------------------------------------


def audit_model(config: "DPConfig", *, weights: Sequence[np.ndarray], epsilon: Optional[float] = None,
                canaries: int = 0, run_id: Optional[int] = None, model_source: str = MODEL_STORED,
                notes: Sequence[str] = (), seed: int = AUDIT_SEED,
                confidence: float = CONFIDENCE) -> AuditReport:
    """Audit the model ``config`` describes with ``weights`` (trained on ``data.load(config)``).

    ``epsilon`` is the run's accounted ε (default: accounted here from the config); ``canaries``
    > 0 adds the canary audit, which trains the config once more.
    """
    from dpcore import accounting, data
    from dpcore.dpsgd import models

    started = time.perf_counter()
    dataset = data.load(config)
    if canaries:
        _check_canaries(canaries, len(dataset.y_test))
    if epsilon is None:
        epsilon = accounting.epsilon_for_config(config, n=len(dataset.y_train)) if config.private else math.inf
    classes = dataset.info.num_classes
    attacks = membership_attacks(
        member_logits=models.predict_logits(config, weights=weights, x=dataset.x_train, num_classes=classes),
        member_labels=np.asarray(dataset.y_train),
        nonmember_logits=models.predict_logits(config, weights=weights, x=dataset.x_test, num_classes=classes),
        nonmember_labels=np.asarray(dataset.y_test), delta=config.delta, seed=seed, confidence=confidence,
    )
    k = min(len(dataset.y_train), len(dataset.y_test))
    canary = canary_audit(config, dataset=dataset, canaries=canaries, seed=seed,
                          confidence=confidence) if canaries else None
    return AuditReport(
        run_id=run_id, epsilon=float(epsilon), delta=config.delta, private=config.private,
        model_source=model_source, members=k, nonmembers=k, attacks=attacks, canary=canary,
        confidence=confidence, seconds=time.perf_counter() - started, created=time.time(), notes=tuple(notes),
    )


def _check_canaries(canaries: int, n_test: int) -> None:
    """Canaries come from the held-out rows, and fewer than ``MIN_CANARIES`` can show nothing."""
    if isinstance(canaries, bool) or not isinstance(canaries, int) or not MIN_CANARIES <= canaries <= n_test:
        raise AuditError(f"{canaries!r} is out of range for a dataset with {n_test} held-out rows",
                         field="canaries", allowed=f"a whole number from {MIN_CANARIES} to {n_test}")


def canary_audit(config: "DPConfig", *, dataset: "Dataset", canaries: int, seed: int = AUDIT_SEED,
                 confidence: float = CONFIDENCE) -> CanaryReport:
    """Train ``config`` once on its training set plus a coin-flipped half of ``canaries`` mislabelled
    held-out rows, and bound ε from how well the canaries' losses tell which were included.

    The canary rows leave the test set of that training; its ε (the trainer's, for the larger n) is
    the one the bound is set against.
    """
    from dpcore.data import Dataset
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
    with_canaries = Dataset(info=info, x_train=x_train, y_train=y_train, x_test=dataset.x_test[keep],
                            y_test=dataset.y_test[keep])

    kept: list[list[np.ndarray]] = []
    result = training.train(config, dataset=with_canaries, on_weights=kept.append)
    if result.status != "completed" or not kept:
        raise AuditError(f"the canary training did not complete: {result.error or result.status}",
                         field="canaries")
    logits = models.predict_logits(config, weights=kept[0], x=x_canary, num_classes=classes)
    scores = -example_losses(logits, y_canary)
    r, v, bound = best_canary_bound(scores, included, delta=config.delta, confidence=confidence)
    return CanaryReport(
        canaries=canaries, included=int(included.sum()), guesses=r, correct=v, epsilon_lower_bound=bound,
        epsilon=float(result.epsilon), delta=config.delta, n_train=n_train, test_accuracy=float(result.test_accuracy),
        confidence=confidence, seconds=time.perf_counter() - started,
    )


def model_weights(store: "RunStore", run_id: int) -> tuple[list[np.ndarray], str, tuple[str, ...]]:
    """A completed run's model: its stored weights, else the same config retrained from its seed.

    Returns (weights, where they came from, notes). A secure-mode run drew secret randomness, so
    without stored weights it cannot be rebuilt and is refused.
    """
    from dpcore.store import FINISHED_STATUSES  # the store reads audits, so it is imported late

    record = store.get_run(run_id)
    if record.status not in FINISHED_STATUSES:
        raise AuditError(f"run {run_id} is {record.status}; an audit needs the model of a finished run",
                         allowed="a completed run, or one stopped by its ε budget")
    weights = store.load_weights(run_id)
    if weights is not None:
        return weights, MODEL_STORED, ()
    if record.config.secure_mode:
        raise AuditError(
            f"run {run_id} was trained in secure mode (secret sampling and noise) and its weights were not "
            "kept, so it cannot be retrained identically",
            allowed="a completed run whose weights are stored, or one trained without secure mode")
    from dpcore.dpsgd import training

    kept: list[list[np.ndarray]] = []
    result = training.train(record.config, on_weights=kept.append)
    if result.status != "completed" or not kept:
        raise AuditError(f"retraining run {run_id} did not complete: {result.error or result.status}")
    notes = []
    if record.test_accuracy is not None and result.test_accuracy != record.test_accuracy:
        notes.append(f"the retrained model's test accuracy ({result.test_accuracy:.4f}) differs from the "
                     f"run's ({record.test_accuracy:.4f}): floating-point arithmetic did not repeat exactly, "
                     "so the audited model is a close copy of the run's, not the same one")
    return kept[0], MODEL_RETRAINED, tuple(notes)


def audit_run(store: "RunStore", run_id: int, *, canaries: int = 0, seed: int = AUDIT_SEED,
              save: bool = True) -> AuditReport:
    """Audit a stored run and (``save``) keep the report with it, replacing an earlier audit."""
    record = store.get_run(run_id)
    if canaries:
        from dpcore import data

        _check_canaries(canaries, data.config_dataset_info(record.config).n_test)
    started = time.perf_counter()
    weights, source, notes = model_weights(store, run_id)
    report = audit_model(record.config, weights=weights, epsilon=record.epsilon, canaries=canaries,
                         run_id=run_id, model_source=source, notes=notes, seed=seed)
    report = dataclasses.replace(report, seconds=time.perf_counter() - started)
    if save:
        store.save_audit(run_id, report.to_json())
    return report


def audit_by_default(config: "DPConfig") -> bool:
    """Whether a run of ``config`` is audited when it ends unless the person turns it off (small built-in data)."""
    return config.dataset in AUDIT_BY_DEFAULT_DATASETS


def attack_rows(report: AuditReport) -> list[dict[str, Any]]:
    """One row per attack for a table: AUC, advantage, TPR at FPR 1% and 0.1%, the ε lower bound, the sample."""
    return [{
        "attack": a.attack, "AUC": a.auc, "advantage": a.advantage, "TPR at 1% FPR": a.tpr_at_1pct_fpr,
        "TPR at 0.1% FPR": a.tpr_at_01pct_fpr, "ε lower bound": a.bound.epsilon,
        "judged on": f"{a.eval_members} members + {a.eval_nonmembers} non-members",
    } for a in report.attacks]


def verdict(report: AuditReport) -> str:
    """One sentence that sets the empirical ε lower bound against the accounted ε."""
    bound = report.epsilon_lower_bound
    level = f"{report.confidence:.0%}"
    if math.isinf(report.epsilon):
        if bound > 0:
            return (f"Non-private run: the attacks prove ε ≥ {bound:.2f} ({level} confidence); nothing "
                    "limits what this model reveals about its training rows.")
        return ("Non-private run: these attacks prove nothing here, but no guarantee limits what the "
                "model reveals; a stronger attack may well succeed.")
    if bound > report.epsilon:
        return (f"The attacks prove ε ≥ {bound:.2f} ({level} confidence), above the accounted ε = "
                f"{report.epsilon:.2f}: the accounting or the training is wrong, or this is the "
                f"{1 - report.confidence:.0%} chance that the bound fails.")
    return (f"The attacks prove ε ≥ {bound:.2f} ({level} confidence), within the accounted "
            f"ε = {report.epsilon:.2f}, as a correctly accounted run must: the bound of a correct run "
            "can never exceed its ε. A gap means these attacks are weaker than the worst case ε allows.")


def stored_audit(store: "RunStore", run_id: int) -> Optional[AuditReport]:
    """The latest audit kept with a run, or None when it has none."""
    text = store.get_audit(run_id)
    return None if text is None else AuditReport.from_json(text)
