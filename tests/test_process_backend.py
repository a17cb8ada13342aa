"""The process backend through real child processes: epochs stream into the store, the child is reused,
runs train at a lower priority outside this process, cancel and the wall-time cap stop a run, and a
killed child fails its run (its epochs kept) and is replaced."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.privacy import accounting
from dpcore.room.server_settings import RunLimits, ServerSettings
from dpcore.runs.jobs import JobRunner, get_runner
from dpcore.runs.process_backend import TRAINING_NICE, ProcessBackend
from dpcore.runs.store import RunStore
from tests.conftest import wait_until

TINY = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=2, max_train_examples=128)
# The full digits training set (45 steps an epoch): long enough to cancel or kill mid-run.
LONG = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=300)


def _epochs(metrics):
    """What a run's epochs say, comparable across a pipe (NaN validation metrics are unequal to themselves)."""
    return [(m.epoch, m.epsilon, m.test_accuracy, m.examples) for m in metrics]


@pytest.fixture(scope="module")
def backend():
    """One backend for the module, as a server keeps one: its child outlives each test's runner."""
    backend = ProcessBackend(processes=1)
    yield backend
    backend.close()


@pytest.fixture()
def runner(backend, tmp_path):
    """A runner with one worker on the module's backend, and its store."""
    runner = JobRunner(store=RunStore(tmp_path / "runs.sqlite3"), workers=1, backend=backend)
    yield runner
    runner.shutdown()


@pytest.mark.timeout(300)
def test_runs_train_in_one_reused_lower_priority_child_and_cancel_stops_them(backend, runner):
    store = runner.store
    first = runner.submit(TINY, owner="ada")
    assert runner.wait([first], timeout=240)
    done = runner.get(first)
    assert done.state == "completed", done.error
    assert [m.epoch for m in done.metrics] == [1, 2]
    assert done.metrics[-1].epsilon == pytest.approx(accounting.epsilon_for_config(TINY, n=128))
    record = store.get_run(first)
    assert record.status == "completed" and _epochs(record.epochs) == _epochs(done.metrics)
    assert store.load_weights(first)  # the final weights came back through the pipe

    long_id = runner.submit(LONG, owner="ada")
    wait_until(lambda: runner.get(long_id).metrics, what="the long run's first epoch", timeout=120.0)
    [pid] = backend.worker_pids()
    assert pid != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + TRAINING_NICE)
    assert runner.cancel(long_id)
    assert runner.wait([long_id], timeout=120)
    stopped = runner.get(long_id)
    assert stopped.state == "cancelled" and 1 <= len(stopped.metrics) < LONG.epochs
    assert _epochs(store.get_run(long_id).epochs) == _epochs(stopped.metrics)

    again = runner.submit(TINY.replace(seed=1), owner="ada")
    wait_until(lambda: backend.worker_pids() or runner.get(again).done, what="a training child", timeout=120.0)
    assert runner.wait([again], timeout=120) and runner.get(again).state == "completed"
    assert backend.worker_pids() == []  # idle again, and the same child trained all three
    assert [c.pid for c in backend._idle] == [pid]


@pytest.mark.timeout(300)
def test_the_post_run_audit_runs_in_the_child_and_its_failure_is_noted(runner, monkeypatch, tmp_path):
    import dpcore.runs.audits

    def not_here(*_, **__):
        raise AssertionError("audited in the server process")

    monkeypatch.setattr(dpcore.runs.audits, "audit_run", not_here)  # the child has its own, unpatched module
    audited = runner.submit(TINY, owner="ada", audit=True)
    # Ten rows leave two held-out rows: the run trains, its audit cannot (too few non-members).
    csv_path = tmp_path / "ten.csv"
    csv_path.write_text("x,y\n" + "".join(f"{i / 10},{i % 2}\n" for i in range(10)))
    too_small = runner.submit(
        DPConfig(
            dataset="csv",
            csv_path=str(csv_path),
            csv_label="y",
            model="logreg",
            batch_size=4,
            epochs=1,
            csv_schema={"classes": [0, 1], "numeric": {"x": [0, 1]}},
        ),
        owner="ada",
        audit=True,
    )
    assert runner.wait(timeout=240)
    job = runner.get(audited)
    assert job.state == "completed" and job.audit_error is None and job.audit is not None
    assert job.audit.run_id == audited and runner.store.get_run(audited).audit == job.audit
    failed = runner.get(too_small)
    assert failed.state == "completed" and failed.audit is None and failed.audit_error
    assert "too few" in failed.audit_error  # the child's own message, not the server's patched audit


@pytest.mark.timeout(300)
def test_the_wall_time_cap_stops_a_run_in_a_child(runner):
    job = runner.submit(LONG, owner="ada")
    wait_until(lambda: runner.get(job).metrics, what="the run's first epoch", timeout=120.0)
    runner.set_limits(RunLimits(max_run_seconds=0.5), by=None)  # a shorter cap applies to running runs
    assert runner.wait([job], timeout=120)
    stopped = runner.get(job)
    assert stopped.state == "failed" and "wall-time limit" in stopped.error
    assert 1 <= len(stopped.metrics) < LONG.epochs


@pytest.mark.timeout(300)
def test_a_killed_child_fails_its_run_with_its_epochs_and_is_replaced(backend, runner):
    store = runner.store
    doomed = runner.submit(LONG, owner="ada")
    wait_until(lambda: runner.get(doomed).metrics, what="the doomed run's first epoch", timeout=120.0)
    [pid] = backend.worker_pids()
    os.kill(pid, signal.SIGKILL)
    assert runner.wait([doomed], timeout=120)
    failed = runner.get(doomed)
    assert failed.state == "failed"
    assert f"killed by signal {int(signal.SIGKILL)}" in failed.error and "ε is that of those epochs" in failed.error
    record = store.get_run(doomed)
    assert record.status == "failed" and _epochs(record.epochs) == _epochs(failed.metrics) and len(record.epochs) >= 1

    after = runner.submit(TINY, owner="ada")
    assert runner.wait([after], timeout=240)
    assert runner.get(after).state == "completed", runner.get(after).error
    assert [c.pid for c in backend._idle] != [pid]


def test_a_served_runner_trains_in_child_processes_unless_told_otherwise(tmp_path, monkeypatch):
    import dpcore.runs.jobs as jobs

    monkeypatch.setattr(jobs, "_RUNNER", None)
    runner = get_runner(tmp_path / "a.sqlite3", settings=ServerSettings(workers=2))
    try:
        assert isinstance(runner.backend, ProcessBackend) and runner.backend.processes == 2
    finally:
        runner.shutdown()
    monkeypatch.setattr(jobs, "_RUNNER", None)
    runner = get_runner(tmp_path / "b.sqlite3", settings=ServerSettings.from_env({"DPEXPLORER_BACKEND": "local"}))
    try:
        assert runner.backend.name == "local"
    finally:
        runner.shutdown()
    with pytest.raises(UserInputError, match="DPEXPLORER_BACKEND.*process or local"):
        ServerSettings.from_env({"DPEXPLORER_BACKEND": "threads"})
    with pytest.raises(UserInputError, match="processes"):
        ProcessBackend(processes=0)


@pytest.mark.timeout(300)
def test_a_run_in_a_child_reports_its_preparing_phase_first_then_its_steps(backend):
    phases = []
    result = backend.train(
        TINY.replace(model="mlp"),
        on_epoch=lambda m: None,
        on_progress=lambda p: phases.append(p.phase),
        stop_event=threading.Event(),
        on_weights=lambda w: None,
    )
    assert result.status == "completed", result.error
    assert phases[0] == "preparing" and phases[-1] == "training" and "preparing" not in phases[1:]
