"""Where dpcore keeps its files on disk by default: the run store, and beside it the feature cache and uploads.

One place for the default so that the store (runs), the ScatterNet cache (data) and uploads (room)
agree on the folder without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_STORE = "DPEXPLORER_STORE"


def default_store_path() -> Path:
    """Where runs are kept: $DPEXPLORER_STORE, else $XDG_DATA_HOME (or ~/.local/share)/dp-explorer."""
    env = os.environ.get(ENV_STORE, "").strip()
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(data_home).expanduser() if data_home else Path.home() / ".local" / "share"
    return base / "dp-explorer" / "runs.sqlite3"
