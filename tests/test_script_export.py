"""script_export.render_script(): valid Python for every dataset/model/optimizer, and it really trains."""
from __future__ import annotations

import itertools
import re
import subprocess
import sys

import numpy as np
import pytest

from dpcore import accounting, data, tabular
from dpcore.config import DATASETS, MODELS, OPTIMIZERS, DPConfig
from dpcore.script_export import render_script
from tests.conftest import REPO_ROOT


SAMPLE_SCHEMA = tabular.load_schema_file(str(REPO_ROOT / "assets" / "sample.schema.yaml"))


def _config(dataset: str, **changes) -> DPConfig:
    extra = dict(csv_path="data.csv", csv_label="label", csv_schema=SAMPLE_SCHEMA) if dataset == "csv" else {}
    return DPConfig(dataset=dataset, **extra, **changes)


@pytest.mark.parametrize("dataset, model, optimizer", list(itertools.product(DATASETS, MODELS, OPTIMIZERS)))
def test_every_combination_compiles_and_carries_the_settings(dataset, model, optimizer):
    config = _config(dataset, model=model, optimizer=optimizer, noise_multiplier=0.77, l2_norm_clip=1.25)
    script = render_script(config)
    compile(script, f"{dataset}_{model}.py", "exec")
    assert "NOISE_MULTIPLIER = 0.77" in script and "L2_NORM_CLIP = 1.25" in script
    assert "dp_optimizer_keras" in script and "dpcore" not in script


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


def _exported_namespace(config: DPConfig) -> dict:
    namespace = {"__name__": "exported"}
    exec(compile(render_script(config), "run.py", "exec"), namespace)
    return namespace


def test_exported_csv_script_applies_the_declared_schema_and_fits_nothing():
    config = DPConfig(dataset="csv", csv_path=str(REPO_ROOT / "assets" / "sample.csv"), csv_label="decision",
                      model="logreg", csv_schema=SAMPLE_SCHEMA)
    (x_train, y_train), (x_test, y_test), num_classes = _exported_namespace(config)["load_data"]()
    ours = data.load(config)
    assert num_classes == ours.info.num_classes and x_train.shape[1] == ours.info.input_shape[0]

    def rows(*parts):
        return sorted(tuple(np.round(row, 6)) for part in parts for row in part.tolist())

    # The same records get the same features (the script splits on its own, so compare as multisets).
    assert rows(x_train, x_test) == rows(ours.x_train, ours.x_test)
    assert sorted(np.concatenate([y_train, y_test]).tolist()) == sorted(
        np.concatenate([ours.y_train, ours.y_test]).tolist())


def test_exported_csv_script_refuses_to_run_without_a_declared_schema():
    config = DPConfig(dataset="csv", csv_path=str(REPO_ROOT / "assets" / "sample.csv"), csv_label="decision",
                      csv_preprocessing_epsilon=1.0)
    assert "CSV_SCHEMA = None" in render_script(config)
    with pytest.raises(SystemExit, match="no public CSV schema"):
        _exported_namespace(config)["load_data"]()
