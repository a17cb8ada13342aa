"""The sample configs in assets/configs load cleanly and match the presets they were written from."""
from __future__ import annotations

import pytest

from dpcore.config import DPConfig, load_config_file
from dpcore.presets import PRESETS
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


def test_digits_mlp_file_is_the_default_config():
    assert load_config_file(str(CONFIG_DIR / "digits-mlp.yaml")) == DPConfig()
