"""Training with the recipes' settings: the noise schedule the accountant composed, a budget that stops
the run at the right epoch (library, job runner, store, CLI), and validation metrics per epoch."""

from __future__ import annotations

import json
import math

from dpcore.cli import main
from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.dpsgd import training
from dpcore.privacy import accounting, events
from dpcore.results import TRAIN_METRICS_NOTE
from dpcore.runs.jobs import JobRunner
from dpcore.runs.store import RunStore

TINY = DPConfig(
    dataset="digits", model="logreg", max_train_examples=200, batch_size=20, epochs=3, learning_rate=0.5, delta=1e-3
)


def test_the_trainer_adds_exactly_the_noise_the_accountant_composed():
    config = TINY.replace(noise_schedule="step", noise_decay_rate=0.03, noise_floor=0.7)
    result = training.train(config)
    assert result.status == "completed", result.error
    composed = accounting.noise_schedule_values(config, n=200)
    assert result.noise_multipliers == composed and len(set(composed)) > 5
    ends = events.epoch_end_steps(n=200, batch_size=20, epochs=3, sampling="poisson")
    assert [len(m.noise_multipliers) for m in result.epochs] == [ends[0], ends[1] - ends[0], ends[2] - ends[1]]
    assert [m.epsilon for m in result.epochs] == list(accounting.epsilon_curve_for_config(config, n=200))
    assert result.clip_norms == (1.0,) * len(composed)  # a fixed clip norm, recorded each step
    constant = accounting.epsilon_for_config(config.replace(noise_schedule="constant"), n=200)
    assert result.epsilon > constant


def budget_between_epochs_2_and_3(config: DPConfig, n: int) -> DPConfig:
    curve = accounting.epsilon_curve_for_config(config, n=n)
    return config.replace(epsilon_budget=(curve[1] + curve[2]) / 2)


def test_a_budget_stops_the_run_before_the_epoch_that_would_exceed_it(tmp_path, capsys):
    config = budget_between_epochs_2_and_3(TINY, 200)
    result = training.train(config)
    assert result.status == "budget_reached" and result.error is None
    assert [m.epoch for m in result.epochs] == [1, 2]
    assert result.epsilon <= config.epsilon_budget < accounting.epsilon_curve_for_config(config, n=200)[2]
    assert result.note.startswith("stopped after epoch 2 of 3: epoch 3 would bring ε to")
    assert result.epsilon == accounting.epsilon_for_config(config, n=200)

    path = tmp_path / "budget.yaml"
    path.write_text(config.to_yaml())
    assert main(["train", "--config", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == TRAIN_METRICS_NOTE
    assert [line.split(":")[0] for line in lines[1:3]] == ["epoch 1/3", "epoch 2/3"]
    assert lines[3].startswith("budget_reached: ") and lines[4] == result.note


def test_a_budget_reached_run_is_stored_and_listed_with_its_status(tmp_path, capsys):
    config = budget_between_epochs_2_and_3(TINY.replace(validation_fraction=0.25, max_train_examples=240), 180)
    store = RunStore(tmp_path / "runs.sqlite3")
    runner = JobRunner(store=store)
    job_id = runner.submit(config, owner="me")
    assert runner.wait([job_id], timeout=300)
    runner.shutdown()
    snapshot = runner.get(job_id)
    assert snapshot.state == "budget_reached" and snapshot.done and snapshot.progress == 1.0
    record = store.get_run(job_id)
    assert record.status == "budget_reached" and len(record.epochs) == 2 and record.n_train == 180
    assert record.epochs == snapshot.metrics

    assert main(["runs", "--store", str(store.path), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["status"] == "budget_reached" and listed["config"]["epsilon_budget"] == config.epsilon_budget
    assert [e["epoch"] for e in listed["epochs"]] == [1, 2]
    assert 0 <= listed["validation_accuracy"] <= 1
    assert listed["epochs"][0]["noise_multipliers"] == list(record.epochs[0].noise_multipliers)


def test_a_budget_below_the_first_epoch_trains_nothing():
    result = training.train(TINY.replace(epsilon_budget=0.01))
    assert result.status == "budget_reached" and result.epochs == () and result.epsilon == 0.0
    assert result.note.startswith("stopped after epoch 0 of 3")


def test_validation_metrics_per_epoch_and_epsilon_for_the_rows_trained_on():
    config = TINY.replace(validation_fraction=0.2, epochs=2)
    result = training.train(config)
    assert result.status == "completed", result.error
    assert result.n_train == 160 == datasets.train_size(config)
    assert [m.epsilon for m in result.epochs] == list(accounting.epsilon_curve_for_config(config, n=160))
    for m in result.epochs:
        assert 0 <= m.validation_accuracy <= 1 and m.validation_loss > 0
        assert 0 <= m.test_accuracy <= 1
    assert all(math.isnan(m.validation_accuracy) for m in training.train(TINY.replace(epochs=1)).epochs)
