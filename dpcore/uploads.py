"""CSV files uploaded through the app, kept beside the run store so runs that name them can train later."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Optional

from dpcore.data import MAX_CSV_BYTES, csv_columns
from dpcore.errors import DatasetError
from dpcore.store import default_store_path

ENV_UPLOADS = "DPEXPLORER_UPLOADS"


def uploads_dir() -> Path:
    """$DPEXPLORER_UPLOADS, else an ``uploads`` folder beside the run store."""
    env = os.environ.get(ENV_UPLOADS, "").strip()
    return Path(env).expanduser() if env else default_store_path().parent / "uploads"


def save_csv(raw: bytes, *, name: str, directory: Optional[Path] = None) -> Path:
    """Check that ``raw`` is a CSV table with a header, then keep it under a name made from its content.

    The same content always lands in the same file, so uploading a file twice stores it once and a
    stored run's ``csv_path`` keeps pointing at exactly the data it trained on.
    """
    if len(raw) > MAX_CSV_BYTES:
        raise DatasetError("csv_path", f"{name} is {len(raw) / 2**20:.1f} MiB, too large",
                           allowed=f"files up to {MAX_CSV_BYTES // 2**20} MiB")
    csv_columns(raw, name=name)
    folder = Path(directory) if directory is not None else uploads_dir()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).stem).strip("._")[:60] or "data"
    target = folder / f"{stem}-{hashlib.sha256(raw).hexdigest()[:16]}.csv"
    if target.exists():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".part")
        with os.fdopen(handle, "wb") as out:
            out.write(raw)
        os.replace(temporary, target)
    except OSError as exc:
        raise DatasetError("csv_path", f"cannot keep the upload in {folder}: {exc}",
                           allowed=f"a writable folder (set {ENV_UPLOADS})") from None
    return target
