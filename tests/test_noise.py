"""dpcore.privacy.noise: MindArmour's decaying noise schedules and the adaptive-clipping noise split."""

from __future__ import annotations

import math

import pytest

from dpcore.config import DPConfig
from dpcore.errors import ConfigError
from dpcore.privacy.noise import NOISE_LEVEL_RATIO, NoiseSchedule, noise_split, noise_split_for_config, schedule_of


@pytest.mark.parametrize(
    "kind, formula",
    [
        ("time", lambda s0, r, t: s0 / (1 + r * t)),
        ("step", lambda s0, r, t: s0 * (1 - r) ** t),
    ],
)
def test_schedules_follow_mindarmours_formulas_rounded_up_to_a_level(kind, formula):
    sigma0, rate, floor, steps = 1.3, 0.01, 0.6, 400
    values = NoiseSchedule(kind=kind, decay_rate=rate, floor=floor).values(sigma0, steps)
    assert len(values) == steps and values[0] == sigma0
    for t, value in enumerate(values):
        exact = max(floor, formula(sigma0, rate, t))
        # Never less noise than the formula, at most one level more; a level is ratio^k, σ0 or the floor.
        assert exact <= value <= exact * NOISE_LEVEL_RATIO * (1 + 1e-12)
        k = math.log(value) / math.log(NOISE_LEVEL_RATIO)
        assert value in (sigma0, floor) or abs(k - round(k)) < 1e-9
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert values[-1] == floor
    assert len(set(values)) <= math.log(sigma0 / floor) / math.log(NOISE_LEVEL_RATIO) + 3


def test_constant_and_zero_rate_schedules_keep_the_initial_noise():
    for schedule in (NoiseSchedule(), NoiseSchedule(kind="time", decay_rate=0.0, floor=0.5)):
        assert not schedule.decays
        assert schedule.values(1.1, 5) == (1.1,) * 5


def test_long_step_decay_reaches_the_floor_without_underflow():
    values = NoiseSchedule(kind="step", decay_rate=0.5, floor=0.01).values(2.0, 5000)
    assert values[-1] == 0.01 and min(values) == 0.01


def test_schedule_of_a_config():
    config = DPConfig(noise_schedule="step", noise_decay_rate=0.002, noise_floor=0.7)
    assert schedule_of(config) == NoiseSchedule(kind="step", decay_rate=0.002, floor=0.7)


@pytest.mark.parametrize("sigma, count_sigma", [(1.0, 2.56), (1.1, 10.0), (3.0, 1.6)])
def test_noise_split_makes_sum_and_count_one_gaussian_of_the_stated_sigma(sigma, count_sigma):
    split = noise_split(noise_multiplier=sigma, count_noise_multiplier=count_sigma)
    # Sum (sensitivity 1 in units of C) and centred count (sensitivity 1/2): their privacy adds as 1/σ².
    assert split.gradient_noise_multiplier**-2 + (0.5 / count_sigma) ** 2 == pytest.approx(sigma**-2, rel=1e-12)
    assert split.gradient_noise_multiplier > sigma
    assert (split.noise_multiplier, split.count_noise_multiplier) == (sigma, count_sigma)


def test_noise_split_is_refused_when_the_count_would_take_all_the_privacy():
    with pytest.raises(ConfigError) as info:
        noise_split(noise_multiplier=2.0, count_noise_multiplier=1.0)
    assert info.value.field == "count_noise_multiplier" and "> 1" in str(info.value)
    with pytest.raises(ConfigError, match="count_noise_multiplier"):
        DPConfig(adaptive_clipping=True, noise_multiplier=3.0, count_noise_multiplier=1.2)
    # Not clipping adaptively, or not private: the count is never released, nothing to refuse.
    DPConfig(adaptive_clipping=False, noise_multiplier=3.0, count_noise_multiplier=1.2)
    DPConfig(adaptive_clipping=True, private=False, noise_multiplier=3.0, count_noise_multiplier=1.2)


def test_noise_split_for_config():
    assert noise_split_for_config(DPConfig()) is None
    config = DPConfig(adaptive_clipping=True, noise_multiplier=1.0, count_noise_multiplier=2.56)
    assert noise_split_for_config(config).gradient_noise_multiplier == pytest.approx(1.0196371, rel=1e-6)
    assert noise_split_for_config(config.as_baseline()) is None
