"""script_export: valid Python for every dataset/model/optimizer; the script takes the steps and normaliser it accounts for."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from dpcore import csv_schema
from dpcore.config import ACCOUNTANTS, DATASETS, MODELS, OPTIMIZERS, SAMPLINGS, DPConfig
from dpcore.data import datasets
from dpcore.data.scatter import SCATTERNET_MODELS
from dpcore.errors import ConfigError, UserInputError
from dpcore.export.script import render_export, render_script, script_sections
from dpcore.privacy import accounting, events
from tests.conftest import REPO_ROOT

INSTRUMENT = REPO_ROOT / "tests" / "script_instrument.py"
SCRIPT_MODELS = tuple(m for m in MODELS if m not in SCATTERNET_MODELS)
SAMPLE_SCHEMA = csv_schema.load_schema_file(str(REPO_ROOT / "assets" / "sample.schema.yaml"))


def _config(dataset: str, **changes) -> DPConfig:
    extra = dict(csv_path="data.csv", csv_label="label", csv_schema=SAMPLE_SCHEMA) if dataset == "csv" else {}
    return DPConfig(dataset=dataset, **extra, **changes)


@pytest.mark.parametrize("dataset, model, optimizer", list(itertools.product(DATASETS, SCRIPT_MODELS, OPTIMIZERS)))
def test_every_combination_compiles_and_carries_the_settings(dataset, model, optimizer):
    config = _config(dataset, model=model, optimizer=optimizer, noise_multiplier=0.77, l2_norm_clip=1.25)
    script = render_script(config)
    compile(script, f"{dataset}_{model}.py", "exec")
    assert "NOISE_MULTIPLIER = 0.77" in script and "L2_NORM_CLIP = 1.25" in script
    assert "tensorflow_privacy.GaussianSumQuery(" in script and "dpcore" not in script


# n = 45 is not a multiple of the batch size, so ceil(epochs * n / B) differs from epochs * ceil(n / B);
# with B = 2 about one Poisson draw in eight is empty.
TINY_N = 45
BATCH_SIZE = {"poisson": 2, "shuffle": 10}


def _run_instrumented(tmp_path, configs: list[DPConfig], *, extra: Sequence[Path] = ()) -> list[tuple[str, list[dict]]]:
    """Run each config's exported script, then each file of ``extra`` (scripts or notebooks), under
    tests/script_instrument.py: the output and recorded steps of each."""
    scripts = []
    for number, config in enumerate(configs):
        scripts.append(tmp_path / f"run{number}.py")
        scripts[-1].write_text(render_script(config))
    scripts += list(extra)
    record = tmp_path / "steps.json"
    done = subprocess.run(
        [sys.executable, str(INSTRUMENT), str(record), *map(str, scripts)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    recorded = json.loads(record.read_text())
    outputs = done.stdout.split("### ")[1:]
    assert len(outputs) == len(scripts), done.stdout
    return [(output, recorded[str(script)]) for output, script in zip(outputs, scripts)]


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_exported_script_takes_exactly_the_steps_and_normaliser_it_accounts_for(tmp_path, sampling):
    """One subprocess per sampling runs the script once per accountant; each run is checked on its own."""
    configs = [
        DPConfig(
            model="logreg",
            epochs=2,
            batch_size=BATCH_SIZE[sampling],
            max_train_examples=TINY_N,
            delta=1e-3,
            l2_norm_clip=0.5,
            sampling=sampling,
            accountant=accountant,
        )
        for accountant in ACCOUNTANTS
    ]
    for config, (output, steps) in zip(configs, _run_instrumented(tmp_path, configs)):
        check_run(config, output, steps)


def check_run(config: DPConfig, output: str, steps: list[dict]) -> None:
    sampling = config.sampling
    expected_steps = events.dp_steps(n=TINY_N, batch_size=config.batch_size, epochs=config.epochs, sampling=sampling)
    assert len(steps) == expected_steps
    drawn = [step["records"] for step in steps]
    normalisers = [step["normalizer"] for step in steps]
    assert all(step["normalizer_spread"] < 1e-5 for step in steps)
    assert max(step["max_clipped_norm"] for step in steps) <= config.l2_norm_clip * (1 + 1e-5)
    if sampling == "poisson":
        # Fresh Poisson draws: sizes vary, an empty draw is still a (noise-only) step, and every
        # step divides by the expected batch size, never the drawn one.
        assert 0 in drawn and max(drawn) > config.batch_size
        q = config.batch_size / TINY_N
        assert abs(sum(drawn) - q * TINY_N * expected_steps) <= 5 * math.sqrt(expected_steps * TINY_N * q * (1 - q))
        assert normalisers == pytest.approx([config.batch_size] * expected_steps, rel=1e-6)
    else:
        assert drawn == [10, 10, 10, 10, 5] * config.epochs
        assert normalisers == pytest.approx(drawn, rel=1e-6)

    printed = re.search(r"epsilon = ([0-9.e+-]+) at delta = \S+ after (\d+) noisy steps", output)
    assert printed, output
    assert int(printed.group(2)) == expected_steps
    assert float(printed.group(1)) == pytest.approx(accounting.epsilon_for_config(config, n=TINY_N), rel=1e-3)
    assert f"({config.accountant.upper()}, {sampling} sampling, n = {TINY_N})" in output
    assert 0.0 <= float(re.search(r"test accuracy: ([0-9.]+)", output).group(1)) <= 1.0


def test_export_formats_are_the_config_files_and_the_script():
    config = DPConfig(noise_multiplier=0.9, epochs=3)
    assert render_export(config, export_format="json") == config.to_json()
    assert render_export(config, export_format="yaml") == config.to_yaml()
    assert render_export(config, export_format="script") == render_script(config)
    with pytest.raises(UserInputError, match="format: 'xml' is not an export format"):
        render_export(config, export_format="xml")


def test_secure_mode_script_does_not_seed_the_noise():
    seeded = render_script(DPConfig())
    secure = render_script(DPConfig(secure_mode=True))
    assert "SECURE_MODE = False" in seeded and "SECURE_MODE = True" in secure
    assert "if not SECURE_MODE:\n" in secure and "default_rng(None if SECURE_MODE else SEED)" in secure


@pytest.mark.parametrize("model", SCATTERNET_MODELS)
def test_scatternet_models_are_refused_with_a_message_naming_model(model):
    with pytest.raises(ConfigError) as info:
        render_script(DPConfig(dataset="fashion_mnist", model=model))
    assert info.value.field == "model"
    assert "ScatterNet features" in str(info.value) and "python -m dpcore train" in str(info.value)
    assert ", ".join(SCRIPT_MODELS) in info.value.allowed


def _exported_namespace(config: DPConfig) -> dict:
    namespace = {"__name__": "exported"}
    exec(compile(render_script(config), "run.py", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("model", SCRIPT_MODELS)
def test_exported_model_computes_what_dpcore_trains(model):
    """The script's build_model is dpcore's model: the same weights give the same logits (the CNN's
    pixel map to [-1, 1] included)."""
    import tensorflow as tf

    from dpcore.dpsgd import models

    config = DPConfig(dataset="fashion_mnist", model=model, activation="tanh")
    ours = models.build(config, input_shape=(28, 28, 1), num_classes=10)
    exported = _exported_namespace(config)["build_model"]((28, 28, 1), 10)
    assert [type(layer).__name__ for layer in exported.layers] == [type(layer).__name__ for layer in ours.layers]
    exported.set_weights(ours.get_weights())
    pixels = np.random.default_rng(0).uniform(size=(5, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(
        exported(pixels, training=False).numpy(), ours(pixels, training=False).numpy(), rtol=1e-5, atol=1e-5
    )
    tf.keras.backend.clear_session()


@pytest.mark.parametrize(
    "changes", [{}, {"max_train_examples": 120, "validation_fraction": 0.2, "seed": 3}], ids=["whole", "subset"]
)
def test_exported_csv_script_trains_tests_and_validates_dp_explorers_rows_and_fits_nothing(changes):
    config = DPConfig(
        dataset="csv",
        csv_path=str(REPO_ROOT / "assets" / "sample.csv"),
        csv_label="decision",
        model="logreg",
        csv_schema=SAMPLE_SCHEMA,
        **changes,
    )
    (x_train, y_train), (x_test, y_test), (x_validation, y_validation), num_classes = _exported_namespace(config)[
        "training_data"
    ]()
    ours = datasets.load(config)
    assert num_classes == ours.info.num_classes and x_train.shape[1] == ours.info.input_shape[0]
    # Each row by its own coins, as DP Explorer splits it: the same rows, in the same order, with the same features.
    assert len(x_train) == ours.info.n_train == datasets.train_size(config)
    for exported, own in ((x_train, ours.x_train), (x_test, ours.x_test), (x_validation, ours.x_validation)):
        if own is None:
            assert exported is None
        else:
            np.testing.assert_allclose(exported, own, atol=1e-6)
    for exported, own in ((y_train, ours.y_train), (y_test, ours.y_test), (y_validation, ours.y_validation)):
        assert (exported is None and own is None) or exported.tolist() == own.tolist()


def test_exported_csv_script_trains_a_label_outside_the_classes_as_other_only_when_the_schema_says_so(tmp_path):
    data = tmp_path / "plus_one.csv"
    sample = (REPO_ROOT / "assets" / "sample.csv").read_text().rstrip("\n")
    data.write_text(sample + "\n33,61.0,4,0.2,master,rent,appeal_pending\n")
    config = DPConfig(dataset="csv", csv_path=str(data), csv_label="decision", model="logreg", csv_schema=SAMPLE_SCHEMA)
    with pytest.raises(SystemExit, match="Some rows have a label outside") as refused:
        _exported_namespace(config)["training_data"]()
    assert "appeal_pending" in str(refused.value) and "1 rows" not in str(refused.value)
    other = config.replace(csv_schema={**SAMPLE_SCHEMA.to_dict(), "other_class": True})
    (x_train, y_train), (x_test, y_test), _, num_classes = _exported_namespace(other)["training_data"]()
    ours = datasets.load(other)
    assert num_classes == 3 and ours.info.class_names[-1] == "(other)"
    assert y_train.tolist() == ours.y_train.tolist() and y_test.tolist() == ours.y_test.tolist()
    assert np.concatenate([y_train, y_test]).tolist().count(2) == 1


def test_exported_csv_script_refuses_to_run_without_a_declared_schema():
    config = DPConfig(
        dataset="csv",
        csv_path=str(REPO_ROOT / "assets" / "sample.csv"),
        csv_label="decision",
        csv_preprocessing_epsilon=1.0,
    )
    assert "CSV_SCHEMA = None" in render_script(config)
    with pytest.raises(SystemExit, match="no public CSV schema"):
        _exported_namespace(config)["training_data"]()


def test_the_script_keeps_tensorflow_start_up_lines_out_of_its_output(tmp_path):
    """The settings section imports TensorFlow; run alone, with no TF_CPP_MIN_LOG_LEVEL of the caller's, it
    prints none of TensorFlow's C++ start-up lines (CUDA factory registrations, CPU feature notes)."""
    settings = script_sections(DPConfig(model="logreg"))[0]
    assert settings.name == "settings" and "import tensorflow as tf" in settings.code
    (tmp_path / "settings.py").write_text(settings.code)
    done = subprocess.run(
        [sys.executable, "settings.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={"PATH": ""},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "" and done.stderr == ""
