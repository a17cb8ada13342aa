"""The monotone search behind calibration: bracket the noise whose ε meets a target, then narrow it from above."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Optional

from dpcore.config import MAX_NOISE
from dpcore.privacy.limits import AccountingError

if TYPE_CHECKING:
    pass


MIN_CALIBRATED_NOISE = 0.05
CALIBRATION_RELATIVE_TOLERANCE = 1e-3


def refine_noise(eps_at: Callable[[float], float], target: float, *, low: float, high: float) -> tuple[float, float]:
    """Shrink [low, high] to 0.1% keeping eps(low) > target >= eps(high); returns (high, eps(high)).

    Steps by the Illinois variant of regula falsi on log ε against log σ (nearly straight there), so a
    few accountant calls suffice; every step keeps the bracket, so the result never exceeds the target.
    """
    log_target = math.log(target)
    f_low = math.log(eps_at(low)) - log_target
    high_eps = eps_at(high)
    f_high = math.log(high_eps) - log_target if high_eps > 0 else -math.inf
    last_side = 0
    margin = math.log1p(CALIBRATION_RELATIVE_TOLERANCE) / 2.0
    while high / low > 1.0 + CALIBRATION_RELATIVE_TOLERANCE:
        log_low, log_high = math.log(low), math.log(high)
        if math.isfinite(f_high):
            guess = (log_low * f_high - log_high * f_low) / (f_high - f_low)
        else:
            guess = (log_low + log_high) / 2.0
        middle = math.exp(min(max(guess, log_low + margin), log_high - margin))
        middle_eps = eps_at(middle)
        f_middle = math.log(middle_eps) - log_target if middle_eps > 0 else -math.inf
        if f_middle <= 0:
            high, high_eps, f_high = middle, middle_eps, f_middle
            if last_side == -1:
                f_low /= 2.0
            last_side = -1
        else:
            low, f_low = middle, f_middle
            if last_side == 1 and math.isfinite(f_high):
                f_high /= 2.0
            last_side = 1
    return high, high_eps


def bracket_noise(
    eps_at: Callable[[float], float],
    target: float,
    *,
    start: float,
    factor: float,
    lowest: float = MIN_CALIBRATED_NOISE,
) -> tuple[Optional[float], float]:
    """(low, high) with eps(low) > target >= eps(high), stepping by ``factor`` from ``start``.

    low is None when the smallest noise multiplier searched (``lowest``) already meets the target, or when the
    accountant cannot answer for a smaller one (a PLD query beyond its bounds): high is then the
    smallest noise multiplier it could certify.
    """
    high = min(max(start, lowest), MAX_NOISE)
    if eps_at(high) > target:
        low = high
        while True:
            if low >= MAX_NOISE:
                raise AccountingError(
                    "target_epsilon",
                    f"ε = {target:g} cannot be reached with a noise multiplier up to {MAX_NOISE:g} "
                    f"(it gives ε = {eps_at(MAX_NOISE):.4g})",
                    allowed="a larger target ε, fewer epochs or a smaller batch size",
                )
            high = min(low * factor, MAX_NOISE)
            if eps_at(high) <= target:
                return low, high
            low = high
    low = high
    while True:
        if low <= lowest:
            return None, lowest
        candidate = max(low / factor, lowest)
        try:
            if eps_at(candidate) > target:
                return candidate, low
        except AccountingError:
            return None, low
        low = candidate
