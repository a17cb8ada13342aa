"""Runs for the export tests, trained for real on digits in one store: a private run (weights kept, audited), one stopped by its ε budget,
a sweep over two seeds with its non-private baselines, another participant's run and a queued one."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from dpcore.config import DPConfig
from dpcore.privacy import accounting
from dpcore.runs import sweeps
from dpcore.runs.store import RunStore

TINY = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=2, max_train_examples=128, learning_rate=0.5)
# A budget between ε after one epoch and after two: the run stops after its first epoch.
_CURVE = accounting.epsilon_curve_for_config(TINY.replace(epochs=3), n=128)
BUDGET = TINY.replace(epochs=3, epsilon_budget=round((_CURVE[0] + _CURVE[1]) / 2, 3))
OWNER = "p00000000000000a1"
OTHER = "p00000000000000b2"


@dataclass(frozen=True)
class ExportRuns:
    """The store, and the ids of its runs by what they are for."""

    store: RunStore
    private: int  # completed, weights kept, audited; the sweep's baselines train as it does
    budget: int  # stopped by its ε budget after 1 of 3 epochs
    sweep_id: int
    sweep_private: tuple[int, ...]  # two seeds of one setting
    sweep_baselines: tuple[int, ...]
    other: int  # another participant's queued run
    queued: int  # OWNER's, never started
    unkept_store: RunStore  # a copy of ``store`` without any run's weights


def train_export_runs(path: Path) -> ExportRuns:
    from dpcore.runs.jobs import JobRunner

    store = RunStore(path)
    runner = JobRunner(store=store)
    try:
        private = runner.submit(TINY, owner=OWNER, name="private <b>$run$</b>", audit=True)
        budget = runner.submit(BUDGET, owner=OWNER, name="budget")
        spec = sweeps.SweepSpec(
            base=TINY.replace(noise_multiplier=1.4), knobs=(("noise_multiplier", (1.4,)),), seeds=2, baseline=True
        )
        started = sweeps.start(runner, spec, owner=OWNER)
        assert runner.wait(timeout=600)
    finally:
        runner.shutdown(wait=True)
    roles = {run_id: point.role for run_id, point in zip(started.run_ids, started.points)}
    unkept = path.with_name("unkept.sqlite3")
    with sqlite3.connect(path) as source, sqlite3.connect(unkept) as target:
        source.backup(target)
        target.execute("DELETE FROM run_weights")
    return ExportRuns(
        store=store,
        private=private,
        budget=budget,
        sweep_id=started.sweep_id,
        sweep_private=tuple(i for i, role in roles.items() if role == "grid"),
        sweep_baselines=tuple(i for i, role in roles.items() if role == "baseline"),
        other=store.create_run(TINY, owner=OTHER, name="someone else's"),
        queued=store.create_run(TINY, owner=OWNER),
        unkept_store=RunStore(unkept),
    )
