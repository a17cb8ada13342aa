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
from tests.conftest import REPO_ROOT


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
    if not config.private:  # a non-private run clips nothing
        assert clips == () and result.epsilon == math.inf
        return
    assert (len(set(clips)) > 1) == config.adaptive_clipping and clips[0] == config.l2_norm_clip


def test_unknown_preset_names_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match="preset: 'nope'.*tutorial_cnn, dp_adam_mlp, lenet5"):
        presets.get_preset("nope")


@pytest.mark.parametrize("key", ["fashion_mnist_eps3_scatternet", "fashion_mnist_eps3_cnn"])
def test_fashion_mnist_eps3_presets_stay_within_eps_3(key: str) -> None:
    config = presets.get_preset(key).config
    assert accounting.epsilon_for_config(config, n=dataset_info(config.dataset).n_train) <= 3.0


@pytest.mark.parametrize(
    "key, file",
    [
        ("fashion_mnist_eps3_scatternet", "fashion-mnist-eps3-scatternet.yaml"),
        ("fashion_mnist_eps3_cnn", "fashion-mnist-eps3-cnn.yaml"),
    ],
)
def test_the_eps3_recipes_say_they_were_tuned_on_test_accuracy_over_many_runs(key: str, file: str) -> None:

    assert presets.TUNED_ON_TEST_NOTE in presets.get_preset(key).source
    header = " ".join(
        line.lstrip("# ")
        for line in (REPO_ROOT / "assets" / "configs" / file).read_text().splitlines()
        if line.startswith("#")
    )
    assert "chosen by comparing test accuracy over many runs on the same Fashion-MNIST training rows" in header
    assert "not the search that found it" in header
    assert all(presets.TUNED_ON_TEST_NOTE not in p.source for p in presets.PRESETS if "eps3" not in p.key)


def test_the_attack_demo_pair_differs_only_in_its_noise() -> None:
    overfit = presets.get_preset("overfit_no_noise")
    twin = presets.get_preset("overfit_private_twin")
    assert overfit.group == twin.group == presets.ATTACK_DEMO_GROUP
    assert not overfit.config.private and twin.config.private
    assert twin.config.noise_multiplier > 0
    assert twin.config.replace(private=False, noise_multiplier=overfit.config.noise_multiplier) == overfit.config
    assert [title for title, _ in presets.preset_groups()] == ["Recipes", presets.ATTACK_DEMO_GROUP]


def test_the_private_twin_is_accounted_for_the_rows_it_trains_on() -> None:
    twin = presets.get_preset("overfit_private_twin").config
    n = datasets.train_size(twin)
    assert n == twin.max_train_examples == 500
    epsilon = accounting.epsilon_for_config(twin, n=n)
    assert math.isfinite(epsilon) and epsilon == pytest.approx(4.0, abs=0.01)
    assert f"ε ≈ {epsilon:.2f}" in presets.get_preset("overfit_private_twin").source
    # The same config on every training row would claim far less: only the subset's n is what ran.
    assert accounting.epsilon_for_config(twin, n=dataset_info(twin.dataset).n_train) < epsilon / 10
    twin.check_dataset_size(n)


@pytest.mark.parametrize("rows", [0, 1, -5, 2.5, "500"])
def test_a_training_set_size_out_of_range_names_its_field(rows: object) -> None:
    with pytest.raises(ConfigError, match="max_train_examples"):
        presets.OVERFIT_CONFIG.replace(max_train_examples=rows)


def test_a_batch_larger_than_the_subset_is_refused() -> None:
    config = presets.OVERFIT_CONFIG.replace(max_train_examples=40)
    with pytest.raises(ConfigError, match="batch_size: 50 is larger than the training set"):
        config.check_dataset_size(datasets.train_size(config))
