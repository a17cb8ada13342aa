"""The noise a DP-SGD run adds: decaying noise schedules and the adaptive-clipping noise split.

Schedules follow MindArmour's AdaGaussian policies with a floor, step t counted from 0 at the first
noisy step: "time", σ_t = max(floor, σ_0 / (1 + r·t)), and "step", σ_t = max(floor, σ_0 · (1 − r)^t).
Each decayed value is rounded *up* to the nearest level NOISE_LEVEL_RATIO^k (k an integer; never above
σ_0), so a run uses a few dozen distinct noise levels instead of one per step: the accountant composes
one dp_accounting event per level (composing thousands of distinct subsampled Gaussians takes
minutes), and the trainer adds exactly these rounded values, at most 2% more noise than the formula
asks for. The levels are the same for every σ_0, so the accountant's per-level results are reused
across runs, slider moves and the steps of a calibration.

Adaptive clipping (Andrew et al., NeurIPS 2021) also releases a noisy count of the examples under
the clip norm. Its noise split raises the gradient noise to σ_grad = (σ^−2 − (2σ_b)^−2)^−1/2 so that
the clipped sum (sensitivity C, noise σ_grad·C) and the centred count (sensitivity 1/2, noise σ_b)
together are exactly one Gaussian release of noise multiplier σ: the ε of a run is that of σ.

Pure Python: used by the config's validation, the accountant and the trainer alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from dpcore.config import DPConfig, check_count_noise

# Consecutive noise levels of a decaying schedule differ by this factor (see the module text).
NOISE_LEVEL_RATIO = 1.02


@dataclass(frozen=True)
class NoiseSchedule:
    """How the noise multiplier changes over a run's steps: "constant", "time" or "step" decay."""

    kind: str = "constant"
    decay_rate: float = 0.0
    floor: float = 0.0

    @property
    def decays(self) -> bool:
        """False when every step uses the initial noise multiplier."""
        return self.kind != "constant" and self.decay_rate > 0

    def values(self, noise_multiplier: float, steps: int) -> tuple[float, ...]:
        """σ of each of ``steps`` noisy steps starting from ``noise_multiplier`` (σ_0)."""
        return _schedule_values(self, float(noise_multiplier), int(steps))


CONSTANT_NOISE = NoiseSchedule()


def schedule_of(config: DPConfig) -> NoiseSchedule:
    """The noise schedule a config asks for."""
    return NoiseSchedule(kind=config.noise_schedule, decay_rate=config.noise_decay_rate, floor=config.noise_floor)


@lru_cache(maxsize=256)
def _schedule_values(schedule: NoiseSchedule, sigma0: float, steps: int) -> tuple[float, ...]:
    if not schedule.decays:
        return (sigma0,) * steps
    rate, floor = schedule.decay_rate, schedule.floor
    log_ratio = math.log(NOISE_LEVEL_RATIO)
    values = []
    for t in range(steps):
        if schedule.kind == "time":
            raw = sigma0 / (1.0 + rate * t)
        else:
            # (1 - r)^t underflows to 0 for long runs; the floor takes over long before.
            raw = sigma0 * math.exp(t * math.log1p(-rate))
        if raw <= floor:
            values.append(floor)
            continue
        level = math.ceil(math.log(raw) / log_ratio)
        while NOISE_LEVEL_RATIO**level < raw:  # guard the rounding of the logarithm: never below the formula
            level += 1
        values.append(max(floor, min(sigma0, NOISE_LEVEL_RATIO**level)))
    return tuple(values)


# -- adaptive clipping ------------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseSplit:
    """Adaptive clipping's noise: the stated σ (what ε counts), the gradient's and the count's share."""

    noise_multiplier: float
    gradient_noise_multiplier: float
    count_noise_multiplier: float


@lru_cache(maxsize=4096)
def noise_split(*, noise_multiplier: float, count_noise_multiplier: float) -> NoiseSplit:
    """The paper's split: σ_grad = (σ^−2 − (2σ_b)^−2)^−1/2; refused unless σ_b > σ/2."""
    check_count_noise(noise_multiplier=noise_multiplier, count_noise_multiplier=count_noise_multiplier)
    sigma, count_sigma = float(noise_multiplier), float(count_noise_multiplier)
    gradient_sigma = (sigma**-2 - (2.0 * count_sigma) ** -2) ** -0.5
    return NoiseSplit(
        noise_multiplier=sigma, gradient_noise_multiplier=gradient_sigma, count_noise_multiplier=count_sigma
    )


def noise_split_for_config(config: DPConfig) -> Optional[NoiseSplit]:
    """The split at the run's initial (largest) noise multiplier; None unless it clips adaptively."""
    if not (config.private and config.adaptive_clipping):
        return None
    return noise_split(noise_multiplier=config.noise_multiplier, count_noise_multiplier=config.count_noise_multiplier)
