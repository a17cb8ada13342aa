"""JobRunner with real (tiny) training: concurrency, cancel, failing runs, a killed process, the shared runner."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys

import pytest

from dpcore.audit.report import AuditError
from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.room.participants import Caller, NotAllowedError
from dpcore.room.server_settings import RunLimits, ServerSettings
from dpcore.runs import jobs
from dpcore.runs.capacity import CapacityError, ThroughputTable
from dpcore.runs.job_state import JobSnapshot
from dpcore.runs.jobs import JobRunner, get_runner
from dpcore.runs.records import INTERRUPTED_MESSAGE
from dpcore.runs.store import RunStore, UnknownRunError
from tests.conftest import REPO_ROOT, wait_until

TINY = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=2, max_train_examples=128)
# The full digits training set (1437 examples, 45 steps an epoch): long enough to cancel mid-run.
LONG = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=300)


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
    wait_until(
        lambda: runner.get(long_id).epoch >= 1 and runner.get(long_id).eta_seconds is not None,
        what="the long job's first epoch",
    )

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
    missing_id = runner.submit(
        DPConfig(dataset="csv", csv_path=str(tmp_path / "missing.csv"), csv_label="label", model="logreg")
    )
    garbage_id = runner.submit(DPConfig(dataset="csv", csv_path=str(garbage), csv_label="label", model="logreg"))
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
    child = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "tests" / "jobs_child.py"), str(path)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        store = RunStore(path)

        def first_epoch_committed() -> bool:
            if child.poll() is not None:
                pytest.fail(f"the child exited early: {child.stderr.read().decode(errors='replace')[-2000:]}")
            runs = store.list_runs()
            return bool(runs) and len(runs[0].epochs) >= 1

        wait_until(first_epoch_committed, what="the child's first committed epoch")
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
        assert long_run.epochs[: len(before)] == before
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
    assert (record.id, record.status, record.error, record.owner, record.label) == (
        elsewhere,
        "failed",
        "boom",
        "other",
        "older",
    )
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
    wait_until(lambda: runner.get(running_id).state == "running", what="the first job to start")
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


# -- a shared server: fairness, limits, caps, the host -------------------------------------

ADA, BOB = Caller(owner="pada"), Caller(owner="pbob")
HOST = Caller(owner="phost", is_host=True)
ONE_EPOCH = TINY.replace(epochs=1, max_train_examples=64)
NO_CAPS = RunLimits(max_running=1, max_queued=3, max_example_passes=None, max_run_seconds=None)


@pytest.mark.timeout(180)
def test_workers_take_turns_between_participants(store):
    runner = JobRunner(store=store, workers=1, limits=NO_CAPS)
    try:
        ada = [runner.submit(ONE_EPOCH, owner=ADA.owner) for _ in range(3)]
        bob = [runner.submit(ONE_EPOCH, owner=BOB.owner) for _ in range(3)]
        assert runner.wait(timeout=170)
    finally:
        runner.shutdown(wait=True)
    jobs_by_start = sorted(runner.list_jobs(), key=lambda j: j.started)
    assert all(j.state == "completed" for j in jobs_by_start)
    # Round robin, not first come first served (which would run all of Ada's first).
    assert [j.id for j in jobs_by_start] == [ada[0], bob[0], ada[1], bob[1], ada[2], bob[2]]
    # Finished runs teach the runner their speed, and a runner starting on the same store learns it too.
    for speeds in (runner.throughput, ThroughputTable.from_runs(store.list_runs())):
        assert speeds.rate(ONE_EPOCH) > 0


@pytest.mark.timeout(180)
def test_per_participant_limits_queue_position_and_the_host(store):
    limits = RunLimits(max_running=1, max_queued=1, max_example_passes=None, max_run_seconds=None)
    runner = JobRunner(store=store, workers=2, limits=limits)
    try:
        long_id = runner.submit(LONG, owner=ADA.owner)
        waiting_id = runner.submit(ONE_EPOCH, owner=ADA.owner)
        with pytest.raises(CapacityError) as info:
            runner.submit(ONE_EPOCH, owner=ADA.owner)
        assert info.value.field == "runs"
        assert "already have 2 runs or sweeps queued or training" in str(info.value)
        assert "1 training and 1 waiting per participant" in str(info.value)
        bob_id = runner.submit(ONE_EPOCH, owner=BOB.owner)  # another participant is not held back
        assert runner.wait([bob_id], timeout=120)
        assert runner.get(bob_id).state == "completed"
        wait_until(lambda: runner.get(long_id).eta_seconds is not None, what="the long run's ETA")
        # A worker is free, but Ada may train one run at a time: hers waits, first in the queue.
        assert runner.get(waiting_id).state == "queued"
        estimate = runner.queue_estimate(waiting_id)
        assert (estimate.position, estimate.waiting) == (1, 1)
        assert estimate.start_in_seconds is not None and estimate.finish_in_seconds > estimate.start_in_seconds
        assert "(an estimate)" in estimate.text()
        assert runner.queue_estimate(long_id) is None

        with pytest.raises(NotAllowedError, match="only the host can change the limits"):
            runner.set_limits(limits.replace(max_running=2), by=ADA)
        with pytest.raises(NotAllowedError, match=f"run {long_id} belongs to another participant"):
            runner.cancel(long_id, by=BOB)
        runner.set_limits(limits.replace(max_running=2), by=HOST)
        assert runner.wait([waiting_id], timeout=120)  # started once the host raised the limit
        assert runner.get(waiting_id).state == "completed"
        with pytest.raises(NotAllowedError, match="only the host can cancel everyone's runs"):
            runner.cancel_all(by=ADA)
        report = runner.cancel_all(by=HOST, wait_seconds=60)
        assert (report.queued, report.stopped, report.completed, report.stopping) == ((), (long_id,), (), ())
        assert runner.get(long_id).state == "cancelled"
    finally:
        runner.shutdown(wait=True)


@pytest.mark.timeout(120)
def test_a_sweep_is_one_entry_of_its_owners_limits_and_its_runs_take_turns_with_others(store):
    # Default limits: 1 training + 3 waiting per participant. Ada's sweep of 8 runs is one entry.
    runner = JobRunner(store=store, workers=1, limits=NO_CAPS)
    try:
        sweep_id = store.create_sweep(
            owner=ADA.owner,
            name="eight",
            mode="grid",
            knobs_json="[]",
            seeds=8,
            baseline=False,
            selection_json=None,
            trial_count=None,
            base_config=LONG,
        )
        ada = runner.submit_many([LONG.replace(seed=i) for i in range(8)], owner=ADA.owner, sweep_id=sweep_id)
        wait_until(lambda: runner.get(ada[0]).state == "running", what="the sweep's first run to start")
        bob = [runner.submit(ONE_EPOCH, owner=BOB.owner, name=f"bob {i}") for i in range(2)]
        # One worker: Ada's next sweep run waits its turn behind Bob's first run, and Bob's second behind it.
        order = sorted(ada[1:] + bob, key=lambda i: runner.queue_estimate(i).position)
        assert order[:4] == [bob[0], ada[1], bob[1], ada[2]] and order[4:] == ada[3:]
        # The sweep left Ada three more entries (1 training + 3 waiting), and no fourth.
        singles = [runner.submit(ONE_EPOCH, owner=ADA.owner) for _ in range(3)]
        with pytest.raises(CapacityError, match="already have 4 runs or sweeps queued or training"):
            runner.submit(ONE_EPOCH, owner=ADA.owner)
        assert runner.queue_estimate(singles[0]).position == 10  # behind her sweep's 7 waiting runs and Bob's 2
        with pytest.raises(ValueError, match="submitted once"):  # nobody adds runs to a sweep's entry
            runner.submit(ONE_EPOCH, owner=ADA.owner, sweep_id=sweep_id)
        assert [j.state for j in runner.list_jobs(owner=ADA.owner)].count("running") == 1
        report = runner.cancel_all(by=HOST)
        assert len(report.queued) + len(report.stopped) + len(report.completed) + len(report.stopping) == 8 + 2 + 3
    finally:
        runner.shutdown(wait=True)


def test_a_sweep_holds_at_most_the_servers_runs_per_sweep(store):
    runner = JobRunner(store=store, workers=1, limits=NO_CAPS.replace(max_sweep_runs=3))
    try:
        with pytest.raises(CapacityError) as info:
            runner.submit_many([ONE_EPOCH] * 4, owner=ADA.owner, sweep_id=1)
        assert info.value.field == "sweep_runs" and "DPEXPLORER_MAX_SWEEP_RUNS" in str(info.value)
        # Runs of no sweep count an entry each: five are more than 1 training + 3 waiting.
        with pytest.raises(CapacityError, match="these 5 runs"):
            runner.submit_many([ONE_EPOCH] * 5, owner=ADA.owner)
        assert runner.list_jobs() == [] and store.list_runs() == []
    finally:
        runner.shutdown(wait=True)


def test_a_run_over_the_compute_cap_is_refused_naming_the_estimate_and_the_cap(store):
    runner = JobRunner(store=store, workers=1, limits=NO_CAPS.replace(max_example_passes=1000))
    try:
        big = TINY.replace(max_train_examples=None, epochs=2)  # 1437 digits × 2 epochs
        with pytest.raises(CapacityError) as info:
            runner.submit(big, owner=ADA.owner)
        text = str(info.value)
        assert info.value.field == "compute"
        assert "1,437 examples × 2 epochs = 2,874 example passes" in text and "at most 1,000" in text
        assert "no time estimate" in text  # nothing of this kind has finished yet
        assert "smaller max_train_examples" in text
        assert runner.list_jobs() == [] and store.list_runs() == []
        estimate = runner.estimate(big)
        assert (estimate.example_passes, estimate.seconds) == (2874, None)
    finally:
        runner.shutdown(wait=True)


@pytest.mark.timeout(120)
def test_the_wall_time_limit_stops_a_run_and_keeps_its_epochs(store):
    runner = JobRunner(store=store, workers=1, limits=NO_CAPS)
    try:
        job_id = runner.submit(LONG, owner=ADA.owner)
        wait_until(lambda: len(runner.get(job_id).metrics) >= 1, what="the first finished epoch")
        runner.set_limits(NO_CAPS.replace(max_run_seconds=0.01), by=HOST)  # applies to running runs too
        assert runner.wait([job_id], timeout=60)
    finally:
        runner.shutdown(wait=True)
    job = runner.get(job_id)
    assert job.state == "failed"
    assert "wall-time limit of 0.01 s" in job.error and "finished epochs are kept" in job.error
    assert 1 <= len(job.metrics) < LONG.epochs
    record = store.get_run(job_id)
    assert (record.status, record.error, record.epochs) == ("failed", job.error, job.metrics)


def test_get_runner_takes_the_server_settings(monkeypatch, tmp_path):
    monkeypatch.setattr(jobs, "_RUNNER", None)
    limits = RunLimits(max_running=2, max_queued=5)
    runner = get_runner(tmp_path / "served.sqlite3", settings=ServerSettings(workers=3, limits=limits))
    try:
        assert runner.workers == 3 and runner.limits == limits
    finally:
        runner.shutdown(wait=True)


@pytest.mark.timeout(200)
def test_a_run_asked_to_be_audited_is_audited_before_it_counts_as_done(runner, store, tmp_path):
    audited = runner.submit(TINY, owner="me", audit=True)
    plain = runner.submit(TINY.as_baseline(), owner="me")
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
        owner="me",
        audit=True,
    )
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


@pytest.mark.timeout(200)
def test_cancel_all_counts_each_run_by_how_it_really_ended(store):
    runner = JobRunner(store=store, workers=1, limits=NO_CAPS)
    try:
        # A run whose training has ended and whose audit is under way still counts as running; asked
        # to stop, it ends completed, and the report says so instead of counting it cancelled.
        audited = runner.submit(TINY, owner=ADA.owner, audit=True)
        waiting = runner.submit(ONE_EPOCH, owner=BOB.owner)
        wait_until(lambda: runner.get(audited).auditing, what="the run's audit to start", timeout=120)
        report = runner.cancel_all(by=HOST, wait_seconds=150)
        assert (report.queued, report.stopped, report.completed, report.stopping) == ((waiting,), (), (audited,), ())
        assert (report.cancelled, report.owners) == (1, 2)
        assert report.text() == (
            "Cancelled 1 queued and 0 training run of 2 participants; 1 run had already finished training and was kept"
        )
        assert runner.get(audited).state == store.get_run(audited).status == "completed"
        assert store.get_run(waiting).status == "cancelled"

        long_id = runner.submit(LONG, owner=ADA.owner)
        wait_until(lambda: runner.get(long_id).state == "running", what="the long run to start")
        asked = runner.cancel_all(by=ADA, owner=ADA.owner)  # no wait: the stop is asked for, not seen yet
        assert (asked.stopping, asked.cancelled) == ((long_id,), 0) and "1 run is still stopping" in asked.text()
        assert runner.wait([long_id], timeout=60) and runner.get(long_id).state == "cancelled"
        with pytest.raises(ValueError, match="wait_seconds"):
            runner.cancel_all(by=HOST, wait_seconds=-1)
    finally:
        runner.shutdown(wait=True)


def test_auditing_on_demand_refuses_a_run_that_has_not_completed(runner, store):
    from dpcore.audit.report import AuditError

    queued = store.create_run(TINY)
    with pytest.raises(AuditError, match="completed run"):
        runner.audit(queued)
    with pytest.raises(UnknownRunError):
        runner.audit(queued + 100)


@pytest.mark.timeout(240)
def test_an_audit_asked_for_later_waits_in_the_askers_queue_and_only_the_owner_or_host_may_ask(store):
    runner = JobRunner(store=store, workers=1, limits=NO_CAPS.replace(max_queued=1))
    try:
        done = runner.submit(TINY, owner=ADA.owner)
        assert runner.wait([done], timeout=120)
        for stranger, words in ((BOB, f"run {done} belongs to another participant"), (Caller(owner=""), "a name")):
            with pytest.raises(UserInputError, match=words):
                runner.request_audit(done, by=stranger)
        long_id = runner.submit(LONG, owner=ADA.owner)
        wait_until(lambda: runner.get(long_id).state == "running", what="the long run to start")
        with pytest.raises(AuditError, match=f"run {long_id} is"):
            runner.request_audit(long_id, by=ADA)  # not finished: nothing to audit yet
        # Ada trains one run at a time: her audit waits behind her long run, as a run would.
        asked = runner.request_audit(done, by=ADA)
        assert (asked.state, asked.owner) == ("queued", ADA.owner)
        assert runner.request_audit(done, by=ADA).submitted == asked.submitted  # asking again: the same one
        with pytest.raises(CapacityError, match="already have 2 runs or sweeps queued or training"):
            runner.submit(ONE_EPOCH, owner=ADA.owner)
        # Cancelling everything of Ada's cancels the waiting audit too (it never started).
        report = runner.cancel_all(by=ADA, owner=ADA.owner)
        assert (report.stopping + report.stopped, report.audits) == ((long_id,), 1)
        assert runner.audit_snapshot(done).state == "cancelled"
        assert runner.wait([long_id], timeout=60)
        # The host may audit anyone's run; it waits in the host's own queue.
        assert runner.request_audit(done, by=HOST).owner == HOST.owner
        wait_until(lambda: runner.audit_snapshot(done).done, what="the audit to end", timeout=180)
        snapshot = runner.audit_snapshot(done)
        assert snapshot.state == "completed" and snapshot.audit_error is None
        assert snapshot.audit.run_id == done and store.get_run(done).audit == snapshot.audit
        assert runner.get(done).audit == snapshot.audit  # the run's own job shows it too
        assert runner.audit_snapshot(done + 1000) is None
    finally:
        runner.shutdown(wait=True)


# Run in a child process: its file-size limit makes every write to the store fail, as a full disk does,
# and raising the limit again is the disk being freed. Prints one JSON line of what it saw.
FULL_DISK_SCRIPT = """
import json, resource, signal, sys, time
from dpcore.config import DPConfig
from dpcore.room import participants
from dpcore.room.participants import Caller
from dpcore.room.server_settings import RunLimits
from dpcore.runs.jobs import JobRunner
from dpcore.runs.store import RunStore, StoreError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
LONG = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=300)
store = RunStore(sys.argv[1], serving=True)
ada, _ = participants.register(store, "Ada")
runner = JobRunner(store=store, workers=1, limits=RunLimits(max_example_passes=None, max_run_seconds=None))
running, waiting = runner.submit(LONG, owner=ada.owner), runner.submit(LONG, owner=ada.owner)
orphan = store.create_run(LONG, owner=ada.owner)  # a row of this process that the runner does not hold
deadline = time.monotonic() + 120
while not runner.get(running).metrics and time.monotonic() < deadline:
    time.sleep(0.05)
resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))  # the disk is full
runner.wait([running, waiting], timeout=120)
seen = {"runner": [runner.get(i).state for i in (running, waiting)],
        "store": [store.get_run(i).status for i in (running, waiting, orphan)],
        "failure": runner.store_failure}
try:
    participants.register(store, "Bo")
    seen["join_when_full"] = "joined"
except StoreError as exc:
    seen["join_when_full"] = str(exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space is free
seen["put_right"] = runner.reconcile()
seen["after"] = [(r.status, r.error) for r in (store.get_run(i) for i in (running, waiting, orphan))]
seen["failure_after"] = runner.store_failure
seen["joined_after"] = participants.register(store, "Bo")[0].display_name
seen["cancel_all"] = runner.cancel_all(by=Caller(owner="phost", is_host=True)).text()
seen["active_rows"] = store.active_run_processes()
again = runner.submit(LONG.replace(epochs=1, max_train_examples=64), owner=ada.owner)
runner.wait([again], timeout=120)
seen["new_run"] = store.get_run(again).status
runner.shutdown()
print(json.dumps(seen))
"""


@pytest.mark.timeout(300)
def test_after_the_disk_filled_the_store_and_the_runner_agree_again_without_a_restart(tmp_path):
    import json

    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(tmp_path / "runs.sqlite3")],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # While the disk is full: the run that met it failed, the waiting one was cancelled, but the store
    # could not record either, so its rows still say running and queued; nobody can join.
    assert seen["runner"] == ["failed", "cancelled"] and seen["store"] == ["running", "queued", "queued"]
    assert "cannot write to" in seen["failure"] and "cannot write to" in seen["join_when_full"]
    # Once there is space again: the store is put right, joining works, nothing stays "active".
    assert seen["put_right"] == 3
    (failed, failed_error), (cancelled, cancelled_error), (orphan, orphan_error) = seen["after"]
    assert failed == "failed" and "cannot write to" in failed_error
    assert cancelled == "cancelled" and cancelled_error.startswith("not started: ")
    assert orphan == "interrupted" and orphan_error == INTERRUPTED_MESSAGE
    assert seen["failure_after"] is None and seen["joined_after"] == "Bo"
    assert seen["cancel_all"] == "Nothing was queued or training, so nothing was cancelled"
    assert seen["active_rows"] == {}
    assert seen["new_run"] == "completed"


def test_a_ray_address_in_the_settings_gives_a_runner_that_trains_on_ray(monkeypatch, tmp_path):
    from dpcore.room.server_settings import ENV_RAY_ADDRESS

    assert ServerSettings.from_env({ENV_RAY_ADDRESS: " ray://head:10001 "}).ray_address == "ray://head:10001"
    assert ServerSettings.from_env({ENV_RAY_ADDRESS: " "}).ray_address is None
    monkeypatch.setattr(jobs, "_RUNNER", None)
    runner = get_runner(tmp_path / "served.sqlite3", settings=ServerSettings(workers=1, ray_address="auto"))
    try:
        # Built without connecting: the cluster is reached when the first run is submitted.
        assert runner.backend.name == "ray" and runner.backend.address == "auto"
    finally:
        runner.shutdown(wait=True)
    monkeypatch.setattr(jobs, "_RUNNER", None)
    local = get_runner(tmp_path / "local.sqlite3", settings=ServerSettings(workers=1, backend="local"))
    try:
        assert local.backend.name == "local"  # without Ray: the worker threads, when asked (else child processes)
    finally:
        local.shutdown(wait=True)


@pytest.mark.timeout(120)
def test_a_stored_run_with_a_record_outside_its_derived_schema_completes_naming_and_counting_nothing(store, tmp_path):
    # assets/sample.csv and one record whose label no other record has: a derived schema leaves the
    # label out, and the record trains in the class "(other)" instead of stopping the run.
    data = tmp_path / "sample_plus_one.csv"
    sample = (REPO_ROOT / "assets" / "sample.csv").read_text().rstrip("\n")
    data.write_text(sample + "\n33,61.0,4,0.2,master,rent,appeal_pending\n")
    config = DPConfig(
        dataset="csv",
        csv_path=str(data),
        csv_label="decision",
        model="logreg",
        batch_size=16,
        epochs=1,
        delta=1e-3,
        csv_preprocessing_epsilon=1.0,
    )
    runner = JobRunner(store=store, workers=1)
    try:
        run_id = runner.submit(config, owner="me")
        assert runner.wait([run_id], timeout=100)
        job = runner.get(run_id)
    finally:
        runner.shutdown(wait=True)
    record = store.get_run(run_id)
    assert job.state == record.status == "completed" and not job.error and not record.error
    stored = "\n".join([repr(record), repr(job), store.to_csv()])
    assert "appeal_pending" not in stored and "row(s)" not in stored


class _CountingBackend:
    """A backend that only counts how often it was asked to get ready (nothing is submitted to it)."""

    name = "counting"

    def __init__(self) -> None:
        self.prepared = 0

    def prepare(self) -> None:
        self.prepared += 1

    def train(self, config, **callbacks):  # pragma: no cover - no run is submitted
        raise AssertionError("nothing trains here")


def test_prepare_readies_the_backend_before_any_run(tmp_path) -> None:
    backend = _CountingBackend()
    runner = JobRunner(store=RunStore(tmp_path / "runs.sqlite3"), workers=1, backend=backend)
    try:
        assert backend.prepared == 0  # a runner alone starts no training processes
        runner.prepare()
        assert backend.prepared == 1 and runner.list_jobs() == []
    finally:
        runner.shutdown()
