"""What (ε, δ)-DP allows an attacker, and the statistics that turn attack outcomes into ε lower bounds.

ROC metrics on scores, Clopper–Pearson intervals, and the one-run canary bound of Steinke, Nasr &
Jagielski (NeurIPS 2023); pure functions of counts and scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dpcore.audit.report import BOUND_TNR, BOUND_TPR, CONFIDENCE, EpsilonBound, RocCurve

# Canary guesses tried: these fractions of m, half guessed "in" and half "out"; Bonferroni over them.
CANARY_GUESS_FRACTIONS = (0.1, 0.2, 0.5, 1.0)

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


def inequality_epsilons(
    tpr: np.ndarray | float, fpr: np.ndarray | float, *, delta: float
) -> tuple[np.ndarray, np.ndarray]:
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


def clopper_pearson(
    successes: int | np.ndarray, trials: int, *, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
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


def _counts_at(
    labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """True and false positives when "member" means score ≥ threshold, and the two class sizes."""
    members = np.sort(scores[labels == 1])
    others = np.sort(scores[labels == 0])
    tp = len(members) - np.searchsorted(members, thresholds, side="left")
    fp = len(others) - np.searchsorted(others, thresholds, side="left")
    return tp, fp, len(members), len(others)


def _bounds(
    tp: np.ndarray, fp: np.ndarray, positives: int, negatives: int, *, delta: float, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per threshold: ε from each inequality with TPR bounded below and FPR above, and those bounds."""
    tpr_low, _ = clopper_pearson(tp, positives, confidence=confidence)
    _, fpr_high = clopper_pearson(fp, negatives, confidence=confidence)
    direct, mirror = inequality_epsilons(tpr_low, fpr_high, delta=delta)
    return direct, mirror, tpr_low, fpr_high


def epsilon_lower_bound(
    *,
    select_labels: np.ndarray,
    select_scores: np.ndarray,
    eval_labels: np.ndarray,
    eval_scores: np.ndarray,
    delta: float,
    confidence: float = CONFIDENCE,
) -> EpsilonBound:
    """An ε lower bound that holds with probability ``confidence``, without a multiple-comparison gain.

    The threshold (and which inequality to test) is the one with the largest Clopper–Pearson bound
    on the selection half; the bound is then computed once, on the evaluation half, at that
    threshold. The selection half may be the learned attack's training half.
    """
    select_labels, select_scores = np.asarray(select_labels), np.asarray(select_scores, dtype=float)
    eval_labels, eval_scores = np.asarray(eval_labels), np.asarray(eval_scores, dtype=float)
    thresholds = np.unique(select_scores)
    direct, mirror, _, _ = _bounds(
        *_counts_at(select_labels, select_scores, thresholds), delta=delta, confidence=confidence
    )
    use_mirror = bool(np.max(mirror) > np.max(direct))
    threshold = float(thresholds[int(np.argmax(mirror if use_mirror else direct))])
    tp, fp, positives, negatives = _counts_at(eval_labels, eval_scores, np.array([threshold]))
    direct, mirror, tpr_low, fpr_high = _bounds(tp, fp, positives, negatives, delta=delta, confidence=confidence)
    value = float((mirror if use_mirror else direct)[0])
    return EpsilonBound(
        epsilon=max(0.0, value),
        threshold=threshold,
        inequality=BOUND_TNR if use_mirror else BOUND_TPR,
        tpr=float(tp[0]) / positives,
        fpr=float(fp[0]) / negatives,
        tpr_low=float(tpr_low[0]),
        fpr_high=float(fpr_high[0]),
        confidence=confidence,
    )


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

    return float(
        brentq(lambda e: canary_p_value(m=m, r=r, v=v, epsilon=e, delta=delta) - significance, low, high, xtol=1e-9)
    )


def canary_guess_counts(m: int) -> tuple[int, ...]:
    """The guess counts r tried for m canaries: ``CANARY_GUESS_FRACTIONS`` of m, even, at least 2."""
    counts = {min(m - m % 2, max(2, 2 * round(f * m / 2))) for f in CANARY_GUESS_FRACTIONS}
    return tuple(sorted(counts))


def canary_guesses(scores: np.ndarray, included: np.ndarray, *, guesses: int) -> int:
    """How many of ``guesses`` guesses are right: "in" for the top half by score, "out" for the bottom half."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    k = guesses // 2
    included = np.asarray(included, dtype=bool)
    return int(included[order[:k]].sum() + (~included[order[len(order) - k :]]).sum())


def best_canary_bound(
    scores: np.ndarray, included: np.ndarray, *, delta: float, confidence: float = CONFIDENCE
) -> tuple[int, int, float]:
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
