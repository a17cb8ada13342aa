"""dpcore.privatize: the clip/noise/normalise step, against TensorFlow Privacy as an oracle."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_privacy.privacy.optimizers.dp_optimizer_keras import DPKerasSGDOptimizer

from dpcore.config import DPConfig
from dpcore.dpsgd import models, per_example, privatize

loss_fn = privatize.per_example_loss


def batch(shape: tuple[int, ...], size: int = 8, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.random((size, *shape), dtype=np.float32))
    y = tf.constant(rng.integers(0, 10, size), tf.int32)
    return x, y


def tfp_gradient(model: tf.keras.Model, x: tf.Tensor, y: tf.Tensor, *, clip: float) -> list[tf.Tensor]:
    """What DPKerasSGDOptimizer (one microbatch per example, no noise) computes for this batch."""
    optimizer = DPKerasSGDOptimizer(
        l2_norm_clip=clip, noise_multiplier=0.0, num_microbatches=int(x.shape[0]), learning_rate=1.0
    )
    pairs = optimizer._compute_gradients(
        lambda: loss_fn(y, model(x, training=False)), model.trainable_variables, tape=tf.GradientTape()
    )
    return [g for g, _ in pairs]


def ours(
    model: tf.keras.Model,
    x: tf.Tensor,
    y: tf.Tensor,
    *,
    clip: float,
    noise: float = 0.0,
    normalizer: float | None = None,
    seed: tuple[int, int] = (1, 2),
    training: bool = False,
) -> list[tf.Tensor]:
    return list(
        privatize.dp_gradient(
            model,
            loss_fn,
            x,
            y,
            l2_norm_clip=clip,
            noise_multiplier=noise,
            normalizer=float(x.shape[0]) if normalizer is None else normalizer,
            seed=seed,
            training=training,
        ).gradients
    )


def assert_close(actual: list[tf.Tensor], expected: list[tf.Tensor], atol: float = 1e-5) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a.numpy(), e.numpy(), atol=atol, rtol=0)


def gram_path_model() -> tf.keras.Model:
    """A conv layer with few positions and wide kernels, where the Gram-matrix norm is cheaper."""
    glorot = tf.keras.initializers.GlorotUniform
    return tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 8)),
            tf.keras.layers.Conv2D(64, 3, activation="relu", kernel_initializer=glorot(1)),
            tf.keras.layers.Conv2D(48, 3, padding="same", dilation_rate=2, kernel_initializer=glorot(2)),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(10, kernel_initializer=tf.keras.initializers.GlorotUniform(3)),
        ]
    )


def sequence_dense_model() -> tf.keras.Model:
    """Dense applied at every position of a sequence (rank-3 input)."""
    return tf.keras.Sequential(
        [
            tf.keras.Input((5, 4)),
            tf.keras.layers.Dense(6, activation="tanh", kernel_initializer=tf.keras.initializers.GlorotUniform(4)),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(10, kernel_initializer=tf.keras.initializers.GlorotUniform(5)),
        ]
    )


def generic_model() -> tf.keras.Model:
    """PReLU has no per-example rule, so this model takes the vectorised path."""
    return tf.keras.Sequential(
        [
            tf.keras.Input((12,)),
            tf.keras.layers.Dense(16, kernel_initializer=tf.keras.initializers.GlorotUniform(6)),
            tf.keras.layers.PReLU(alpha_initializer=tf.keras.initializers.Constant(0.2)),
            tf.keras.layers.Dense(10, kernel_initializer=tf.keras.initializers.GlorotUniform(7)),
        ]
    )


@pytest.mark.parametrize(
    "name,shape", [("logreg", (8, 8, 1)), ("mlp", (8, 8, 1)), ("cnn", (28, 28, 1)), ("lenet5", (28, 28, 1))]
)
@pytest.mark.parametrize("clip", [0.01, 1.0])
def test_noise_free_gradient_equals_tensorflow_privacy(name, shape, clip):
    model = models.build(DPConfig(model=name, activation="tanh"), input_shape=shape, num_classes=10)
    x, y = batch(shape)
    assert per_example.supports_fast_path(model)
    assert_close(ours(model, x, y, clip=clip), tfp_gradient(model, x, y, clip=clip))


def functional_model() -> tf.keras.Model:
    """A functional (non-Sequential) model with a skip connection: the vectorised path."""
    inputs = tf.keras.Input((12,))
    glorot = tf.keras.initializers.GlorotUniform
    hidden = tf.keras.layers.Dense(12, activation="tanh", kernel_initializer=glorot(8))(inputs)
    outputs = tf.keras.layers.Dense(10, kernel_initializer=glorot(9))(tf.keras.layers.Add()([inputs, hidden]))
    return tf.keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    "make,shape",
    [(gram_path_model, (6, 6, 8)), (sequence_dense_model, (5, 4)), (generic_model, (12,)), (functional_model, (12,))],
)
def test_other_layer_shapes_and_the_generic_path_equal_tensorflow_privacy(make, shape):
    model = make()
    x, y = batch(shape, seed=3)
    assert per_example.supports_fast_path(model) == (make not in (generic_model, functional_model))
    assert_close(ours(model, x, y, clip=0.05), tfp_gradient(model, x, y, clip=0.05))


def test_fast_and_generic_paths_agree_with_dropout_off():
    model = models.build(DPConfig(model="mlp"), input_shape=(8, 8, 1), num_classes=10)
    x, y = batch((8, 8, 1), size=5)
    fast = privatize.clipped_sum(
        model, loss_fn, x, y, l2_norm_clip=0.1, seed=tf.constant([0, 0], tf.int64), training=False
    )
    each = per_example.per_example_gradients(model, loss_fn, x, y, training=False, seed=tf.constant([0, 0], tf.int64))
    norms = tf.sqrt(tf.add_n([tf.reduce_sum(tf.reshape(g * g, [5, -1]), axis=1) for g in each.gradients]))
    factors = privatize.clip_factors(norms, 0.1)
    assert_close(list(fast.gradients), [tf.tensordot(factors, g, axes=1) for g in each.gradients])
    np.testing.assert_allclose(fast.losses.numpy(), each.losses.numpy(), rtol=1e-5)


def test_noise_std_is_noise_multiplier_times_clip_over_normalizer():
    model = models.build(DPConfig(model="mlp"), input_shape=(8, 8, 1), num_classes=10)
    x, y = batch((8, 8, 1), size=6)
    clean = ours(model, x, y, clip=0.5, normalizer=40.0)
    noisy = ours(model, x, y, clip=0.5, noise=2.0, normalizer=40.0)
    deviations = np.concatenate([(n - c).numpy().ravel() for n, c in zip(noisy, clean)])
    assert deviations.size > 8000
    assert abs(deviations.mean()) < 0.05 * 2.0 * 0.5 / 40.0
    assert deviations.std() == pytest.approx(2.0 * 0.5 / 40.0, rel=0.03)


def test_one_huge_gradient_moves_the_update_by_at_most_its_clip():
    model = models.build(DPConfig(model="cnn"), input_shape=(28, 28, 1), num_classes=10)
    x, y = batch((28, 28, 1), size=8, seed=5)
    outlier = tf.concat([x[:1] * 1e4, x[1:]], axis=0)
    clip, normalizer = 0.3, 8.0
    with_outlier = ours(model, outlier, y, clip=clip, normalizer=normalizer)
    without = ours(model, x[1:], y[1:], clip=clip, normalizer=normalizer)
    shift = np.sqrt(sum(float(tf.reduce_sum((a - b) ** 2)) for a, b in zip(with_outlier, without)))
    assert 0.5 * clip / normalizer < shift <= clip / normalizer * (1 + 1e-4)
    unclipped = privatize.baseline_gradient(model, loss_fn, outlier[:1], y[:1], seed=[0, 0], training=False)
    assert np.sqrt(sum(float(tf.reduce_sum(g * g)) for g in unclipped.gradients)) > 100 * clip


def test_same_seed_same_gradient_other_seed_other_noise_and_dropout():
    model = models.build(DPConfig(model="mlp"), input_shape=(8, 8, 1), num_classes=10)
    x, y = batch((8, 8, 1))
    first = ours(model, x, y, clip=1.0, noise=1.0, seed=(7, 1), training=True)
    again = ours(model, x, y, clip=1.0, noise=1.0, seed=(7, 1), training=True)
    other = ours(model, x, y, clip=1.0, noise=1.0, seed=(7, 2), training=True)
    assert_close(first, again, atol=0)
    assert not np.allclose(first[0].numpy(), other[0].numpy())


def test_an_empty_batch_gives_pure_noise_of_the_right_shape():
    model = models.build(DPConfig(model="cnn"), input_shape=(28, 28, 1), num_classes=10)
    x, y = batch((28, 28, 1), size=0)
    grads = ours(model, x, y, clip=1.0, noise=1.0, normalizer=4.0)
    assert [g.shape for g in grads] == [v.shape for v in model.trainable_variables]
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    assert float(tf.math.reduce_std(grads[0])) == pytest.approx(0.25, rel=0.2)


def test_masked_padding_rows_contribute_nothing():
    model = models.build(DPConfig(model="cnn"), input_shape=(28, 28, 1), num_classes=10)
    x, y = batch((28, 28, 1), size=6, seed=9)
    padded_x = tf.concat([x, x[:2] * 50.0], axis=0)
    padded_y = tf.concat([y, y[:2]], axis=0)
    mask = tf.constant([1.0] * 6 + [0.0] * 2)
    assert_close(
        list(
            privatize.dp_gradient(
                model,
                loss_fn,
                padded_x,
                padded_y,
                l2_norm_clip=0.2,
                noise_multiplier=1.0,
                normalizer=6.0,
                seed=(3, 4),
                training=False,
                mask=mask,
            ).gradients
        ),
        ours(model, x, y, clip=0.2, noise=1.0, normalizer=6.0, seed=(3, 4)),
    )
    baseline_padded = privatize.baseline_gradient(
        model, loss_fn, padded_x, padded_y, seed=[0, 0], training=False, mask=mask
    )
    baseline = privatize.baseline_gradient(model, loss_fn, x, y, seed=[0, 0], training=False)
    assert_close(list(baseline_padded.gradients), list(baseline.gradients))


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("size", [7, 1])
def test_a_batch_in_parts_gives_each_examples_clipped_gradient_and_the_same_sum(parts, size):
    """Parts (one of them empty when there are more parts than examples) change only the rounding;
    padding rows stay masked wherever they fall, and TF Privacy's per-example loop is the oracle."""
    model = models.build(DPConfig(model="cnn", activation="tanh"), input_shape=(28, 28, 1), num_classes=10)
    x, y = batch((28, 28, 1), size=size, seed=11)
    padded_x, padded_y = tf.concat([x, x[:1] * 50.0], axis=0), tf.concat([y, y[:1]], axis=0)
    mask = tf.constant([1.0] * size + [0.0])
    whole = privatize.clipped_sum(
        model, loss_fn, x, y, l2_norm_clip=0.05, seed=tf.constant([0, 0], tf.int64), training=False
    )
    for inputs in ((padded_x, padded_y), (x, y)):
        in_parts = privatize.clipped_sum(
            model,
            loss_fn,
            *inputs,
            l2_norm_clip=0.05,
            seed=tf.constant([0, 0], tf.int64),
            training=False,
            mask=mask if inputs[0] is padded_x else None,
            parts=parts,
        )
        assert_close(list(in_parts.gradients), list(whole.gradients), atol=1e-6)
        np.testing.assert_allclose(in_parts.norms.numpy()[:size], whole.norms.numpy(), rtol=1e-5)
        np.testing.assert_allclose(in_parts.losses.numpy()[:size], whole.losses.numpy(), rtol=1e-5)
        assert in_parts.logits.shape[0] == inputs[0].shape[0]
    assert_close([g / size for g in whole.gradients], tfp_gradient(model, x, y, clip=0.05))  # TFP averages


def test_a_traced_step_in_parts_takes_batches_of_any_size():
    """In a graph the batch size is unknown until a step runs: parts are cut from the runtime size."""
    model = models.build(DPConfig(model="cnn"), input_shape=(28, 28, 1), num_classes=10)

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1]), tf.TensorSpec([None], tf.int32)])
    def step(x, y):
        return privatize.dp_gradient(
            model,
            loss_fn,
            x,
            y,
            l2_norm_clip=0.1,
            noise_multiplier=0.0,
            normalizer=1.0,
            seed=[5, 6],
            training=False,
            parts=4,
        ).gradients

    for size in (0, 3, 10):
        x, y = batch((28, 28, 1), size=size, seed=size)
        assert_close(list(step(x, y)), ours(model, x, y, clip=0.1, normalizer=1.0, seed=(5, 6)), atol=1e-6)


def test_gaussian_noise_samples_are_gaussian_and_follow_the_seed():
    from scipy import stats

    count = 1_000_001
    samples = privatize.gaussian_noise(count, seed=tf.constant([5, 6], tf.int64)).numpy()
    assert samples.shape == (count,) and samples.dtype == np.float32 and np.isfinite(samples).all()
    assert abs(samples.mean()) < 0.005 and samples.std() == pytest.approx(1.0, abs=0.005)
    assert stats.kstest(samples, "norm").pvalue > 0.01
    for threshold in (3.0, 4.0):  # two-sided tail counts within the central 99.98% of their Binomial law
        beyond = int(np.sum(np.abs(samples) > threshold))
        law = stats.binom(count, 2 * stats.norm.sf(threshold))
        assert law.ppf(1e-4) <= beyond <= law.isf(1e-4), (threshold, beyond, law.mean())
    again = privatize.gaussian_noise(count, seed=tf.constant([5, 6], tf.int64)).numpy()
    np.testing.assert_array_equal(samples, again)
    other = privatize.gaussian_noise(count, seed=tf.constant([5, 7], tf.int64)).numpy()
    assert not np.array_equal(samples, other)


def test_the_largest_reachable_draw_is_far_in_the_gaussian_tail():
    """The smallest radius uniform is uniform_from_bits(0, 0) = 2**-65 (a high word of 0 is refined with a
    low word of 0); it sets the largest |z|, sqrt(-2 ln 2**-65) = 9.49. All-ones bits give u = 1 and z = 0."""
    smallest = privatize.uniform_from_bits(tf.constant([0], tf.uint32), tf.constant([0], tf.uint32)).numpy()[0]
    assert smallest == privatize.RADIUS_UNIFORM_MIN == 2.0**-65
    largest = np.sqrt(-2.0 * np.log(privatize.RADIUS_UNIFORM_MIN))
    assert largest > 8.0
    assert privatize.uniform_from_bits(tf.constant([2**32 - 1], tf.uint32)).numpy()[0] == 1.0
    uniforms = tf.constant([smallest, smallest, smallest, 1.0, 2.0**-20], tf.float32)
    angles = tf.constant([0.0, 0.5, 0.25, 0.3, 0.0], tf.float32)  # fractions of a turn
    first, second = np.split(privatize.box_muller(uniforms, angles).numpy(), 2)  # r cos θ, r sin θ
    assert np.isfinite(first).all() and np.isfinite(second).all()
    np.testing.assert_allclose(first[:3], [largest, -largest, 0.0], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(second[:3], [0.0, 0.0, largest], rtol=1e-6, atol=1e-5)
    assert first[3] == 0.0 and second[3] == 0.0
    assert first[4] == pytest.approx(np.sqrt(40 * np.log(2.0)), rel=1e-6)
    scaled = privatize.box_muller(uniforms, angles, stddev=2.5).numpy()
    np.testing.assert_allclose(scaled, 2.5 * np.concatenate([first, second]), rtol=1e-6, atol=1e-5)


def test_small_radius_uniforms_get_32_more_random_bits():
    from scipy import stats

    seed = tf.constant([3, 4], tf.int64)
    # High words of 0: u = (L + 1/2) / 2**64 with L uniform over 32 bits, so u * 2**32 is uniform on (0, 1).
    zero_high = privatize.radius_uniform(tf.zeros([100_000], tf.uint32), seed=seed).numpy()
    assert stats.kstest(zero_high.astype(np.float64) * 2.0**32, "uniform").pvalue > 0.01
    assert zero_high.min() > 0 and zero_high.max() < 2.0**-32
    high = tf.constant([1, privatize.REFINE_BELOW - 1, privatize.REFINE_BELOW, 2**31], tf.uint32)
    mixed = privatize.radius_uniform(high, seed=seed).numpy()
    bounds = high.numpy().astype(np.float64) * 2.0**-32
    assert np.all(bounds <= mixed) and np.all(mixed <= bounds + 2.0**-32)  # in the high word's interval
    np.testing.assert_array_equal(mixed[2:], privatize.uniform_from_bits(high[2:]).numpy())  # not refined
    assert mixed[0] != privatize.uniform_from_bits(high[:1]).numpy()[0]  # refined
    np.testing.assert_array_equal(mixed, privatize.radius_uniform(high, seed=seed).numpy())


def test_a_frozen_layer_neither_counts_towards_norms_nor_gets_a_gradient():
    model = sequence_dense_model()
    model.layers[0].trainable = False
    x, y = batch((5, 4), seed=4)
    assert per_example.supports_fast_path(model) and len(model.trainable_variables) == 2
    assert_close(ours(model, x, y, clip=0.05), tfp_gradient(model, x, y, clip=0.05))
