"""Shared pytest settings: quiet TensorFlow, the paths of the repository and its test data, a polling helper."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
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


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coroutine)`` in a thread of its own: the browser tests' Playwright keeps an event loop
    running in the main thread for the whole session, where asyncio.run refuses to start another."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(asyncio.run(coroutine))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller as it is
            errors.append(exc)

    thread = threading.Thread(target=run, name="run_coroutine")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]
