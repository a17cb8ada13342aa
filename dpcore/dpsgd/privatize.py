"""The DP-SGD privatisation step as pure functions of (model weights, batch, DP parameters, seed).

``dp_gradient`` returns the gradient DP-SGD applies: every example's gradient clipped to l2_norm_clip,
summed, plus Gaussian noise of std noise_multiplier * l2_norm_clip, divided by ``normalizer`` (the
expected batch size under Poisson sampling, never the drawn size). Randomness (noise, dropout) comes
from ``seed`` only, so the same inputs give the same gradient.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional


import tensorflow as tf

from dpcore.dpsgd import per_example
from dpcore.dpsgd.per_example import LossFn

# Streams derived from one step seed, so dropout and noise never share random numbers.
_DROPOUT_STREAM = 1
_NOISE_STREAM = 2


def per_example_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Cross-entropy of each example (integer labels, logits), shape (batch,)."""
    return tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


@dataclass(frozen=True)
class StepGradient:
    """A batch's update direction and, for metrics, the per-example losses and logits it saw.

    ``norms``: each example's gradient norm before clipping (padding rows included; None for a
    baseline), for adaptive clipping's count of unclipped examples.
    """

    gradients: tuple[tf.Tensor, ...]
    losses: tf.Tensor
    logits: tf.Tensor
    norms: Optional[tf.Tensor] = None


def dp_gradient(model: tf.keras.Model, loss_fn: LossFn, x: tf.Tensor, y: tf.Tensor, *,
                l2_norm_clip: float | tf.Tensor, noise_multiplier: float | tf.Tensor,
                normalizer: float | tf.Tensor, seed: tf.Tensor, training: bool = True,
                mask: Optional[tf.Tensor] = None) -> StepGradient:
    """The gradient DP-SGD applies (clipped, summed, noised, normalised), with the per-example losses,
    logits and gradient norms the batch produced, so a trainer needs no extra forward pass.

    ``mask`` (1 for a real example, 0 for a padding row) lets a caller pad batches to a few fixed
    sizes; a padding row contributes nothing. Clip norm and noise multiplier may be tensors that
    change from step to step (a noise schedule, adaptive clipping).
    """
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    clipped = clipped_sum(model, loss_fn, x, y, l2_norm_clip=l2_norm_clip,
                          seed=tf.random.experimental.stateless_fold_in(seed, _DROPOUT_STREAM),
                          training=training, mask=mask)
    noised = add_noise(clipped.gradients, stddev=noise_multiplier * l2_norm_clip,
                       seed=tf.random.experimental.stateless_fold_in(seed, _NOISE_STREAM))
    scale = tf.cast(normalizer, tf.float32)
    return StepGradient(gradients=tuple(g / scale for g in noised), losses=clipped.losses, logits=clipped.logits,
                        norms=clipped.norms)


def clipped_sum(model: tf.keras.Model, loss_fn: LossFn, x: tf.Tensor, y: tf.Tensor, *,
                l2_norm_clip: float, seed: tf.Tensor, training: bool = True,
                mask: Optional[tf.Tensor] = None) -> StepGradient:
    """Sum over the batch of each example's gradient clipped to ``l2_norm_clip`` (no noise yet)."""
    variables = list(model.trainable_variables)
    x = tf.convert_to_tensor(x)

    def compute() -> tuple:
        result = _clipped_sum_nonempty(model, loss_fn, x, y, l2_norm_clip=l2_norm_clip, seed=seed, training=training,
                              variables=variables, mask=mask)
        return result.gradients, result.losses, result.logits, result.norms

    def empty() -> tuple:
        # Some kernels (oneDNN convolutions) mis-shape empty batches; an empty sum is zero anyway.
        classes = model.output_shape[-1]
        return (tuple(tf.zeros_like(v) for v in variables), tf.zeros([0], tf.float32),
                tf.zeros([0, classes], tf.float32), tf.zeros([0], tf.float32))

    if x.shape[0] is not None:
        gradients, losses, logits, norms = compute() if x.shape[0] > 0 else empty()
    else:
        gradients, losses, logits, norms = tf.cond(tf.shape(x)[0] > 0, compute, empty)
    return StepGradient(gradients=tuple(gradients), losses=losses, logits=logits, norms=norms)


def _clipped_sum_nonempty(model: tf.keras.Model, loss_fn: LossFn, x: tf.Tensor, y: tf.Tensor, *,
                 l2_norm_clip: float, seed: tf.Tensor, training: bool,
                 variables: list[tf.Variable], mask: Optional[tf.Tensor]) -> StepGradient:
    if per_example.supports_fast_path(model):
        with tf.GradientTape() as tape:
            recorded = per_example.forward(model, x, training=training, seed=seed)
            losses = loss_fn(y, recorded.logits)
        outputs = [tap.outputs for tap in recorded.taps]
        output_grads = tape.gradient(losses, outputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        norms = tf.sqrt(per_example.squared_norms(recorded.taps, output_grads))
        factors = _masked(clip_factors(norms, l2_norm_clip), mask)
        by_variable = per_example.weighted_gradients(recorded.taps, output_grads, factors)
        sums = tuple(by_variable[id(v)] for v in variables)
        return StepGradient(gradients=sums, losses=losses, logits=recorded.logits, norms=norms)
    each = per_example.per_example_gradients(model, loss_fn, x, y, training=training, seed=seed,
                                             variables=variables)
    squares = [tf.reduce_sum(tf.reshape(tf.square(g), [tf.shape(g)[0], -1]), axis=1) for g in each.gradients]
    norms = tf.sqrt(tf.add_n(squares))
    factors = _masked(clip_factors(norms, l2_norm_clip), mask)
    sums = tuple(tf.tensordot(factors, g, axes=1) for g in each.gradients)
    return StepGradient(gradients=sums, losses=each.losses, logits=each.logits, norms=norms)


def _masked(factors: tf.Tensor, mask: Optional[tf.Tensor]) -> tf.Tensor:
    return factors if mask is None else factors * tf.cast(mask, factors.dtype)


def clip_factors(norms: tf.Tensor, l2_norm_clip: float) -> tf.Tensor:
    """min(1, C / ||g_i||) per example: the scale that brings each gradient within the clip norm."""
    clip = tf.cast(l2_norm_clip, norms.dtype)
    return clip / tf.maximum(norms, clip)


def add_noise(gradients: tuple[tf.Tensor, ...], *, stddev: float, seed: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """Add independent N(0, stddev^2) noise to every coordinate, drawn as one vector from ``seed``."""
    if isinstance(stddev, (int, float)) and stddev == 0:
        return tuple(gradients)
    sizes = [g.shape.num_elements() for g in gradients]  # gradients are shaped like their variables
    noise = standard_normal(sum(sizes), seed=seed) * tf.cast(stddev, tf.float32)
    parts = tf.split(noise, sizes)
    return tuple(g + tf.reshape(tf.cast(part, g.dtype), g.shape) for g, part in zip(gradients, parts))


def standard_normal(count: int, *, seed: tf.Tensor) -> tf.Tensor:
    """``count`` independent N(0, 1) float32 samples from a stateless seed, by the Box-Muller transform.

    The same transform TensorFlow's own Gaussian kernels use (two Philox uniforms per pair of
    samples, the radius uniform floored at 1e-7), written as whole-tensor operations: they vectorise,
    and run about twice as fast on CPU as tf.random.stateless_normal, whose kernel transforms one pair
    at a time. The noise of one DP step is a few hundred thousand samples, so this matters.
    """
    pairs = (count + 1) // 2
    uniform = tf.random.stateless_uniform([2, pairs], seed=seed, dtype=tf.float32)
    radius = tf.sqrt(-2.0 * tf.math.log(tf.maximum(uniform[0], 1.0e-7)))
    angle = (2.0 * math.pi) * uniform[1]
    return tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=0)[:count]


def baseline_gradient(model: tf.keras.Model, loss_fn: LossFn, x: tf.Tensor, y: tf.Tensor, *,
                      seed: tf.Tensor, training: bool = True,
                      variables: Optional[list[tf.Variable]] = None,
                      mask: Optional[tf.Tensor] = None) -> StepGradient:
    """Non-private gradient of the mean loss (no clipping, no noise), with the same seeded dropout."""
    variables = list(model.trainable_variables) if variables is None else variables
    seed = tf.random.experimental.stateless_fold_in(tf.cast(tf.convert_to_tensor(seed), tf.int64), _DROPOUT_STREAM)
    with tf.GradientTape() as tape:
        logits = per_example.forward(model, x, training=training, seed=seed).logits
        losses = loss_fn(y, logits)
        if mask is None:
            mean = tf.reduce_mean(losses)
        else:
            weights = tf.cast(mask, losses.dtype)
            mean = tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
    grads = tape.gradient(mean, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return StepGradient(gradients=tuple(grads), losses=losses, logits=logits)
