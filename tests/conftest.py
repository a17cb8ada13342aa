"""Shared pytest settings: quiet TensorFlow, and the paths of the shared reference files."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("DPEXPLORER_SHARED", REPO_ROOT.parent / "shared"))
