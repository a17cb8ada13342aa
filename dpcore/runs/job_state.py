"""A job's state: the runner's mutable record of one run (under its lock) and the snapshots it hands out.

A snapshot is a consistent, frozen copy that any thread or page may read; a job's id is its run id in
the store.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from dpcore.config import DPConfig
from dpcore.results import FINAL_STATUSES, FINISHED_STATUSES
from dpcore.room.server_settings import ENV_WORKERS, RunLimits, ServerSettings  # noqa: F401 (ENV_WORKERS re-exported)
from dpcore.runs.records import RunRecord

if TYPE_CHECKING:
    from dpcore.audit.report import AuditReport
    from dpcore.results import EpochMetrics


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
    metrics: tuple[EpochMetrics, ...]
    eta_seconds: Optional[float]
    error: Optional[str]
    submitted: float
    started: Optional[float]
    finished: Optional[float]
    name: str = ""
    # The empirical privacy audit: asked for at submit, running now (after training), its report, its error.
    audit_requested: bool = False
    auditing: bool = False
    audit: Optional[AuditReport] = None
    audit_error: Optional[str] = None
    # A running job's phase (dpcore.results.PROGRESS_PHASES): "preparing" until its first step.
    phase: str = "training"
    # "train", or AUDIT_JOB for an audit of a stored run asked for later.
    kind: str = "train"
    # Steps taken in the current epoch and that epoch's step count (0 and 0 until a backend reports them).
    epoch_step: int = 0
    epoch_steps: int = 0

    @property
    def done(self) -> bool:
        """True once the job will change no more (completed, budget_reached, cancelled, failed or interrupted)."""
        return self.state in FINAL_STATUSES

    @property
    def latest(self) -> Optional[EpochMetrics]:
        """The last finished epoch's metrics, or None before the first epoch ends."""
        return self.metrics[-1] if self.metrics else None

    def as_record(self) -> RunRecord:
        """This job as its stored run reads (timings are left unknown), for the tables that list runs."""
        return RunRecord(
            id=self.id,
            name=self.name,
            owner=self.owner,
            created=self.submitted,
            config=self.config,
            status=self.state,
            error=self.error,
            epochs=self.metrics,
            examples_per_second=None,
            seconds=None,
            started=self.started,
            finished=self.finished,
            audit=self.audit,
        )

    @classmethod
    def from_record(cls, record: RunRecord) -> JobSnapshot:
        """A snapshot of a stored run that no live runner holds (e.g. one from an earlier process)."""
        epoch = record.epochs[-1].epoch if record.epochs else 0
        progress = 1.0 if record.status in FINISHED_STATUSES else epoch / record.config.epochs
        return cls(
            id=record.id,
            owner=record.owner,
            config=record.config,
            state=record.status,
            progress=min(1.0, progress),
            epoch=epoch,
            epochs_total=record.config.epochs,
            metrics=record.epochs,
            eta_seconds=None,
            error=record.error,
            submitted=record.created,
            started=record.started,
            finished=record.finished,
            name=record.name,
            audit=record.audit,
        )


# The kind of job that audits a stored run on request; it waits in the same queue as training runs.
AUDIT_JOB = "audit"


@dataclass
class Job:
    """The runner's mutable view of a job; read and written only under the runner's lock."""

    id: int
    owner: str
    name: str
    config: DPConfig
    submitted: float
    # "train": a run to train; "audit": an audit of the stored run ``id`` asked for later (AUDIT_JOB).
    kind: str = "train"
    state: str = "queued"
    progress: float = 0.0
    epoch: int = 0
    phase: str = "preparing"
    epoch_step: int = 0
    epoch_steps: int = 0
    metrics: list[EpochMetrics] = field(default_factory=list)
    eta_seconds: Optional[float] = None
    error: Optional[str] = None
    started: Optional[float] = None
    finished: Optional[float] = None
    stop: threading.Event = field(default_factory=threading.Event)
    # First training progress report (time, fraction): the ETA uses the rate since then, so that
    # data loading and graph building before the first step (the preparing phase) do not skew it.
    first_progress: Optional[tuple[float, float]] = None
    # The training set size (None when the data could not be read at submit) and the wall-time
    # limit that stopped the run, if one did.
    n_train: Optional[int] = None
    started_monotonic: Optional[float] = None
    timed_out_after: Optional[float] = None
    audit_requested: bool = False
    auditing: bool = False
    audit: Optional[AuditReport] = None
    audit_error: Optional[str] = None
    # The stored sweep this run belongs to: a sweep's runs count once against its owner's limits.
    sweep_id: Optional[int] = None

    def snapshot(self) -> JobSnapshot:
        return JobSnapshot(
            id=self.id,
            owner=self.owner,
            config=self.config,
            state=self.state,
            progress=self.progress,
            epoch=self.epoch,
            epochs_total=self.config.epochs,
            metrics=tuple(self.metrics),
            eta_seconds=self.eta_seconds,
            error=self.error,
            submitted=self.submitted,
            started=self.started,
            finished=self.finished,
            name=self.name,
            audit_requested=self.audit_requested,
            auditing=self.auditing,
            audit=self.audit,
            audit_error=self.audit_error,
            phase=self.phase,
            kind=self.kind,
            epoch_step=self.epoch_step,
            epoch_steps=self.epoch_steps,
        )
