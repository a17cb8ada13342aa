"""render_script with the recipes' settings: a validation split is carried, what it cannot reproduce is refused."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from dpcore.config import DPConfig
from dpcore.errors import ConfigError
from dpcore.export.script import render_script
from dpcore.privacy import accounting


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(noise_schedule="time", noise_decay_rate=0.01, noise_floor=0.5), "noise_schedule"),
        (dict(noise_schedule="step", noise_decay_rate=0.01, noise_floor=0.5), "noise_schedule"),
        (dict(adaptive_clipping=True), "adaptive_clipping"),
        (dict(epsilon_budget=3.0), "epsilon_budget"),
    ],
)
def test_settings_the_script_cannot_reproduce_are_refused_by_name(changes, field):
    with pytest.raises(ConfigError) as info:
        render_script(DPConfig(**changes))
    assert info.value.field == field and "allowed" in str(info.value)
    render_script(DPConfig(private=False, **changes))  # a baseline adds no noise and spends no ε
    # A schedule that does not decay is the constant noise the script adds.
    render_script(DPConfig(noise_schedule="time", noise_decay_rate=0.0))


def test_the_script_holds_out_the_validation_rows_and_accounts_for_the_rest(tmp_path):
    config = DPConfig(
        model="logreg",
        epochs=1,
        batch_size=30,
        max_train_examples=160,
        delta=1e-3,
        validation_fraction=0.25,
        weight_averaging_decay=0.9,
    )
    script = render_script(config)  # it also evaluates the weights' moving average
    assert "VALIDATION_FRACTION = 0.25" in script
    path = tmp_path / "run.py"
    path.write_text(script)
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0.0 <= float(re.search(r"validation accuracy: ([0-9.]+)", done.stdout).group(1)) <= 1.0
    assert "n = 120)" in done.stdout
    reported = float(re.search(r"epsilon = ([0-9.e+-]+)", done.stdout).group(1))
    assert reported == pytest.approx(accounting.epsilon_for_config(config, n=120), rel=1e-3)


def test_the_script_evaluates_the_same_moving_average_as_the_trainer():
    script = render_script(DPConfig(weight_averaging_decay=0.5))
    assert "WEIGHT_AVERAGING_DECAY = 0.5" in script and "WEIGHT_AVERAGING_DECAY = None" in render_script(DPConfig())
    namespace = {"__name__": "exported"}
    exec(compile(script, "run.py", "exec"), namespace)

    class OneWeight:  # the model interface the average reads: get_weights()
        value = None

        def get_weights(self):
            return [np.array(self.value, dtype=np.float32)]

    model = OneWeight()
    model.value = [0.0, 0.0]
    average = namespace["WeightAverage"](model, 0.5)
    for value in ([4.0, 0.0], [2.0, 8.0], [0.0, 8.0]):
        model.value = value
        average.update()
    # As tests/test_training.py checks for dpcore.dpsgd.training.WeightAverage: weights 0.5^2, 0.5, 1
    # (times 1 - 0.5), divided by 1 - 0.5^3.
    expected = (0.125 * np.array([4.0, 0.0]) + 0.25 * np.array([2.0, 8.0]) + 0.5 * np.array([0.0, 8.0])) / 0.875
    assert np.allclose(average.values()[0], expected)
