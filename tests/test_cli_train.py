"""``python -m dpcore train``: JSON lines per epoch, a summary, clean Ctrl-C or SIGTERM, exit 2 on bad configs."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import pytest

from dpcore.cli import main
from dpcore.config import DPConfig
from dpcore.privacy import accounting
from dpcore.privacy.explain import format_epsilon
from dpcore.results import TRAIN_ACCURACY_KEY, TRAIN_LOSS_KEY, TRAIN_METRICS_NOTE
from tests.conftest import REPO_ROOT

TINY = DPConfig(
    dataset="digits", model="mlp", max_train_examples=200, batch_size=20, epochs=2, learning_rate=0.5, delta=1e-3
)


def write_config(tmp_path, config: DPConfig, name: str = "run.json") -> str:
    path = tmp_path / name
    path.write_text(config.to_yaml() if name.endswith((".yaml", ".yml")) else config.to_json())
    return str(path)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["run.json", "run.yaml"])
def test_json_output_has_one_object_per_epoch_and_a_summary(tmp_path, capsys, name):
    assert main(["train", "--config", write_config(tmp_path, TINY, name), "--json"]) == 0
    objects = json_lines(capsys.readouterr().out)
    epochs, summary = objects[:-1], objects[-1]
    assert [o["epoch"] for o in epochs] == [1, 2]
    expected = accounting.epsilon_curve_for_config(TINY, n=200)
    assert [o["epsilon"] for o in epochs] == pytest.approx(list(expected))
    assert all(0 <= o["test_accuracy"] <= 1 for o in epochs)
    # Training figures come from the private batches without noise: their names say ε does not cover them.
    assert all(0 <= o[TRAIN_ACCURACY_KEY] <= 1 and o[TRAIN_LOSS_KEY] > 0 for o in epochs)
    assert not any("train_loss" in o or "train_accuracy" in o for o in epochs)
    assert summary["event"] == "summary" and summary["status"] == "completed"
    assert summary["test_accuracy"] == epochs[-1]["test_accuracy"]
    assert summary["epsilon"] == pytest.approx(expected[-1]) and summary["examples_per_second"] > 0


def test_baseline_epsilon_is_null_in_json_and_infinity_in_text(tmp_path, capsys):
    path = write_config(tmp_path, TINY.replace(private=False, epochs=1))
    assert main(["train", "--config", path, "--json"]) == 0
    objects = json_lines(capsys.readouterr().out)
    assert objects[0]["epsilon"] is None and objects[-1]["epsilon"] is None and objects[-1]["private"] is False
    assert main(["train", "--config", path]) == 0
    text = capsys.readouterr().out
    assert "epoch 1/1" in text and "∞ (non-private)" in text and text.splitlines()[-1].startswith("completed")
    assert text.splitlines()[0] == TRAIN_METRICS_NOTE
    epoch_line = next(line for line in text.splitlines() if line.startswith("epoch 1/1"))
    assert "test accuracy" in epoch_line and "private training batches (not covered by ε): loss" in epoch_line


@pytest.mark.parametrize(
    "content,expected",
    [
        ('{"dataset": "digits", "batch_size": 0}', "batch_size"),
        ('{"dataset": "digits", "model": "cnn"}', "model: 'cnn' cannot train"),
        ('{"dataset": "digits", "batch_size": 5000}', "batch_size: 5000 is larger"),
        ('{"dataset": "digits", "colour": "red"}', "unknown config key"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_configs_exit_2_with_the_message(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["train", "--config", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert expected in captured.err and captured.err.startswith("error: ")


def test_missing_config_file_exits_2(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_cleanly_with_a_cancelled_summary(tmp_path, signum):
    path = write_config(tmp_path, TINY.replace(max_train_examples=None, epochs=200, batch_size=16, delta=1e-4))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dpcore", "train", "--config", path, "--json"],
        cwd=str(REPO_ROOT),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = process.stdout.readline()
    assert json.loads(first)["epoch"] == 1
    process.send_signal(signum)
    rest, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    summary = json_lines(rest)[-1]
    assert summary["status"] == "cancelled" and 1 <= summary["epochs_completed"] < 200
    assert math.isfinite(summary["epsilon"]) and "Traceback" not in err


CSV_RUN = DPConfig(
    dataset="csv",
    csv_path=str(REPO_ROOT / "assets" / "sample.csv"),
    csv_label="decision",
    model="logreg",
    batch_size=16,
    epochs=1,
    delta=1e-3,
)
SAMPLE_SCHEMA = str(REPO_ROOT / "assets" / "sample.schema.yaml")


def test_a_csv_run_needs_a_schema_or_an_epsilon_share(tmp_path, capsys):
    path = write_config(tmp_path, CSV_RUN, "csv.yaml")
    assert main(["train", "--config", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: csv_schema:") and "csv_preprocessing_epsilon" in err
    assert main(["train", "--config", path, "--csv-schema", str(tmp_path / "none.yaml")]) == 2
    assert "csv_schema: file" in capsys.readouterr().err
    assert main(["train", "--config", path, "--csv-schema", SAMPLE_SCHEMA, "--json"]) == 0
    summary = json_lines(capsys.readouterr().out)[-1]
    assert summary["status"] == "completed" and summary["preprocessing_epsilon"] == 0.0
    assert (
        summary["training_epsilon"]
        == summary["epsilon"]
        == pytest.approx(accounting.epsilon_for_config(CSV_RUN, n=192))
    )


def test_a_private_preprocessing_share_is_reported_beside_the_total(tmp_path, capsys):
    config = CSV_RUN.replace(csv_preprocessing_epsilon=1.0)
    path = write_config(tmp_path, config, "private.yaml")
    assert main(["train", "--config", path, "--json"]) == 0
    summary = json_lines(capsys.readouterr().out)[-1]
    split = accounting.epsilon_split(config, n=192)
    assert summary["epsilon"] == pytest.approx(split.total)
    assert (summary["preprocessing_epsilon"], summary["training_epsilon"]) == pytest.approx(
        (split.preprocessing, split.training)
    )
    assert main(["train", "--config", path]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert (
        f"composed from CSV preprocessing ε {format_epsilon(split.preprocessing)} and training ε "
        f"{format_epsilon(split.training)}"
    ) in last
