"""Model registry: logreg, mlp, cnn, lenet5 and the two ScatterNet heads, each a Keras Sequential model
with a logits output.

The recipes follow the sources the app cites: mlp is the DP-Adam MLP (Dense 128 + dropout), cnn the
TensorFlow Privacy tutorial CNN, lenet5 MindArmour's LeNet-5, scatternet_linear and scatternet_cnn
Tramèr & Boneh's (ICLR 2021) linear and CNN heads on ScatterNet features. Initialisers are seeded
from the config, so the same seed builds the same weights without touching global random state.

The ScatterNet models take a dataset of images like the others (``input_shape`` is the image's
shape) but consume the images' scattering features after per-example group standardisation
(dpcore.data.scatter.features_dataset; shape dpcore.data.scatter.feature_shape(input_shape)), which the trainer
computes once per dataset; feeding them pixels is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable

import numpy as np
import tensorflow as tf

from dpcore.data import scatter
from dpcore.errors import ConfigError
from dpcore.model_specs import CNN_PIXEL_OFFSET, CNN_PIXEL_SCALE, LENET_SIDE, check_pair

if TYPE_CHECKING:
    from dpcore.config import DPConfig

MLP_DROPOUT = 0.3


def build(config: DPConfig, *, input_shape: tuple[int, ...], num_classes: int) -> tf.keras.Model:
    """A fresh model for ``config`` (its model, activation and seed) that outputs logits."""
    check_pair(config.model, input_shape)
    if num_classes < 2:
        raise ConfigError("dataset", f"{num_classes} class(es)", allowed="at least 2 classes")
    layers = _BUILDERS[config.model](_Seeds(config.seed), config.activation, int(num_classes))
    shape = scatter.feature_shape(input_shape) if config.model in scatter.SCATTERNET_MODELS else tuple(input_shape)
    model = tf.keras.Sequential([tf.keras.Input(shape=shape), *layers], name=config.model)
    return model


def predict_logits(
    config: DPConfig, *, weights: Sequence[np.ndarray], x: np.ndarray, num_classes: int, batch_size: int = 1000
) -> np.ndarray:
    """The logits (n, num_classes) of the model ``config`` describes with ``weights`` loaded, in inference mode.

    ``x`` holds the dataset's examples as the trainer receives them (images for the ScatterNet models,
    whose features are computed here as the trainer's are).
    """
    model = build(config, input_shape=tuple(x.shape[1:]), num_classes=num_classes)
    if config.model in scatter.SCATTERNET_MODELS:
        x = scatter.compute_features(np.asarray(x, dtype=np.float32))
    expected = [tuple(w.shape) for w in model.get_weights()]
    given = [tuple(np.shape(w)) for w in weights]
    if given != expected:
        raise ConfigError(
            "model",
            f"the stored weights (shapes {given}) do not fit a {config.model!r} "
            f"model of this dataset (shapes {expected})",
            allowed="the weights of this run",
        )
    model.set_weights(list(weights))
    parts = [model(x[start : start + batch_size], training=False).numpy() for start in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, num_classes), np.float32)


class _Seeds:
    """Distinct initialiser seeds for successive layers, all derived from one run seed."""

    def __init__(self, seed: int) -> None:
        self._base = int(seed) * 1000
        self._count = 0

    def next(self) -> int:
        self._count += 1
        return self._base + self._count

    def glorot(self) -> tf.keras.initializers.Initializer:
        return tf.keras.initializers.GlorotUniform(seed=self.next())

    def truncated(self, stddev: float) -> tf.keras.initializers.Initializer:
        return tf.keras.initializers.TruncatedNormal(stddev=stddev, seed=self.next())


def _dense(seeds: _Seeds, units: int, activation: str | None = None) -> tf.keras.layers.Layer:
    return tf.keras.layers.Dense(units, activation=activation, kernel_initializer=seeds.glorot())


def _logreg(seeds: _Seeds, activation: str, classes: int) -> list[tf.keras.layers.Layer]:
    return [tf.keras.layers.Flatten(), _dense(seeds, classes)]


def _mlp(seeds: _Seeds, activation: str, classes: int) -> list[tf.keras.layers.Layer]:
    return [
        tf.keras.layers.Flatten(),
        _dense(seeds, 128, activation),
        tf.keras.layers.Dropout(MLP_DROPOUT),
        _dense(seeds, classes),
    ]


def _cnn(seeds: _Seeds, activation: str, classes: int) -> list[tf.keras.layers.Layer]:
    # Pixels come in [0, 1]; the first layer maps them to [-1, 1], a fixed affine map (no parameters,
    # nothing fitted to data). Centred inputs suit tanh: Tramèr & Boneh's recipe at ε = 3 gained
    # 0.37 points of test accuracy on Fashion-MNIST over three seeds (docs/performance.md).
    return [
        tf.keras.layers.Rescaling(CNN_PIXEL_SCALE, offset=CNN_PIXEL_OFFSET),
        tf.keras.layers.Conv2D(
            16, 8, strides=2, padding="same", activation=activation, kernel_initializer=seeds.glorot()
        ),
        tf.keras.layers.MaxPool2D(2, 1),
        tf.keras.layers.Conv2D(
            32, 4, strides=2, padding="valid", activation=activation, kernel_initializer=seeds.glorot()
        ),
        tf.keras.layers.MaxPool2D(2, 1),
        tf.keras.layers.Flatten(),
        _dense(seeds, 32, activation),
        _dense(seeds, classes),
    ]


def _lenet5(seeds: _Seeds, activation: str, classes: int) -> list[tf.keras.layers.Layer]:
    # MindArmour resizes MNIST to 32x32 (bilinear) and uses bias-free convolutions and
    # TruncatedNormal(0.05) weights; the resize is part of the model here so any image size works.
    def conv(filters: int) -> tf.keras.layers.Layer:
        return tf.keras.layers.Conv2D(
            filters, 5, padding="valid", use_bias=False, activation=activation, kernel_initializer=seeds.truncated(0.05)
        )

    def dense(units: int, act: str | None) -> tf.keras.layers.Layer:
        return tf.keras.layers.Dense(
            units, activation=act, kernel_initializer=seeds.truncated(0.05), bias_initializer=seeds.truncated(0.05)
        )

    return [
        tf.keras.layers.Resizing(LENET_SIDE, LENET_SIDE, interpolation="bilinear"),
        conv(6),
        tf.keras.layers.MaxPool2D(2, 2),
        conv(16),
        tf.keras.layers.MaxPool2D(2, 2),
        tf.keras.layers.Flatten(),
        dense(120, activation),
        dense(84, activation),
        dense(classes, None),
    ]


# Both ScatterNet heads start where Tramèr & Boneh's GroupNorm(27, affine=False) ends: that
# normalisation has no parameters and uses each example alone, so dpcore.data.scatter applies it once to
# the cached features instead of in every step, where it took three quarters of the linear head's time.


def _scatternet_linear(seeds: _Seeds, activation: str, classes: int) -> list[tf.keras.layers.Layer]:
    return [tf.keras.layers.Flatten(), _dense(seeds, classes)]


def _scatternet_cnn(seeds: _Seeds, activation: str, classes: int) -> list[tf.keras.layers.Layer]:
    # Tramèr & Boneh's (Fashion-)MNIST head on 81x7x7 features: two 3x3 convolutions (16 filters,
    # stride 2, then 32) and a hidden layer of 32; they use tanh, set by the config's activation here.
    def conv(filters: int, strides: int) -> tf.keras.layers.Layer:
        return tf.keras.layers.Conv2D(
            filters, 3, strides=strides, padding="same", activation=activation, kernel_initializer=seeds.glorot()
        )

    return [
        conv(16, 2),
        conv(32, 1),
        tf.keras.layers.Flatten(),
        _dense(seeds, 32, activation),
        _dense(seeds, classes),
    ]


_BUILDERS: dict[str, Callable[[_Seeds, str, int], list[tf.keras.layers.Layer]]] = {
    "logreg": _logreg,
    "mlp": _mlp,
    "cnn": _cnn,
    "lenet5": _lenet5,
    "scatternet_linear": _scatternet_linear,
    "scatternet_cnn": _scatternet_cnn,
}
