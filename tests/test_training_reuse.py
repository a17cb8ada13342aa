"""dpcore.training's traced steps: traced once per StepKey, reused across runs with the result of a fresh
process, never shared by two runs at once; warm_up; the "preparing" phase before the first step."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.dpsgd import training
from dpcore.privacy import explain
from dpcore.runs.backends import LocalBackend
from dpcore.runs.jobs import JobRunner
from dpcore.runs.store import RunStore
from tests.conftest import REPO_ROOT

# Momentum, so that the reused optimizer's slots must be zeroed; small enough for a test.
REUSED = DPConfig(
    dataset="digits",
    model="mlp",
    optimizer="momentum",
    momentum=0.5,
    learning_rate=0.3,
    noise_multiplier=1.1,
    l2_norm_clip=0.8,
    max_train_examples=200,
    batch_size=20,
    epochs=2,
    delta=1e-3,
    seed=3,
)
# The same graph, every run-to-run knob changed: seed, learning rate, momentum, σ, clip norm, batch size.
OTHER = REUSED.replace(seed=4, learning_rate=0.05, momentum=0.9, noise_multiplier=3.0, l2_norm_clip=2.0, batch_size=40)
METRIC_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "epsilon", "examples")

FRESH_PROCESS = """
import json, sys
import numpy as np
from dpcore.config import DPConfig
from dpcore.dpsgd import training
weights = []
result = training.train(DPConfig.from_json(sys.argv[1]), on_weights=weights.append)
np.savez(sys.argv[2], *weights[0])
print(json.dumps([[getattr(m, k) for k in sys.argv[3].split(",")] for m in result.epochs]))
"""


def _key(config: DPConfig) -> training.StepKey:
    return training.StepKey.of(config, datasets.load(config))


def _run(config: DPConfig) -> tuple[list[list[float]], list[np.ndarray]]:
    weights: list[list[np.ndarray]] = []
    result = training.train(config, on_weights=weights.append)
    assert result.status == "completed", result.error
    return [[getattr(m, k) for k in METRIC_KEYS] for m in result.epochs], weights[0]


def _tracing_count(key: training.StepKey) -> int:
    """How often the idle traced step of ``key`` traced its training step (it stays in the pool)."""
    traced = training.STEP_POOL.check_out(key)
    assert traced is not None, "no idle traced step for this key"
    try:
        return traced.train_step.experimental_get_tracing_count()
    finally:
        training.STEP_POOL.check_in(traced)


def test_a_reused_trace_gives_the_weights_and_metrics_of_a_fresh_process(tmp_path):
    saved = tmp_path / "fresh.npz"
    child = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, REUSED.to_json(), str(saved), ",".join(METRIC_KEYS)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    fresh_metrics = json.loads(child.stdout.strip().splitlines()[-1])
    fresh_weights = list(np.load(saved).values())

    training.clear_traced_steps()
    _run(OTHER)  # traces the step and leaves other weights, optimizer slots and hyperparameters in it
    metrics, weights = _run(REUSED)
    assert _tracing_count(_key(REUSED)) == 1 and training.STEP_POOL.idle_count(_key(REUSED)) == 1
    assert np.array(metrics) == pytest.approx(np.array(fresh_metrics), rel=1e-4, abs=1e-6)
    assert len(weights) == len(fresh_weights)
    for got, want in zip(weights, fresh_weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_runs_of_one_key_trace_once_and_each_starts_as_if_built_afresh(optimizer):
    config = REUSED.replace(optimizer=optimizer, model="logreg")
    training.clear_traced_steps()
    first = _run(config)  # a freshly traced step: the reference
    _run(config.replace(seed=9, learning_rate=0.01, noise_multiplier=2.5, l2_norm_clip=3.0, batch_size=50))
    again = _run(config)
    assert _tracing_count(_key(config)) == 1
    assert np.array(again[0]) == pytest.approx(np.array(first[0]), rel=1e-5, abs=1e-7)
    for got, want in zip(again[1], first[1]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_what_changes_the_graph_is_in_the_key():
    base = _key(REUSED)
    assert _key(OTHER) == base
    for changes in (
        dict(model="logreg"),
        dict(activation="tanh"),
        dict(optimizer="adam"),
        dict(momentum=0.0),
        dict(private=False),
        dict(sampling="shuffle"),
        dict(adaptive_clipping=True),
    ):
        assert _key(REUSED.replace(**changes)) != base, changes
    assert _key(REUSED.replace(private=False, sampling="shuffle")) == _key(REUSED.replace(private=False))
    # The CNN's DP step is cut into parts of 128 examples: batch sizes with as many parts share a trace.
    cnn = REUSED.replace(dataset="fashion_mnist", model="cnn", batch_size=200)
    assert _key(cnn).parts == 2 and _key(cnn.replace(batch_size=250)) == _key(cnn)
    assert _key(cnn.replace(batch_size=100)).parts == 1 and _key(cnn.replace(private=False)).parts == 1


def test_two_runs_at_once_never_share_a_traced_step():
    training.clear_traced_steps()
    key = _key(REUSED)
    alone = _run(REUSED)
    assert training.STEP_POOL.idle_count(key) == 1
    results: list = [None, None]

    def train(slot: int) -> None:
        results[slot] = _run(REUSED)

    threads = [threading.Thread(target=train, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    # Had they shared one model, each would have stepped the other's weights.
    for metrics, weights in results:
        assert np.array(metrics) == pytest.approx(np.array(alone[0]), rel=1e-4, abs=1e-6)
        for got, want in zip(weights, alone[1]):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert training.STEP_POOL.idle_count(key) == 2  # the idle one was lent to one run, a new one traced


def test_the_pool_keeps_at_most_its_size_and_drops_the_least_recently_returned():
    pool = training._StepPool(2)
    keys = [_key(REUSED.replace(model=model)) for model in ("logreg", "mlp")]
    steps = [training._TracedStep.__new__(training._TracedStep) for _ in range(3)]
    for step, key in zip(steps, [keys[0], keys[1], keys[1]]):
        step.key = key
    for step in steps:
        pool.check_in(step)
    assert pool.idle_count() == 2 and pool.idle_count(keys[0]) == 0
    assert pool.check_out(keys[1]) is steps[2] and pool.check_out(keys[1]) is steps[1]
    assert pool.check_out(keys[1]) is None


def test_warm_up_traces_the_step_that_the_next_run_uses():
    config = REUSED.replace(optimizer="sgd", noise_multiplier=1.7)
    training.clear_traced_steps()
    training.warm_up(config)
    assert training.STEP_POOL.idle_count(_key(config)) == 1
    phases = []
    result = training.train(config, on_progress=lambda p: phases.append(p.phase))
    assert result.status == "completed"
    assert _tracing_count(_key(config)) == 1 and phases[0] == "preparing"


def test_progress_says_preparing_before_the_first_step_then_training():
    progress: list[training.Progress] = []
    result = training.train(REUSED, on_progress=progress.append)
    assert result.status == "completed"
    assert progress[0].phase == "preparing" and progress[0].step == 0 and progress[0].fraction == 0.0
    assert all(p.phase == "training" for p in progress[1:])
    assert progress[1].step == 1  # the first step ends the preparing phase at once


def test_a_job_shows_preparing_until_its_first_step(tmp_path):
    reached, release = threading.Event(), threading.Event()

    class PausedWhilePreparing(LocalBackend):
        """The local backend, held at the preparing report so the test can look at the job."""

        def train(self, config, *, on_progress, **callbacks):
            def relay(progress):
                on_progress(progress)
                if progress.phase == "preparing":
                    reached.set()
                    release.wait(timeout=60)

            return super().train(config, on_progress=relay, **callbacks)

    runner = JobRunner(store=RunStore(tmp_path / "runs.sqlite3"), backend=PausedWhilePreparing())
    try:
        job_id = runner.submit(REUSED.replace(epochs=1))
        assert reached.wait(timeout=120)
        job = runner.get(job_id)
        assert (job.state, job.phase, job.progress, job.eta_seconds) == ("running", "preparing", 0.0, None)
        text = explain.progress_text(
            state=job.state,
            epoch=job.epoch,
            epochs_total=job.epochs_total,
            fraction=job.progress,
            eta_seconds=job.eta_seconds,
            finished_epochs=0,
            phase=job.phase,
        )
        assert text == "Preparing (tracing the model)…"
        release.set()
        assert runner.wait([job_id], timeout=120)
        assert runner.get(job_id).phase == "training" and runner.get(job_id).state == "completed"
    finally:
        release.set()
        runner.shutdown(wait=True)


def test_a_runner_asked_to_warm_up_traces_that_step_in_the_background(tmp_path):
    config = REUSED.replace(model="logreg", noise_multiplier=1.3)
    training.clear_traced_steps()
    runner = JobRunner(store=RunStore(tmp_path / "runs.sqlite3"), warm_up=config)
    runner.shutdown(wait=True)  # waits for the warm-up too
    assert runner.warm_up_error is None
    assert training.STEP_POOL.idle_count(_key(config)) == 1
