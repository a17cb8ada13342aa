"""Who is here: when each participant last loaded a page on this server, and when the host last cleared the board.

Kept in the server process's memory (lost when it stops): a page load is not worth a write to the
store, and a host's status panel only needs this server's own view. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from typing import Optional


class RoomPresence:
    """Last page load per owner id and the time of the latest "Clear the board", for one server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_seen: dict[str, float] = {}
        self._board_cleared: Optional[float] = None

    def seen(self, owner: str, *, now: Optional[float] = None) -> None:
        """Note that ``owner`` loaded a page now (Unix seconds); an empty owner (not joined) is not noted."""
        if owner:
            with self._lock:
                self._last_seen[owner] = time.time() if now is None else now

    def last_seen(self) -> dict[str, float]:
        """Owner id -> Unix seconds of their latest page load on this server."""
        with self._lock:
            return dict(self._last_seen)

    def board_cleared(self, *, now: Optional[float] = None) -> float:
        """Note that the host cleared the board now; returns the time noted (Unix seconds)."""
        with self._lock:
            self._board_cleared = time.time() if now is None else now
            return self._board_cleared

    def cleared_since(self, since: float) -> Optional[float]:
        """When the board was last cleared, if that was after ``since`` (Unix seconds); else None."""
        with self._lock:
            cleared = self._board_cleared
        return cleared if cleared is not None and cleared > since else None
