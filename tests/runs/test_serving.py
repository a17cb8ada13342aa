"""dpcore.runs.serving: one live server per run store, so each person's limits are applied once.

A second server on a store that a live server holds serves nothing and says why; the holder's end
(a clean exit or kill -9) frees the store at once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys

import pytest

from dpcore.config import DPConfig
from dpcore.runs.serving import claim_store, lock_path
from dpcore.runs.store import RunStore, StoreError
from tests.app.conftest import APP
from tests.conftest import REPO_ROOT

HOLDER = (
    "import sys\n"
    "from pathlib import Path\n"
    "from dpcore.runs.serving import claim_store\n"
    "claim_store(Path(sys.argv[1]))\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)

APP_RUN = f"""
import json
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({APP!r}, default_timeout=60).run()
print(json.dumps({{"errors": [e.value for e in at.error], "exceptions": len(at.exception),
                  "metrics": [m.label for m in at.metric]}}))
"""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


@pytest.fixture
def holder(tmp_path):
    """A process (a first server) that holds a store with one queued run of its own."""
    path = tmp_path / "runs.sqlite3"
    RunStore(path)
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        cwd=REPO_ROOT,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "held"
        yield path, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def test_a_second_claim_names_the_server_that_holds_the_store(holder):
    path, process = holder
    with pytest.raises(StoreError) as info:
        claim_store(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"store: '{path.resolve()}' is served by another")
    assert f"process {process.pid} on {socket.gethostname()}" in message and "DPEXPLORER_STORE" in message
    process.stdin.close()  # the first server stops
    assert process.wait(timeout=30) == 0
    claim_store(path)  # free at once
    claim_store(path)  # and claiming it again in the same process is a no-op


def test_a_killed_server_leaves_no_stale_claim(holder):
    path, process = holder
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert lock_path(path).exists()  # the file stays; the kernel released its lock
    claim_store(path)


def test_the_app_on_a_store_another_server_holds_serves_nothing_and_changes_nothing(holder):
    path, _ = holder
    store = RunStore(path)
    run_id = store.create_run(DPConfig(), owner="p0")
    # A queued run whose process is gone: a server that opened this store would mark it interrupted.
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE runs SET process = ? WHERE id = ?", (f"{socket.gethostname()}:999999999:", run_id))
    conn.close()
    done = subprocess.run(
        [sys.executable, "-c", APP_RUN],
        cwd=REPO_ROOT,
        env=_env(DPEXPLORER_STORE=str(path), DPEXPLORER_BACKEND="local", DPEXPLORER_ACCOUNTANT_PROCESSES="0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exceptions"] == 0 and not result["metrics"]
    (error,) = result["errors"]
    assert error.startswith("The run store cannot be used: store: ") and "served by another DP Explorer server" in error
    conn = sqlite3.connect(path)
    (status,) = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    conn.close()
    assert status == "queued"  # the second server marked nothing in the file
