"""AppTest fixtures: one throwaway run store for these tests (the app's job runner is process-wide)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "app.py")


@pytest.fixture(scope="session")
def app_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store file every app test shares: the runner, created once, keeps the path it first saw."""
    return tmp_path_factory.mktemp("store") / "runs.sqlite3"


@pytest.fixture(autouse=True)
def _store_env(app_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point DPEXPLORER_STORE at the shared test store for each app test (and only during it)."""
    monkeypatch.setenv("DPEXPLORER_STORE", str(app_store))
    return app_store


@pytest.fixture()
def app():
    """A fresh AppTest of the whole app (navigation, sidebar, session init), not yet run."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=60)
