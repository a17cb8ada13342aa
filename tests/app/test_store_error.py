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


PAGES_SCRIPT = f"""
import json
from streamlit import config
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({APP!r}, default_timeout=60)
config.set_option("client.showErrorDetails", "full")  # exceptions by type and message, not redacted
at.run()
seen = {{"explore": {{"exceptions": len(at.exception), "warnings": [w.value for w in at.warning],
                     "metrics": [m.label for m in at.metric]}}}}
for page in ("train", "sweep", "compare", "export", "learn"):
    at.switch_page(f"pages/{{page}}.py").run()
    # A page that ends early raises app_state.PageDone, which app.py catches; AppTest's switch_page runs
    # the page without app.py, so it shows up here as an exception of that type.
    seen[page] = {{"exceptions": [f"{{x.proto.type}}: {{x.message}}" for x in at.exception if not x.proto.type.endswith("PageDone")],
                   "errors": [e.value for e in at.error]}}
print(json.dumps(seen), flush=True)
# The runner's warm-up thread may be inside TensorFlow's C++ code now; leaving without the interpreter's
# shutdown keeps it from aborting the process after the answer is out.
import os
os._exit(0)
"""


def _every_page(store_path: Path) -> dict:
    env = {
        **os.environ,
        "DPEXPLORER_STORE": str(store_path),
        "DPEXPLORER_BACKEND": "local",
    }
    done = subprocess.run([sys.executable, "-c", PAGES_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_store_that_cannot_be_written_still_serves_every_page(tmp_path: Path) -> None:
    from dpcore.config import DPConfig
    from dpcore.runs.store import RunStore

    path = tmp_path / "runs.sqlite3"
    RunStore(path).create_run(DPConfig(), name="kept")
    (tmp_path / "runs.sqlite3-wal").mkdir()  # as a read-only folder: no log can be made beside the store
    seen = _every_page(path)
    explore = seen.pop("explore")
    assert explore["exceptions"] == 0 and "Projected ε" in explore["metrics"]
    assert any(w.startswith("The run store cannot be written, so runs cannot start") for w in explore["warnings"])
    assert all(page["exceptions"] == [] for page in seen.values()), seen


def test_a_store_of_garbage_still_serves_every_page(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    path.write_bytes(bytes(range(256)) * 64)
    seen = _every_page(path)
    explore = seen.pop("explore")
    assert explore["exceptions"] == 0 and "Projected ε" in explore["metrics"]
    assert any(w.startswith("The run store is damaged") for w in explore["warnings"])
    assert all(page["exceptions"] == [] for page in seen.values()), seen
