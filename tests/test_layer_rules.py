"""Per-example rules, the generic path and refusals, against a brute-force loop over single examples.

Every registered rule and every model the app offers must give each example's gradient norm and the
clipped sum that one example at a time through tf.GradientTape gives; removing one example must move
the clipped sum by exactly that example's clipped gradient (so by at most C), padded batches included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import tensorflow as tf

from dpcore.config import DPConfig
from dpcore.dpsgd import layer_rules, models, per_example, privatize
from dpcore.errors import UserInputError

loss_fn = privatize.per_example_loss
L = tf.keras.layers
BATCH = 8


def glorot(seed: int) -> tf.keras.initializers.Initializer:
    return tf.keras.initializers.GlorotUniform(seed=seed)


def randomise_normalisation(model: tf.keras.Model) -> tf.keras.Model:
    """Give gamma and beta values other than 1 and 0, so that a rule that ignores them fails."""
    rng = np.random.default_rng(11)
    for variable in model.trainable_variables:
        if "gamma" in variable.name or "beta" in variable.name:
            variable.assign(rng.normal(0.5, 0.4, variable.shape).astype(np.float32))
    return model


def app_model(name: str, shape: tuple[int, ...]) -> Callable[[], tf.keras.Model]:
    return lambda: models.build(DPConfig(model=name, activation="tanh"), input_shape=shape, num_classes=10)


def sequential(shape: tuple[int, ...], *layers: L.Layer, dtype: str = "float32") -> tf.keras.Model:
    return randomise_normalisation(tf.keras.Sequential([tf.keras.Input(shape, dtype=dtype), *layers]))


def dense_on_sequences() -> tf.keras.Model:
    return sequential(
        (5, 4),
        L.Dense(6, activation="tanh", kernel_initializer=glorot(1)),
        L.Flatten(),
        L.Dense(10, use_bias=False, kernel_initializer=glorot(2)),
    )


def multichannel_conv() -> tf.keras.Model:
    return sequential(
        (6, 6, 8),
        L.Conv2D(64, 3, activation="relu", kernel_initializer=glorot(3)),
        L.Conv2D(48, 3, padding="same", dilation_rate=2, kernel_initializer=glorot(4)),
        L.Flatten(),
        L.Dense(10, kernel_initializer=glorot(5)),
    )


def layer_norm_last_axis() -> tf.keras.Model:
    return sequential(
        (12,),
        L.Dense(16, kernel_initializer=glorot(6)),
        L.LayerNormalization(),
        L.Activation("relu"),
        L.Dense(10, kernel_initializer=glorot(7)),
    )


def layer_norm_two_axes() -> tf.keras.Model:
    return sequential(
        (5, 4),
        L.Dense(6, kernel_initializer=glorot(8)),
        L.LayerNormalization(axis=[1, 2]),
        L.LayerNormalization(center=False),
        L.Flatten(),
        L.Dense(10, kernel_initializer=glorot(9)),
    )


def group_norm_images() -> tf.keras.Model:
    return sequential(
        (6, 6, 2),
        L.Conv2D(8, 3, padding="same", kernel_initializer=glorot(10)),
        L.GroupNormalization(groups=4),
        L.Activation("tanh"),
        L.Flatten(),
        L.Dense(10, kernel_initializer=glorot(11)),
    )


def group_norm_vectors() -> tf.keras.Model:
    return sequential(
        (12,),
        L.Dense(8, kernel_initializer=glorot(12)),
        L.GroupNormalization(groups=2, scale=False),
        L.Dense(10, kernel_initializer=glorot(13)),
    )


VOCABULARY = 9


def embedding_model() -> tf.keras.Model:
    # 7 positions over 9 ids: most examples use some id twice, whose gradients add before the norm.
    return sequential(
        (7,),
        L.Embedding(VOCABULARY, 5, embeddings_initializer="uniform"),
        L.Flatten(),
        L.Dense(10, kernel_initializer=glorot(14)),
        dtype="int32",
    )


def functional_normalisations() -> tf.keras.Model:
    """LayerNormalization, GroupNormalization and Embedding outside a Sequential: the generic path."""
    ids = tf.keras.Input((7,), dtype="int32")
    hidden = L.Flatten()(L.Embedding(VOCABULARY, 4, embeddings_initializer="uniform")(ids))
    hidden = L.GroupNormalization(groups=2)(L.Dense(8, kernel_initializer=glorot(15))(hidden))
    hidden = L.LayerNormalization()(L.Dense(8, kernel_initializer=glorot(16))(hidden))
    return randomise_normalisation(tf.keras.Model(ids, L.Dense(10, kernel_initializer=glorot(17))(hidden)))


def sequential_reusing_a_layer() -> tf.keras.Model:
    shared = L.Dense(12, activation="tanh", kernel_initializer=glorot(18))
    return sequential((12,), shared, shared, L.Dense(10, kernel_initializer=glorot(19)))


def functional_reusing_a_layer() -> tf.keras.Model:
    inputs = tf.keras.Input((12,))
    shared = L.Dense(12, activation="tanh", kernel_initializer=glorot(20))
    twice = shared(shared(inputs))
    return tf.keras.Model(inputs, L.Dense(10, kernel_initializer=glorot(21))(L.Add()([inputs, twice])))


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], tf.keras.Model]
    shape: tuple[int, ...]
    fast: bool  # expected path
    ids: bool = False

    def batch(self, size: int = BATCH, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
        rng = np.random.default_rng(seed)
        if self.ids:
            x = tf.constant(rng.integers(0, VOCABULARY, (size, *self.shape)), tf.int32)
        else:
            x = tf.constant(rng.normal(0.5, 0.5, (size, *self.shape)).astype(np.float32))
        return x, tf.constant(rng.integers(0, 10, size), tf.int32)


APP_CASES = [
    Case(f"app {name} {'x'.join(map(str, shape))}", app_model(name, shape), shape, fast=True)
    for name, shape in [
        ("logreg", (8, 8, 1)),
        ("logreg", (11,)),
        ("mlp", (8, 8, 1)),
        ("mlp", (11,)),
        ("cnn", (28, 28, 1)),
        ("lenet5", (28, 28, 1)),
    ]
]
# Each registered layer class and the models that exercise its rule (some also through the app's models).
RULE_CASES = {
    L.Dense: [Case("Dense on sequences, no bias", dense_on_sequences, (5, 4), fast=True)],
    L.Conv2D: [Case("Conv2D with channels, dilation", multichannel_conv, (6, 6, 8), fast=True)],
    L.LayerNormalization: [
        Case("LayerNormalization", layer_norm_last_axis, (12,), fast=True),
        Case("LayerNormalization over two axes", layer_norm_two_axes, (5, 4), fast=True),
    ],
    L.GroupNormalization: [
        Case("GroupNormalization on images", group_norm_images, (6, 6, 2), fast=True),
        Case("GroupNormalization on vectors", group_norm_vectors, (12,), fast=True),
    ],
    L.Embedding: [Case("Embedding", embedding_model, (7,), fast=True, ids=True)],
}
GENERIC_CASES = [
    Case(
        "functional LayerNormalization, GroupNormalization, Embedding",
        functional_normalisations,
        (7,),
        fast=False,
        ids=True,
    ),
    Case("Sequential using one Dense twice", sequential_reusing_a_layer, (12,), fast=False),
    Case("functional model using one Dense twice", functional_reusing_a_layer, (12,), fast=False),
]
CASES = APP_CASES + [case for cases in RULE_CASES.values() for case in cases] + GENERIC_CASES


def test_every_registered_rule_has_test_models():
    assert set(RULE_CASES) == set(layer_rules.RULES)
    for layer_class, cases in RULE_CASES.items():
        for case in cases:
            assert any(type(layer) is layer_class and layer_rules.rule_for(layer) for layer in case.build().layers)


def brute_force(model: tf.keras.Model, x: tf.Tensor, y: tf.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each example's gradient norm and gradient, one example at a time through tf.GradientTape."""
    norms, gradients = [], []
    for i in range(int(x.shape[0])):
        with tf.GradientTape() as tape:
            loss = loss_fn(y[i : i + 1], model(x[i : i + 1], training=False))[0]
        grads = tape.gradient(loss, model.trainable_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        gradients.append([tf.convert_to_tensor(g).numpy().astype(np.float64) for g in grads])
        norms.append(np.sqrt(sum(float(np.sum(g**2)) for g in gradients[-1])))
    return np.array(norms), gradients


def clipped_sum_function(model: tf.keras.Model, clip: float) -> Callable:
    """clipped_sum compiled once per input shape, as the trainer runs it."""

    @tf.function
    def compiled(x: tf.Tensor, y: tf.Tensor, mask: tf.Tensor) -> tuple:
        result = privatize.clipped_sum(
            model, loss_fn, x, y, l2_norm_clip=clip, seed=tf.constant([0, 0], tf.int64), training=False, mask=mask
        )
        return result.gradients, result.norms

    def run(x: tf.Tensor, y: tf.Tensor, mask: tf.Tensor) -> privatize.StepGradient:
        gradients, norms = compiled(x, y, mask)
        return privatize.StepGradient(gradients=gradients, losses=tf.zeros([0]), logits=tf.zeros([0]), norms=norms)

    return run


def flat(gradients) -> np.ndarray:
    return np.concatenate([np.asarray(g, np.float64).ravel() for g in gradients])


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_norms_clipped_sum_and_removals_equal_a_per_example_loop(case):
    """On a batch padded as Poisson batches are (masked rows, large here so that a leak shows): the norms
    and the clipped sum equal the loop's, and masking out or removing any one example moves the sum
    by exactly its clipped gradient, so by at most C."""
    model = case.build()
    assert per_example.supports_fast_path(model) == case.fast
    x, y = case.batch()
    padding_x, padding_y = case.batch(size=3, seed=2)
    if not case.ids:
        padding_x = padding_x * 30.0
    padded_x, padded_y = tf.concat([x, padding_x], 0), tf.concat([y, padding_y], 0)
    mask = np.array([1.0] * BATCH + [0.0] * 3, np.float32)
    norms, gradients = brute_force(model, x, y)
    clip = float(np.median(norms))  # some examples are clipped, some are not
    run = clipped_sum_function(model, clip)

    result = run(padded_x, padded_y, tf.constant(mask))
    np.testing.assert_allclose(result.norms.numpy()[:BATCH], norms, rtol=1e-5, atol=1e-5)
    factors = np.minimum(1.0, clip / norms)
    full = flat(result.gradients)
    np.testing.assert_allclose(full, sum(f * flat(g) for f, g in zip(factors, gradients)), rtol=0, atol=1e-5)
    for i in range(BATCH):
        without_i = mask.copy()
        without_i[i] = 0.0
        masked_out = flat(run(padded_x, padded_y, tf.constant(without_i)).gradients)
        keep = [j for j in range(BATCH) if j != i]
        removed = flat(run(tf.gather(x, keep), tf.gather(y, keep), tf.ones([BATCH - 1])).gradients)
        np.testing.assert_allclose(masked_out, removed, rtol=0, atol=1e-5)
        shift = np.linalg.norm(full - removed)
        assert shift <= clip * (1 + 1e-5)
        assert shift == pytest.approx(min(norms[i], clip), rel=1e-4)


@pytest.mark.parametrize("case", [case for cases in RULE_CASES.values() for case in cases], ids=lambda case: case.name)
def test_the_generic_path_agrees_with_each_rule(case):
    """The vectorised path (taken where a rule does not apply) gives the loop's norms on the rules' models."""
    model = case.build()
    x, y = case.batch(seed=3)
    each = per_example.per_example_gradients(model, loss_fn, x, y, training=False, seed=tf.constant([0, 0], tf.int64))
    generic = np.sqrt(sum(np.sum(g.numpy().reshape(BATCH, -1) ** 2, axis=1) for g in each.gradients))
    np.testing.assert_allclose(generic, brute_force(model, x, y)[0], rtol=1e-5, atol=1e-5)


# -- refusals -----------------------------------------------------------------------------------------


def hidden_then(layer: L.Layer) -> tf.keras.Model:
    return tf.keras.Sequential([tf.keras.Input((12,)), L.Dense(16, name="hidden"), layer, L.Dense(10)])


def frozen(layer: L.Layer) -> L.Layer:
    layer.trainable = False
    return layer


def functional_with(layer: L.Layer) -> tf.keras.Model:
    inputs = tf.keras.Input((12,))
    return tf.keras.Model(inputs, L.Dense(10)(layer(L.Dense(16)(inputs))))


def nested_with(layer: L.Layer) -> tf.keras.Model:
    block = tf.keras.Sequential([tf.keras.Input((12,)), L.Dense(16), layer], name="block")
    inputs = tf.keras.Input((12,))
    return tf.keras.Model(inputs, L.Dense(10)(block(inputs)))


BATCH_NORMS = {
    "trainable, fast path": lambda: hidden_then(L.BatchNormalization(name="bn")),
    "no trainable weights": lambda: hidden_then(L.BatchNormalization(center=False, scale=False, name="bn")),
    "frozen": lambda: hidden_then(frozen(L.BatchNormalization(name="bn"))),
    "functional model, generic path": lambda: functional_with(L.BatchNormalization(name="bn")),
    "nested in a sub-model": lambda: nested_with(L.BatchNormalization(name="bn")),
    "synchronised": lambda: hidden_then(L.BatchNormalization(synchronized=True, name="bn")),
    "TF1 class": lambda: hidden_then(tf.compat.v1.keras.layers.BatchNormalization(name="bn")),
}


def dp_step(model: tf.keras.Model, x: tf.Tensor, y: tf.Tensor) -> privatize.StepGradient:
    return privatize.dp_gradient(
        model, loss_fn, x, y, l2_norm_clip=1.0, noise_multiplier=1.0, normalizer=8.0, seed=(1, 2), training=True
    )


@pytest.mark.parametrize("make", BATCH_NORMS.values(), ids=BATCH_NORMS.keys())
def test_batch_normalization_is_refused_naming_the_layer_and_the_alternatives(make):
    model = make()
    before = [v.numpy().copy() for v in model.variables]
    x, y = Case("", make, (12,), fast=False).batch()
    with pytest.raises(UserInputError) as info:
        dp_step(model, x, y)
    message = str(info.value)
    assert info.value.field == "model"
    assert "'bn'" in message and "BatchNormalization" in message
    assert "LayerNormalization or GroupNormalization" in message
    for old, variable in zip(before, model.variables):  # refused before anything ran
        np.testing.assert_array_equal(old, variable.numpy())
    with pytest.raises(UserInputError, match="'bn'"):
        tf.function(lambda: dp_step(model, x, y))()


class RunningMean(L.Layer):
    """A layer that keeps a mean of its inputs, updated in call: state learnt from the data."""

    def build(self, input_shape: tf.TensorShape) -> None:
        self.running = self.add_weight(name="running", shape=input_shape[1:], initializer="zeros", trainable=False)

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        if training:
            self.running.assign(0.9 * self.running + 0.1 * tf.reduce_mean(inputs, axis=0))
        return inputs - self.running


def adapted_normalization() -> L.Layer:
    layer = L.Normalization(name="standardise")
    layer.adapt(np.random.default_rng(0).normal(3.0, 2.0, (50, 16)).astype(np.float32))
    return layer


@pytest.mark.parametrize(
    "make,name,variable",
    [
        (lambda: hidden_then(RunningMean(name="running_mean")), "running_mean", "running"),
        (lambda: functional_with(RunningMean(name="running_mean")), "running_mean", "running"),
        (lambda: hidden_then(adapted_normalization()), "standardise", "mean"),
    ],
    ids=["custom layer, fast path candidate", "custom layer, functional", "adapted Normalization"],
)
def test_layers_with_state_are_refused_naming_the_layer_and_its_variables(make, name, variable):
    model = make()
    x, y = Case("", make, (12,), fast=False).batch()
    with pytest.raises(UserInputError) as info:
        dp_step(model, x, y)
    assert f"'{name}'" in str(info.value) and variable in str(info.value)
    assert "LayerNormalization or GroupNormalization" in str(info.value)


def test_per_example_layers_and_frozen_weights_are_accepted():
    compiled = hidden_then(L.Normalization(mean=0.5, variance=4.0))
    compiled.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    frozen_hidden = hidden_then(L.LayerNormalization())
    frozen_hidden.get_layer("hidden").trainable = False
    for model in (compiled, frozen_hidden, functional_with(L.GroupNormalization(groups=4))):
        per_example.check_privatizable(model)
        x, y = Case("", lambda: model, (12,), fast=False).batch()  # noqa: B023 (called within the iteration)
        assert all(np.isfinite(g.numpy()).all() for g in dp_step(model, x, y).gradients)
    assert per_example.supports_fast_path(frozen_hidden)
