"""AppTest in a fresh process: an unusable run store is one clear message, not a traceback."""
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
print(json.dumps({{"errors": [e.value for e in at.error], "exceptions": len(at.exception)}}))
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
