"""dpcore.model_specs: which models each dataset's inputs allow, checked without TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dpcore import model_specs
from dpcore.data import datasets
from dpcore.errors import ConfigError
from tests.conftest import REPO_ROOT


def test_supported_models_follow_the_input_shape():
    assert model_specs.supported_models((8, 8, 1)) == ("logreg", "mlp")
    assert model_specs.supported_models((11,)) == ("logreg", "mlp")
    assert model_specs.supported_models((28, 28, 1)) == (
        "logreg",
        "mlp",
        "cnn",
        "lenet5",
        "scatternet_linear",
        "scatternet_cnn",
    )
    assert model_specs.supported_models(datasets.dataset_info("digits").input_shape) == ("logreg", "mlp")
    assert "lenet5" in model_specs.supported_models(datasets.dataset_info("fashion_mnist").input_shape)


def test_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="not a known model"):
        model_specs.check_pair("resnet", (28, 28, 1))


def test_a_convolutional_model_on_small_images_names_what_it_needs():
    with pytest.raises(ConfigError) as info:
        model_specs.check_pair("lenet5", (8, 8, 1))
    assert info.value.field == "model" and "28x28" in str(info.value) and "logreg, mlp" in str(info.value)


def test_descriptions_name_the_recipe():
    assert model_specs.model_description("cnn") == "CNN (TensorFlow Privacy tutorial)"
    assert model_specs.model_description("logreg") == "Logistic regression"


def test_the_pages_model_metadata_does_not_import_tensorflow():
    code = (
        "import sys; import dpcore.model_specs, dpcore.data.datasets, dpcore.privacy.accounting, dpcore.privacy.explain; "
        "print('tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_dp_step_is_cut_into_parts_only_for_the_models_it_speeds_up():
    assert model_specs.step_parts("cnn", 128) == 1
    assert model_specs.step_parts("cnn", 250) == 2
    assert model_specs.step_parts("cnn", 1000) == 8 and model_specs.step_parts("cnn", 2048) == 8  # the cap
    assert model_specs.step_parts("mlp", 250) == 1 and model_specs.step_parts("mlp", 2048) == 8
    assert model_specs.step_parts("scatternet_linear", 8192) == 1
    assert model_specs.step_parts("logreg", 100_000) == 1
