"""Adaptive clipping (Andrew et al., "Differentially private learning with adaptive clipping", NeurIPS 2021).

Each step releases, beside the noisy clipped gradient sum, a noisy count of the examples whose
gradient norm is at most the clip norm C; the clip norm then moves towards the target quantile γ of
the norms: linearly, C ← C − η·(b̄ − γ) (MindArmour's example), or geometrically,
C ← C·exp(−η·(b̄ − γ)) (the paper's choice). The count is of centred indicators 1[‖g_i‖ ≤ C] − ½,
whose sum moves by at most ½ when one example is added or removed: the sensitivity the noise split
in dpcore.privacy.noise assumes. Its noise is accounted for (the split), unlike MindArmour's.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

# Stream of the step seed the count's noise comes from (dpcore.dpsgd.privatize uses 1 and 2).
COUNT_NOISE_STREAM = 3
# The linear update may overshoot below zero; the clip norm stops here so clip factors stay defined
# (TF Privacy's quantile query stops at 0).
MIN_CLIP_NORM = 1e-6


def unclipped_fraction(
    norms: tf.Tensor,
    *,
    clip_norm: tf.Tensor,
    count_noise_multiplier: float,
    expected_batch_size: float | tf.Tensor,
    seed: tf.Tensor,
    mask: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """b̄ = (Σ_i (1[‖g_i‖ ≤ C] − ½) + N(0, σ_b²)) / m + ½: the noisy share of unclipped examples.

    ``m`` is the expected batch size (the drawn size is private under Poisson sampling); ``mask``
    leaves padding rows out.
    """
    centred = tf.cast(norms <= tf.cast(clip_norm, norms.dtype), tf.float32) - 0.5
    if mask is not None:
        centred = centred * tf.cast(mask, tf.float32)
    noise = tf.random.stateless_normal([], seed=seed, dtype=tf.float32) * count_noise_multiplier
    return (tf.reduce_sum(centred) + noise) / tf.cast(expected_batch_size, tf.float32) + 0.5


def next_clip_norm(
    clip_norm: tf.Tensor, fraction: tf.Tensor, *, update: str, learning_rate: float, target_quantile: float
) -> tf.Tensor:
    """The clip norm of the next step, from this step's noisy unclipped fraction ``fraction``."""
    error = fraction - target_quantile
    if update == "linear":
        return tf.maximum(clip_norm - learning_rate * error, MIN_CLIP_NORM)
    if update == "geometric":
        return clip_norm * tf.exp(-learning_rate * error)
    raise ValueError(f"unknown clip update {update!r}")
