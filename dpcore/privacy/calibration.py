"""Noise calibration: the smallest noise multiplier whose ε is at most a target, never above it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dpcore.config import MAX_NOISE
from dpcore.privacy.accounting import epsilon, epsilon_report
from dpcore.privacy.limits import RDP_LEVEL_SECONDS, AccountingError, calibration_seconds, check_query
from dpcore.privacy.noise import CONSTANT_NOISE, NoiseSchedule, schedule_of
from dpcore.privacy.search import MIN_CALIBRATED_NOISE, bracket_noise, refine_noise
from dpcore.privacy.work import QueryWork, check_seconds, plan_query
from dpcore.safe_io import quote

if TYPE_CHECKING:
    from dpcore.config import DPConfig


# The accountant queries a calibration typically asks (a bracketing step or two, then narrowing to 0.1%):
# its work is estimated as this many queries like the first (RDP: that many new noise levels).
CALIBRATION_QUERIES = 12


@dataclass(frozen=True)
class Calibration:
    """The smallest noise multiplier found whose ε does not exceed the target."""

    noise_multiplier: float
    epsilon: float
    target_epsilon: float
    approximate: bool = False  # ε came from a PLD grid coarser than the precise one (an upper bound)


# A calibrated noise multiplier is offered at this many decimals, rounded up (see ``offered_noise``).
NOISE_DECIMALS = 4


def offered_noise(noise_multiplier: float) -> float:
    """``noise_multiplier`` rounded up to NOISE_DECIMALS decimals: the σ a person is offered to apply.

    Up, never down: a smaller σ would spend more than the target ε. Its own ε is at most the found one's.
    """
    scale = 10**NOISE_DECIMALS
    return math.ceil(noise_multiplier * scale) / scale


def noise_text(noise_multiplier: float) -> str:
    """A noise multiplier as Calibrate shows it, at NOISE_DECIMALS decimals (one formatter for button and text)."""
    return f"{noise_multiplier:.{NOISE_DECIMALS}f}"


# -- calibration -------------------------------------------------------------------------------


def calibrate_noise(
    *,
    target_epsilon: float,
    n: int,
    batch_size: int,
    epochs: int,
    delta: float,
    accountant: str = "rdp",
    sampling: str = "poisson",
    interactive: bool = False,
    schedule: NoiseSchedule = CONSTANT_NOISE,
) -> Calibration:
    """Smallest noise multiplier (to 0.1% relative) whose ε is at most ``target_epsilon``; never above it.

    With a decaying ``schedule`` this is σ_0, searched no lower than the schedule's floor.
    """
    if (
        isinstance(target_epsilon, bool)
        or not isinstance(target_epsilon, (int, float))
        or not math.isfinite(target_epsilon)
        or target_epsilon <= 0
    ):
        raise AccountingError(
            "target_epsilon", f"{quote(target_epsilon)} is not a positive finite number", allowed="a number > 0"
        )
    lowest = max(MIN_CALIBRATED_NOISE, schedule.floor) if schedule.decays else MIN_CALIBRATED_NOISE
    check_query(
        n=n,
        batch_size=batch_size,
        noise_multiplier=max(1.0, lowest),
        epochs=epochs,
        delta=delta,
        accountant=accountant,
        sampling=sampling,
        schedule=schedule,
    )

    def eps_at(sigma: float) -> float:
        return epsilon(
            n=n,
            batch_size=batch_size,
            noise_multiplier=sigma,
            epochs=epochs,
            delta=delta,
            accountant=accountant,
            sampling=sampling,
            interactive=interactive,
            schedule=schedule,
        )

    def check_work(sigma: float) -> None:
        work = calibration_work(
            noise_multiplier=min(max(sigma, lowest), MAX_NOISE),
            n=n,
            batch_size=batch_size,
            epochs=epochs,
            accountant=accountant,
            sampling=sampling,
            interactive=interactive,
            schedule=schedule,
        )
        check_seconds(work, limit=calibration_seconds(), what=f"a calibration (about {CALIBRATION_QUERIES} queries)")

    check_work(1.0)  # before the search's start is computed (by a calibration of its own, for PLD)
    start = _starting_noise(
        target_epsilon=float(target_epsilon),
        n=n,
        batch_size=batch_size,
        epochs=epochs,
        delta=delta,
        accountant=accountant,
        sampling=sampling,
        schedule=schedule,
    )
    check_work(start)
    low, high = bracket_noise(
        eps_at,
        float(target_epsilon),
        start=start,
        factor=1.25 if accountant == "pld" else 2.0,
        lowest=lowest,
    )
    if low is not None:
        high, _ = refine_noise(eps_at, float(target_epsilon), low=low, high=high)
    report = epsilon_report(
        n=n,
        batch_size=batch_size,
        noise_multiplier=high,
        epochs=epochs,
        delta=delta,
        accountant=accountant,
        sampling=sampling,
        interactive=interactive,
        schedule=schedule,
    )
    return Calibration(
        noise_multiplier=high,
        epsilon=report.epsilon,
        target_epsilon=float(target_epsilon),
        approximate=report.approximate,
    )


def calibration_work(
    *,
    noise_multiplier: float,
    n: int,
    batch_size: int,
    epochs: int,
    accountant: str,
    sampling: str,
    interactive: bool,
    schedule: NoiseSchedule = CONSTANT_NOISE,
) -> QueryWork:
    """The estimated work of a calibration whose search starts at ``noise_multiplier``: ``CALIBRATION_QUERIES``
    PLD queries like the first, or the first RDP query's noise levels and one new level per query."""
    first = plan_query(
        n=n,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        accountant=accountant,
        sampling=sampling,
        interactive=interactive,
        per_epoch=False,
        schedule=schedule,
    )
    if accountant == "rdp":
        seconds = (first.levels + CALIBRATION_QUERIES) * RDP_LEVEL_SECONDS
    else:
        seconds = CALIBRATION_QUERIES * first.seconds
    return QueryWork(first.accountant, first.levels, first.compositions, first.grid, seconds)


def calibrate_noise_for_config(
    config: DPConfig, *, target_epsilon: float, n: int, interactive: bool = False
) -> Calibration:
    """``calibrate_noise`` for ``config``'s other settings and noise schedule (σ_0) on ``n`` training
    examples; it targets the ε of all the config's epochs (its budget is not applied)."""
    return calibrate_noise(
        target_epsilon=target_epsilon,
        n=n,
        batch_size=config.batch_size,
        epochs=config.epochs,
        delta=config.delta,
        accountant=config.accountant,
        sampling=config.sampling,
        interactive=interactive,
        schedule=schedule_of(config),
    )


def _starting_noise(
    *,
    target_epsilon: float,
    n: int,
    batch_size: int,
    epochs: int,
    delta: float,
    accountant: str,
    sampling: str,
    schedule: NoiseSchedule,
) -> float:
    """A first guess near the answer: the cheap RDP calibration when PLD is asked for (PLD is tighter)."""
    if accountant != "pld":
        return 1.0
    try:
        return calibrate_noise(
            target_epsilon=target_epsilon,
            n=n,
            batch_size=batch_size,
            epochs=epochs,
            delta=delta,
            accountant="rdp",
            sampling=sampling,
            schedule=schedule,
        ).noise_multiplier
    except AccountingError:
        return MAX_NOISE
