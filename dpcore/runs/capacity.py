"""How much a run costs and when a waiting run will start: compute estimates, measured speeds, queue ETAs.

A run's compute is its training examples × epochs ("example passes"); the time that implies comes
from the speed of finished runs of the same dataset, model and privacy, at the nearest batch size
(examples processed over the run's whole wall time, loading and evaluation included). Every time
here is an estimate: other runs on the same cores, a different batch size or a cold start change it.
With no finished run to learn from, the time is unknown (None), never guessed.
"""

from __future__ import annotations

import heapq
import math
import statistics
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from dpcore.errors import UserInputError
from dpcore.results import FINISHED_STATUSES
from dpcore.room.server_settings import ENV_MAX_EXAMPLE_PASSES, ENV_MAX_QUEUED, ENV_MAX_SWEEP_RUNS

if TYPE_CHECKING:
    from dpcore.config import DPConfig
    from dpcore.room.server_settings import RunLimits
    from dpcore.runs.records import RunRecord

# Speeds kept per (dataset, model, private): the latest few runs, so a table never grows without bound.
MAX_SAMPLES_PER_KIND = 20


class CapacityError(UserInputError):
    """A run is refused because of a server limit (the per-participant limits or the compute cap)."""


def format_duration(seconds: float) -> str:
    """A short human duration: "0.5 s", "45 s", "12 min", "3.5 h", "1.2 days"."""
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 24 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@dataclass(frozen=True)
class ComputeEstimate:
    """A run's compute before it starts: ``n_train`` × ``epochs`` example passes, and the time that implies.

    ``examples_per_second`` is the measured speed it is based on (None when no comparable run has
    finished yet, and then ``seconds`` is None too).
    """

    n_train: int
    epochs: int
    examples_per_second: Optional[float]

    @property
    def example_passes(self) -> int:
        return self.n_train * self.epochs

    @property
    def seconds(self) -> Optional[float]:
        if not self.examples_per_second:
            return None
        return self.example_passes / self.examples_per_second

    def text(self) -> str:
        """One line for the page: the passes and, when measured, the estimated time."""
        head = f"{self.n_train:,} examples × {self.epochs:,} epochs = {self.example_passes:,} example passes"
        if self.seconds is None:
            return head + "; no finished run of this dataset and model yet, so no time estimate"
        return (
            f"{head}, about {format_duration(self.seconds)} at the measured "
            f"{self.examples_per_second:,.0f} examples/s (an estimate)"
        )


def check_compute(estimate: ComputeEstimate, limits: RunLimits) -> None:
    """Raise CapacityError naming the estimate and the cap when the run needs more than the server allows."""
    cap = limits.max_example_passes
    if cap is None or estimate.example_passes <= cap:
        return
    most_epochs = cap // estimate.n_train
    hint = (
        f"at most {most_epochs:,} epochs of these {estimate.n_train:,} examples, or a smaller max_train_examples"
        if most_epochs >= 1
        else "a smaller max_train_examples"
    ) + (
        f"; or the host raises example passes per run to {estimate.example_passes:,} "
        f"in the Host panel, or with {ENV_MAX_EXAMPLE_PASSES} at start-up"
    )
    raise CapacityError(
        "compute",
        f"this run needs {estimate.text()}; this server allows at most {cap:,} example passes per run",
        allowed=hint,
    )


def check_participant_limits(*, active: int, limits: RunLimits, adding: int = 1) -> None:
    """Raise CapacityError when a participant with ``active`` entries queued or training may not add ``adding`` more.

    An entry is a run, an audit or a whole sweep (its runs wait their turn inside it). The error says
    what the host would have to raise for it to fit.
    """
    most = limits.max_running + limits.max_queued
    if active + adding <= most:
        return
    needed = active + adding - limits.max_running
    allowed = (
        f"{limits.max_running} training and {limits.max_queued} waiting per participant, a sweep counting once; "
        f"wait for one to finish or cancel one, or the host raises runs waiting per participant to {needed} "
        f"in the Host panel, or with {ENV_MAX_QUEUED} at start-up"
    )
    if adding == 1:
        raise CapacityError("runs", f"you already have {active} runs or sweeps queued or training", allowed=allowed)
    raise CapacityError(
        "runs",
        f"these {adding} runs and your {active} runs or sweeps queued or training are more than allowed",
        allowed=allowed,
    )


def check_sweep_size(runs: int, limits: RunLimits) -> None:
    """Raise CapacityError when one sweep holds more runs than this server allows, naming what the host would raise."""
    if runs <= limits.max_sweep_runs:
        return
    raise CapacityError(
        "sweep_runs",
        f"this sweep has {runs:,} runs; this server allows at most {limits.max_sweep_runs:,} runs per sweep",
        allowed=f"fewer values or seeds, or the host raises runs per sweep to {runs:,} "
        f"in the Host panel, or with {ENV_MAX_SWEEP_RUNS} at start-up",
    )


def _kind(config: DPConfig) -> tuple[str, str, bool]:
    return (config.dataset, config.model, config.private)


class ThroughputTable:
    """Measured training speeds (examples per second of wall time) by dataset, model, privacy and batch size. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: dict[tuple[str, str, bool], list[tuple[int, float]]] = {}

    @classmethod
    def from_runs(cls, runs: Iterable[RunRecord]) -> ThroughputTable:
        """A table seeded from the finished runs of a store (completed, or stopped by their ε budget)."""
        table = cls()
        for run in runs:
            if run.status in FINISHED_STATUSES and run.seconds:
                table.add(run.config, examples=sum(e.examples for e in run.epochs), seconds=run.seconds)
        return table

    def add(self, config: DPConfig, *, examples: int, seconds: float) -> None:
        """Record that a run of ``config`` processed ``examples`` in ``seconds`` of wall time."""
        if examples <= 0 or not seconds or not math.isfinite(seconds) or seconds <= 0:
            return
        with self._lock:
            samples = self._samples.setdefault(_kind(config), [])
            samples.append((config.batch_size, examples / seconds))
            del samples[:-MAX_SAMPLES_PER_KIND]

    def rate(self, config: DPConfig) -> Optional[float]:
        """The median measured speed of runs like ``config`` at the batch size nearest its own, or None."""
        with self._lock:
            samples = list(self._samples.get(_kind(config), ()))
        if not samples:
            return None
        distance = {b: abs(math.log(b) - math.log(config.batch_size)) for b, _ in samples}
        nearest = min(distance.values())
        return statistics.median(r for b, r in samples if distance[b] == nearest)

    def estimate(self, config: DPConfig, *, n_train: int) -> ComputeEstimate:
        """The compute estimate of ``config`` on ``n_train`` training examples."""
        return ComputeEstimate(n_train=n_train, epochs=config.epochs, examples_per_second=self.rate(config))


@dataclass(frozen=True)
class QueueEstimate:
    """Where a waiting run stands: its place among the waiting runs and, when speeds are known, when it starts and ends."""

    position: int
    waiting: int
    start_in_seconds: Optional[float]
    finish_in_seconds: Optional[float]

    def text(self) -> str:
        head = f"Waiting: number {self.position} of {self.waiting} in the queue"
        if self.start_in_seconds is None:
            return head + "; no time estimate yet (a run ahead has no measured speed)"
        tail = f"; starts in about {format_duration(self.start_in_seconds)}"
        if self.finish_in_seconds is not None:
            tail += f", done in about {format_duration(self.finish_in_seconds)}"
        return head + tail + " (an estimate)"


def project_queue(
    order: Sequence[tuple[int, str, Optional[float]]],
    *,
    running: Sequence[tuple[str, Optional[float]]],
    workers: int,
    max_running: Optional[int],
) -> dict[int, tuple[Optional[float], Optional[float]]]:
    """Estimated (start, finish) seconds from now for each waiting run, in dispatch ``order``.

    ``order`` holds (run id, owner, duration) in the order runs will be handed to workers;
    ``running`` holds (owner, remaining seconds) of the runs training now. A run starts when a
    worker is free and its owner has fewer than ``max_running`` runs training. Once a duration
    is unknown, every later time is unknown too.
    """
    free = [0.0] * max(0, workers - len(running))
    owner_ends: dict[str, list[float]] = {}
    unknown = False
    for owner, remaining in running:
        if remaining is None:
            unknown = True
            remaining = 0.0
        free.append(remaining)
        owner_ends.setdefault(owner, []).append(remaining)
    heapq.heapify(free)
    result: dict[int, tuple[Optional[float], Optional[float]]] = {}
    for run_id, owner, duration in order:
        if unknown:
            result[run_id] = (None, None)
            continue
        start = heapq.heappop(free) if free else 0.0
        ends = sorted(end for end in owner_ends.get(owner, []) if end > start)
        if max_running is not None and len(ends) >= max_running:
            start = ends[len(ends) - max_running]
        if duration is None:
            result[run_id] = (start, None)
            unknown = True
            continue
        end = start + duration
        heapq.heappush(free, end)
        owner_ends.setdefault(owner, []).append(end)
        result[run_id] = (start, end)
    return result
