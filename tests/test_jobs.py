"""JobRunner with real (tiny) training: concurrency, cancel, failing runs, a killed process, the shared runner."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from typing import Callable

import pytest

from dpcore import jobs
from dpcore.config import DPConfig
from dpcore.jobs import JobRunner, JobSnapshot, get_runner
from dpcore.store import RunStore, UnknownRunError
from tests.conftest import REPO_ROOT

TINY = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=2, max_train_examples=128)
# The full digits training set (1437 examples, 45 steps an epoch): long enough to cancel mid-run.
LONG = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=300)


def _wait_until(predicate: Callable[[], bool], *, what: str, timeout: float = 90.0) -> None:
    """Poll ``predicate`` until it holds; fail the test (naming ``what``) if it never does."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs.sqlite3")


@pytest.fixture
def runner(store):
    runner = JobRunner(store=store, workers=1)
    yield runner
    runner.shutdown(wait=True)


@pytest.mark.timeout(120)
def test_several_jobs_train_concurrently_and_are_stored(store):
    runner = JobRunner(store=store, workers=2)
    try:
        a1 = runner.submit(TINY, owner="alice")
        b1 = runner.submit(TINY.replace(model="mlp", noise_multiplier=2.0), owner="bob")
        a2 = runner.submit(TINY.as_baseline(), owner="alice", name="baseline")
        assert runner.wait(timeout=100)
    finally:
        runner.shutdown(wait=True)

    assert [j.id for j in runner.list_jobs(owner="alice")] == [a1, a2]
    assert [j.id for j in runner.list_jobs(owner="bob")] == [b1]
    assert [j.id for j in runner.list_jobs()] == [a1, b1, a2]
    for job in runner.list_jobs():
        assert job.state == "completed", job.error
        assert (job.progress, job.epoch, job.epochs_total, len(job.metrics)) == (1.0, 2, 2, 2)
        assert job.started is not None and job.finished is not None and job.started <= job.finished
        record = store.get_run(job.id)
        assert record.status == "completed" and record.owner == job.owner
        assert record.epochs == job.metrics
        assert record.examples_per_second > 0
    private = runner.get(a1).metrics
    assert 0 < private[0].epsilon < private[1].epsilon < float("inf")
    assert runner.get(a2).latest.epsilon == float("inf")
    assert store.get_run(a2).name == "baseline"


@pytest.mark.timeout(120)
def test_cancel_running_and_queued_jobs(runner, store):
    long_id = runner.submit(LONG, owner="me")
    queued_id = runner.submit(TINY, owner="me")
    assert runner.get(queued_id).state == "queued"
    _wait_until(lambda: runner.get(long_id).epoch >= 1 and runner.get(long_id).eta_seconds is not None,
                what="the long job's first epoch")

    running = runner.get(long_id)
    assert running.state == "running"
    assert 0 < running.progress < 1 and running.eta_seconds > 0
    assert runner.cancel(queued_id)
    cancelled = runner.get(queued_id)
    assert cancelled.state == "cancelled" and cancelled.started is None and not cancelled.metrics
    assert store.get_run(queued_id).status == "cancelled"

    assert runner.cancel(long_id)
    assert runner.wait([long_id], timeout=60)
    stopped = runner.get(long_id)
    assert stopped.state == "cancelled"
    assert 1 <= len(stopped.metrics) < LONG.epochs
    record = store.get_run(long_id)
    assert record.status == "cancelled" and record.epochs == stopped.metrics
    assert not runner.cancel(long_id) and not runner.cancel(queued_id)

    after = runner.submit(TINY)
    assert runner.wait([after], timeout=60)
    assert runner.get(after).state == "completed"


@pytest.mark.timeout(120)
def test_failing_runs_are_recorded_and_the_next_job_still_runs(runner, store, tmp_path):
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 8)
    missing_id = runner.submit(DPConfig(dataset="csv", csv_path=str(tmp_path / "missing.csv"),
                                        csv_label="label", model="logreg"))
    garbage_id = runner.submit(DPConfig(dataset="csv", csv_path=str(garbage), csv_label="label",
                                        model="logreg"))
    good_id = runner.submit(TINY)
    assert runner.wait(timeout=100)

    missing = runner.get(missing_id)
    assert missing.state == "failed"
    assert "missing.csv" in missing.error and "does not exist" in missing.error
    assert runner.get(garbage_id).state == "failed"
    assert "binary" in runner.get(garbage_id).error
    for job_id in (missing_id, garbage_id):
        record = store.get_run(job_id)
        assert (record.status, record.error) == ("failed", runner.get(job_id).error)
    assert runner.get(good_id).state == "completed"
    assert store.get_run(good_id).status == "completed"


@pytest.mark.timeout(120)
def test_killed_process_leaves_an_interrupted_run_with_its_epochs(tmp_path):
    path = tmp_path / "runs.sqlite3"
    RunStore(path)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    child = subprocess.Popen([sys.executable, str(REPO_ROOT / "tests" / "jobs_child.py"), str(path)],
                             cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        store = RunStore(path)

        def first_epoch_committed() -> bool:
            if child.poll() is not None:
                pytest.fail(f"the child exited early: {child.stderr.read().decode(errors='replace')[-2000:]}")
            runs = store.list_runs()
            return bool(runs) and len(runs[0].epochs) >= 1

        _wait_until(first_epoch_committed, what="the child's first committed epoch")
        # The child is alive: a second process opening the store must not cut its runs off.
        assert store.mark_interrupted() == 0
        assert [r.status for r in store.list_runs()] == ["running", "queued"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
    before = store.list_runs()[0].epochs
    assert len(before) >= 1

    runner = JobRunner(store=RunStore(path))
    try:
        assert runner.interrupted_on_start == 2
        long_run, queued_run = store.list_runs()
        assert long_run.status == "interrupted" and queued_run.status == "interrupted"
        assert long_run.epochs[:len(before)] == before
        assert long_run.owner == "child" and long_run.error
        snapshot = runner.get(long_run.id)
        assert snapshot.state == "interrupted" and snapshot.metrics == long_run.epochs
        assert runner.list_jobs() == []
    finally:
        runner.shutdown(wait=True)


def test_get_reads_runs_this_runner_never_held(runner, store):
    elsewhere = store.create_run(TINY, owner="other", name="older")
    store.set_status(elsewhere, "failed", error="boom")
    snapshot = runner.get(elsewhere)
    assert isinstance(snapshot, JobSnapshot)
    assert (snapshot.state, snapshot.error, snapshot.owner, snapshot.name) == ("failed", "boom", "other", "older")
    assert snapshot.done and snapshot.eta_seconds is None
    record = snapshot.as_record()
    assert (record.id, record.status, record.error, record.owner, record.label) == (elsewhere, "failed", "boom",
                                                                                  "other", "older")
    assert record.config == store.get_run(elsewhere).config
    with pytest.raises(UnknownRunError):
        runner.get(elsewhere + 100)
    with pytest.raises(UnknownRunError):
        runner.wait([elsewhere])
    assert not runner.cancel(elsewhere)


@pytest.mark.timeout(120)
def test_shutdown_cancels_queued_jobs_and_refuses_new_ones(store):
    runner = JobRunner(store=store, workers=1)
    running_id = runner.submit(LONG)
    queued_id = runner.submit(TINY)
    _wait_until(lambda: runner.get(running_id).state == "running", what="the first job to start")
    runner.shutdown(wait=True)
    assert runner.get(running_id).state == "cancelled"
    assert runner.get(queued_id).state == "cancelled"
    assert [r.status for r in store.list_runs()] == ["cancelled", "cancelled"]
    with pytest.raises(RuntimeError, match="shut down"):
        runner.submit(TINY)


def test_runner_rejects_bad_arguments(store):
    with pytest.raises(ValueError, match="workers"):
        JobRunner(store=store, workers=0)
    runner = JobRunner(store=store)
    try:
        with pytest.raises(TypeError, match="DPConfig"):
            runner.submit(TINY.to_dict())  # type: ignore[arg-type]
    finally:
        runner.shutdown(wait=True)


def test_get_runner_is_one_per_process(monkeypatch, tmp_path):
    monkeypatch.setattr(jobs, "_RUNNER", None)
    monkeypatch.setenv("DPEXPLORER_STORE", str(tmp_path / "env.sqlite3"))
    monkeypatch.setenv("DPEXPLORER_WORKERS", "2")
    first = get_runner()
    try:
        assert get_runner() is first
        assert get_runner(tmp_path / "env.sqlite3") is first
        assert first.store.path == tmp_path / "env.sqlite3" and first.workers == 2
        with pytest.raises(ValueError, match="already uses"):
            get_runner(tmp_path / "other.sqlite3")
    finally:
        first.shutdown(wait=True)
    assert first.closed
    second = get_runner(tmp_path / "other.sqlite3", workers=1)
    try:
        assert second is not first and not second.closed
        assert second.store.path == tmp_path / "other.sqlite3" and second.workers == 1
    finally:
        second.shutdown(wait=True)


@pytest.mark.timeout(200)
def test_a_run_asked_to_be_audited_is_audited_before_it_counts_as_done(runner, store, tmp_path):
    audited = runner.submit(TINY, owner="me", audit=True)
    plain = runner.submit(TINY.as_baseline(), owner="me")
    # Ten rows leave two held-out rows: the run trains, its audit cannot (too few non-members).
    csv_path = tmp_path / "ten.csv"
    csv_path.write_text("x,y\n" + "".join(f"{i / 10},{i % 2}\n" for i in range(10)))
    too_small = runner.submit(DPConfig(dataset="csv", csv_path=str(csv_path), csv_label="y", model="logreg",
                                       batch_size=4, epochs=1), owner="me", audit=True)
    assert runner.get(audited).audit_requested and not runner.get(plain).audit_requested
    assert runner.wait(timeout=180)

    job = runner.get(audited)
    assert job.state == "completed" and not job.auditing and job.audit_error is None
    assert job.audit is not None and job.audit.run_id == audited and job.audit.epsilon == job.latest.epsilon
    assert store.get_run(audited).audit == job.audit and job.as_record().audit == job.audit
    assert runner.get(plain).audit is None and store.get_run(plain).audit is None

    failed = runner.get(too_small)
    assert failed.state == "completed" and store.get_run(too_small).status == "completed"  # the run is kept
    assert "too few" in failed.audit_error and failed.audit is None

    # Later, on demand: the baseline is audited and its job shows it.
    report = runner.audit(plain)
    assert runner.get(plain).audit == report == store.get_run(plain).audit and math.isinf(report.epsilon)


def test_auditing_on_demand_refuses_a_run_that_has_not_completed(runner, store):
    from dpcore.audit import AuditError

    queued = store.create_run(TINY)
    with pytest.raises(AuditError, match="completed run"):
        runner.audit(queued)
    with pytest.raises(UnknownRunError):
        runner.audit(queued + 100)
