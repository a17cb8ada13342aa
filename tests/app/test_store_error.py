"""AppTest in a fresh process: an unusable run store is one clear message, not a traceback; a damaged
one still lets people explore ε and compare the runs that can be read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.app.conftest import APP

SCRIPT = f"""
import json
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({APP!r}, default_timeout=60).run()
print(json.dumps({{"errors": [e.value for e in at.error], "warnings": [w.value for w in at.warning],
                  "exceptions": len(at.exception),
                  "metrics": [m.label for m in at.metric]}}))
"""


def test_unusable_store_is_a_message(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {**os.environ, "DPEXPLORER_STORE": str(blocker / "runs.sqlite3")}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exceptions"] == 0
    assert len(result["errors"]) == 1
    assert result["errors"][0].startswith("The run store cannot be used: store: cannot")


def test_damaged_store_still_explores(tmp_path: Path) -> None:
    from dpcore.config import DPConfig
    from dpcore.runs.store import RunStore

    path = tmp_path / "runs.sqlite3"
    store = RunStore(path)
    for seed in range(60):
        store.create_run(DPConfig(seed=seed), name="x" * 200)
    raw = bytearray(path.read_bytes())
    raw[4096 * 4 : 4096 * 5] = bytes(range(256)) * 16  # garbage in the middle of the file
    path.write_bytes(bytes(raw))
    assert RunStore(path, read_only=True).damage is not None

    env = {**os.environ, "DPEXPLORER_STORE": str(path)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exceptions"] == 0 and result["errors"] == []
    assert any(w.startswith("The run store is damaged") and "Exploring ε works" in w for w in result["warnings"])
    assert "Projected ε" in result["metrics"]
