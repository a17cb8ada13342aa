"""AppTest fixtures: one throwaway run store for the whole session (the job runner is process-wide)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "app.py")


@pytest.fixture(scope="session", autouse=True)
def _store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "runs.sqlite3"
    previous = os.environ.get("DPEXPLORER_STORE")
    os.environ["DPEXPLORER_STORE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("DPEXPLORER_STORE", None)
    else:
        os.environ["DPEXPLORER_STORE"] = previous


@pytest.fixture()
def app():
    """A fresh AppTest of the whole app (navigation, sidebar, session init), not yet run."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=60)
