"""AppTest in a fresh process: showing every page imports no TensorFlow (only training does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.app.conftest import APP

SCRIPT = f"""
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({APP!r}, default_timeout=60).run()
for page in ("train", "sweep", "compare", "export", "learn"):
    at.switch_page(f"pages/{{page}}.py").run()
print(json.dumps({{"exceptions": len(at.exception), "tensorflow": "tensorflow" in sys.modules}}))
"""


def test_pages_do_not_import_tensorflow(store_env) -> None:
    # With the served default backend: training (and its warm-up) happens in child processes; a local
    # backend warms the trainer up in the server itself, which is training, not showing a page.
    env = {**os.environ, "DPEXPLORER_BACKEND": "process"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"exceptions": 0, "tensorflow": False}
