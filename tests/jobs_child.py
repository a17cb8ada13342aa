"""Run a long job (and queue a second) through a JobRunner on the store at argv[1]; test_jobs kills this process mid-run."""

from __future__ import annotations

import sys

from dpcore.config import DPConfig
from dpcore.runs.jobs import JobRunner
from dpcore.runs.store import RunStore

LONG = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=500)


def main(store_path: str) -> None:
    runner = JobRunner(store=RunStore(store_path))
    first = runner.submit(LONG, owner="child")
    runner.submit(LONG.replace(epochs=2), owner="child")
    runner.wait([first])


if __name__ == "__main__":
    main(sys.argv[1])
