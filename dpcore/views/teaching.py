"""The small, exact examples behind the Learn page (the Gaussian mechanism, clipping, private means), and
the plain readings of an audit's numbers that the audit view shows beside them."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist

from dp_accounting.pld import common, privacy_loss_mechanism

from dpcore.audit.report import AttackReport, AuditReport, RocCurve
from dpcore.errors import UserInputError


def normal_pdf(x: float, *, mean: float = 0.0, sigma: float = 1.0) -> float:
    """The density of N(mean, sigma²) at x."""
    z = (x - mean) / sigma
    return math.exp(-0.5 * z * z) / (sigma * math.sqrt(2.0 * math.pi))


def gaussian_delta(epsilon: float, *, sigma: float, sensitivity: float = 1.0) -> float:
    """The exact δ at which the Gaussian mechanism with noise ``sigma`` is (ε, δ)-DP, from dp_accounting."""
    _positive("sigma", sigma)
    _positive("sensitivity", sensitivity)
    loss = privacy_loss_mechanism.GaussianPrivacyLoss(sigma, sensitivity=sensitivity)
    return max(0.0, float(loss.get_delta_for_epsilon(epsilon)))


def gaussian_epsilon(delta: float, *, sigma: float, sensitivity: float = 1.0) -> float:
    """The smallest ε for which the Gaussian mechanism is (ε, δ)-DP, by bisection on the exact δ(ε)."""
    if not 0.0 < delta < 1.0:
        raise UserInputError("delta", f"{delta!r} is out of range", allowed="0 < delta < 1")
    if gaussian_delta(0.0, sigma=sigma, sensitivity=sensitivity) <= delta:
        return 0.0
    low, high = 0.0, 1.0
    while gaussian_delta(high, sigma=sigma, sensitivity=sensitivity) > delta:
        high *= 2.0
        if high > 1e4:
            return math.inf
    while high - low > 1e-9 * high:
        mid = 0.5 * (low + high)
        if gaussian_delta(mid, sigma=sigma, sensitivity=sensitivity) > delta:
            low = mid
        else:
            high = mid
    return high


def gaussian_sigma(epsilon: float, delta: float, *, sensitivity: float = 1.0) -> float:
    """The smallest noise σ that makes the Gaussian mechanism (ε, δ)-DP, from dp_accounting."""
    _positive("epsilon", epsilon)
    if not 0.0 < delta < 1.0:
        raise UserInputError("delta", f"{delta!r} is out of range", allowed="0 < delta < 1")
    loss = privacy_loss_mechanism.GaussianPrivacyLoss.from_privacy_guarantee(
        common.DifferentialPrivacyParameters(epsilon, delta), sensitivity=sensitivity
    )
    return float(loss.standard_deviation)


@dataclass(frozen=True)
class CountExample:
    """A noisy count on two neighbouring datasets: the two output densities and the ε they give."""

    count: int
    sigma: float
    delta: float
    xs: tuple[float, ...]
    density_without: tuple[float, ...]  # outputs when the person is not in the data (true count `count`)
    density_with: tuple[float, ...]  # outputs when the person is in the data (true count `count + 1`)
    epsilon: float


def count_example(*, count: int, sigma: float, delta: float, points: int = 301) -> CountExample:
    """The Gaussian mechanism releasing ``count`` + N(0, σ²) on D and on D plus one person."""
    _positive("sigma", sigma)
    span = 4.0 * sigma + 1.0
    low, high = count - span, count + 1 + span
    xs = tuple(low + (high - low) * i / (points - 1) for i in range(points))
    without = tuple(normal_pdf(x, mean=count, sigma=sigma) for x in xs)
    with_person = tuple(normal_pdf(x, mean=count + 1, sigma=sigma) for x in xs)
    return CountExample(
        count=count,
        sigma=sigma,
        delta=delta,
        xs=xs,
        density_without=without,
        density_with=with_person,
        epsilon=gaussian_epsilon(delta, sigma=sigma),
    )


@dataclass(frozen=True)
class ClippingExample:
    """Per-example gradient norms before and after clipping to ``clip``, with one outlier."""

    clip: float
    before: tuple[float, ...]
    after: tuple[float, ...]
    outlier_index: int


def clipping_example(*, clip: float, examples: int = 40, seed: int = 0) -> ClippingExample:
    """Synthetic per-example gradient norms (one unusual person far out) and their clipped norms."""
    _positive("clip", clip)
    rng = random.Random(seed)
    before = [rng.lognormvariate(0.0, 0.5) for _ in range(examples)]
    outlier = examples // 2
    before[outlier] = 12.0
    after = [min(norm, clip) for norm in before]
    return ClippingExample(clip=clip, before=tuple(before), after=tuple(after), outlier_index=outlier)


def private_mean_error(*, epsilon: float, delta: float, n: int) -> float:
    """Expected absolute error of a Gaussian-mechanism average of n values in [0, 1] at (ε, δ)."""
    if n < 1:
        raise UserInputError("n", f"{n!r} is too small", allowed="at least 1")
    sigma = gaussian_sigma(epsilon, delta, sensitivity=1.0 / n)
    return sigma * math.sqrt(2.0 / math.pi)


def gaussian_attack_roc(*, epsilon: float, delta: float, points: int = 201) -> RocCurve:
    """The strongest membership test against a Gaussian mechanism that is exactly (ε, δ)-DP.

    With noise σ calibrated to (ε, δ) at sensitivity 1, the likelihood-ratio test reaches
    TPR = Φ(Φ⁻¹(FPR) + 1/σ): it touches the boundary of what (ε, δ)-DP allows without crossing it.
    """
    shift = 1.0 / gaussian_sigma(epsilon, delta)
    unit = NormalDist()
    inner = [i / (points - 1) for i in range(1, points - 1)]
    # Points spaced evenly in the normal quantile make the curve smooth near FPR 0 and 1.
    fprs = [0.0] + [unit.cdf(-6.0 + 12.0 * u) for u in inner] + [1.0]
    tprs = [0.0] + [unit.cdf(unit.inv_cdf(f) + shift) for f in fprs[1:-1]] + [1.0]
    return RocCurve(fpr=tuple(fprs), tpr=tuple(tprs))


# -- reading an audit ---------------------------------------------------------------------------

# How many standard deviations from 0.5 an AUC must be before the readings call it better than chance.
CLEAR_AUC_SIGMAS = 2.0


def chance_auc_spread(members: int, nonmembers: int) -> float:
    """The standard deviation of the AUC of an attack that only guesses, judged on this many members
    and non-members: √((m + n + 1) / (12·m·n)), the Mann–Whitney statistic's under the null."""
    if members < 1 or nonmembers < 1:
        raise UserInputError("members", f"{members} members and {nonmembers} non-members", allowed="at least 1 each")
    return math.sqrt((members + nonmembers + 1) / (12.0 * members * nonmembers))


def audit_readings(report: AuditReport) -> tuple[str, ...]:
    """What an audit's numbers mean, in plain words: an AUC clearly above chance, an AUC below 0.5,
    a bound of 0, and ROC curves of attacks within chance that dip below the diagonal; only the
    readings that apply."""
    readings = []
    best = max(report.attacks, key=lambda a: a.auc)
    spread = chance_auc_spread(best.eval_members, best.eval_nonmembers)
    sample = f"{best.eval_members} members and {best.eval_nonmembers} non-members"
    if best.auc > 0.5 + CLEAR_AUC_SIGMAS * spread:
        readings.append(
            f"The {best.attack} attack tells training rows from unseen rows better than chance: AUC "
            f"{best.auc:.3f}, where guessing on {sample} scatters around 0.5 by about ±{spread:.3f}. "
            "The model gives away who was in its training data."
        )
    below = [a for a in report.attacks if a.auc < 0.5]
    if below:
        names = " and ".join(f"{a.attack} ({a.auc:.3f})" for a in below)
        readings.append(
            f"An AUC below 0.5, as for {names}, is noise, not a leak in reverse: an attack that only guesses "
            f"has an AUC that scatters around 0.5 by about ±{spread:.3f} on {sample}, so it lands below 0.5 "
            "about half the time. A real reverse signal would be far below 0.5, and would leak just as much."
        )
    unclear = tuple(a for a in report.attacks if a.auc <= 0.5 + CLEAR_AUC_SIGMAS * spread)
    if _dips_below_diagonal(unclear):
        readings.append(
            "Where a ROC curve dips below the diagonal, it is the same chance at work: on a finite sample "
            "each point's TPR and FPR wander a little above and below what guessing gives."
        )
    if report.epsilon_lower_bound == 0:
        readings.append(
            f"A bound of 0 means the attacks proved nothing above ε = 0 at {report.confidence:.0%} confidence: "
            "no leak was found with these attacks on these rows. It is not a proof of privacy; only the "
            "accounted ε is a guarantee, and a stronger attack may find more."
        )
    return tuple(readings)


def _dips_below_diagonal(attacks: tuple[AttackReport, ...]) -> bool:
    return any(tpr < fpr for a in attacks for fpr, tpr in zip(a.roc.fpr, a.roc.tpr))


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise UserInputError(name, f"{value!r} must be a positive number", allowed="> 0")
