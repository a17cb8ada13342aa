"""Background training: a queue of DP runs trained by worker threads, each run kept in the store.

One ``JobRunner`` per server process (``get_runner()``) is shared by every browser session;
each job carries an ``owner`` (the app passes a per-session id) so a person's list shows their
runs, and ``list_jobs(owner=None)`` is the shared view for a workshop host. A job's id is its
run id in the store. Workers never touch Streamlit: they update the job under a lock and write
each finished epoch to the store; pages poll ``get``/``list_jobs``.

Served to a room (``get_runner`` with ``ServerSettings``), the runner is fair: each participant's
waiting runs form their own queue and workers take from the participants in turn (round robin),
within ``RunLimits`` (runs training and waiting per participant, where a whole sweep counts as one
entry and its runs take their owner's turns one by one; the runs one sweep may hold; the compute
cap of one run; the wall time after which a running run is stopped). Without limits (the CLI) it is
first come, first served, as many runs as asked. An audit asked for after a run ended (``request_audit``) waits in the
same queue, counts against the same per-participant limits and runs where training runs (the
process backend's child processes), never in the server's own threads unless the backend is local.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union, cast

from dpcore.audit.report import AuditError
from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.errors import describe_exception
from dpcore.results import FINAL_STATUSES, FINISHED_STATUSES
from dpcore.room.participants import Caller, check_host, check_may_manage, check_may_manage_owner, check_participant
from dpcore.room.server_settings import ENV_WORKERS, RunLimits, ServerSettings  # noqa: F401 (ENV_WORKERS re-exported)
from dpcore.runs import audits
from dpcore.runs.backends import LocalBackend, TrainingBackend, WarmUpBackend
from dpcore.runs.capacity import (
    ComputeEstimate,
    QueueEstimate,
    ThroughputTable,
    check_compute,
    check_participant_limits,
    check_sweep_size,
    format_duration,
    project_queue,
)
from dpcore.runs.job_state import AUDIT_JOB, Job, JobSnapshot
from dpcore.runs.process_backend import ProcessBackend, audit_in_child
from dpcore.runs.process_identity import process_token
from dpcore.runs.records import INTERRUPTED_MESSAGE
from dpcore.runs.serving import claim_store
from dpcore.runs.store import RunStore, StoreError, UnknownRunError

if TYPE_CHECKING:
    from dpcore.audit.report import AuditReport
    from dpcore.results import EpochMetrics, Progress, TrainResult


# Worker threads one runner may start; each trains a model, so more only thrash a machine.
MAX_WORKERS = 32
# After a failed write, page runs try to put the store right at most this often (each try is a write).
RECONCILE_EVERY_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class CancelReport:
    """What ``JobRunner.cancel_all`` did, each run counted by how it really ended (run ids, in order).

    ``queued``: cancelled before they started; ``stopped``: training, stopped and ended cancelled;
    ``completed``/``failed``: training, asked to stop, but ended so anyway (their last step or audit was
    under way); ``stopping``: asked to stop and not yet ended when the report was made. ``audits``:
    waiting audits cancelled; ``owners``: participants whose runs were queued or training.
    """

    queued: tuple[int, ...] = ()
    stopped: tuple[int, ...] = ()
    completed: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()
    stopping: tuple[int, ...] = ()
    audits: int = 0
    owners: int = 0

    @property
    def cancelled(self) -> int:
        """Runs that end cancelled (queued ones and stopped ones; not those still stopping)."""
        return len(self.queued) + len(self.stopped)

    def text(self) -> str:
        """One plain sentence, e.g. "Cancelled 3 queued and 2 training runs of 4 participants; 1 run had
        already finished training and was kept"."""
        if not (self.queued or self.stopped or self.completed or self.failed or self.stopping or self.audits):
            return "Nothing was queued or training, so nothing was cancelled"
        head = f"Cancelled {len(self.queued)} queued and {len(self.stopped)} training {_plural(self.cancelled, 'run')}"
        if self.owners:
            head += f" of {self.owners} {_plural(self.owners, 'participant')}"
        parts = [head]
        if self.audits:
            parts.append(f"{self.audits} waiting {_plural(self.audits, 'audit')} cancelled")
        if self.completed:
            n = len(self.completed)
            parts.append(f"{n} {_plural(n, 'run')} had already finished training and {_plural(n, 'was', 'were')} kept")
        if self.failed:
            n = len(self.failed)
            parts.append(f"{n} {_plural(n, 'run')} failed while stopping")
        if self.stopping:
            n = len(self.stopping)
            parts.append(f"{n} {_plural(n, 'run is', 'runs are')} still stopping")
        return "; ".join(parts)


def _plural(count: int, one: str, many: str = "") -> str:
    return one if count == 1 else (many or one + "s")


class JobRunner:
    """Trains submitted configs on ``workers`` background threads (one at a time by default) and queues the rest.

    Thread-safe. On construction it marks runs that a dead process left queued or running as
    interrupted (``RunStore.mark_interrupted``; skipped for a store that takes no writes). A run
    that fails (bad data, an exception in training, out of memory) is recorded as failed with its
    message; the other jobs go on. A store that can no longer be written (disk full) fails the run
    that met it, cancels the queued jobs and stops the running ones; ``store_failure`` holds why.
    ``limits`` (None: none) makes it a shared server's runner: round robin across owners, the
    per-participant limits, the compute cap and the wall-time cap. ``warm_up`` (a backend that can)
    traces that config's training step in a background thread at once, so that the first run of
    the same model starts training without waiting for it.
    """

    def __init__(
        self,
        *,
        store: RunStore,
        workers: int = 1,
        limits: Optional[RunLimits] = None,
        backend: Optional[TrainingBackend] = None,
        warm_up: Optional[DPConfig] = None,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be a whole number from 1 to {MAX_WORKERS}, got {workers!r}")
        self.store = store
        self.backend: TrainingBackend = backend if backend is not None else LocalBackend()
        self.workers = workers
        self._cond = threading.Condition()
        self._jobs: dict[int, Job] = {}
        # The latest on-request audit of each run (its id is the run's), queued, running or ended.
        self._audits: dict[int, Job] = {}
        # Waiting jobs, one queue per owner. Round robin: the next job comes from the owner served
        # least recently (``_last_served`` holds each owner's latest dispatch number).
        self._queues: dict[str, deque[Job]] = {}
        self._last_served: dict[str, int] = {}
        self._dispatched = 0
        self._limits = limits
        self._closed = False
        self.store_failure: Optional[str] = None
        # Final statuses the store did not take (run id -> status, error), written by ``reconcile``.
        self._unrecorded: dict[int, tuple[str, Optional[str]]] = {}
        self._last_reconcile = -math.inf
        try:
            self.interrupted_on_start = store.mark_interrupted()
        except StoreError:  # a damaged or read-only store: listing still works, submitting says why not
            self.interrupted_on_start = 0
        self.throughput = ThroughputTable.from_runs(store.list_runs())
        self._threads = [
            threading.Thread(target=self._work, name=f"dpcore-job-worker-{i}", daemon=True) for i in range(workers)
        ]
        self._threads.append(threading.Thread(target=self._watch_wall_time, name="dpcore-job-watch", daemon=True))
        # One thread at a time imports the trainer (TensorFlow): the warm-up and the submitting threads.
        self._prepare_lock = threading.Lock()
        self.warm_up_error: Optional[str] = None
        if warm_up is not None and hasattr(self.backend, "warm_up"):
            self._threads.append(
                threading.Thread(target=self._warm_up, args=(warm_up,), name="dpcore-warm-up", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def __repr__(self) -> str:
        return f"JobRunner(store={self.store!r}, workers={self.workers}, backend={self.backend.name!r})"

    @property
    def closed(self) -> bool:
        """True after ``shutdown``: the runner takes no more jobs."""
        with self._cond:
            return self._closed

    # -- public API ----------------------------------------------------------------------

    def submit(
        self, config: DPConfig, *, owner: str = "", name: str = "", audit: bool = False, sweep_id: Optional[int] = None
    ) -> int:
        """Queue ``config`` for training and return its id (its run id in the store).

        ``audit``: once the run completes, audit its model (``audit``) before the job counts as done.
        With limits, a CapacityError (naming the limit) refuses a run over the compute cap or one
        more than ``owner`` may have queued or training. ``sweep_id`` links the run to a stored sweep.
        """
        return self.submit_many([config], owner=owner, names=[name], audit=audit, sweep_id=sweep_id)[0]

    def submit_many(
        self,
        configs: Sequence[DPConfig],
        *,
        owner: str = "",
        names: Optional[Sequence[str]] = None,
        audit: bool = False,
        sweep_id: Optional[int] = None,
    ) -> list[int]:
        """Queue ``configs`` as one unit: all are checked against the limits before any is queued.

        Returns their ids in order. With limits (a shared server) the runs need an ``owner`` (a
        participant), and a CapacityError refuses the whole batch when one of them is over the compute
        cap or they do not fit ``owner``'s limits (``check_limits``). With a ``sweep_id`` they are that
        sweep's runs: one entry of ``owner``'s, at most ``max_sweep_runs`` runs, submitted once.
        """
        if self.limits is not None:
            check_participant(owner, action="runs")
        configs = list(configs)
        names = list(names) if names is not None else [""] * len(configs)
        if not configs or len(names) != len(configs):
            raise ValueError("submit_many needs one or more configs and one name per config")
        for config in configs:
            if not isinstance(config, DPConfig):
                raise TypeError(f"submit needs a DPConfig, got {type(config).__name__}")
        # Import the trainer (TensorFlow) here, in the caller's thread, before any worker can need
        # it: first imports racing each other across threads have deadlocked on the import lock.
        self._prepare_backend()
        sizes = [datasets.train_size_or_none(config) for config in configs]
        with self._cond:
            if self._closed:
                raise RuntimeError("this job runner has been shut down")
            if sweep_id is not None and any(j.sweep_id == sweep_id for j in self._jobs.values()):
                raise ValueError(f"sweep {sweep_id} was already submitted; a sweep's runs are submitted once")
            if sweep_id is not None and self._limits is not None:
                check_sweep_size(len(configs), self._limits)
            self._check_limits(configs, sizes, owner=owner, sweep=sweep_id is not None)
            ids = []
            for config, name, n_train in zip(configs, names, sizes):
                # Created under the lock so that ids enter the queue in submission order.
                run_id = self.store.create_run(config, owner=owner, name=name, sweep_id=sweep_id)
                job = Job(
                    id=run_id,
                    owner=owner,
                    name=name,
                    config=config,
                    submitted=time.time(),
                    n_train=n_train,
                    audit_requested=audit,
                    sweep_id=sweep_id,
                )
                self._jobs[run_id] = job
                self._enqueue(job)
                ids.append(run_id)
            self._cond.notify_all()
        return ids

    def check_limits(self, configs: Sequence[DPConfig], *, owner: str, sweep: bool = False) -> None:
        """Raise the CapacityError ``owner``'s limits and the compute cap would give ``configs`` now (as one
        sweep's runs when ``sweep``); nothing is queued. A page checks with it before offering to start.

        A sweep is one entry of the owner's ``max_running`` + ``max_queued``; other runs are an entry
        each; every run is checked against the compute cap. How many runs a sweep may hold
        (``capacity.check_sweep_size``) is checked by ``submit_many`` and by the sweep's preview.
        """
        configs = list(configs)
        sizes = [datasets.train_size_or_none(config) for config in configs]
        with self._cond:
            self._check_limits(configs, sizes, owner=owner, sweep=sweep)

    def _check_limits(
        self, configs: Sequence[DPConfig], sizes: Sequence[Optional[int]], *, owner: str, sweep: bool
    ) -> None:
        """``check_limits`` under the lock, the training set sizes read."""
        if self._limits is None:
            return
        check_participant_limits(active=self._entries(owner), limits=self._limits, adding=1 if sweep else len(configs))
        for config, n_train in zip(configs, sizes):
            if n_train is not None:
                check_compute(self.throughput.estimate(config, n_train=n_train), self._limits)

    def estimate(self, config: DPConfig) -> ComputeEstimate:
        """What ``config`` would cost: example passes and, from measured speeds, the time (an estimate).

        Raises the dataset's UserInputError when its size cannot be read.
        """
        return self.throughput.estimate(config, n_train=datasets.train_size(config))

    @property
    def limits(self) -> Optional[RunLimits]:
        """The limits in force (None: this runner has none)."""
        with self._cond:
            return self._limits

    def set_limits(self, limits: RunLimits, *, by: Optional[Caller]) -> None:
        """Replace the limits while the server runs (the host only); a shorter wall time applies to running runs too."""
        check_host(by, action="change the limits")
        if not isinstance(limits, RunLimits):
            raise TypeError(f"set_limits needs RunLimits, got {type(limits).__name__}")
        with self._cond:
            self._limits = limits
            self._cond.notify_all()

    def queue_estimate(self, job_id: int) -> Optional[QueueEstimate]:
        """A waiting job's place in the queue and estimated start and end (None once it is not waiting)."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or job.state != "queued":
                return None
            order = self._dispatch_order()
            running = [(j.owner, self._remaining_seconds(j)) for j in self._all_jobs() if j.state == "running"]
            waiting = [(j.id, j.owner, self._remaining_seconds(j)) for j in order]
            max_running = None if self._limits is None else self._limits.max_running
        times = project_queue(waiting, running=running, workers=self.workers, max_running=max_running)
        start, finish = times[job_id]
        position = next(i for i, j in enumerate(order, start=1) if j.id == job_id)
        return QueueEstimate(position=position, waiting=len(order), start_in_seconds=start, finish_in_seconds=finish)

    def cancel(self, job_id: int, *, by: Optional[Caller] = None) -> bool:
        """Cancel a queued job at once or ask a running one to stop; False if it had already ended.

        ``by`` must own the job or be the host (None: the store's owner, as in the CLI).
        """
        return self._cancel(job_id, by=by) is not None

    def _cancel(self, job_id: int, *, by: Optional[Caller]) -> Optional[str]:
        """``cancel``, saying what the job was when it was cancelled ("queued" or "running"; None: already ended)."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or job.state in FINAL_STATUSES:
                return None
            check_may_manage(by, run_id=job_id, run_owner=job.owner, action="cancel")
            was = job.state
            if job.state == "queued":
                self._dequeue(job)
                job.state = "cancelled"
                job.finished = time.time()
                self._cond.notify_all()
            else:
                job.stop.set()
        if was == "queued":
            self._record_status(job_id, "cancelled")
        return was

    def cancel_all(
        self, *, by: Optional[Caller], owner: Optional[str] = None, wait_seconds: float = 0.0
    ) -> CancelReport:
        """Cancel ``owner``'s queued and running jobs and waiting audits (everyone's when None, which only
        the host may) and say what each became. Stale rows a failed write left behind are put right first.

        A queued job is cancelled at once; a running one is asked to stop and may still end completed
        (its last step or its audit was under way) or failed. The report waits up to ``wait_seconds``
        for the running ones to end and counts each by its real end; those still stopping are counted apart.
        """
        if owner is None:
            check_host(by, action="cancel everyone's runs")
        else:
            check_may_manage_owner(by, owner=owner, action="cancel")
        if isinstance(wait_seconds, bool) or not isinstance(wait_seconds, (int, float)) or not wait_seconds >= 0:
            raise ValueError(f"wait_seconds must be a number of seconds >= 0, got {wait_seconds!r}")
        try:
            self.reconcile()  # rows a failed write left queued or running are put right first
        except StoreError:
            pass
        with self._cond:
            targets = [j for j in self._jobs.values() if j.state not in FINAL_STATUSES and owner in (None, j.owner)]
            now = time.time()
            audits_cancelled = 0
            for job in [j for j in self._audits.values() if j.state == "queued" and owner in (None, j.owner)]:
                self._dequeue(job)
                job.state, job.finished, job.audit_error = "cancelled", now, "cancelled before it started"
                audits_cancelled += 1
            self._cond.notify_all()
        queued: list[int] = []
        stopping: list[int] = []
        for job in sorted(targets, key=lambda j: j.id):
            was = self._cancel(job.id, by=by)  # what it was when cancelled, under the lock
            if was is not None:
                (queued if was == "queued" else stopping).append(job.id)
        if stopping and wait_seconds > 0:
            self.wait(stopping, timeout=wait_seconds)
        with self._cond:
            ends = {job_id: self._jobs[job_id].state for job_id in stopping if job_id in self._jobs}
        return CancelReport(
            queued=tuple(queued),
            stopped=tuple(i for i in stopping if ends.get(i) == "cancelled"),
            completed=tuple(i for i in stopping if ends.get(i) in FINISHED_STATUSES),
            failed=tuple(i for i in stopping if ends.get(i) in ("failed", "interrupted")),
            stopping=tuple(i for i in stopping if ends.get(i) not in FINAL_STATUSES),
            audits=audits_cancelled,
            owners=len({j.owner for j in targets if j.id in set(queued) | set(stopping)}),
        )

    def forget(self, job_ids: Iterable[int]) -> None:
        """Drop ended jobs from this runner's lists (after their runs were deleted from the store)."""
        with self._cond:
            for job_id in job_ids:
                job = self._jobs.get(job_id)
                if job is not None and job.state in FINAL_STATUSES:
                    del self._jobs[job_id]

    def audit(self, run_id: int) -> AuditReport:
        """Audit a completed run's model now, in the calling thread, and keep the report with the run
        (``audits.audit_run``); raises its AuditError or UnknownRunError. A job of this runner shows it.
        For the CLI and tests; a served app asks with ``request_audit``."""
        report = audits.audit_run(self.store, run_id)
        with self._cond:
            job = self._jobs.get(run_id)
            if job is not None:
                job.audit, job.audit_error = report, None
        return report

    def request_audit(self, run_id: int, *, by: Optional[Caller]) -> JobSnapshot:
        """Queue an audit of a finished run; the returned snapshot (``audit_snapshot``) follows it.

        Only the run's owner or the host may ask (``by``; None: the store's owner). The audit waits
        in the asker's queue, counts against their limits like a run (with limits, a CapacityError
        over them; a run whose weights were not kept is retrained, so its compute is capped too) and
        runs in the backend's processes. Asking again while one waits or runs returns that one.
        """
        record = self.store.get_run(run_id)
        if by is not None and not by.is_host:
            check_participant(by.owner, action="audits")
        check_may_manage(by, run_id=run_id, run_owner=record.owner, action="audit")
        audits.check_auditable(record)
        owner = record.owner if by is None else by.owner
        retrain = self._limits is not None and not self.store.has_weights(run_id)
        n_train = datasets.train_size_or_none(record.config) if retrain else None
        with self._cond:
            if self._closed:
                raise RuntimeError("this job runner has been shut down")
            training = self._jobs.get(run_id)
            if training is not None and training.state not in FINAL_STATUSES:
                raise AuditError(
                    f"run {run_id} is still {training.state if not training.auditing else 'being audited'}",
                    allowed="a finished run; a run asked to be audited is audited when training ends",
                )
            pending = self._audits.get(run_id)
            if pending is not None and pending.state not in FINAL_STATUSES:
                return pending.snapshot()
            if self._limits is not None:
                check_participant_limits(active=self._entries(owner), limits=self._limits)
                if n_train is not None:
                    check_compute(self.throughput.estimate(record.config, n_train=n_train), self._limits)
            job = Job(
                id=run_id, owner=owner, name=record.name, config=record.config, submitted=time.time(), kind=AUDIT_JOB
            )
            self._audits[run_id] = job
            self._enqueue(job)
            self._cond.notify_all()
            return job.snapshot()

    def active_count(self, owner: str) -> int:
        """How many of ``owner``'s runs and audits are queued or running in this runner."""
        with self._cond:
            return self._active(owner)

    def audit_snapshot(self, run_id: int) -> Optional[JobSnapshot]:
        """The latest audit of ``run_id`` asked for with ``request_audit`` (state queued, running,
        completed, failed or cancelled; ``audit``/``audit_error`` once it ended), or None if none was."""
        with self._cond:
            job = self._audits.get(run_id)
            return None if job is None else job.snapshot()

    def get(self, job_id: int) -> JobSnapshot:
        """The job's current state; for a run this runner never held, its stored record."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is not None:
                return job.snapshot()
        return JobSnapshot.from_record(self.store.get_run(job_id))

    def list_jobs(self, *, owner: Optional[str] = None) -> list[JobSnapshot]:
        """This runner's jobs in submission order: ``owner``'s only, or everyone's when None."""
        with self._cond:
            return [
                job.snapshot()
                for job in sorted(self._jobs.values(), key=lambda j: j.id)
                if owner is None or job.owner == owner
            ]

    def active_audits(self) -> list[JobSnapshot]:
        """Audits asked for later (``request_audit``) that are queued or running now, in id order."""
        with self._cond:
            return [
                job.snapshot()
                for job in sorted(self._audits.values(), key=lambda j: j.id)
                if job.state not in FINAL_STATUSES
            ]

    def wait(self, job_ids: Optional[Iterable[int]] = None, *, timeout: Optional[float] = None) -> bool:
        """Block until the given jobs (default: all) have ended; False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            ids = list(self._jobs) if job_ids is None else list(job_ids)
            unknown = [i for i in ids if i not in self._jobs]
            if unknown:
                raise UnknownRunError(unknown[0])
            while not all(self._jobs[i].state in FINAL_STATUSES for i in ids):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop taking jobs, cancel the queued ones, ask running ones to stop; ``wait`` joins the workers."""
        with self._cond:
            self._closed = True
            cancelled = sorted((j for queue in self._queues.values() for j in queue), key=lambda j: j.id)
            self._queues.clear()
            now = time.time()
            for job in cancelled:
                job.state = "cancelled"
                job.finished = now
            for job in self._jobs.values():
                if job.state == "running":
                    job.stop.set()
            self._cond.notify_all()
        for job in cancelled:
            if job.kind != AUDIT_JOB:
                self._record_status(job.id, "cancelled")
        if wait:
            for thread in self._threads:
                thread.join()

    # -- worker side ---------------------------------------------------------------------

    def prepare(self) -> None:
        """Get the backend ready now, as the first submit would (start its training processes, which
        import TensorFlow and trace the default step; import it here; connect to a cluster), so that
        the first run finds it ready (``warm_start``)."""
        self._prepare_backend()

    def _prepare_backend(self) -> None:
        with self._prepare_lock:
            self.backend.prepare()

    def _warm_up(self, config: DPConfig) -> None:
        """Trace ``config``'s step for later runs; a failure only costs the first run its head start."""
        try:
            self._prepare_backend()
            # Started only for a backend that has warm_up (``__init__`` checks with hasattr).
            cast(WarmUpBackend, self.backend).warm_up(config)
        except Exception as exc:  # noqa: BLE001 - runs still train, tracing their own step
            self.warm_up_error = describe_exception(exc)

    def _enqueue(self, job: Job) -> None:
        self._queues.setdefault(job.owner, deque()).append(job)

    def _dequeue(self, job: Job) -> None:
        queue = self._queues[job.owner]
        queue.remove(job)
        if not queue:
            del self._queues[job.owner]

    def _may_start(self, owner: str) -> bool:
        if self._limits is None:
            return True
        running = sum(1 for j in self._all_jobs() if j.owner == owner and j.state == "running")
        return running < self._limits.max_running

    def _all_jobs(self) -> list[Job]:
        """Training jobs and on-request audits (under the lock)."""
        return [*self._jobs.values(), *self._audits.values()]

    def _active(self, owner: str) -> int:
        """How many of ``owner``'s runs and audits are queued or running (under the lock)."""
        return sum(1 for j in self._all_jobs() if j.owner == owner and j.state in ("queued", "running"))

    def _entries(self, owner: str) -> int:
        """How many entries of ``owner``'s are queued or running (under the lock): each run or audit once,
        and each sweep once however many of its runs wait or train."""
        active = [j for j in self._all_jobs() if j.owner == owner and j.state in ("queued", "running")]
        sweeps = {j.sweep_id for j in active if j.sweep_id is not None}
        return len(sweeps) + sum(1 for j in active if j.sweep_id is None)

    def _turn_key(self, head: Job, last_served: dict[str, int]) -> tuple[int, int]:
        """Round robin: the owner served least recently first (never served: first), then the older job."""
        if self._limits is None:  # first come, first served
            return (0, head.id)
        return (last_served.get(head.owner, -1), head.id)

    def _pick(self) -> Optional[Job]:
        """The next job to start: the head of the queue whose turn it is, among owners who may start one; or None."""
        heads = [queue[0] for owner, queue in self._queues.items() if self._may_start(owner)]
        return min(heads, key=lambda j: self._turn_key(j, self._last_served)) if heads else None

    def _dispatch_order(self) -> list[Job]:
        """Every waiting job in the order workers would take them if no owner hit a limit."""
        queues = {owner: deque(queue) for owner, queue in self._queues.items()}
        last_served = dict(self._last_served)
        order: list[Job] = []
        while queues:
            job = min((q[0] for q in queues.values()), key=lambda j: self._turn_key(j, last_served))
            order.append(job)
            last_served[job.owner] = self._dispatched + len(order)
            queues[job.owner].popleft()
            if not queues[job.owner]:
                del queues[job.owner]
        return order

    def _remaining_seconds(self, job: Job) -> Optional[float]:
        """A job's estimated remaining wall time: its own measured ETA while running, else from speeds of finished runs."""
        if job.state == "running" and job.eta_seconds is not None:
            return job.eta_seconds
        if job.kind == AUDIT_JOB or job.n_train is None:
            return None
        total = self.throughput.estimate(job.config, n_train=job.n_train).seconds
        return None if total is None else total * (1.0 - job.progress)

    def _next_job(self) -> Optional[Job]:
        with self._cond:
            while not self._closed and (job := self._pick()) is None:
                self._cond.wait()
            if self._closed:
                return None
            assert job is not None  # the wait ends with a job unless the runner closed
            self._dequeue(job)
            self._dispatched += 1
            self._last_served[job.owner] = self._dispatched
            job.state = "running"
            job.started = time.time()
            job.started_monotonic = time.monotonic()
            self._cond.notify_all()
            return job

    def _watch_wall_time(self) -> None:
        """Stop each running job once it has run longer than the limits' ``max_run_seconds`` (read afresh each time)."""
        with self._cond:
            while not self._closed:
                limit = None if self._limits is None else self._limits.max_run_seconds
                now = time.monotonic()
                wake: Optional[float] = None
                for job in self._jobs.values():
                    if limit is None or job.state != "running" or job.started_monotonic is None:
                        continue
                    deadline = job.started_monotonic + limit
                    if deadline <= now:
                        if not job.stop.is_set():
                            job.timed_out_after = limit
                            job.stop.set()
                    else:
                        wake = deadline - now if wake is None else min(wake, deadline - now)
                self._cond.wait(wake)

    def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            if job.kind == AUDIT_JOB:
                self._run_audit(job)
            else:
                self._run(job)

    def _run_audit(self, job: Job) -> None:
        """An audit asked for later (``request_audit``): where training runs, its report kept with the run."""
        report: Optional[AuditReport] = None
        error = None
        try:
            report = self._audit_stored_run(job.id)
        except BaseException as exc:  # noqa: BLE001 - a worker must outlive any one audit
            error = describe_exception(exc)
        with self._cond:
            job.state = "completed" if error is None else "failed"
            job.finished = time.time()
            job.audit, job.audit_error, job.error = report, error, error
            training = self._jobs.get(job.id)
            if training is not None and report is not None:
                training.audit, training.audit_error = report, None
            self._cond.notify_all()

    def _audit_stored_run(self, run_id: int) -> AuditReport:
        """Audit a stored run where training runs: in the backend's processes (``audit_run``), in a
        child process of its own for a backend without them (Ray), in this thread for the local backend."""
        audit_elsewhere = getattr(self.backend, "audit_run", None)
        if audit_elsewhere is not None:
            return audit_elsewhere(self.store.path, run_id)
        if isinstance(self.backend, LocalBackend):
            return self.audit(run_id)
        return audit_in_child(self.store.path, run_id)

    def _run(self, job: Job) -> None:
        """Train one job; whatever goes wrong ends up as a failed job with its message."""
        result: Optional[TrainResult] = None
        try:
            self.store.set_status(job.id, "running")
            result = self.backend.train(
                job.config,
                on_epoch=lambda metrics: self._on_epoch(job, metrics),
                on_progress=lambda progress: self._on_progress(job, progress),
                stop_event=job.stop,
                on_weights=lambda weights: self.store.save_weights(job.id, weights),
            )
            if job.timed_out_after is not None and result.status == "cancelled":
                result = dataclasses.replace(
                    result,
                    status="failed",
                    error=(
                        f"stopped at this server's wall-time limit of {format_duration(job.timed_out_after)}; "
                        f"its {len(result.epochs)} finished epochs are kept and ε is that of those epochs"
                    ),
                )
            if result.status in FINISHED_STATUSES:
                self.throughput.add(job.config, examples=sum(e.examples for e in result.epochs), seconds=result.seconds)
            self.store.finish_run(job.id, result)
            if result.status == "completed" and job.audit_requested:
                self._audit_after_training(job)
            self._end(job, result.status, result.error, result.epochs)
        except BaseException as exc:  # noqa: BLE001 - a worker must outlive any one run
            if isinstance(exc, StoreError):  # only the store's writes raise it here
                self._on_store_failure(exc)
            message = str(exc) if isinstance(exc, StoreError) else describe_exception(exc)
            self._end(job, "failed", message, result.epochs if result is not None else None)
            self._record_status(job.id, "failed", error=message)

    def _record_status(self, job_id: int, status: str, *, error: Optional[str] = None) -> None:
        """Write a job's end to the store where it can; what the store does not take, ``reconcile`` writes later."""
        try:
            self.store.set_status(job_id, status, error=error)
        except UnknownRunError:
            pass  # deleted meanwhile: nothing to put right
        except Exception:  # noqa: BLE001 - the store itself may be what failed
            with self._cond:
                self._unrecorded[job_id] = (status, error)

    def _on_store_failure(self, exc: StoreError) -> None:
        """The store takes no more writes: cancel the queued jobs and stop the running ones."""
        with self._cond:
            self.store_failure = self.store_failure or str(exc)
            cancelled = sorted((j for queue in self._queues.values() for j in queue), key=lambda j: j.id)
            self._queues.clear()
            now = time.time()
            for job in cancelled:
                job.state, job.finished, job.error = "cancelled", now, f"not started: {exc}"
                if job.kind != AUDIT_JOB:
                    self._unrecorded[job.id] = ("cancelled", job.error)
            for job in self._jobs.values():
                if job.state == "running":
                    job.stop.set()
            self._cond.notify_all()

    def reconcile(self) -> int:
        """Make the store agree with this runner again after writes it did not take; return the runs put right.

        Every queued or running row of the store is checked against this runner: a job of its that has
        ended gets its final status (and error), and a row this process queued or ran that the runner no
        longer holds is marked interrupted. Rows of other live processes (a CLI sweep) are left alone.
        Raises the store's StoreError while it still cannot be written; ``store_failure`` is cleared
        once everything is written.
        """
        with self._cond:
            self._last_reconcile = time.monotonic()
            ended = {j.id: (j.state, j.error) for j in self._jobs.values() if j.state in FINAL_STATUSES}
            held = set(self._jobs)
            owed = dict(self._unrecorded)
        ours = process_token()
        fixed = 0
        for run_id, process in self.store.active_run_processes().items():
            if run_id in ended:
                status, error = ended[run_id]
            elif run_id not in held and process == ours:
                status, error = "interrupted", INTERRUPTED_MESSAGE
            else:
                continue
            self.store.set_status(run_id, status, error=error)
            fixed += 1
        with self._cond:
            for run_id in owed:
                self._unrecorded.pop(run_id, None)  # written above, or the row had already ended
            if not self._unrecorded:
                self.store_failure = None
        return fixed

    def check_store(self) -> None:
        """What a page run calls first: look again at a damaged or unwritable store (``RunStore.recheck``,
        a few stat calls), and after failed writes try ``reconcile`` (at most every RECONCILE_EVERY_SECONDS)."""
        self.store.recheck()
        with self._cond:
            owed = self.store_failure is not None or bool(self._unrecorded)
            due = time.monotonic() - self._last_reconcile >= RECONCILE_EVERY_SECONDS
        if owed and due and self.store.damage is None and self.store.unwritable is None:
            try:
                self.reconcile()
            except StoreError:
                pass  # still not writable: the banner keeps saying so

    def _audit_after_training(self, job: Job) -> None:
        """The post-run hook: audit the completed run where training runs (``_audit_stored_run``); a
        failed audit is noted on the job, the run stays completed."""
        with self._cond:
            job.auditing = True
        error = None
        try:
            report = self._audit_stored_run(job.id)
            with self._cond:
                job.audit = report
        except Exception as exc:  # noqa: BLE001 - the run itself has completed and is kept
            error = describe_exception(exc)
        with self._cond:
            job.auditing, job.audit_error = False, error

    def _on_epoch(self, job: Job, metrics: EpochMetrics) -> None:
        try:
            self.store.record_epoch(job.id, metrics)
        except StoreError as exc:
            self._on_store_failure(exc)
            raise
        with self._cond:
            job.metrics.append(metrics)
            job.phase = "training"  # a backend that drops progress reports (Ray's) still ends the preparing phase
            job.epoch = max(job.epoch, metrics.epoch)
            self._cond.notify_all()

    def _on_progress(self, job: Job, progress: Progress) -> None:
        now = time.monotonic()
        fraction = min(1.0, max(0.0, float(progress.fraction)))
        with self._cond:
            job.phase = progress.phase
            if progress.phase != "training":
                return
            job.progress = fraction
            job.epoch = max(job.epoch, int(progress.epoch))
            job.epoch_step, job.epoch_steps = int(progress.epoch_step), int(progress.epoch_steps)
            if job.first_progress is None:
                job.first_progress = (now, fraction)
            t0, f0 = job.first_progress
            if fraction > f0 and now > t0:
                job.eta_seconds = (1.0 - fraction) * (now - t0) / (fraction - f0)

    def _end(self, job: Job, state: str, error: Optional[str], epochs: Optional[tuple[EpochMetrics, ...]]) -> None:
        with self._cond:
            job.state = state if state in FINAL_STATUSES else "failed"
            job.error = error
            job.finished = time.time()
            job.eta_seconds = 0.0 if state in FINISHED_STATUSES else None
            if epochs is not None and len(epochs) > len(job.metrics):
                job.metrics = list(epochs)
            if job.metrics:
                job.epoch = job.metrics[-1].epoch
            if state in FINISHED_STATUSES:
                job.progress = 1.0
            self._cond.notify_all()


# -- the process-wide runner -----------------------------------------------------------

_RUNNER: Optional[JobRunner] = None
_RUNNER_LOCK = threading.Lock()


def get_runner(
    store_path: Union[str, os.PathLike[str], None] = None,
    *,
    workers: Optional[int] = None,
    settings: Optional[ServerSettings] = None,
) -> JobRunner:
    """The one runner of this process, created on first use; all browser sessions share it.

    It takes its worker count, limits and backend from ``settings`` (default ``ServerSettings.from_env()``:
    $DPEXPLORER_WORKERS, else the machine's cores); ``workers`` overrides the count. The backend is
    Ray when ``ray_address`` is set, else one child process per worker (``ProcessBackend``) unless
    ``settings.backend`` is "local" (the worker threads themselves). The store is held for this
    process (``serving.claim_store``): a store another live server holds is a StoreError. Asking again
    with a different store path is an error, since jobs already submitted live in the first one; a
    runner that was shut down is replaced by a new one.
    """
    global _RUNNER
    with _RUNNER_LOCK:
        wanted = Path(store_path).expanduser() if store_path is not None else None
        if _RUNNER is None or _RUNNER.closed:
            settings = settings if settings is not None else ServerSettings.from_env()
            count = settings.workers if workers is None else workers
            store = RunStore(store_path, serving=True)
            claim_store(store.path)  # one live server per store, so each person's limits hold once
            backend: Optional[TrainingBackend] = None
            if settings.ray_address is not None:
                from dpcore.runs.ray_backend import RayBackend

                backend = RayBackend(address=settings.ray_address)
            elif settings.backend == "process":
                backend = ProcessBackend(processes=count)
            # A backend that can traces the default config's step at once (a process backend's children
            # do it as they start): a workshop's first run is that one.
            _RUNNER = JobRunner(store=store, workers=count, limits=settings.limits, backend=backend, warm_up=DPConfig())
        elif wanted is not None and wanted.resolve() != _RUNNER.store.path.resolve():
            raise ValueError(f"the job runner already uses {str(_RUNNER.store.path)!r}, not {str(wanted)!r}")
        return _RUNNER
