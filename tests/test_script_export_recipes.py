"""render_script with the recipes' settings: a validation split is carried, what it cannot reproduce is refused."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from dpcore import accounting
from dpcore.config import DPConfig
from dpcore.errors import ConfigError
from dpcore.script_export import render_script


@pytest.mark.parametrize("changes, field", [
    (dict(noise_schedule="time", noise_decay_rate=0.01, noise_floor=0.5), "noise_schedule"),
    (dict(noise_schedule="step", noise_decay_rate=0.01, noise_floor=0.5), "noise_schedule"),
    (dict(adaptive_clipping=True), "adaptive_clipping"),
    (dict(epsilon_budget=3.0), "epsilon_budget"),
])
def test_settings_the_script_cannot_reproduce_are_refused_by_name(changes, field):
    with pytest.raises(ConfigError) as info:
        render_script(DPConfig(**changes))
    assert info.value.field == field and "allowed" in str(info.value)
    render_script(DPConfig(private=False, **changes))  # a baseline adds no noise and spends no ε
    # A schedule that does not decay is the constant noise the script adds.
    render_script(DPConfig(noise_schedule="time", noise_decay_rate=0.0))


def test_the_script_holds_out_the_validation_rows_and_accounts_for_the_rest(tmp_path):
    config = DPConfig(model="logreg", epochs=1, batch_size=30, max_train_examples=160, delta=1e-3,
                      validation_fraction=0.25)
    script = render_script(config)
    assert "VALIDATION_FRACTION = 0.25" in script
    path = tmp_path / "run.py"
    path.write_text(script)
    done = subprocess.run([sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0.0 <= float(re.search(r"validation accuracy: ([0-9.]+)", done.stdout).group(1)) <= 1.0
    assert "n = 120)" in done.stdout
    reported = float(re.search(r"epsilon = ([0-9.e+-]+)", done.stdout).group(1))
    assert reported == pytest.approx(accounting.epsilon_for_config(config, n=120), rel=1e-3)


@pytest.mark.parametrize("private", [True, False])
def test_weight_averaging_is_refused_by_name_private_or_not(private):
    # The trainer keeps the averaged weights of a baseline too, so the script's model would differ either way.
    with pytest.raises(ConfigError) as info:
        render_script(DPConfig(weight_averaging_decay=0.9, private=private))
    assert info.value.field == "weight_averaging_decay" and "allowed" in str(info.value)
