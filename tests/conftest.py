"""Shared pytest settings: quiet TensorFlow, the paths of the repository and its test data, a polling helper."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_DATA_DIR = REPO_ROOT / "tests" / "data"


def wait_until(predicate: Callable[[], object], *, what: str, timeout: float = 90.0, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it holds; fail the test (naming ``what``) if it never does within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(interval)
