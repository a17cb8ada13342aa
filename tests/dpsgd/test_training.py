"""dpcore.training: sampling that matches the accountant, results, callbacks, cancel, baseline."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from dpcore import csv_schema
from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.dpsgd import training
from dpcore.privacy import accounting, events, preprocessing
from tests.conftest import REPO_ROOT

TINY = dict(
    dataset="digits", model="mlp", max_train_examples=200, batch_size=20, epochs=2, learning_rate=0.5, delta=1e-3
)


def tiny(**changes: object) -> DPConfig:
    return DPConfig(**{**TINY, **changes})


@pytest.mark.parametrize("sampling", ["poisson", "shuffle"])
def test_batches_are_exactly_the_accounted_steps(sampling):
    n, batch_size, epochs = 203, 20, 3
    batches = list(training.batch_indices(n=n, batch_size=batch_size, epochs=epochs, sampling=sampling, seed=1))
    assert len(batches) == events.dp_steps(n=n, batch_size=batch_size, epochs=epochs, sampling=sampling)
    assert all(b.dtype == np.int32 and len(set(b.tolist())) == len(b) for b in batches)
    assert all(0 <= b.min() and b.max() < n for b in batches if len(b))
    if sampling == "shuffle":
        per_epoch = len(batches) // epochs
        for e in range(epochs):
            epoch = np.concatenate(batches[e * per_epoch : (e + 1) * per_epoch])
            assert sorted(epoch.tolist()) == list(range(n))
        assert {len(b) for b in batches} == {20, 3}


def test_poisson_batches_include_each_example_with_probability_q():
    n, batch_size = 500, 25
    batches = list(training.batch_indices(n=n, batch_size=batch_size, epochs=40, sampling="poisson", seed=0))
    sizes = np.array([len(b) for b in batches])
    assert len(set(sizes.tolist())) > 5  # sizes vary: nothing pads or truncates a drawn batch
    assert sizes.mean() == pytest.approx(batch_size, rel=0.03)
    q = batch_size / n
    assert sizes.var() == pytest.approx(n * q * (1 - q), rel=0.15)
    counts = np.bincount(np.concatenate(batches), minlength=n) / len(batches)
    assert counts.mean() == pytest.approx(q, rel=0.03) and counts.min() > 0.02


def test_a_private_run_reports_the_accountants_epsilon_per_epoch():
    config = tiny()
    seen, progress = [], []
    result = training.train(config, on_epoch=seen.append, on_progress=progress.append)
    assert result.status == "completed" and result.error is None
    assert result.n_train == 200 and result.config == config
    assert [m.epoch for m in result.epochs] == [1, 2] and list(result.epochs) == seen
    expected = accounting.epsilon_curve_for_config(config, n=200)
    assert [m.epsilon for m in result.epochs] == pytest.approx(list(expected))
    assert result.epsilon == pytest.approx(expected[-1]) and result.epsilon < 100
    ends = events.epoch_end_steps(n=200, batch_size=20, epochs=2, sampling="poisson")
    assert [p.step for p in progress if p.step in ends][-2:] == list(ends)
    assert progress[-1].fraction == 1.0 and progress[-1].total_steps == ends[-1]
    # Each report places its step within its epoch ("step 3 of 30"); an epoch's end reports all of its steps.
    training_reports = [p for p in progress if p.phase == "training"]
    assert all(0 < p.epoch_step <= p.epoch_steps for p in training_reports)
    assert {p.epoch: p.epoch_steps for p in training_reports if p.epoch_step == p.epoch_steps} == {
        1: ends[0],
        2: ends[1] - ends[0],
    }
    for m in result.epochs:
        assert 0 <= m.train_accuracy <= 1 and 0 <= m.test_accuracy <= 1
        assert m.train_loss > 0 and m.test_loss > 0 and m.seconds > 0
        assert 100 < m.examples < 300
    assert result.examples_per_second > 0 and result.seconds > 0
    assert result.test_accuracy == result.epochs[-1].test_accuracy


def test_weight_average_is_the_bias_corrected_moving_average_and_applied_only_inside_its_block():
    tf = pytest.importorskip("tensorflow")
    variable = tf.Variable([0.0, 0.0])
    average = training.WeightAverage([variable])
    average.start(decay=0.5)
    assert np.array_equal(average.values()[0].numpy(), [0.0, 0.0])  # before any step: the weights themselves
    for value in ([4.0, 0.0], [2.0, 8.0], [0.0, 8.0]):
        variable.assign(value)
        average.update()
    # Weights 0.5^2, 0.5, 1 (times 1 - 0.5), divided by 1 - 0.5^3 = 0.875.
    expected = (0.125 * np.array([4.0, 0.0]) + 0.25 * np.array([2.0, 8.0]) + 0.5 * np.array([0.0, 8.0])) / 0.875
    assert np.allclose(average.values()[0].numpy(), expected)
    with average.applied():
        assert np.allclose(variable.numpy(), expected)
    assert np.array_equal(variable.numpy(), [0.0, 8.0])


def test_a_reused_step_starts_each_run_with_a_fresh_average_of_its_own_decay():
    # The second and third runs reuse the first's traced step: equal seeds must give equal results.
    runs = []
    for decay in (0.8, 0.5, 0.8):
        kept = []
        result = training.train(tiny(model="logreg", weight_averaging_decay=decay), on_weights=kept.append)
        assert result.status == "completed"
        runs.append((result.epochs[-1].test_accuracy, kept[-1]))
    assert runs[0][0] == runs[2][0] and all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[2][1]))
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_weight_averaging_changes_the_kept_and_evaluated_weights_not_the_training_or_epsilon():
    from dpcore.data import datasets
    from dpcore.dpsgd import models

    plain_weights, averaged_weights = [], []
    plain = training.train(tiny(model="logreg"), on_weights=plain_weights.append)
    config = tiny(model="logreg", weight_averaging_decay=0.8)
    averaged = training.train(config, on_weights=averaged_weights.append)
    assert averaged.status == "completed"
    # Same iterates (post-processing changes no step), so the same training figures and the same ε.
    for a, b in zip(plain.epochs, averaged.epochs):
        assert (a.train_loss, a.train_accuracy, a.epsilon, a.examples) == (
            b.train_loss,
            b.train_accuracy,
            b.epsilon,
            b.examples,
        )
    assert not all(np.array_equal(a, b) for a, b in zip(plain_weights[0], averaged_weights[0]))
    # The kept weights are the ones the last epoch evaluated.
    dataset = datasets.load(config)
    logits = models.predict_logits(
        config, weights=averaged_weights[0], x=dataset.x_test, num_classes=dataset.info.num_classes
    )
    assert np.mean(np.argmax(logits, axis=1) == dataset.y_test) == pytest.approx(averaged.test_accuracy)


def test_same_seed_same_result_other_seed_other_result():
    first, again, other = training.train(tiny()), training.train(tiny()), training.train(tiny(seed=1))
    keys = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "epsilon", "examples")
    pick = lambda r: [tuple(getattr(m, k) for k in keys) for m in r.epochs]  # noqa: E731
    assert pick(first) == pick(again)
    assert pick(first) != pick(other)


def test_dp_training_learns_digits():
    result = training.train(
        DPConfig(
            dataset="digits",
            model="mlp",
            activation="tanh",
            epochs=3,
            batch_size=64,
            learning_rate=0.5,
            noise_multiplier=1.0,
            delta=1e-4,
        )
    )
    assert result.status == "completed"
    assert result.test_accuracy > 0.6


def test_baseline_has_infinite_epsilon_and_learns():
    result = training.train(tiny(private=False, learning_rate=0.2, sampling="shuffle", epochs=3))
    assert result.status == "completed"
    assert all(math.isinf(m.epsilon) for m in result.epochs) and math.isinf(result.epsilon)
    assert [m.examples for m in result.epochs] == [200, 200, 200]
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_dp_momentum_and_dp_adam_run(optimizer):
    result = training.train(
        tiny(optimizer=optimizer, learning_rate=0.05 if optimizer == "momentum" else 0.01, model="logreg", epochs=1)
    )
    assert result.status == "completed" and len(result.epochs) == 1


SAMPLE_CSV = dict(
    dataset="csv",
    csv_path=str(REPO_ROOT / "assets" / "sample.csv"),
    csv_label="decision",
    model="logreg",
    batch_size=16,
    epochs=2,
    delta=1e-3,
    noise_multiplier=1.1,
)


def test_a_csv_dataset_trains_under_its_public_schema():
    schema = csv_schema.load_schema_file(str(REPO_ROOT / "assets" / "sample.schema.yaml"))
    config = DPConfig(**SAMPLE_CSV, sampling="shuffle", csv_schema=schema)
    result = training.train(config)
    assert result.status == "completed" and result.n_train == datasets.train_size(config)


def test_private_csv_preprocessing_is_paid_for_in_the_run_epsilon():
    import dp_accounting
    from dp_accounting.rdp import rdp_privacy_accountant

    config = DPConfig(**SAMPLE_CSV, csv_preprocessing_epsilon=1.0, max_train_examples=160)
    result = training.train(config)
    assert result.status == "completed", result.error
    n = result.n_train
    assert n == datasets.train_size(config) and abs(n - 160) < 40  # each row in the subset by its own coin
    # The run's ε, recomputed from the DpEvents of what it did: one Gaussian release of noisy counts
    # (its thresholds spend δ/10), then the Poisson-sampled steps.
    cost = preprocessing.preprocessing_cost_for_config(config)
    steps = events.dp_steps(n=n, batch_size=16, epochs=2, sampling="poisson")
    reference = (
        rdp_privacy_accountant.RdpAccountant()
        .compose(dp_accounting.GaussianDpEvent(cost.noise_multiplier))
        .compose(
            dp_accounting.SelfComposedDpEvent(
                dp_accounting.PoissonSampledDpEvent(16 / n, dp_accounting.GaussianDpEvent(1.1)), steps
            )
        )
    )
    expected = reference.get_epsilon(1e-3 * 0.9) - math.log1p(-1e-4)
    assert result.epsilon == pytest.approx(expected, rel=1e-9)
    training_alone = accounting.epsilon_for_config(config.replace(csv_preprocessing_epsilon=None), n=n)
    assert training_alone < result.epsilon < training_alone + 1.0


def test_stop_event_cancels_and_keeps_finished_epochs():
    stop = threading.Event()
    result = training.train(tiny(epochs=5), on_epoch=lambda m: stop.set(), stop_event=stop)
    assert result.status == "cancelled" and len(result.epochs) == 1


def test_stop_event_cancels_within_one_step(monkeypatch):
    stop = threading.Event()
    calls = []

    def on_progress(progress: training.Progress) -> None:
        if progress.phase == "training":
            calls.append(progress.step)
            stop.set()

    monkeypatch.setattr(training, "PROGRESS_INTERVAL_S", 0.0)  # report after every step
    result = training.train(tiny(epochs=3), on_progress=on_progress, stop_event=stop)
    assert result.status == "cancelled" and result.epochs == ()
    assert calls == [1]


def test_a_stop_event_set_before_training_cancels_at_once():
    stop = threading.Event()
    stop.set()
    result = training.train(tiny(), stop_event=stop)
    assert result.status == "cancelled" and result.epochs == () and math.isnan(result.test_accuracy)


def test_failures_become_a_failed_result_with_the_message():
    result = training.train(DPConfig(dataset="digits", model="cnn"))
    assert result.status == "failed" and "model" in result.error and "28x28" in result.error
    too_big = training.train(tiny(batch_size=300))
    assert too_big.status == "failed" and too_big.error.startswith("batch_size:")

    def broken(metrics: training.EpochMetrics) -> None:
        raise RuntimeError("listener went away")

    crashed = training.train(tiny(), on_epoch=broken)
    assert crashed.status == "failed" and "listener went away" in crashed.error
    assert len(crashed.epochs) == 1


def test_an_error_deep_in_tensorflow_is_reported_as_one_line(monkeypatch):
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kernel failed\n" + "graph details\n" * 200)

    monkeypatch.setattr(training.privatize, "dp_gradient", explode)
    training.clear_traced_steps()  # a step traced by an earlier test would not call the patched function
    result = training.train(tiny())
    assert result.status == "failed" and result.error == "RuntimeError: kernel failed"


def test_secure_mode_draws_secret_randomness_but_keeps_the_seeded_weights():
    first, again = training.train(tiny(secure_mode=True)), training.train(tiny(secure_mode=True))
    assert first.status == again.status == "completed"
    assert [m.train_loss for m in first.epochs] != [m.train_loss for m in again.epochs]
    assert [m.epsilon for m in first.epochs] == [m.epsilon for m in again.epochs]
    assert training.randomness_seed(tiny()) == tiny().seed
    secret = {training.randomness_seed(tiny(secure_mode=True)) for _ in range(5)}
    assert len(secret) == 5
