"""Which PLD grid a query uses: the one asked for, or the first coarser one whose size and time fit the bounds.

One step's grid is estimated from the privacy loss's range and the composed grid from dp_accounting's
truncation bound (measured on the coarsest grid and scaled); both use pessimistic discretisation,
so every grid gives an upper bound. The time is estimated from the grid points of every noise level's
step PLD and from the compositions: one per block of equal σ (per epoch, for a per-epoch curve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Optional

from dp_accounting.pld import common as pld_common
from dp_accounting.pld import privacy_loss_mechanism

from dpcore.privacy.composition import pld_per_unit
from dpcore.privacy.events import Blocks
from dpcore.privacy.limits import (
    _PLD_LOG_MASS_TRUNCATION,
    _PLD_TAIL_MASS_TRUNCATION,
    INTERACTIVE_PLD_INTERVAL,
    MAX_PLD_CURVE_WORK,
    MAX_PLD_POINTS,
    MAX_PLD_UNIT_POINTS,
    PLD_COMPOSED_POINT_SECONDS,
    PLD_CURVE_WORK_SECONDS,
    PLD_INTERVALS,
    PLD_LEVEL_SECONDS,
    PLD_UNIT_POINT_SECONDS,
    PRECISE_PLD_INTERVAL,
    AccountingError,
    query_seconds,
)

if TYPE_CHECKING:
    pass

# A schedule's step PLDs are estimated at no more than this many of its noise levels: the levels,
# sorted, are grouped, and each group counted at its smallest σ (the widest grid of the group).
_LEVEL_GROUPS = 16


@dataclass(frozen=True)
class PldPlan:
    """The grid a PLD query will use and its estimated work there."""

    grid: float
    seconds: float
    levels: int  # distinct noise levels, each a step PLD to build
    compositions: int  # blocks of equal σ composed (per epoch for a curve)
    composed_points: float  # points of the whole run's composed PLD (both adjacencies)


def requested_grid(accountant: str, interactive: bool) -> float:
    if accountant != "pld":
        return 0.0
    return INTERACTIVE_PLD_INTERVAL if interactive else PRECISE_PLD_INTERVAL


def plan_pld(
    q: float,
    run_blocks: Blocks,
    count: int,
    *,
    interactive: bool,
    epoch_blocks: Optional[tuple[Blocks, ...]] = None,
) -> PldPlan:
    """The first grid, from the one asked for, whose estimated size and time are within bounds.

    ``run_blocks`` are the whole run's blocks (σ, count) in step order and ``count`` the step events
    composed; ``epoch_blocks`` (a per-epoch curve) the blocks of each epoch. Grid sizes are estimated
    at the run's smallest σ, the widest grid it can need.
    """
    levels = sorted({sigma for sigma, _ in run_blocks})
    size = -(-len(levels) // _LEVEL_GROUPS)
    groups = tuple((levels[i], len(levels[i : i + size])) for i in range(0, len(levels), size))
    # Each level is estimated at its group's smallest σ (more points than its own).
    widest = {sigma: levels[(index // size) * size] for index, sigma in enumerate(levels)}
    compositions = tuple(
        (widest[sigma], steps)
        for blocks in (epoch_blocks if epoch_blocks is not None else (run_blocks,))
        for sigma, steps in blocks
    )
    return _fitting_plan(
        q,
        groups,
        compositions,
        int(count),
        epoch_blocks is not None,
        requested_grid("pld", interactive),
        query_seconds(),
    )


@lru_cache(maxsize=1024)
def _fitting_plan(
    q: float,
    groups: tuple[tuple[float, int], ...],
    compositions: tuple[tuple[float, int], ...],
    count: int,
    curve: bool,
    start: float,
    limit: float,
) -> PldPlan:
    """The first grid from ``start`` within the bounds. Composed sizes are measured once on the coarsest
    grid (cheap to build) and scaled: a grid ten times finer holds ten times the points."""
    coarsest = PLD_INTERVALS[-1]
    noise_multiplier = groups[0][0]
    levels = sum(members for _, members in groups)
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
        seconds, curve_work = _pld_seconds(q, groups, compositions, interval, sum(sizes))
        if curve and curve_work > MAX_PLD_CURVE_WORK:  # ε after each epoch: one composition per block
            refusal = AccountingError(
                "epochs",
                f"a per-epoch PLD curve would take about "
                f"{curve_work:.2g} grid operations at discretisation {interval:g} "
                f"(the bound is {MAX_PLD_CURVE_WORK:.2g})",
                allowed="fewer epochs or more noise, or accountant 'rdp'",
            )
            continue
        if seconds > limit:
            refusal = pld_time_refusal(
                seconds=seconds, limit=limit, levels=levels, compositions=len(compositions), grid=interval
            )
            continue
        return PldPlan(
            grid=interval,
            seconds=seconds,
            levels=levels,
            compositions=len(compositions),
            composed_points=float(sum(sizes)),
        )
    assert refusal is not None
    raise refusal


def _pld_seconds(
    q: float,
    groups: tuple[tuple[float, int], ...],
    compositions: tuple[tuple[float, int], ...],
    interval: float,
    composed_points: float,
) -> tuple[float, float]:
    """(estimated seconds, composition work in grid points): every level's step PLD built (each group's
    levels at its smallest σ), each distinct block self-composed into a part of at most ``count`` times its
    step's points (and at most the whole run's ``composed_points``), and each part composed onto the
    running total, whose size grows by at most the part's."""
    unit_points = sum(members * _pld_unit_points(q, sigma, interval) for sigma, members in groups)
    parts: dict[tuple[float, int], float] = {}
    running = work = 0.0
    for sigma, steps in compositions:
        if (sigma, steps) not in parts:
            parts[(sigma, steps)] = min(composed_points, steps * _pld_unit_points(q, sigma, interval))
        running = min(composed_points, running + parts[(sigma, steps)])
        work += running
    levels = sum(members for _, members in groups)
    seconds = (
        levels * PLD_LEVEL_SECONDS
        + unit_points * PLD_UNIT_POINT_SECONDS
        + sum(parts.values()) * PLD_COMPOSED_POINT_SECONDS
        + work * PLD_CURVE_WORK_SECONDS
    )
    return seconds, work


def pld_time_refusal(
    *, seconds: float, limit: float, levels: int, compositions: int, grid: float, what: str = "this query"
) -> AccountingError:
    """The refusal of a PLD query estimated to take more than ``limit`` seconds, naming what to change."""
    field, allowed = (
        ("noise_schedule", "fewer noise levels: a higher noise floor, or a smaller σ_0")
        if levels > 1
        else ("epochs", "fewer epochs or more noise, or accountant 'rdp'")
    )
    return AccountingError(
        field,
        f"the PLD accountant would need about {seconds:.0f} s for {what} at discretisation {grid:g} "
        f"({levels:,} noise level(s) to build, {compositions:,} composition(s); the bound is {limit:g} s)",
        allowed=allowed,
    )


def _pld_unit_points(q: float, noise_multiplier: float, interval: float) -> float:
    """Points of one step's PLD grid, from the privacy loss's range (computed without building the grid)."""
    return _pld_loss_range(q, noise_multiplier) / interval + 1


@lru_cache(maxsize=4096)
def _pld_loss_range(q: float, noise_multiplier: float) -> float:
    """The widest range of one step's privacy loss, over both adjacencies (dp_accounting's Connect-the-Dots bounds)."""
    width = 0.0
    for adjacency in (privacy_loss_mechanism.AdjacencyType.REMOVE, privacy_loss_mechanism.AdjacencyType.ADD):
        loss = privacy_loss_mechanism.GaussianPrivacyLoss(
            noise_multiplier,
            pessimistic_estimate=True,
            log_mass_truncation_bound=_PLD_LOG_MASS_TRUNCATION,
            sampling_prob=q,
            adjacency_type=adjacency,
        )
        bounds = loss.connect_dots_bounds()
        width = max(width, bounds.epsilon_upper - bounds.epsilon_lower)
    return width if math.isfinite(width) else math.inf


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
