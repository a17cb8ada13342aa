"""The recipe presets carry the sources' hyperparameters and only valid model/dataset pairs."""

from __future__ import annotations

import math

import pytest

from dpcore.data import datasets
from dpcore.data.datasets import dataset_info
from dpcore.dpsgd import training
from dpcore.errors import ConfigError
from dpcore.model_specs import supported_models
from dpcore.privacy import accounting
from dpcore.privacy.noise import noise_split_for_config
from dpcore.views import presets


@pytest.mark.parametrize(
    "key, expected",
    [
        (
            "tutorial_cnn",
            dict(
                batch_size=250,
                l2_norm_clip=1.5,
                noise_multiplier=1.2,
                learning_rate=0.25,
                epochs=4,
                optimizer="sgd",
                model="cnn",
                dataset="fashion_mnist",
            ),
        ),
        (
            "dp_adam_mlp",
            dict(
                batch_size=256,
                l2_norm_clip=1.0,
                noise_multiplier=1.1,
                learning_rate=0.001,
                epochs=15,
                optimizer="adam",
                model="mlp",
                validation_fraction=0.2,
            ),
        ),
        (
            "lenet5",
            dict(
                batch_size=256,
                l2_norm_clip=1.0,
                noise_multiplier=1.0,
                learning_rate=0.01,
                momentum=0.9,
                epochs=10,
                optimizer="momentum",
                model="lenet5",
                dataset="fashion_mnist",
                noise_schedule="constant",
                adaptive_clipping=True,
                clip_update="linear",
                clip_learning_rate=0.001,
                target_unclipped_quantile=0.9,
            ),
        ),
        (
            "fashion_mnist_eps3_scatternet",
            dict(
                batch_size=8192,
                l2_norm_clip=0.1,
                noise_multiplier=5.05,
                learning_rate=8.0,
                momentum=0.9,
                epochs=80,
                optimizer="momentum",
                model="scatternet_linear",
                dataset="fashion_mnist",
            ),
        ),
        (
            "fashion_mnist_eps3_cnn",
            dict(
                batch_size=2048,
                l2_norm_clip=0.1,
                noise_multiplier=1.93,
                learning_rate=4.0,
                momentum=0.9,
                epochs=40,
                optimizer="momentum",
                model="cnn",
                activation="tanh",
                dataset="fashion_mnist",
                weight_averaging_decay=0.97,
            ),
        ),
    ],
)
def test_preset_hyperparameters(key: str, expected: dict) -> None:
    config = presets.get_preset(key).config
    for field, value in expected.items():
        assert getattr(config, field) == value, field


@pytest.mark.parametrize("preset", presets.PRESETS, ids=lambda p: p.key)
def test_preset_model_fits_its_dataset(preset: presets.Preset) -> None:
    info = dataset_info(preset.config.dataset)
    assert preset.config.model in supported_models(info.input_shape)
    preset.config.check_dataset_size(info.n_train)


def test_the_numbers_in_the_sources_text_are_the_accountants() -> None:
    tutorial = presets.get_preset("tutorial_cnn")
    ours = accounting.epsilon_for_config(tutorial.config, n=60000)
    assert f"{ours:.4f}" == "0.7037" and "0.7037" in tutorial.source and "0.966" in tutorial.source
    pld = accounting.epsilon_for_config(tutorial.config.replace(accountant="pld"), n=60000)
    assert f"{pld:.3f}" in tutorial.source
    adam = presets.get_preset("dp_adam_mlp")
    assert datasets.train_size(adam.config) == 48000
    for n in (48000, 60000):
        assert f"{accounting.epsilon_for_config(adam.config, n=n):.3f}" in adam.source
    lenet = presets.get_preset("lenet5")
    assert f"{noise_split_for_config(lenet.config).gradient_noise_multiplier:.4f}" in lenet.source


@pytest.mark.parametrize("preset", presets.PRESETS, ids=lambda p: p.key)
def test_each_preset_trains_an_epoch_on_a_slice(preset: presets.Preset) -> None:
    # A slice of 400 rows holds no batch of thousands: those presets take a batch the slice can hold.
    config = preset.config.replace(epochs=1, max_train_examples=400, batch_size=min(preset.config.batch_size, 256))
    result = training.train(config)
    assert result.status == "completed", result.error
    assert result.n_train == datasets.train_size(config) and len(result.epochs) == 1
    assert result.epsilon == accounting.epsilon_for_config(config, n=result.n_train)
    assert 0 <= result.test_accuracy <= 1
    assert math.isnan(result.epochs[0].validation_accuracy) == (config.validation_fraction == 0)
    clips = result.clip_norms
    assert (len(set(clips)) > 1) == config.adaptive_clipping and clips[0] == config.l2_norm_clip


def test_unknown_preset_names_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match="preset: 'nope'.*tutorial_cnn, dp_adam_mlp, lenet5"):
        presets.get_preset("nope")


@pytest.mark.parametrize("key", ["fashion_mnist_eps3_scatternet", "fashion_mnist_eps3_cnn"])
def test_fashion_mnist_eps3_presets_stay_within_eps_3(key: str) -> None:
    config = presets.get_preset(key).config
    assert accounting.epsilon_for_config(config, n=dataset_info(config.dataset).n_train) <= 3.0
