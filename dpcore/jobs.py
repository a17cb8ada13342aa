"""Background training: a queue of DP runs trained by worker threads, each run kept in the store.

One ``JobRunner`` per server process (``get_runner()``) is shared by every browser session;
each job carries an ``owner`` (the app passes a per-session id) so a person's list shows their
runs, and ``list_jobs(owner=None)`` is the shared view for a workshop host. A job's id is its
run id in the store. Workers never touch Streamlit: they update the job under a lock and write
each finished epoch to the store; pages poll ``get``/``list_jobs``.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Union

from dpcore.config import DPConfig
from dpcore.store import FINAL_STATUSES, STATUSES, RunRecord, RunStore, UnknownRunError

if TYPE_CHECKING:
    from dpcore.results import EpochMetrics, Progress, TrainResult

ENV_WORKERS = "DPEXPLORER_WORKERS"

JOB_STATES = STATUSES
FINAL_STATES = frozenset(FINAL_STATUSES)
# States of a run that trained every epoch it was allowed to (its budget may have ended it early).
FINISHED_STATES = frozenset({"completed", "budget_reached"})


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of one job's state at one moment, safe to hand to any thread."""

    id: int
    owner: str
    config: DPConfig
    state: str
    progress: float
    epoch: int
    epochs_total: int
    metrics: tuple["EpochMetrics", ...]
    eta_seconds: Optional[float]
    error: Optional[str]
    submitted: float
    started: Optional[float]
    finished: Optional[float]
    name: str = ""

    @property
    def done(self) -> bool:
        """True once the job will change no more (completed, budget_reached, cancelled, failed or interrupted)."""
        return self.state in FINAL_STATES

    @property
    def latest(self) -> Optional["EpochMetrics"]:
        """The last finished epoch's metrics, or None before the first epoch ends."""
        return self.metrics[-1] if self.metrics else None

    @classmethod
    def from_record(cls, record: RunRecord) -> "JobSnapshot":
        """A snapshot of a stored run that no live runner holds (e.g. one from an earlier process)."""
        epoch = record.epochs[-1].epoch if record.epochs else 0
        progress = 1.0 if record.status in FINISHED_STATES else epoch / record.config.epochs
        return cls(
            id=record.id, owner=record.owner, config=record.config, state=record.status,
            progress=min(1.0, progress), epoch=epoch, epochs_total=record.config.epochs,
            metrics=record.epochs, eta_seconds=None, error=record.error, submitted=record.created,
            started=record.started, finished=record.finished, name=record.name,
        )


@dataclass
class _Job:
    """The runner's mutable view of a job; read and written only under the runner's lock."""

    id: int
    owner: str
    name: str
    config: DPConfig
    submitted: float
    state: str = "queued"
    progress: float = 0.0
    epoch: int = 0
    metrics: list["EpochMetrics"] = field(default_factory=list)
    eta_seconds: Optional[float] = None
    error: Optional[str] = None
    started: Optional[float] = None
    finished: Optional[float] = None
    stop: threading.Event = field(default_factory=threading.Event)
    # First progress report (time, fraction): the ETA uses the rate since then, so that data
    # loading and graph building before the first step do not skew it.
    first_progress: Optional[tuple[float, float]] = None

    def snapshot(self) -> JobSnapshot:
        return JobSnapshot(
            id=self.id, owner=self.owner, config=self.config, state=self.state,
            progress=self.progress, epoch=self.epoch, epochs_total=self.config.epochs,
            metrics=tuple(self.metrics), eta_seconds=self.eta_seconds, error=self.error,
            submitted=self.submitted, started=self.started, finished=self.finished, name=self.name,
        )


class JobRunner:
    """Trains submitted configs on ``workers`` background threads (one at a time by default) and queues the rest.

    Thread-safe. On construction it marks runs that a dead process left queued or running as
    interrupted (``RunStore.mark_interrupted``). A run that fails (bad data, an exception in
    training, out of memory) is recorded as failed with its message; the other jobs go on.
    """

    def __init__(self, *, store: RunStore, workers: int = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a whole number of at least 1, got {workers!r}")
        self.store = store
        self.workers = workers
        self._cond = threading.Condition()
        self._jobs: dict[int, _Job] = {}
        self._queue: deque[_Job] = deque()
        self._closed = False
        self.interrupted_on_start = store.mark_interrupted()
        self._threads = [
            threading.Thread(target=self._work, name=f"dpcore-job-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def __repr__(self) -> str:
        return f"JobRunner(store={self.store!r}, workers={self.workers})"

    @property
    def closed(self) -> bool:
        """True after ``shutdown``: the runner takes no more jobs."""
        with self._cond:
            return self._closed

    # -- public API ----------------------------------------------------------------------

    def submit(self, config: DPConfig, *, owner: str = "", name: str = "") -> int:
        """Queue ``config`` for training and return its id (its run id in the store)."""
        if not isinstance(config, DPConfig):
            raise TypeError(f"submit needs a DPConfig, got {type(config).__name__}")
        with self._cond:
            if self._closed:
                raise RuntimeError("this job runner has been shut down")
            # Created under the lock so that ids enter the queue in submission order.
            run_id = self.store.create_run(config, owner=owner, name=name)
            job = _Job(id=run_id, owner=owner, name=name, config=config, submitted=time.time())
            self._jobs[run_id] = job
            self._queue.append(job)
            self._cond.notify_all()
        return run_id

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued job at once or ask a running one to stop; False if it had already ended."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or job.state in FINAL_STATES:
                return False
            if job.state == "queued":
                self._queue.remove(job)
                job.state = "cancelled"
                job.finished = time.time()
                self._cond.notify_all()
                queued = True
            else:
                job.stop.set()
                queued = False
        if queued:
            self.store.set_status(job_id, "cancelled")
        return True

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
                job.snapshot() for job in sorted(self._jobs.values(), key=lambda j: j.id)
                if owner is None or job.owner == owner
            ]

    def wait(self, job_ids: Optional[Iterable[int]] = None, *, timeout: Optional[float] = None) -> bool:
        """Block until the given jobs (default: all) have ended; False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            ids = list(self._jobs) if job_ids is None else list(job_ids)
            unknown = [i for i in ids if i not in self._jobs]
            if unknown:
                raise UnknownRunError(unknown[0])
            while not all(self._jobs[i].state in FINAL_STATES for i in ids):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop taking jobs, cancel the queued ones, ask running ones to stop; ``wait`` joins the workers."""
        with self._cond:
            self._closed = True
            cancelled = list(self._queue)
            self._queue.clear()
            now = time.time()
            for job in cancelled:
                job.state = "cancelled"
                job.finished = now
            for job in self._jobs.values():
                if job.state == "running":
                    job.stop.set()
            self._cond.notify_all()
        for job in cancelled:
            self.store.set_status(job.id, "cancelled")
        if wait:
            for thread in self._threads:
                thread.join()

    # -- worker side ---------------------------------------------------------------------

    def _next_job(self) -> Optional[_Job]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            job = self._queue.popleft()
            job.state = "running"
            job.started = time.time()
            self._cond.notify_all()
            return job

    def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            self._run(job)

    def _run(self, job: _Job) -> None:
        """Train one job; whatever goes wrong ends up as a failed job with its message."""
        result: Optional["TrainResult"] = None
        try:
            from dpcore.dpsgd import training

            self.store.set_status(job.id, "running")
            result = training.train(
                job.config,
                on_epoch=lambda metrics: self._on_epoch(job, metrics),
                on_progress=lambda progress: self._on_progress(job, progress),
                stop_event=job.stop,
            )
            self.store.finish_run(job.id, result)
            self._end(job, result.status, result.error, result.epochs)
        except BaseException as exc:  # noqa: BLE001 - a worker must outlive any one run
            message = _describe(exc)
            self._end(job, "failed", message, result.epochs if result is not None else None)
            try:
                self.store.set_status(job.id, "failed", error=message)
            except Exception:  # noqa: BLE001 - the store itself may be what failed
                pass

    def _on_epoch(self, job: _Job, metrics: "EpochMetrics") -> None:
        self.store.record_epoch(job.id, metrics)
        with self._cond:
            job.metrics.append(metrics)
            job.epoch = max(job.epoch, metrics.epoch)
            self._cond.notify_all()

    def _on_progress(self, job: _Job, progress: "Progress") -> None:
        now = time.monotonic()
        fraction = min(1.0, max(0.0, float(progress.fraction)))
        with self._cond:
            job.progress = fraction
            job.epoch = max(job.epoch, int(progress.epoch))
            if job.first_progress is None:
                job.first_progress = (now, fraction)
            t0, f0 = job.first_progress
            if fraction > f0 and now > t0:
                job.eta_seconds = (1.0 - fraction) * (now - t0) / (fraction - f0)

    def _end(self, job: _Job, state: str, error: Optional[str],
             epochs: Optional[tuple["EpochMetrics", ...]]) -> None:
        with self._cond:
            job.state = state if state in FINAL_STATES else "failed"
            job.error = error
            job.finished = time.time()
            job.eta_seconds = 0.0 if state in FINISHED_STATES else None
            if epochs is not None and len(epochs) > len(job.metrics):
                job.metrics = list(epochs)
            if job.metrics:
                job.epoch = job.metrics[-1].epoch
            if state in FINISHED_STATES:
                job.progress = 1.0
            self._cond.notify_all()


def _describe(exc: BaseException) -> str:
    """A one-line message for a run that raised: the error's own text, else its type."""
    if isinstance(exc, MemoryError):
        return "out of memory: " + (str(exc) or "the run needed more memory than is available")
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- the process-wide runner -----------------------------------------------------------

_RUNNER: Optional[JobRunner] = None
_RUNNER_LOCK = threading.Lock()


def get_runner(store_path: Union[str, os.PathLike[str], None] = None, *,
               workers: Optional[int] = None) -> JobRunner:
    """The one runner of this process, created on first use; all browser sessions share it.

    ``workers`` defaults to $DPEXPLORER_WORKERS, else 1. Asking again with a different store
    path is an error, since jobs already submitted live in the first one; a runner that was shut
    down is replaced by a new one.
    """
    global _RUNNER
    with _RUNNER_LOCK:
        wanted = Path(store_path).expanduser() if store_path is not None else None
        if _RUNNER is None or _RUNNER.closed:
            if workers is None:
                workers = _workers_from_env()
            _RUNNER = JobRunner(store=RunStore(store_path), workers=workers)
        elif wanted is not None and wanted.resolve() != _RUNNER.store.path.resolve():
            raise ValueError(
                f"the job runner already uses {str(_RUNNER.store.path)!r}, not {str(wanted)!r}"
            )
        return _RUNNER


def _workers_from_env() -> int:
    text = os.environ.get(ENV_WORKERS, "").strip()
    if not text:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{ENV_WORKERS} must be a whole number of at least 1, got {text!r}")
    return int(text)
