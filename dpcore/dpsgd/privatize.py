"""The DP-SGD privatisation step as pure functions of (model weights, batch, DP parameters, seed).

``dp_gradient`` returns the gradient DP-SGD applies: every example's gradient clipped to l2_norm_clip,
summed, plus Gaussian noise of std noise_multiplier * l2_norm_clip, divided by ``normalizer`` (the
expected batch size under Poisson sampling, never the drawn size). Randomness (noise, dropout) comes
from ``seed`` only, so the same inputs give the same gradient. A model that DP-SGD cannot make private
(``per_example.check_privatizable``) is refused before anything runs.
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


def dp_gradient(
    model: tf.keras.Model,
    loss_fn: LossFn,
    x: tf.Tensor,
    y: tf.Tensor,
    *,
    l2_norm_clip: float | tf.Tensor,
    noise_multiplier: float | tf.Tensor,
    normalizer: float | tf.Tensor,
    seed: tf.Tensor,
    training: bool = True,
    mask: Optional[tf.Tensor] = None,
    parts: int = 1,
) -> StepGradient:
    """The gradient DP-SGD applies (clipped, summed, noised, normalised), with the per-example losses,
    logits and gradient norms the batch produced, so a trainer needs no extra forward pass.

    ``mask`` (1 for a real example, 0 for a padding row) lets a caller pad batches to a few fixed
    sizes; a padding row contributes nothing. Clip norm and noise multiplier may be tensors that
    change from step to step (a noise schedule, adaptive clipping). ``parts``: see ``clipped_sum``;
    the noise is drawn once for the whole batch either way.
    """
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    clipped = clipped_sum(
        model,
        loss_fn,
        x,
        y,
        l2_norm_clip=l2_norm_clip,
        seed=tf.random.experimental.stateless_fold_in(seed, _DROPOUT_STREAM),
        training=training,
        mask=mask,
        parts=parts,
    )
    noised = add_noise(
        clipped.gradients,
        stddev=noise_multiplier * l2_norm_clip,
        seed=tf.random.experimental.stateless_fold_in(seed, _NOISE_STREAM),
    )
    scale = tf.cast(normalizer, tf.float32)
    return StepGradient(
        gradients=tuple(g / scale for g in noised), losses=clipped.losses, logits=clipped.logits, norms=clipped.norms
    )


def clipped_sum(
    model: tf.keras.Model,
    loss_fn: LossFn,
    x: tf.Tensor,
    y: tf.Tensor,
    *,
    l2_norm_clip: float,
    seed: tf.Tensor,
    training: bool = True,
    mask: Optional[tf.Tensor] = None,
    parts: int = 1,
) -> StepGradient:
    """Sum over the batch of each example's gradient clipped to ``l2_norm_clip`` (no noise yet).

    ``parts`` > 1 computes it on that many consecutive slices of the batch, independent of each
    other in one graph, and adds their sums: each example's clipped gradient is the same, the sum
    only rounds differently. Small parts are faster for convolutional models on CPU
    (``model_specs.STEP_PART_EXAMPLES``). Dropout masks then come from the part's own seed.
    Raises UserInputError for a model with a layer that DP-SGD cannot make private.
    """
    per_example.check_privatizable(model)
    x = tf.convert_to_tensor(x)
    if parts > 1:
        return _clipped_sum_in_parts(
            model, loss_fn, x, y, l2_norm_clip=l2_norm_clip, seed=seed, training=training, mask=mask, parts=parts
        )
    return _clipped_sum_whole(model, loss_fn, x, y, l2_norm_clip=l2_norm_clip, seed=seed, training=training, mask=mask)


def _clipped_sum_in_parts(
    model: tf.keras.Model,
    loss_fn: LossFn,
    x: tf.Tensor,
    y: tf.Tensor,
    *,
    l2_norm_clip: float,
    seed: tf.Tensor,
    training: bool,
    mask: Optional[tf.Tensor],
    parts: int,
) -> StepGradient:
    y = tf.convert_to_tensor(y)
    seed = tf.cast(seed, tf.int64)
    count = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
    bounds = [count * k // parts for k in range(parts + 1)]
    results = []
    for k in range(parts):
        piece = slice(bounds[k], bounds[k + 1])
        results.append(
            _clipped_sum_whole(
                model,
                loss_fn,
                x[piece],
                y[piece],
                l2_norm_clip=l2_norm_clip,
                seed=tf.random.experimental.stateless_fold_in(seed, k),
                training=training,
                mask=None if mask is None else mask[piece],
            )
        )
    return StepGradient(
        gradients=tuple(tf.add_n(list(sums)) for sums in zip(*(r.gradients for r in results))),
        losses=tf.concat([r.losses for r in results], axis=0),
        logits=tf.concat([r.logits for r in results], axis=0),
        norms=tf.concat([r.norms for r in results], axis=0),
    )


def _clipped_sum_whole(
    model: tf.keras.Model,
    loss_fn: LossFn,
    x: tf.Tensor,
    y: tf.Tensor,
    *,
    l2_norm_clip: float,
    seed: tf.Tensor,
    training: bool,
    mask: Optional[tf.Tensor],
) -> StepGradient:
    variables = list(model.trainable_variables)

    def compute() -> tuple:
        result = _clipped_sum_nonempty(
            model,
            loss_fn,
            x,
            y,
            l2_norm_clip=l2_norm_clip,
            seed=seed,
            training=training,
            variables=variables,
            mask=mask,
        )
        return result.gradients, result.losses, result.logits, result.norms

    def empty() -> tuple:
        # Some kernels (oneDNN convolutions) mis-shape empty batches; an empty sum is zero anyway.
        classes = model.output_shape[-1]
        return (
            tuple(tf.zeros_like(v) for v in variables),
            tf.zeros([0], tf.float32),
            tf.zeros([0, classes], tf.float32),
            tf.zeros([0], tf.float32),
        )

    if x.shape[0] is not None:
        gradients, losses, logits, norms = compute() if x.shape[0] > 0 else empty()
    else:
        gradients, losses, logits, norms = tf.cond(tf.shape(x)[0] > 0, compute, empty)
    return StepGradient(gradients=tuple(gradients), losses=losses, logits=logits, norms=norms)


def _clipped_sum_nonempty(
    model: tf.keras.Model,
    loss_fn: LossFn,
    x: tf.Tensor,
    y: tf.Tensor,
    *,
    l2_norm_clip: float,
    seed: tf.Tensor,
    training: bool,
    variables: list[tf.Variable],
    mask: Optional[tf.Tensor],
) -> StepGradient:
    if per_example.supports_fast_path(model):
        with tf.GradientTape() as tape:
            recorded = per_example.forward(model, x, training=training, seed=seed, tap=True)
            losses = loss_fn(y, recorded.logits)
        outputs = [tap.outputs for tap in recorded.taps]
        output_grads = tape.gradient(losses, outputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        materialised = per_example.tap_gradients(recorded.taps, output_grads)
        norms = tf.sqrt(per_example.squared_norms(recorded.taps, output_grads, materialised))
        factors = _masked(clip_factors(norms, l2_norm_clip), mask)
        by_variable = per_example.weighted_gradients(recorded.taps, output_grads, factors, materialised)
        sums = tuple(by_variable[id(v)] for v in variables)
        return StepGradient(gradients=sums, losses=losses, logits=recorded.logits, norms=norms)
    each = per_example.per_example_gradients(model, loss_fn, x, y, training=training, seed=seed, variables=variables)
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
    parts = tf.split(gaussian_noise(sum(sizes), seed=seed, stddev=stddev), sizes)
    return tuple(g + tf.reshape(tf.cast(part, g.dtype), g.shape) for g, part in zip(gradients, parts))


def gaussian_noise(count: int, *, seed: tf.Tensor, stddev: float | tf.Tensor = 1.0) -> tf.Tensor:
    """``count`` independent N(0, stddev^2) float32 samples (N(0, 1) by default) from a stateless seed.

    Box-Muller, one radius uniform (``radius_uniform``: 32 random bits, 64 where it is small) and one
    float32 angle uniform per pair of samples, from streams split off ``seed``. Written as whole-tensor
    operations, which vectorise; the noise of one DP step is a few hundred thousand samples.
    """
    pairs = (count + 1) // 2
    high_seed, low_seed, angle_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=3))
    high_bits = tf.random.stateless_uniform([pairs], seed=high_seed, minval=None, maxval=None, dtype=tf.uint32)
    angle_uniform = tf.random.stateless_uniform([pairs], seed=angle_seed, dtype=tf.float32)
    samples = box_muller(radius_uniform(high_bits, seed=low_seed), angle_uniform, stddev=stddev)
    return samples if count == 2 * pairs else samples[:count]


# Below this high word (u < 2**-16, radius above 4.7, one pair in 65536) a radius uniform gets 32 more bits.
REFINE_BELOW = 2**16
# The smallest radius uniform, uniform_from_bits(0, 0); it sets the largest reachable |z|, 9.49.
RADIUS_UNIFORM_MIN = 2.0**-65


def radius_uniform(high_bits: tf.Tensor, *, seed: tf.Tensor) -> tf.Tensor:
    """Box-Muller's radius uniforms in (0, 1] as float32, exact in the tail that sets the Gaussian's tails.

    Each uniform starts from 32 random bits; the few below ``REFINE_BELOW`` (where 32 bits would
    leave the tail coarse, and a float32 uniform on a 2**-23 grid floored at 1e-7 stopped |z| at
    5.68) draw 32 more from ``seed``, so u reaches 2**-65 and |z| = sqrt(130 ln 2) = 9.49, where a
    Gaussian's tail is 2e-21. Drawing 64 bits for every pair instead made the MLP's DP step 5-13%
    slower on a 2-core CPU, where generating random bits is most of the noise's cost.
    """
    coarse = uniform_from_bits(high_bits)
    small = tf.where(high_bits < REFINE_BELOW)
    low_bits = tf.random.stateless_uniform(tf.shape(small)[:1], seed=seed, minval=None, maxval=None, dtype=tf.uint32)
    return tf.tensor_scatter_nd_update(coarse, small, uniform_from_bits(tf.gather_nd(high_bits, small), low_bits))


def uniform_from_bits(high_bits: tf.Tensor, low_bits: Optional[tf.Tensor] = None) -> tf.Tensor:
    """float32 uniforms in (0, 1] from 32 random bits, (H + 1/2) / 2**32, or 64, (H 2**32 + L + 1/2) / 2**64.

    The midpoint of each interval keeps u away from 0 (no infinite radius); float32 keeps 24
    significant bits of u at every scale, so small values are exact and large ones round to at most 1.
    """
    high = tf.cast(high_bits, tf.float32)
    if low_bits is None:
        return (high + 0.5) * 2.0**-32
    return (high * 2.0**32 + tf.cast(low_bits, tf.float32) + 0.5) * 2.0**-64


def box_muller(uniform: tf.Tensor, angle_uniform: tf.Tensor, *, stddev: float | tf.Tensor = 1.0) -> tf.Tensor:
    """Two N(0, stddev^2) float32 samples per (radius uniform in (0, 1], angle uniform in [0, 1)):
    r cos θ for every pair, then r sin θ, with r = stddev sqrt(-2 ln u) and θ = 2π · angle."""
    radius = tf.sqrt(tf.math.log(uniform) * (-2.0 * tf.square(tf.cast(stddev, tf.float32))))
    angle = (2.0 * math.pi) * angle_uniform
    return tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=0)


def baseline_gradient(
    model: tf.keras.Model,
    loss_fn: LossFn,
    x: tf.Tensor,
    y: tf.Tensor,
    *,
    seed: tf.Tensor,
    training: bool = True,
    variables: Optional[list[tf.Variable]] = None,
    mask: Optional[tf.Tensor] = None,
) -> StepGradient:
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
