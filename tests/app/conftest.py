"""Fixtures for the AppTest tests: a shared run store for the app's process-wide job runner."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import pytest

from app_state import CONFIG_KEY
from dpcore.config import DPConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "app.py")

# One store for every app test in this process, made once at import: the app's job runner is
# process-wide and keeps the path it first saw. (A session fixture imported into several modules
# would be set up once per module, each with its own folder.)
_STORE_DIR = Path(tempfile.mkdtemp(prefix="dpx-apptest-"))
atexit.register(shutil.rmtree, _STORE_DIR, ignore_errors=True)
APP_STORE = _STORE_DIR / "runs.sqlite3"


@pytest.fixture(autouse=True)
def store_env(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point DPEXPLORER_STORE at the shared test store for each app test (and only during it).

    The runner trains in its own threads here (DPEXPLORER_BACKEND=local) and the accountant answers
    in this process (DPEXPLORER_ACCOUNTANT_PROCESSES=0): the pages see the same answers either way;
    tests/runs/test_process_backend.py, tests/privacy/test_accounting_processes.py and
    tests/test_child_calls.py use real child processes, and the tests of the accountant's limits on a
    page turn its processes on. Every test joins from the same address in this one process, so the
    joins per address are not limited here (tests/app/test_room.py and tests/room/test_room_server.py
    test the limit).
    """
    monkeypatch.setenv("DPEXPLORER_STORE", str(APP_STORE))
    monkeypatch.setenv("DPEXPLORER_JOINS_PER_ADDRESS", str(10**6))
    monkeypatch.setenv("DPEXPLORER_BACKEND", "local")
    monkeypatch.setenv("DPEXPLORER_ACCOUNTANT_PROCESSES", "0")
    return APP_STORE


def join(at, name: str = "Tester"):
    """Type a display name into the sidebar's form and press Join, as a participant does once."""
    at.text_input(key="join_name_sidebar").input(name)
    at.button(key="join_sidebar").click().run()
    assert not at.exception
    return at


def open_page(app, page: str, config: Optional[DPConfig] = None, *, name: Optional[str] = "Tester"):
    """Run the app (with ``config`` as the current config, if given), join as ``name`` (None: stay
    anonymous), switch to pages/<page>.py, check it rendered."""
    if config is not None:
        app.session_state[CONFIG_KEY] = config
    app.run()
    if name is not None:
        join(app, name)
    app.switch_page(f"pages/{page}.py").run()
    assert not app.exception
    return app


@pytest.fixture()
def app():
    """A fresh AppTest of the whole app (navigation, sidebar, session init), not yet run."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=60)
