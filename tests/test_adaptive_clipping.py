"""Adaptive clipping: the update rule finds the target quantile of the gradient norms, alone and in a run."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.dpsgd import adaptive_clip, models, privatize, training
from dpcore.privacy import accounting, events, noise


def follow_quantile(
    *,
    update: str,
    learning_rate: float,
    target: float,
    start: float,
    steps: int,
    batch: int = 256,
    count_noise_multiplier: float = 2.56,
    seed: int = 0,
) -> np.ndarray:
    """Clip norms of ``steps`` updates on batches of log-normal norms (median 1, σ 0.5)."""
    rng = np.random.default_rng(seed)
    clip = tf.constant(start, tf.float32)
    history = []
    for step in range(steps):
        norms = tf.constant(rng.lognormal(0.0, 0.5, size=batch), tf.float32)
        fraction = adaptive_clip.unclipped_fraction(
            norms,
            clip_norm=clip,
            count_noise_multiplier=count_noise_multiplier,
            expected_batch_size=batch,
            seed=tf.constant([seed, step], tf.int64),
        )
        clip = adaptive_clip.next_clip_norm(
            clip, fraction, update=update, learning_rate=learning_rate, target_quantile=target
        )
        history.append(float(clip))
    return np.array(history)


@pytest.mark.parametrize(
    "update, learning_rate, target, start",
    [
        ("geometric", 0.2, 0.5, 0.1),  # the paper's setting
        ("linear", 0.05, 0.9, 1.0),  # MindArmour's update and quantile (a faster rate, for a short test)
    ],
)
def test_the_clip_norm_converges_to_the_target_quantile_of_the_norms(update, learning_rate, target, start):
    history = follow_quantile(update=update, learning_rate=learning_rate, target=target, start=start, steps=800)
    quantile = float(np.exp(0.5 * {0.5: 0.0, 0.9: 1.2815516}[target]))  # of log-normal(0, 0.5)
    settled = history[-200:]
    assert settled.mean() == pytest.approx(quantile, rel=0.05)
    assert abs(history[0] - quantile) > 0.3 * quantile  # it really had to move


def test_without_noise_the_fraction_is_the_share_of_real_rows_under_the_clip_norm():
    norms = tf.constant([0.5, 1.0, 1.5, 2.0, 0.1, 9.0], tf.float32)
    mask = tf.constant([1, 1, 1, 1, 0, 0], tf.float32)  # the last two are padding
    fraction = adaptive_clip.unclipped_fraction(
        norms,
        clip_norm=tf.constant(1.0),
        count_noise_multiplier=0.0,
        expected_batch_size=4.0,
        seed=tf.constant([0, 0], tf.int64),
        mask=mask,
    )
    assert float(fraction) == pytest.approx(0.5)


def test_the_count_noise_has_the_configured_stddev():
    norms = tf.zeros([100], tf.float32)
    fractions = [
        float(
            adaptive_clip.unclipped_fraction(
                norms,
                clip_norm=tf.constant(1.0),
                count_noise_multiplier=5.0,
                expected_batch_size=100.0,
                seed=tf.constant([7, i], tf.int64),
            )
        )
        for i in range(400)
    ]
    assert np.mean(fractions) == pytest.approx(1.0, abs=0.01)
    assert np.std(fractions) == pytest.approx(5.0 / 100, rel=0.15)


def test_the_linear_update_never_reaches_zero():
    clip = adaptive_clip.next_clip_norm(
        tf.constant(0.001), tf.constant(1.0), update="linear", learning_rate=0.5, target_quantile=0.5
    )
    assert float(clip) == pytest.approx(adaptive_clip.MIN_CLIP_NORM)


def test_a_run_moves_its_clip_norm_to_the_target_quantile_and_adds_the_split_noise(monkeypatch):
    config = DPConfig(
        dataset="digits",
        model="logreg",
        batch_size=64,
        epochs=4,
        learning_rate=0.05,
        l2_norm_clip=50.0,
        noise_multiplier=1.0,
        adaptive_clipping=True,
        clip_update="geometric",
        clip_learning_rate=0.2,
        target_unclipped_quantile=0.5,
        count_noise_multiplier=3.2,
        delta=1e-4,
    )
    final_weights = []
    result = training.train(config, on_weights=final_weights.append)
    assert result.status == "completed", result.error
    clips = np.array(result.clip_norms)
    assert len(clips) == events.dp_steps(n=1437, batch_size=64, epochs=4, sampling="poisson")
    assert clips[0] == 50.0 and clips[-1] < 5.0
    # The final clip norm sits near the median gradient norm of the final model on the training rows.
    dataset = datasets.load(config)
    model = models.build(config, input_shape=dataset.info.input_shape, num_classes=dataset.info.num_classes)
    model.set_weights(final_weights[0])
    norms = privatize.clipped_sum(
        model,
        privatize.per_example_loss,
        dataset.x_train,
        dataset.y_train,
        l2_norm_clip=1.0,
        seed=tf.constant([0, 0], tf.int64),
        training=False,
    ).norms
    unclipped = float(np.mean(norms.numpy() <= clips[-1]))
    assert unclipped == pytest.approx(0.5, abs=0.15)
    # The accountant's ε is that of the stated σ: adaptive clipping spends nothing beyond it.
    assert result.epsilon == pytest.approx(
        accounting.epsilon_for_config(config.replace(adaptive_clipping=False), n=1437)
    )
    assert set(result.noise_multipliers) == {1.0}
    # The gradient carries the raised share of the noise: (1 - (1 / (2 · 3.2))²)^(-1/2) = 1.0124.
    raised = noise.noise_split_for_config(config).gradient_noise_multiplier
    assert raised == pytest.approx(1.0 / np.sqrt(1 - 1 / 6.4**2), rel=1e-12)
    assert set(training._gradient_noise_multipliers(config, result.noise_multipliers)) == {raised}
