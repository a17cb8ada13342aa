"""Composing a run's noise into ε: RDP added over steps, PLDs composed, each answer cached.

A private CSV preprocessing's Gaussian release and its thresholds' share of δ are composed here with
training's events. A served app asks all of this in its accountant processes (``dpcore.child_calls``),
so its own process keeps the GIL for its pages.

Where dp_accounting cannot answer as called, the answer stays an upper bound from dp_accounting:

* a step PLD whose hockey-stick values δ(ε) round out of order at their tail (tiny σ: "deltas are
  not in non-increasing order" from Connect-the-Dots) is built by dp_accounting's pessimistic
  Privacy Buckets instead (``pld_per_unit``), also an upper bound, a little looser;
* a step PLD on a few grid points is self-composed by FFT (``_self_composed``): dp_accounting's
  sparse path first computes size ** count exactly, a number with ~10^8 digits for 10^8 steps;
* a step RDP below dp_accounting's floating-point resolution (tiny q or huge σ: a Rényi divergence
  computed as 0 or slightly negative, where the true one is positive) gets a rounding allowance
  (``unit_rdp``), flagged as approximate. A 0 was worse than a refusal: it reads as "no privacy loss"
  and dp_accounting then reported ε = 0.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, NamedTuple, Optional

import dp_accounting
import numpy as np
from dp_accounting.pld import pld_pmf, pld_privacy_accountant, privacy_loss_distribution

from dpcore.privacy.events import RDP_ORDERS, Blocks, epsilon_from_rdp, event_rdp
from dpcore.privacy.limits import AccountingError

# The part of δ that the thresholds of a private CSV preprocessing spend: a value only one record
# holds is released with probability at most this, over all of that record's columns.
PREPROCESSING_THRESHOLD_SHARE = 0.1
# A step's RDP at order α that dp_accounting cannot resolve is raised by 2^-48 (α + 2) / (α − 1): its
# log A_α of a number near 1 is a sum of at most α + 2 series terms in double precision, each off by
# a few units of 2^-53; this allows 32 units per term. Compared with 40-digit mpmath integrals at
# q = 1e-8 to 1e-5 and σ = 5 to 1000, dp_accounting fell short of the true value by at most a quarter
# of this allowance, at integer and fractional orders alike.
RDP_ROUNDING_UNIT = 2.0**-48
_ORDERS = np.asarray(RDP_ORDERS)
RDP_ROUNDING_ALLOWANCE = RDP_ROUNDING_UNIT * (_ORDERS + 2.0) / (_ORDERS - 1.0)


def _threshold_terms(delta: float, preprocessing_noise: float) -> tuple[float, float]:
    """(δ for the accountant, ε to add): with private preprocessing its thresholds spend δ_t of δ and add
    log(1 / (1 − δ_t)) to ε (see ``preprocessing_cost``); without, (δ, 0)."""
    if preprocessing_noise <= 0:
        return delta, 0.0
    threshold_delta = PREPROCESSING_THRESHOLD_SHARE * delta
    return delta - threshold_delta, -math.log1p(-threshold_delta)


@lru_cache(maxsize=4096)
def composed_epsilon(
    q: float, blocks: Blocks, delta: float, accountant: str, grid: float, preprocessing_noise: float = 0.0
) -> float:
    delta, extra = _threshold_terms(delta, preprocessing_noise)
    if accountant == "rdp":
        rdp = _rdp_base(preprocessing_noise) + sum(rdp_per_unit(q, sigma) * count for sigma, count in blocks)
        assert isinstance(rdp, np.ndarray)  # a run's blocks hold at least one step, so the sum is a curve
        return epsilon_from_rdp(rdp, delta=delta) + extra
    composed = pld_per_unit(1.0, preprocessing_noise, grid) if preprocessing_noise > 0 else None
    for sigma, count in blocks:
        part = _self_composed(pld_per_unit(q, sigma, grid), count)
        composed = part if composed is None else composed.compose(part)
    return _pld_epsilon(composed, delta) + extra


@lru_cache(maxsize=1024)
def preprocessing_epsilon(preprocessing_noise: float, delta: float, accountant: str, grid: float) -> float:
    """ε of the private preprocessing alone: one Gaussian release, thresholds included."""
    accountant_delta, extra = _threshold_terms(delta, preprocessing_noise)
    if accountant == "rdp":
        rdp = _rdp_base(preprocessing_noise)
        assert isinstance(rdp, np.ndarray)  # asked only for a release's noise, σ > 0
        return epsilon_from_rdp(rdp, delta=accountant_delta) + extra
    return _pld_epsilon(pld_per_unit(1.0, preprocessing_noise, grid), accountant_delta) + extra


@lru_cache(maxsize=512)
def curve_epsilons(
    q: float,
    epoch_blocks: tuple[Blocks, ...],
    delta: float,
    accountant: str,
    grid: float,
    preprocessing_noise: float = 0.0,
) -> tuple[float, ...]:
    delta, extra = _threshold_terms(delta, preprocessing_noise)
    curve = []
    if accountant == "rdp":
        # Counts per σ so far, summed as in composed_epsilon: the last epoch's ε is bit for bit the run's.
        counts: dict[float, int] = {}
        base = _rdp_base(preprocessing_noise)
        for blocks in epoch_blocks:
            for sigma, count in blocks:
                counts[sigma] = counts.get(sigma, 0) + count
            rdp = base + sum(rdp_per_unit(q, sigma) * count for sigma, count in counts.items())
            assert isinstance(rdp, np.ndarray)  # the first epoch has at least one step, so the sum is a curve
            curve.append(epsilon_from_rdp(rdp, delta=delta) + extra)
        return tuple(curve)
    parts: dict[tuple[float, int], privacy_loss_distribution.PrivacyLossDistribution] = {}
    composed = pld_per_unit(1.0, preprocessing_noise, grid) if preprocessing_noise > 0 else None
    for blocks in epoch_blocks:
        for block in blocks:
            if block not in parts:
                parts[block] = _self_composed(pld_per_unit(q, block[0], grid), block[1])
            composed = parts[block] if composed is None else composed.compose(parts[block])
        curve.append(_pld_epsilon(composed, delta) + extra)
    return tuple(curve)


def _rdp_base(preprocessing_noise: float) -> np.ndarray | float:
    """RDP of the preprocessing's Gaussian release (0 without one); RDP adds up over composition."""
    return rdp_per_unit(1.0, preprocessing_noise) if preprocessing_noise > 0 else 0.0


def rdp_per_unit(q: float, noise_multiplier: float) -> np.ndarray:
    """RDP of one step event at RDP_ORDERS (RDP composes additively over steps): ``unit_rdp``'s curve."""
    return unit_rdp(q, noise_multiplier).rdp


def rdp_rounded_up(q: float, noise_multiplier: float) -> bool:
    """Whether one step's RDP carries the rounding allowance (dp_accounting could not resolve it)."""
    return unit_rdp(q, noise_multiplier).rounded_up


class UnitRdp(NamedTuple):
    """One step's RDP at RDP_ORDERS, and whether the rounding allowance was added to it."""

    rdp: np.ndarray
    rounded_up: bool


@lru_cache(maxsize=1024)
def unit_rdp(q: float, noise_multiplier: float) -> UnitRdp:
    """One step's RDP (``_step_rdp``), cached; its array is read-only, as every caller shares it."""
    answer = _step_rdp(q, noise_multiplier)
    answer.rdp.setflags(write=False)
    return answer


def _step_rdp(q: float, noise_multiplier: float) -> UnitRdp:
    """dp_accounting's RDP of one step. Where q²/σ² is below its resolution it returns Rényi divergences of
    0 or a few units of 2^-53 below (the true ones, for any finite σ, are positive): every order then
    gets ``RDP_ROUNDING_ALLOWANCE`` on top of max(value, 0), an upper bound (see the constant)."""
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    rdp = event_rdp(gaussian if q >= 1.0 else dp_accounting.PoissonSampledDpEvent(q, gaussian))
    if np.all(rdp > 0):
        return UnitRdp(rdp, False)
    return UnitRdp(np.maximum(rdp, 0.0) + RDP_ROUNDING_ALLOWANCE, True)


# -- any run's event, composed from its steps as above ---------------------------------------------


def _step_of(event: dp_accounting.DpEvent) -> Optional[tuple[float, float]]:
    """(q, σ) of a step event (a Gaussian, Poisson-sampled or not); None for any other event."""
    if isinstance(event, dp_accounting.PoissonSampledDpEvent) and isinstance(
        event.event, dp_accounting.GaussianDpEvent
    ):
        return float(event.sampling_probability), float(event.event.noise_multiplier)
    if isinstance(event, dp_accounting.GaussianDpEvent):
        return 1.0, float(event.noise_multiplier)
    return None


def event_rdp_bound(event: dp_accounting.DpEvent) -> UnitRdp:
    """RDP at RDP_ORDERS of ``event`` (runs' events composed and self-composed), from its steps' cached
    RDP with the rounding allowance where a step needs it; ∞ for a non-private event. Events of other
    kinds go to dp_accounting's RDP accountant as they are."""
    if isinstance(event, dp_accounting.ComposedDpEvent):
        parts = [event_rdp_bound(part) for part in event.events]
        total = sum((part.rdp for part in parts), np.zeros(len(RDP_ORDERS)))
        return UnitRdp(total, any(part.rounded_up for part in parts))
    if isinstance(event, dp_accounting.SelfComposedDpEvent):
        inner = event_rdp_bound(event.event)
        return UnitRdp(inner.rdp * event.count, inner.rounded_up)
    step = _step_of(event)
    if step is not None:
        return unit_rdp(*step)
    if isinstance(event, dp_accounting.NoOpDpEvent):
        return UnitRdp(np.zeros(len(RDP_ORDERS)), False)
    return UnitRdp(event_rdp(event), False)


def event_pld_epsilon(event: dp_accounting.DpEvent, *, delta: float, grid: float) -> float:
    """ε at ``delta`` of ``event`` by PLD on ``grid``, composed from its steps' cached PLDs (self-compositions
    by ``_self_composed``); ∞ if any part is not private. Events of other kinds go to dp_accounting's PLD
    accountant as they are."""
    composed = _event_pld(event, grid)
    if composed is _NOT_PRIVATE:
        return math.inf
    return 0.0 if composed is None else _pld_epsilon(composed, delta)


_NOT_PRIVATE = object()


def _event_pld(event: dp_accounting.DpEvent, grid: float) -> Any:
    """The PLD of ``event``, None for one that releases nothing, or _NOT_PRIVATE."""
    if isinstance(event, dp_accounting.NonPrivateDpEvent):
        return _NOT_PRIVATE
    if isinstance(event, dp_accounting.NoOpDpEvent):
        return None
    if isinstance(event, dp_accounting.ComposedDpEvent):
        composed = None
        for part in (_event_pld(e, grid) for e in event.events):
            if part is _NOT_PRIVATE:
                return _NOT_PRIVATE
            if part is not None:
                composed = part if composed is None else composed.compose(part)
        return composed
    if isinstance(event, dp_accounting.SelfComposedDpEvent):
        inner = _event_pld(event.event, grid)
        return inner if inner is None or inner is _NOT_PRIVATE else _self_composed(inner, event.count)
    step = _step_of(event)
    if step is not None:
        return pld_per_unit(step[0], step[1], grid)
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=grid)
    if not accountant.supports(event):
        return _NOT_PRIVATE
    accountant.compose(event)
    return accountant._pld  # dp_accounting keeps an accountant's composed PLD private


@lru_cache(maxsize=256)
def pld_per_unit(q: float, noise_multiplier: float, grid: float) -> privacy_loss_distribution.PrivacyLossDistribution:
    """dp_accounting's pessimistic PLD of one step: Connect-the-Dots, or Privacy Buckets where that fails.

    Connect-the-Dots needs the hockey-stick values δ(ε) it computes on the grid to be non-increasing;
    for a tiny σ their far tail (around 1e-24) rounds up and down and it refuses. Privacy Buckets rounds
    each privacy loss up instead: an upper bound too, within about one grid interval of the other.
    """
    try:
        return _gaussian_pld(q, noise_multiplier, grid, connect_dots=True)
    except ValueError:
        pass
    try:
        return _gaussian_pld(q, noise_multiplier, grid, connect_dots=False)
    except ValueError as exc:
        raise AccountingError(
            "noise_multiplier",
            f"dp_accounting cannot build the PLD of one step at noise multiplier {noise_multiplier:g} "
            f"(sampling rate {q:.3g}, grid {grid:g}): {str(exc)[:120]}",
            allowed="another noise multiplier, or accountant 'rdp'",
        ) from None


def _gaussian_pld(
    q: float, noise_multiplier: float, grid: float, *, connect_dots: bool
) -> privacy_loss_distribution.PrivacyLossDistribution:
    return privacy_loss_distribution.from_gaussian_mechanism(
        noise_multiplier,
        sampling_prob=q,
        value_discretization_interval=grid,
        pessimistic_estimate=True,
        use_connect_dots=connect_dots,
    )


def _self_composed(
    unit: privacy_loss_distribution.PrivacyLossDistribution, count: int
) -> privacy_loss_distribution.PrivacyLossDistribution:
    """``unit`` composed ``count`` times, as dp_accounting's ``self_compose`` would, but never by its sparse loop.

    A sparse PMF of s points goes dense (FFT) in dp_accounting once s ** count exceeds its sparse
    limit; it computes that power exactly, which for a 3-point step PLD and 6·10^7 steps took minutes,
    and for a 1-point PMF it composes once per step. Here such a PMF is made dense first: the same
    arithmetic dp_accounting then does, in time independent of ``count``.
    """
    # dp_accounting keeps a PLD's two PMFs private; these are the ones its self_compose composes.
    remove, add = unit._pmf_remove, None if unit._symmetric else unit._pmf_add
    if _goes_dense(remove, count) or (add is not None and _goes_dense(add, count)):
        unit = privacy_loss_distribution.PrivacyLossDistribution(
            remove.to_dense_pmf(), None if add is None else add.to_dense_pmf()
        )
    return unit.self_compose(count)


def _goes_dense(pmf: pld_pmf.PLDPmf, count: int) -> bool:
    """Whether a sparse ``pmf`` self-composed ``count`` times ends dense (or would loop once per step)."""
    if not isinstance(pmf, pld_pmf.SparsePLDPmf) or count <= 1:
        return False
    return pmf.size <= 1 or count * math.log(pmf.size) > math.log(_SPARSE_LIMIT)


# dp_accounting's largest sparse PMF (pld_pmf._MAX_PMF_SPARSE_SIZE, private): beyond it, dense.
_SPARSE_LIMIT = 1000


def _pld_epsilon(pld: privacy_loss_distribution.PrivacyLossDistribution, delta: float) -> float:
    return float(pld.get_epsilon_for_delta(delta))
