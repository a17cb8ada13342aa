"""dpcore.models: the four recipes, their supported input shapes, seeding and activations."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from dpcore.config import MODELS, DPConfig
from dpcore.dpsgd import models
from dpcore.errors import ConfigError

IMAGE = (28, 28, 1)


def build(model: str, shape: tuple[int, ...] = IMAGE, **changes: object) -> tf.keras.Model:
    return models.build(DPConfig(model=model, **changes), input_shape=shape, num_classes=10)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_outputs_logits_for_mnist_sized_images(name):
    model = build(name)
    # The ScatterNet heads take the images' features (7x7x81), the others the images themselves.
    x = np.random.default_rng(0).random((3, *model.input_shape[1:]), dtype=np.float32)
    logits = model(x, training=False).numpy()
    assert logits.shape == (3, 10)
    assert not np.allclose(logits.sum(axis=1), 1.0)  # raw logits, no softmax layer


@pytest.mark.parametrize("name", ["logreg", "mlp"])
@pytest.mark.parametrize("shape", [(8, 8, 1), (11,)])
def test_flat_models_take_small_images_and_tabular_rows(name, shape):
    model = build(name, shape)
    assert model(np.zeros((2, *shape), np.float32)).shape == (2, 10)


@pytest.mark.parametrize("name", ["cnn", "lenet5", "scatternet_linear", "scatternet_cnn"])
def test_convolutional_model_on_digits_is_a_config_error_naming_model(name):
    with pytest.raises(ConfigError) as info:
        build(name, (8, 8, 1))
    assert info.value.field == "model"
    assert "28x28" in str(info.value) and "logreg, mlp" in str(info.value)


def test_cnn_is_the_tensorflow_privacy_tutorial_architecture():
    layers = build("cnn").layers
    pixels, conv1, pool1, conv2, pool2, _, dense1, dense2 = layers
    assert (pixels.scale, pixels.offset) == (2.0, -1.0)  # [0, 1] -> [-1, 1]
    assert (conv1.filters, conv1.kernel_size, conv1.strides, conv1.padding) == (16, (8, 8), (2, 2), "same")
    assert (pool1.pool_size, pool1.strides) == ((2, 2), (1, 1))
    assert (conv2.filters, conv2.kernel_size, conv2.strides, conv2.padding) == (32, (4, 4), (2, 2), "valid")
    assert (pool2.pool_size, pool2.strides) == ((2, 2), (1, 1))
    assert (dense1.units, dense2.units) == (32, 10)


def test_mlp_is_dense_128_with_dropout_and_lenet5_has_its_five_weight_layers():
    mlp = build("mlp")
    assert [type(layer).__name__ for layer in mlp.layers] == ["Flatten", "Dense", "Dropout", "Dense"]
    assert mlp.layers[1].units == 128 and mlp.layers[2].rate == models.MLP_DROPOUT
    lenet = build("lenet5")
    weighted = [layer for layer in lenet.layers if layer.trainable_weights]
    assert [getattr(layer, "filters", None) or layer.units for layer in weighted] == [6, 16, 120, 84, 10]
    assert not weighted[0].use_bias and not weighted[1].use_bias


def test_activation_option_reaches_the_hidden_layers():
    for name in ("mlp", "cnn", "lenet5"):
        hidden = [layer for layer in build(name, activation="tanh").layers if layer.trainable_weights][:-1]
        assert hidden and all(layer.activation is tf.keras.activations.tanh for layer in hidden)
        output = [layer for layer in build(name, activation="tanh").layers if layer.trainable_weights][-1]
        assert output.activation is tf.keras.activations.linear


def test_same_seed_same_weights_other_seed_other_weights():
    first, second, other = build("cnn", seed=3), build("cnn", seed=3), build("cnn", seed=4)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


def test_predict_logits_refuses_weights_of_another_model():
    config = DPConfig(dataset="digits", model="logreg")
    x = np.zeros((3, 8, 8, 1), np.float32)
    weights = [np.zeros((64, 10), np.float32), np.arange(10, dtype=np.float32)]
    assert (models.predict_logits(config, weights=weights, x=x, num_classes=10) == np.arange(10)).all()
    with pytest.raises(ConfigError, match="do not fit"):
        models.predict_logits(config.replace(model="mlp"), weights=weights, x=x, num_classes=10)


@pytest.mark.parametrize("name", ["scatternet_linear", "scatternet_cnn"])
def test_predict_logits_of_a_scatternet_model_takes_images_as_the_trainer_does(name):
    from dpcore.data import scatter

    config = DPConfig(dataset="fashion_mnist", model=name)
    images = np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32)
    model = models.build(config, input_shape=(28, 28, 1), num_classes=10)
    weights = model.get_weights()
    logits = models.predict_logits(config, weights=weights, x=images, num_classes=10)
    expected = model(scatter.compute_features(images), training=False).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
