"""The default config shows the privacy–utility trade-off: more ε, clearly more accuracy."""

from __future__ import annotations

import statistics

from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.dpsgd.training import train
from dpcore.privacy import calibration

# The default model, optimizer, learning rate, batch size and clip on a fixed slice of digits, with
# fewer epochs so that the six runs take a few seconds; σ is calibrated for each ε on this slice.
SLICE = dict(max_train_examples=720, epochs=8)
SEEDS = (0, 1, 2)


def _mean_accuracy(target_epsilon: float) -> float:
    config = DPConfig(**SLICE)
    sigma = calibration.calibrate_noise_for_config(
        config, target_epsilon=target_epsilon, n=datasets.train_size(config)
    ).noise_multiplier
    results = [train(config.replace(noise_multiplier=sigma, seed=seed)) for seed in SEEDS]
    assert all(r.status == "completed" for r in results), [r.error for r in results]
    assert all(r.epsilon <= target_epsilon for r in results)
    return statistics.fmean(r.test_accuracy for r in results)


def test_default_accuracy_rises_clearly_from_eps_half_to_eps_eight() -> None:
    low, high = _mean_accuracy(0.5), _mean_accuracy(8.0)
    assert high >= low + 0.15, (low, high)
    assert high >= 0.8, high  # a useful model at ε ≈ 8, not two poor ones
