"""One live server per run store: a served store is held by its server's process, and a second server refuses it.

A server counts each participant's runs in its own job runner (``RunLimits``: runs queued and
training per person), so two servers on one store would each apply the limits, doubling what one
person may take. A server therefore takes an exclusive lock on a small file beside the store
(``<store>.server-lock``, holding its process token) for as long as it runs; the kernel releases
the lock when the process ends, however it ends (kill -9 included), so a stale lock never blocks a
restart. CLI sweeps take no lock: they share a store with a server as before, under their own owner.
Where file locks do not exist (Windows) or the folder cannot be written (a read-only store, which
takes no runs), nothing is held.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from dpcore.runs.process_identity import process_token
from dpcore.runs.store import StoreError
from dpcore.safe_io import quote, quote_path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_SUFFIX = ".server-lock"
MAX_TOKEN_CHARS = 300

# The lock files this process holds, by the store's resolved path: kept open for the process's life.
_HELD: dict[Path, int] = {}
_HELD_LOCK = threading.Lock()


def lock_path(store_path: Path) -> Path:
    """The lock file of the store at ``store_path``."""
    return store_path.with_name(store_path.name + LOCK_SUFFIX)


def claim_store(store_path: Path) -> None:
    """Hold the store at ``store_path`` for this server process; a StoreError when another live server holds it.

    Claiming a store this process already holds does nothing.
    """
    if fcntl is None:
        return
    key = store_path.expanduser().resolve()
    with _HELD_LOCK:
        if key in _HELD:
            return
        try:
            fd = os.open(lock_path(key), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return  # a folder this process cannot write: the store takes no runs from it either
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise StoreError(
                f"{quote_path(key)} is served by another DP Explorer server ({holder}); two servers on one "
                "store would each apply the per-person limits, so this one serves nothing. Stop the other "
                "server, or start this one with its own DPEXPLORER_STORE"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, (process_token() + "\n").encode("utf-8"))
        _HELD[key] = fd


def _holder(fd: int) -> str:
    """Who holds the lock, from the token it wrote (host:pid:start), for the message."""
    try:
        text = os.pread(fd, MAX_TOKEN_CHARS, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    host, _, rest = text.partition(":")
    pid = rest.partition(":")[0]
    return f"process {quote(pid)[1:-1]} on {quote(host)[1:-1]}" if host and pid.isdigit() else "a process"
