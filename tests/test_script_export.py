"""script_export.render_script(): valid Python for every dataset/model/optimizer, and it really trains."""
from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest

from dpcore import accounting
from dpcore.config import DATASETS, MODELS, OPTIMIZERS, DPConfig
from dpcore.errors import ConfigError
from dpcore.scatter import SCATTERNET_MODELS
from dpcore.script_export import render_script

SCRIPT_MODELS = tuple(m for m in MODELS if m not in SCATTERNET_MODELS)


def _config(dataset: str, **changes) -> DPConfig:
    extra = dict(csv_path="data.csv", csv_label="label") if dataset == "csv" else {}
    return DPConfig(dataset=dataset, **extra, **changes)


@pytest.mark.parametrize("dataset, model, optimizer", list(itertools.product(DATASETS, SCRIPT_MODELS, OPTIMIZERS)))
def test_every_combination_compiles_and_carries_the_settings(dataset, model, optimizer):
    config = _config(dataset, model=model, optimizer=optimizer, noise_multiplier=0.77, l2_norm_clip=1.25)
    script = render_script(config)
    compile(script, f"{dataset}_{model}.py", "exec")
    assert "NOISE_MULTIPLIER = 0.77" in script and "L2_NORM_CLIP = 1.25" in script
    assert "dp_optimizer_keras" in script and "dpcore" not in script


@pytest.mark.parametrize("model", SCATTERNET_MODELS)
def test_scatternet_models_are_refused_with_a_message_naming_model(model):
    with pytest.raises(ConfigError) as info:
        render_script(DPConfig(dataset="fashion_mnist", model=model))
    assert info.value.field == "model"
    assert "ScatterNet features" in str(info.value) and "python -m dpcore train" in str(info.value)
    assert ", ".join(SCRIPT_MODELS) in info.value.allowed


@pytest.mark.parametrize("sampling, accountant", [("poisson", "rdp"), ("shuffle", "pld")])
def test_exported_script_trains_and_reports_the_same_epsilon(tmp_path, sampling, accountant):
    config = DPConfig(model="logreg", epochs=1, batch_size=30, max_train_examples=120, delta=1e-3,
                      sampling=sampling, accountant=accountant)
    path = tmp_path / "run.py"
    path.write_text(render_script(config))
    done = subprocess.run([sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", done.stdout).group(1))
    assert 0.0 <= accuracy <= 1.0
    reported = float(re.search(r"epsilon = ([0-9.e+-]+)", done.stdout).group(1))
    expected = accounting.epsilon_for_config(config, n=120)
    assert reported == pytest.approx(expected, rel=1e-3)
    assert f"{sampling} sampling" in done.stdout


def test_secure_mode_script_does_not_seed_the_noise():
    seeded = render_script(DPConfig())
    secure = render_script(DPConfig(secure_mode=True))
    assert "SECURE_MODE = False" in seeded and "SECURE_MODE = True" in secure
    assert "if not SECURE_MODE:\n" in secure and "default_rng(None if SECURE_MODE else SEED)" in secure
