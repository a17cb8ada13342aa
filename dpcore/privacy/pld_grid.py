"""Which PLD grid a query uses: the one asked for, or the first coarser one whose size fits the bounds.

One step's grid is estimated from the privacy loss's range and the composed grid from dp_accounting's
truncation bound (measured on the coarsest grid and scaled); both use pessimistic discretisation,
so every grid gives an upper bound.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Optional

from dp_accounting.pld import common as pld_common
from dp_accounting.pld import privacy_loss_mechanism

from dpcore.privacy.composition import pld_per_unit
from dpcore.privacy.events import sampling_probability, unit_count
from dpcore.privacy.limits import (
    _PLD_LOG_MASS_TRUNCATION,
    _PLD_TAIL_MASS_TRUNCATION,
    INTERACTIVE_PLD_INTERVAL,
    MAX_PLD_CURVE_WORK,
    MAX_PLD_POINTS,
    MAX_PLD_UNIT_POINTS,
    PLD_INTERVALS,
    PRECISE_PLD_INTERVAL,
    AccountingError,
)
from dpcore.privacy.noise import CONSTANT_NOISE, NoiseSchedule

if TYPE_CHECKING:
    pass


def requested_grid(accountant: str, interactive: bool) -> float:
    if accountant != "pld":
        return 0.0
    return INTERACTIVE_PLD_INTERVAL if interactive else PRECISE_PLD_INTERVAL


def planned_grid(
    n: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    accountant: str,
    sampling: str,
    interactive: bool,
    *,
    per_epoch: bool,
    schedule: NoiseSchedule = CONSTANT_NOISE,
) -> float:
    """0 for RDP; for PLD the first grid, from the one asked for, whose estimated cost is within bounds.

    A decaying schedule is estimated as if every step had its floor's noise, the widest grid it can need.
    """
    if accountant != "pld":
        return 0.0
    sigma = min(float(noise_multiplier), float(schedule.floor)) if schedule.decays else float(noise_multiplier)
    return _fitting_interval(
        sampling_probability(n, batch_size, sampling),
        sigma,
        unit_count(n, batch_size, epochs, sampling),
        int(epochs) if per_epoch else 0,
        requested_grid(accountant, interactive),
    )


@lru_cache(maxsize=1024)
def _fitting_interval(q: float, noise_multiplier: float, count: int, curve_epochs: int, start: float) -> float:
    """The first grid from ``start`` within the bounds. Composed sizes are measured once on the coarsest
    grid (cheap to build) and scaled: a grid ten times finer holds ten times the points."""
    coarsest = PLD_INTERVALS[-1]
    refusal: Optional[AccountingError] = None
    coarse_sizes: tuple[int, ...] = ()
    if _pld_unit_points(q, noise_multiplier, coarsest) <= MAX_PLD_UNIT_POINTS:
        coarse_sizes = _pld_composed_points(q, noise_multiplier, coarsest, count)
    for interval in (i for i in PLD_INTERVALS if i >= start):
        unit_points = _pld_unit_points(q, noise_multiplier, interval)
        if unit_points > MAX_PLD_UNIT_POINTS:
            refusal = AccountingError(
                "noise_multiplier",
                f"{noise_multiplier:g} is too small for the PLD accountant: one step's "
                f"privacy-loss grid would need {unit_points:.2g} points at discretisation {interval:g} "
                f"(the bound is {MAX_PLD_UNIT_POINTS:,})",
                allowed="a larger noise multiplier, or accountant 'rdp'",
            )
            continue
        sizes = tuple(size * coarsest / interval for size in coarse_sizes)
        if max(sizes) > MAX_PLD_POINTS:
            refusal = AccountingError(
                "epochs",
                f"{count:,} composed steps at noise multiplier {noise_multiplier:g} are too many for "
                f"the PLD accountant: the composed grid would need {max(sizes):.2g} points at discretisation "
                f"{interval:g} (the bound is {MAX_PLD_POINTS:,})",
                allowed="fewer epochs or more noise, or accountant 'rdp'",
            )
            continue
        if curve_epochs and curve_epochs * sum(sizes) > MAX_PLD_CURVE_WORK:
            refusal = AccountingError(
                "epochs",
                f"a per-epoch PLD curve over {curve_epochs:,} epochs would take about "
                f"{curve_epochs * sum(sizes):.2g} grid operations at discretisation {interval:g} "
                f"(the bound is {MAX_PLD_CURVE_WORK:.2g})",
                allowed="fewer epochs or more noise, or accountant 'rdp'",
            )
            continue
        return interval
    assert refusal is not None
    raise refusal


@lru_cache(maxsize=1024)
def _pld_unit_points(q: float, noise_multiplier: float, interval: float) -> float:
    """Points of one step's PLD grid, from the privacy loss's range (computed without building the grid)."""
    points = 0.0
    for adjacency in (privacy_loss_mechanism.AdjacencyType.REMOVE, privacy_loss_mechanism.AdjacencyType.ADD):
        loss = privacy_loss_mechanism.GaussianPrivacyLoss(
            noise_multiplier,
            pessimistic_estimate=True,
            log_mass_truncation_bound=_PLD_LOG_MASS_TRUNCATION,
            sampling_prob=q,
            adjacency_type=adjacency,
        )
        bounds = loss.connect_dots_bounds()
        points = max(points, (bounds.epsilon_upper - bounds.epsilon_lower) / interval + 1)
    return points


@lru_cache(maxsize=1024)
def _pld_composed_points(q: float, noise_multiplier: float, interval: float, count: int) -> tuple[int, ...]:
    """Grid points of each distinct PMF after ``count`` compositions, by dp_accounting's own truncation bound."""
    unit = pld_per_unit(q, noise_multiplier, interval)
    # dp_accounting has no public accessor for the PMFs; these are the arrays self_compose convolves.
    pmfs = [unit._pmf_remove] if unit._symmetric else [unit._pmf_remove, unit._pmf_add]
    sizes = []
    for pmf in pmfs:
        probs = pmf.to_dense_pmf()._probs
        low, high = pld_common.compute_self_convolve_bounds(probs, count, _PLD_TAIL_MASS_TRUNCATION)
        sizes.append(max(int(high) - int(low) + 1, len(probs)))
    return tuple(sizes)
