"""CSV files uploaded through the app, kept beside the run store so runs that name them can train later.

Each upload belongs to its uploader: it is kept in a folder named by their owner id
(``dpcore.room.participants``), only they and the host may train on it or see its name, and it is
deleted with their runs. Uploads made without an owner (a single local user) sit in the top folder.
On a shared server (``limits`` given) an upload needs a participant and must fit their quota, the
server's total and leave the disk reserve free for the run store; a write that fails leaves no
partial file behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from dpcore.data.csv_files import MAX_CSV_BYTES, csv_columns
from dpcore.errors import DatasetError, UserInputError
from dpcore.locations import default_store_path
from dpcore.room.participants import OWNER_PATTERN, check_participant

if TYPE_CHECKING:
    from dpcore.room.participants import Caller
    from dpcore.room.server_settings import RoomLimits

ENV_UPLOADS = "DPEXPLORER_UPLOADS"
# Beside each kept upload, a small text file holds the name the person's file had (``heart.csv``), so
# the app shows that name rather than the kept copy's (``heart-3f9c…e1.csv``, under their owner folder).
NAME_SUFFIX = ".name"
MAX_NAME_CHARS = 255
# A partial file (".part") this old is a leftover of a server that stopped mid-write, never one being written.
STALE_PART_SECONDS = 600.0
# Quota checks and writes happen one at a time, so two uploads at once cannot both fit the last space.
_WRITE_LOCK = threading.Lock()


class UploadQuotaError(UserInputError):
    """An upload that does not fit: the participant's quota, the server's total, or the disk reserve."""


def uploads_dir() -> Path:
    """$DPEXPLORER_UPLOADS, else an ``uploads`` folder beside the run store."""
    env = os.environ.get(ENV_UPLOADS, "").strip()
    return Path(env).expanduser() if env else default_store_path().parent / "uploads"


def save_csv(
    raw: bytes,
    *,
    name: str,
    owner: str = "",
    directory: Optional[Path] = None,
    limits: Optional[RoomLimits] = None,
) -> Path:
    """Check that ``raw`` is a CSV table with a header, then keep it in ``owner``'s folder under a name made from its content.

    The same content always lands in the same file, so uploading a file twice stores it once and a
    stored run's ``csv_path`` keeps pointing at exactly the data it trained on. ``limits`` (a shared
    server's) needs an owner and refuses, with an UploadQuotaError, a file over their quota or the
    server's total, or one that would leave less free disk than the reserve. A write that fails
    removes its partial file.
    """
    if limits is not None:
        check_participant(owner, action="uploads")
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
    with _WRITE_LOCK:
        if target.exists():
            _keep_name(target, name)
            return target
        _remove_stale_parts(folder)
        if limits is not None:
            _check_space(len(raw), owner=owner, directory=directory, limits=limits)
        temporary: Optional[str] = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=folder, suffix=".part")
            with os.fdopen(handle, "wb") as out:
                out.write(raw)
            os.replace(temporary, target)
            _keep_name(target, name)
        except OSError as exc:
            raise DatasetError(
                "csv_path",
                f"cannot keep the upload in {folder}: {exc.strerror or exc}",
                allowed=f"a writable folder with free space (set {ENV_UPLOADS})",
            ) from None
        finally:
            if temporary is not None and os.path.exists(temporary):
                os.unlink(temporary)
    return target


def _keep_name(target: Path, name: str) -> None:
    """Write the upload's own file name beside its kept copy (the latest name, for content uploaded twice)."""
    shown = Path(name.replace("\\", "/")).name.strip()
    shown = "".join(ch for ch in shown if ch.isprintable())[:MAX_NAME_CHARS] or target.name
    try:
        target.with_name(target.name + NAME_SUFFIX).write_text(shown, encoding="utf-8")
    except OSError:
        pass  # the kept copy's own name is shown instead; the upload itself is kept


def original_name(path: str, *, directory: Optional[Path] = None) -> Optional[str]:
    """The name the file at ``path`` had when it was uploaded, or None when it is not an upload or its
    name was not kept (uploads kept before names were)."""
    if upload_owner(path, directory=directory) is None:
        return None
    kept = Path(path).with_name(Path(path).name + NAME_SUFFIX)
    try:
        if kept.is_symlink() or not kept.is_file() or kept.stat().st_size > 4 * MAX_NAME_CHARS:
            return None
        name = kept.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name[:MAX_NAME_CHARS] or None


def find_upload(name: str, *, owner: str, directory: Optional[Path] = None) -> Optional[Path]:
    """``owner``'s one upload whose own name is ``name``; None when none or several have it (then it is asked for)."""
    base = Path(directory) if directory is not None else uploads_dir()
    found = [
        item
        for item in _upload_files(base, owner)
        if item.suffix == ".csv" and original_name(str(item), directory=base) == name
    ]
    return found[0] if len(found) == 1 else None


def used_bytes(*, owner: Optional[str], directory: Optional[Path] = None) -> int:
    """Bytes the uploads of ``owner`` take (every upload's when None), partial files included."""
    base = Path(directory) if directory is not None else uploads_dir()
    return sum(item.stat().st_size for item in _upload_files(base, owner))


def _upload_files(base: Path, owner: Optional[str]) -> list[Path]:
    """The files ``save_csv`` writes (``.csv`` and ``.part``) in ``owner``'s folder, or in every folder when None."""
    return [
        item
        for folder in _folders(base, owner)
        if folder.is_dir() and not folder.is_symlink()
        for item in folder.iterdir()
        if item.suffix in (".csv", ".part") and item.is_file() and not item.is_symlink()
    ]


def _folders(base: Path, owner: Optional[str]) -> list[Path]:
    """``owner``'s upload folder, or (None) the top folder and every owner's folder."""
    if owner is not None:
        return [_owner_folder(owner, base)]
    children = sorted(base.iterdir()) if base.is_dir() else []
    return [base] + [p for p in children if p.is_dir() and OWNER_PATTERN.fullmatch(p.name)]


def _check_space(size: int, *, owner: str, directory: Optional[Path], limits: RoomLimits) -> None:
    """Refuse ``size`` more bytes when they exceed ``owner``'s quota or the server's, or eat into the disk reserve."""
    base = Path(directory) if directory is not None else uploads_dir()
    mine = used_bytes(owner=owner, directory=base)
    if mine + size > limits.upload_quota_bytes:
        raise UploadQuotaError(
            "upload",
            f"this file ({_mib(size)}) and your earlier uploads ({_mib(mine)}) exceed your upload quota",
            allowed=f"{_mib(limits.upload_quota_bytes)} of uploads per participant; "
            "deleting your runs on Compare deletes your uploads",
        )
    everyone = used_bytes(owner=None, directory=base)
    if everyone + size > limits.uploads_total_bytes:
        raise UploadQuotaError(
            "upload",
            f"this server's uploads ({_mib(everyone)}) and this file ({_mib(size)}) exceed its total",
            allowed=f"{_mib(limits.uploads_total_bytes)} of uploads on this server; ask the host to clear the board",
        )
    existing = base
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free - size < limits.disk_reserve_bytes:
        raise UploadQuotaError(
            "upload",
            f"the server's disk has {_mib(free)} free, and this file ({_mib(size)}) would leave less than "
            "the space kept for the run store",
            allowed=f"uploads that leave {_mib(limits.disk_reserve_bytes)} free; ask the host to free disk space",
        )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _remove_stale_parts(folder: Path) -> None:
    """Remove partial files a stopped server left mid-write (older than STALE_PART_SECONDS)."""
    if not folder.is_dir():
        return
    now = time.time()
    for item in folder.glob("*.part"):
        try:
            if item.is_file() and not item.is_symlink() and now - item.stat().st_mtime > STALE_PART_SECONDS:
                item.unlink()
        except OSError:
            continue


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
    """The file name to show ``caller`` for a run's ``csv_path``: a data-folder file's name, an upload's own
    name (as it was uploaded), or a placeholder for another participant's upload."""
    if upload_owner(path, directory=directory) is None:
        return Path(path).name
    if may_use(path, caller, directory=directory):
        return original_name(path, directory=directory) or Path(path).name
    return "(another participant's upload)"


def delete_uploads(*, owner: Optional[str], directory: Optional[Path] = None) -> int:
    """Delete ``owner``'s uploaded files (every upload when None); return how many files went.

    Only what ``save_csv`` writes is touched (``.csv`` files, their kept names and ``.part`` leftovers, in the top
    folder or an owner's folder), so a folder set by mistake loses nothing else.
    """
    base = Path(directory) if directory is not None else uploads_dir()
    count = 0
    for folder in _folders(base, owner):
        if not folder.is_dir() or folder.is_symlink():
            continue
        for item in folder.iterdir():
            if item.suffix in (".csv", ".part", NAME_SUFFIX) and (item.is_file() or item.is_symlink()):
                item.unlink()
                count += item.suffix != NAME_SUFFIX
        if folder != base and not any(folder.iterdir()):
            folder.rmdir()
    return count
