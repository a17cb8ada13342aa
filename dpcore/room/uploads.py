"""CSV files uploaded through the app, kept beside the run store so runs that name them can train later.

Each upload belongs to its uploader: it is kept in a folder named by their owner id
(``dpcore.room.participants``), only they and the host may train on it or see its name, and it is
deleted with their runs. Uploads made without an owner (a single local user) sit in the top folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from dpcore.data.csv_files import MAX_CSV_BYTES, csv_columns
from dpcore.errors import DatasetError, UserInputError
from dpcore.locations import default_store_path
from dpcore.room.participants import OWNER_PATTERN

if TYPE_CHECKING:
    from dpcore.room.participants import Caller

ENV_UPLOADS = "DPEXPLORER_UPLOADS"


def uploads_dir() -> Path:
    """$DPEXPLORER_UPLOADS, else an ``uploads`` folder beside the run store."""
    env = os.environ.get(ENV_UPLOADS, "").strip()
    return Path(env).expanduser() if env else default_store_path().parent / "uploads"


def save_csv(raw: bytes, *, name: str, owner: str = "", directory: Optional[Path] = None) -> Path:
    """Check that ``raw`` is a CSV table with a header, then keep it in ``owner``'s folder under a name made from its content.

    The same content always lands in the same file, so uploading a file twice stores it once and a
    stored run's ``csv_path`` keeps pointing at exactly the data it trained on.
    """
    if len(raw) > MAX_CSV_BYTES:
        raise DatasetError(
            "csv_path",
            f"{name} is {len(raw) / 2**20:.1f} MiB, too large",
            allowed=f"files up to {MAX_CSV_BYTES // 2**20} MiB",
        )
    csv_columns(raw, name=name)
    folder = _owner_folder(owner, directory)
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
        raise DatasetError(
            "csv_path", f"cannot keep the upload in {folder}: {exc}", allowed=f"a writable folder (set {ENV_UPLOADS})"
        ) from None
    return target


def _owner_folder(owner: str, directory: Optional[Path]) -> Path:
    base = Path(directory) if directory is not None else uploads_dir()
    if not owner:
        return base
    if not OWNER_PATTERN.fullmatch(owner):
        raise UserInputError(
            "owner", f"{owner[:40]!r} is not a participant id", allowed="an id from dpcore.room.participants"
        )
    return base / owner


def upload_owner(path: str, *, directory: Optional[Path] = None) -> Optional[str]:
    """The owner id of the upload at ``path`` ("" for one made without an owner), or None if it is not an upload.

    The path is resolved first, so a link or ``..`` cannot make another file pass for an upload.
    """
    base = (Path(directory) if directory is not None else uploads_dir()).resolve()
    try:
        relative = Path(path).resolve().relative_to(base)
    except (ValueError, OSError, RuntimeError):  # not under the folder, or a link loop
        return None
    parts = relative.parts
    if len(parts) == 1:
        return ""
    if len(parts) == 2 and OWNER_PATTERN.fullmatch(parts[0]):
        return parts[0]
    return None


def may_use(path: str, caller: Optional[Caller], *, directory: Optional[Path] = None) -> bool:
    """Whether ``caller`` may train on or see the name of the upload at ``path`` (its owner, the host, or None: the local user)."""
    owner = upload_owner(path, directory=directory)
    if owner is None:
        return False
    return caller is None or caller.is_host or (bool(owner) and owner == caller.owner)


def shown_name(path: str, caller: Optional[Caller], *, directory: Optional[Path] = None) -> str:
    """The file name to show ``caller`` for a run's ``csv_path``: the name itself, or a placeholder for another's upload."""
    if upload_owner(path, directory=directory) is None or may_use(path, caller, directory=directory):
        return Path(path).name
    return "(another participant's upload)"


def delete_uploads(*, owner: Optional[str], directory: Optional[Path] = None) -> int:
    """Delete ``owner``'s uploaded files (every upload when None); return how many files went.

    Only what ``save_csv`` writes is touched (``.csv`` files and their ``.part`` leftovers, in the top
    folder or an owner's folder), so a folder set by mistake loses nothing else.
    """
    base = Path(directory) if directory is not None else uploads_dir()
    if owner is None:
        folders = [base] + sorted(p for p in base.glob("p*") if p.is_dir() and OWNER_PATTERN.fullmatch(p.name))
    else:
        folders = [_owner_folder(owner, directory)]
    count = 0
    for folder in folders:
        if not folder.is_dir() or folder.is_symlink():
            continue
        for item in folder.iterdir():
            if item.suffix in (".csv", ".part") and (item.is_file() or item.is_symlink()):
                item.unlink()
                count += 1
        if folder != base and not any(folder.iterdir()):
            folder.rmdir()
    return count
