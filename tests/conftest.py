"""Shared pytest settings: quiet TensorFlow, the paths of the repository and its test data, a polling helper."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_DATA_DIR = REPO_ROOT / "tests" / "reference"


def wait_until(predicate: Callable[[], object], *, what: str, timeout: float = 90.0, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it holds; fail the test (naming ``what``) if it never does within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def export_runs(tmp_path_factory: pytest.TempPathFactory):
    """Real tiny runs in one store for the export tests (tests/export_runs.py), trained once per session."""
    from tests.export_runs import train_export_runs

    return train_export_runs(tmp_path_factory.mktemp("export") / "runs.sqlite3")
