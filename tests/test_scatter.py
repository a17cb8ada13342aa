"""dpcore.data.scatter and the ScatterNet heads: features, the disk cache, per-example gradients, a DP run."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from dpcore.config import MODELS, DPConfig
from dpcore.data import datasets, scatter, types
from dpcore.privacy import accounting
from tests.conftest import REPO_ROOT

IMAGE = (28, 28, 1)
RAW = scatter.ScatterParams(norm_groups=None)  # the scattering coefficients, not standardised


def images(count: int, shape: tuple[int, ...] = IMAGE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, *shape), dtype=np.float32)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A fresh cache folder, set as $DPEXPLORER_CACHE."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(scatter.ENV_CACHE, str(folder))
    return folder


# -- the transform ---------------------------------------------------------------------------------


def test_the_2d_numpy_frontend_imports_and_runs_without_the_3d_module():
    # kymatio.numpy (and so kymatio's 3-D transform) imports scipy.special.sph_harm, gone from SciPy.
    code = (
        "import sys, numpy as np; from dpcore.data import scatter; "
        "f = scatter.compute_features(np.ones((1, 28, 28, 1), np.float32)); "
        "assert f.shape == (1, 7, 7, 81) and np.isfinite(f).all(); "
        "assert 'kymatio.scattering3d.filter_bank' not in sys.modules; print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_features_of_28x28_images_are_81_channels_of_7x7_and_match_kymatio():
    from kymatio.scattering2d.frontend.numpy_frontend import ScatteringNumPy2D

    x = images(3)
    raw = scatter.compute_features(x, params=RAW)
    assert raw.shape == (3, 7, 7, 81) and raw.dtype == np.float32
    reference = ScatteringNumPy2D(J=2, shape=(28, 28), L=8).scattering(x[..., 0])  # (3, 81, 7, 7)
    np.testing.assert_array_equal(raw, np.moveaxis(reference, 1, -1))
    assert scatter.DEFAULT_PARAMS.channels_per_input_channel == 81
    standardized = scatter.compute_features(x)  # the default: what the models consume
    np.testing.assert_array_equal(standardized, scatter.standardize_groups(raw))


def test_features_are_deterministic_and_each_depends_on_its_own_image_only():
    x = images(5)
    whole = scatter.compute_features(x)
    np.testing.assert_array_equal(whole, scatter.compute_features(x))
    np.testing.assert_array_equal(whole, scatter.compute_features(x, batch_images=2))
    alone = scatter.compute_features(x[3:4])
    np.testing.assert_array_equal(alone[0], whole[3])  # no statistic across images: no privacy cost


def test_colour_images_get_81_channels_per_input_channel():
    x = images(2, (28, 28, 3))
    features = scatter.compute_features(x, params=RAW)
    assert features.shape == (2, 7, 7, 243)
    np.testing.assert_array_equal(features[..., 81:162], scatter.compute_features(x[..., 1:2], params=RAW))
    assert scatter.compute_features(x).shape == (2, 7, 7, 243)  # 27 groups of 9 channels


@pytest.mark.parametrize("shape", [(28, 28), (30, 32), (29, 31), (8, 8)])
def test_feature_shape_matches_the_transform(shape):
    from kymatio.scattering2d.frontend.numpy_frontend import ScatteringNumPy2D

    out = ScatteringNumPy2D(J=2, shape=shape, L=8).scattering(np.zeros((1, *shape), np.float32))
    assert scatter.feature_shape((*shape, 1)) == (out.shape[2], out.shape[3], out.shape[1])


@pytest.mark.parametrize("shape", [(784,), (28, 28), (3, 3, 1)])
def test_feature_shape_refuses_what_is_not_an_image_large_enough(shape):
    with pytest.raises(ValueError):
        scatter.feature_shape(shape)


# -- the cache -------------------------------------------------------------------------------------


def _no_compute(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(scatter, "compute_features", refuse)


def test_cache_miss_writes_one_file_and_a_hit_reads_it(cache, monkeypatch):
    x = images(4)
    fresh = scatter.compute_features(x)
    first = scatter.cached_features(x, name="toy-train")
    files = list(cache.iterdir())
    assert [f.name for f in files] == [scatter.cache_path(x, name="toy-train").name]
    assert files[0].name.startswith("toy-train-")
    assert not first.flags.writeable
    _no_compute(monkeypatch)
    second = scatter.cached_features(x, name="toy-train")
    np.testing.assert_array_equal(first, fresh)
    np.testing.assert_array_equal(second, fresh)


def test_cache_key_follows_pixels_and_transform_parameters(cache):
    x = images(2)
    changed = x.copy()
    changed[1, 5, 5, 0] += 0.25
    keys = {
        scatter.cache_key(x),
        scatter.cache_key(changed),
        scatter.cache_key(x.astype(np.float64)),
        scatter.cache_key(x, params=scatter.ScatterParams(J=1, norm_groups=3)),
        scatter.cache_key(x, params=scatter.ScatterParams(L=6, norm_groups=1)),
        scatter.cache_key(x, params=RAW),
    }
    assert len(keys) == 6
    assert scatter.cache_key(x) == scatter.cache_key(x.copy())
    assert scatter.cache_path(x, name="../odd name!").parent == cache


def test_other_parameters_are_cached_separately(cache):
    x = images(2)
    default = scatter.cached_features(x, name="toy")
    coarse = scatter.cached_features(x, name="toy", params=scatter.ScatterParams(J=1, norm_groups=3))
    raw = scatter.cached_features(x, name="toy", params=RAW)
    assert default.shape == raw.shape == (2, 7, 7, 81) and coarse.shape == (2, 14, 14, 9)
    assert not np.array_equal(default, raw)
    assert len(list(cache.iterdir())) == 3


def test_params_refuse_groups_that_do_not_divide_the_paths():
    with pytest.raises(ValueError, match="norm_groups"):
        scatter.ScatterParams(norm_groups=10)
    with pytest.raises(ValueError, match="norm_groups"):
        scatter.ScatterParams(J=1)  # 9 paths, not 27 groups


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty", "extra"])
def test_a_damaged_cache_file_is_recomputed_not_trusted(cache, damage):
    x = images(3)
    good = scatter.cached_features(x, name="toy")
    path = scatter.cache_path(x, name="toy")
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[-7] ^= 0x40  # one bit of one feature value
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "garbage":
        raw = bytearray(os.urandom(len(raw)))
    elif damage == "empty":
        raw = bytearray()
    else:
        raw += b"\0" * 16
    path.write_bytes(bytes(raw))
    assert scatter.read_cache_file(path, shape=good.shape) is None
    again = scatter.cached_features(x, name="toy")
    np.testing.assert_array_equal(again, good)
    np.testing.assert_array_equal(scatter.read_cache_file(path, shape=good.shape), good)  # rewritten whole


def test_a_cache_file_of_other_features_is_not_used(cache):
    x = images(3)
    path = scatter.cache_path(x, name="toy")
    scatter.write_cache_file(path, np.zeros((3, 7, 7, 80), np.float32))  # valid file, wrong shape
    features = scatter.cached_features(x, name="toy")
    np.testing.assert_array_equal(features, scatter.compute_features(x))


def test_writes_are_atomic_and_leave_no_partial_files(cache, monkeypatch):
    x = images(2)
    path = scatter.cache_path(x, name="toy")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", fail)
    with pytest.raises(OSError):
        scatter.write_cache_file(path, scatter.compute_features(x))
    assert list(cache.iterdir()) == []  # neither the target nor a temporary file
    features = scatter.cached_features(x, name="toy")  # an unwritable cache is skipped, not fatal
    assert features.shape == (2, 7, 7, 81) and list(cache.iterdir()) == []


def test_cache_dir_defaults_beside_the_run_store(monkeypatch, tmp_path):
    monkeypatch.delenv(scatter.ENV_CACHE, raising=False)
    monkeypatch.setenv("DPEXPLORER_STORE", str(tmp_path / "data" / "runs.sqlite3"))
    assert scatter.cache_dir() == tmp_path / "data" / "cache"
    monkeypatch.setenv(scatter.ENV_CACHE, str(tmp_path / "elsewhere"))
    assert scatter.cache_dir() == tmp_path / "elsewhere"


def test_features_dataset_replaces_images_and_keeps_labels(cache):
    info = types.DatasetInfo(
        name="toy", title="Toy", n_train=6, n_test=2, input_shape=IMAGE, num_classes=2, source="random"
    )
    dataset = types.Dataset(
        info=info,
        x_train=images(6),
        y_train=np.arange(6, dtype=np.int32) % 2,
        x_test=images(2, seed=1),
        y_test=np.array([0, 1], np.int32),
    )
    features = scatter.features_dataset(dataset)
    assert features.info.input_shape == (7, 7, 81) and features.x_train.shape == (6, 7, 7, 81)
    assert features.x_test.shape == (2, 7, 7, 81) and not features.x_train.flags.writeable
    np.testing.assert_array_equal(features.x_train, scatter.compute_features(dataset.x_train))
    assert features.y_train is dataset.y_train and features.y_test is dataset.y_test
    assert sorted(f.name.split("-")[1] for f in cache.iterdir()) == ["test", "train"]


# -- the heads -------------------------------------------------------------------------------------


def test_scatternet_models_are_config_choices():
    assert set(scatter.SCATTERNET_MODELS) <= set(MODELS)


def test_standardize_groups_is_group_normalization_without_parameters():
    import tensorflow as tf

    features = (
        scatter.compute_features(images(4), params=RAW) * np.array([1, 5, 0.2, 30], np.float32)[:, None, None, None]
    )
    expected = tf.keras.layers.GroupNormalization(groups=27, center=False, scale=False, epsilon=1e-5)(features)
    standardized = scatter.standardize_groups(features, batch_examples=3)
    assert standardized.dtype == np.float32
    np.testing.assert_allclose(standardized, expected.numpy(), rtol=1e-4, atol=1e-4)
    alone = scatter.standardize_groups(features[2:3])
    np.testing.assert_array_equal(alone[0], standardized[2])  # each example by its own statistics only
    with pytest.raises(ValueError, match="groups"):
        scatter.standardize_groups(features[..., :80])


@pytest.mark.parametrize("name", scatter.SCATTERNET_MODELS)
def test_heads_take_features_and_have_no_normalisation_state(name):
    from dpcore.dpsgd import models

    model = models.build(DPConfig(model=name, activation="tanh"), input_shape=IMAGE, num_classes=10)
    assert model.input_shape == (None, 7, 7, 81)
    assert not model.non_trainable_weights  # nothing estimated from data, nothing but weights learned
    x = scatter.compute_features(images(4))
    together = model(x, training=True).numpy()
    alone = model(x[2:3], training=True).numpy()
    np.testing.assert_allclose(alone[0], together[2], rtol=1e-5, atol=1e-6)


def test_cnn_head_is_tramer_and_boneh_architecture():
    from dpcore.dpsgd import models

    layers = models.build(DPConfig(model="scatternet_cnn"), input_shape=IMAGE, num_classes=10).layers
    conv1, conv2, _, dense1, dense2 = layers
    assert (conv1.filters, conv1.kernel_size, conv1.strides, conv1.padding) == (16, (3, 3), (2, 2), "same")
    assert (conv2.filters, conv2.kernel_size, conv2.strides, conv2.padding) == (32, (3, 3), (1, 1), "same")
    assert conv2.output_shape == (None, 4, 4, 32)
    assert (dense1.units, dense2.units) == (32, 10)


@pytest.mark.parametrize("name", scatter.SCATTERNET_MODELS)
def test_heads_per_example_clipped_sums_equal_a_brute_force_loop(name):
    import tensorflow as tf

    from dpcore.dpsgd import models, privatize

    model = models.build(DPConfig(model=name, activation="tanh", seed=3), input_shape=IMAGE, num_classes=10)
    rng = np.random.default_rng(1)
    features = scatter.compute_features(images(6, seed=2))
    x = tf.constant(features * rng.uniform(0.5, 3.0, (6, 1, 1, 1)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, 6), tf.int32)
    clip = 0.05  # small enough that every example is clipped, large gradients and small alike
    variables = model.trainable_variables
    expected = [np.zeros(v.shape, np.float32) for v in variables]
    norms = []
    for i in range(6):
        with tf.GradientTape() as tape:
            loss = privatize.per_example_loss(y[i : i + 1], model(x[i : i + 1], training=True))[0]
        grads = tape.gradient(loss, variables)
        norm = math.sqrt(sum(float(tf.reduce_sum(tf.square(g))) for g in grads))
        norms.append(norm)
        for total, g in zip(expected, grads):
            total += g.numpy() * min(1.0, clip / norm)
    assert min(norms) > clip
    result = privatize.dp_gradient(
        model, privatize.per_example_loss, x, y, l2_norm_clip=clip, noise_multiplier=0.0, normalizer=1.0, seed=(1, 2)
    )
    for got, want in zip(result.gradients, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-6)


# -- training --------------------------------------------------------------------------------------


def _tiny_fashion(config: DPConfig) -> types.Dataset:
    """The first 64 training and 32 test images of the real Fashion-MNIST: a run in seconds."""
    full = datasets._load_builtin("fashion_mnist")
    info = types._replace_info(full.info, n_train=64, n_test=32)
    return types.Dataset(
        info=info,
        x_train=full.x_train[:64],
        y_train=full.y_train[:64],
        x_test=full.x_test[:32],
        y_test=full.y_test[:32],
    )


@pytest.mark.parametrize("name", scatter.SCATTERNET_MODELS)
def test_one_epoch_dp_run_on_a_tiny_slice_trains_on_cached_features(cache, monkeypatch, name):
    from dpcore.dpsgd import training

    monkeypatch.setattr(datasets, "load", _tiny_fashion)
    config = DPConfig(
        dataset="fashion_mnist",
        model=name,
        optimizer="momentum",
        learning_rate=1.0,
        l2_norm_clip=0.1,
        noise_multiplier=1.0,
        batch_size=16,
        epochs=1,
        delta=1e-3,
    )
    result = training.train(config)
    assert result.status == "completed", result.error
    assert result.n_train == 64 and len(result.epochs) == 1
    assert result.epsilon == pytest.approx(accounting.epsilon_for_config(config, n=64))
    assert 0.0 <= result.test_accuracy <= 1.0 and math.isfinite(result.epochs[0].train_loss)
    assert sorted(f.name.split("-")[1] for f in cache.iterdir()) == ["test", "train"]
    _no_compute(monkeypatch)  # a second run reads the features from the cache
    again = training.train(config)
    assert again.status == "completed", again.error
    assert again.test_accuracy == result.test_accuracy  # same seed, same features, same run
