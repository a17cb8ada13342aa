"""The sample configs in assets/configs load cleanly and match the presets they were written from."""

from __future__ import annotations

import pytest

from dpcore.config import DPConfig, load_config_file
from dpcore.views.presets import PRESETS
from tests.conftest import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "assets" / "configs"


@pytest.mark.parametrize("preset", PRESETS, ids=[p.key for p in PRESETS])
def test_preset_files_match_the_presets(preset):
    path = CONFIG_DIR / f"{preset.key.replace('_', '-')}.yaml"
    assert load_config_file(str(path)) == preset.config


def test_every_sample_config_loads():
    paths = sorted(CONFIG_DIR.glob("*.yaml"))
    assert len(paths) >= 4
    for path in paths:
        load_config_file(str(path))


def test_csv_sample_configs_train_on_a_schema_they_declare_or_pay_for(monkeypatch):
    from dpcore.data import datasets
    from dpcore.privacy import accounting

    monkeypatch.chdir(REPO_ROOT)  # their csv_path is relative to the repository's root
    paths = [p for p in sorted(CONFIG_DIR.glob("*.yaml")) if load_config_file(str(p)).dataset == "csv"]
    assert paths
    for path in paths:
        config = load_config_file(str(path))
        info = datasets.describe(config)
        assert info.csv_schema is not None and info.n_train == datasets.train_size(config)
        split = accounting.epsilon_split(config, n=info.n_train)
        assert split.total >= split.training and (split.preprocessing > 0) == (config.csv_schema is None)


def test_digits_mlp_file_is_the_default_config():
    assert load_config_file(str(CONFIG_DIR / "digits-mlp.yaml")) == DPConfig()
