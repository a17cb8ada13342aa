"""What an accountant query may ask: the checks of its values and the bounds on its work, before it runs.

Step counts are computed, never listed, and capped at ``MAX_STEPS``; PLD queries are bounded by the
points of their grids (``MAX_PLD_UNIT_POINTS``, ``MAX_PLD_POINTS``, ``MAX_PLD_CURVE_WORK``; see
``dpcore.privacy.pld_grid``), and every query by its estimated seconds (``MAX_QUERY_SECONDS``, from the
noise levels it computes and the compositions it makes; see ``dpcore.privacy.work``). A value outside
these is an ``AccountingError`` naming the setting.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from dpcore.config import ACCOUNTANTS, MAX_NOISE, NOISE_SCHEDULES, SAMPLINGS
from dpcore.errors import UserInputError
from dpcore.privacy.noise import CONSTANT_NOISE, NoiseSchedule
from dpcore.safe_io import quote

if TYPE_CHECKING:
    pass


PRECISE_PLD_INTERVAL = 1e-4
INTERACTIVE_PLD_INTERVAL = 1e-3
# The grids a PLD query may use, finest first; a query starts at the one asked for.
PLD_INTERVALS = (PRECISE_PLD_INTERVAL, INTERACTIVE_PLD_INTERVAL, 1e-2)
# Bounds on one query (measured on 2 cores: building one step's grid costs about 20 µs a point;
# a per-epoch curve about 0.15 s per million units of work, epochs times composed grid points).
MAX_STEPS = 10**15
MAX_CURVE_EPOCHS = 100_000
# A decaying noise schedule lists every step's σ: runs of at most this many steps.
MAX_SCHEDULE_STEPS = 2_000_000
MAX_PLD_UNIT_POINTS = 250_000
MAX_PLD_POINTS = 4_000_000
MAX_PLD_CURVE_WORK = 100_000_000
# What one query's work costs, in seconds of one core (measured on 2 shared cores, the slow end kept):
# one noise level's step RDP (dp_accounting's series: 0.03 to 0.5 s, up to 2.5 s at q = 0.5 with σ >= 100),
RDP_LEVEL_SECONDS = 0.2
# one noise level's step PLD, besides its points (dp_accounting's set-up of its two privacy losses),
PLD_LEVEL_SECONDS = 0.02
# one grid point of a step PLD (both adjacencies: 19 to 30 µs, 50 on a crowded machine),
PLD_UNIT_POINT_SECONDS = 30e-6
# one point of a composed PLD grid (both adjacencies), per block of equal σ: its self-composition
# (0.3 to 0.7 µs, 1.3 for small grids), composition and reading ε off it (0.15 µs),
PLD_COMPOSED_POINT_SECONDS = 1e-6
# one unit of a per-epoch PLD curve's work (epochs times composed grid points: about 0.15 s per million).
PLD_CURVE_WORK_SECONDS = 0.15e-6
# The most seconds one query may be estimated to take, and a calibration (a dozen queries) in all,
# unless ``limit_query_seconds`` set another bound for this process (a served app's accountant
# processes: dpcore.room.server_settings, DPEXPLORER_ACCOUNTANT_SECONDS).
MAX_QUERY_SECONDS = 30.0
MAX_CALIBRATION_SECONDS = 4 * MAX_QUERY_SECONDS
_bounds = {"query": MAX_QUERY_SECONDS, "calibration": MAX_CALIBRATION_SECONDS}
# dp_accounting's defaults for the Gaussian PLD and its self-composition, used in the estimates.
_PLD_LOG_MASS_TRUNCATION = -50
_PLD_TAIL_MASS_TRUNCATION = 1e-15


class AccountingError(UserInputError):
    """An accounting query with a value outside what the accountant can answer."""


def query_seconds() -> float:
    """The most seconds one query may be estimated to take in this process."""
    return _bounds["query"]


def calibration_seconds() -> float:
    """The most seconds a calibration may be estimated to take in this process."""
    return _bounds["calibration"]


def limit_query_seconds(seconds: float) -> None:
    """Hold every query, and every calibration as a whole, to ``seconds`` in this process (a served app's
    accountant process: the server stops any call after that long, so longer ones are refused first)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < math.inf:
        raise UserInputError(
            "accountant_seconds", f"{quote(seconds)} is not a positive number of seconds", allowed="a number above 0"
        )
    _bounds["query"] = _bounds["calibration"] = float(seconds)


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise AccountingError(name, f"{quote(value)} is not known", allowed=", ".join(allowed))


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise AccountingError(name, f"{quote(value)} is not a whole number >= {low}", allowed=f"whole numbers >= {low}")


def check_counts(*, n: int, batch_size: int, epochs: int) -> None:
    _check_int("n", n, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("epochs", epochs, 1)
    if batch_size > n:
        raise AccountingError("batch_size", f"{batch_size} is larger than n = {n}", allowed=f"1 to {n}")


def check_curve_length(epochs: int) -> None:
    if epochs > MAX_CURVE_EPOCHS:
        raise AccountingError(
            "epochs",
            f"a per-epoch curve has one point per epoch; {epochs:,} is too many",
            allowed=f"at most {MAX_CURVE_EPOCHS:,} epochs per curve",
        )


def check_query(
    *,
    n: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    delta: float,
    accountant: str,
    sampling: str,
    schedule: NoiseSchedule = CONSTANT_NOISE,
) -> None:
    check_run(
        n=n,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        sampling=sampling,
        schedule=schedule,
    )
    check_choice("accountant", accountant, ACCOUNTANTS)
    check_delta(delta)


def check_delta(delta: object) -> None:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not math.isfinite(delta) or not 0 < delta < 1:
        raise AccountingError("delta", f"{quote(delta)} is out of range", allowed="a number in (0, 1)")


def check_run(
    *,
    n: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    sampling: str,
    schedule: NoiseSchedule = CONSTANT_NOISE,
) -> None:
    """The checks every query shares: counts, sampling, noise multiplier and the number of steps."""
    check_counts(n=n, batch_size=batch_size, epochs=epochs)
    check_choice("sampling", sampling, SAMPLINGS)
    steps = count_steps(n, batch_size, epochs, sampling)
    if steps > MAX_STEPS:
        raise AccountingError(
            "epochs",
            f"{quote(epochs)} epochs of n = {quote(n)} in batches of {batch_size} make {steps:.3g} steps",
            allowed=f"runs of at most {MAX_STEPS:.0e} steps",
        )
    if (
        isinstance(noise_multiplier, bool)
        or not isinstance(noise_multiplier, (int, float))
        or not math.isfinite(noise_multiplier)
        or not 0 < noise_multiplier <= MAX_NOISE
    ):
        raise AccountingError(
            "noise_multiplier", f"{quote(noise_multiplier)} is out of range", allowed=f"a number in (0, {MAX_NOISE:g}]"
        )
    _check_schedule(schedule, noise_multiplier)
    if schedule.decays and steps > MAX_SCHEDULE_STEPS:
        raise AccountingError(
            "noise_schedule",
            f"a {quote(schedule.kind)} schedule lists each step's noise; this run has {steps:,} steps",
            allowed=f"runs of at most {MAX_SCHEDULE_STEPS:,} steps, or a constant schedule",
        )


def _check_schedule(schedule: NoiseSchedule, noise_multiplier: float) -> None:
    if not isinstance(schedule, NoiseSchedule):
        raise AccountingError("noise_schedule", f"{quote(schedule)} is not a NoiseSchedule")
    check_choice("noise_schedule", schedule.kind, NOISE_SCHEDULES)
    for name, value, allowed, ok in (
        ("noise_decay_rate", schedule.decay_rate, "a number in [0, 1)", lambda v: 0 <= v < 1),
        (
            "noise_floor",
            schedule.floor,
            f"a number in (0, {noise_multiplier:g}]",
            lambda v: not schedule.decays or 0 < v <= noise_multiplier,
        ),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
            raise AccountingError(name, f"{quote(value)} is out of range", allowed=allowed)


def count_steps(n: int, batch_size: int, epochs: int, sampling: str) -> int:
    if sampling == "poisson":
        return -(-epochs * n // batch_size)
    return epochs * -(-n // batch_size)
