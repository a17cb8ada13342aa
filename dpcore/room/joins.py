"""Who may join a room: names per network address and time window, an optional room code, names the host removed.

One person must not multiply themselves into many participants (each with their own share of the
queue). ``JoinGuard.admit`` counts every try to join from an address, a wrong room code included,
and refuses one more than ``RoomLimits.joins_per_address`` within ``join_window_seconds``; every
connection from the server's own machine (a reverse proxy included) is one address, so a room
behind one needs the limit raised. A room code (one the host sets while the server runs, else
``ServerSettings.room_code``) must be typed to join; it is compared in constant time. A name the host
removed (``remove``) stops acting at once in every session that holds it, here in this process; its
token is gone from the store, so a reload does not find it either.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Optional

from dpcore.errors import UserInputError
from dpcore.room.participants import Caller, NotAllowedError, check_host
from dpcore.room.server_settings import check_room_code

if TYPE_CHECKING:
    from dpcore.room.server_settings import ServerSettings

log = logging.getLogger(__name__)


class JoinLimitError(UserInputError):
    """One more name from this address than the room allows within its window."""


class JoinGuard:
    """The door of one server process. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._joins: dict[str, deque[float]] = {}
        # The code the host set while the server runs (None: the server's setting applies).
        self._host_code: Optional[str] = None
        self._removed: set[str] = set()

    def room_code(self, settings: ServerSettings) -> Optional[str]:
        """The code joining needs now: the host's, else the server's setting (None: no code)."""
        with self._lock:
            return self._host_code if self._host_code is not None else settings.room_code

    def set_room_code(self, code: Optional[str], *, by: Optional[Caller]) -> None:
        """The host sets the room code for joins from now on ("" or None: back to the server's setting,
        $DPEXPLORER_ROOM_CODE, which may be none)."""
        check_host(by, action="set the room code")
        checked = check_room_code(code, name="room_code") if code else None
        with self._lock:
            self._host_code = checked

    def admit(self, *, address: str, code: str, settings: ServerSettings, now: Optional[float] = None) -> None:
        """Let one more name join from ``address`` with ``code``, or refuse it with a UserInputError.

        Every try counts against the address's window, a wrong code included, so that guessing the
        code costs joins. Refused: one more try than ``joins_per_address`` within the window
        (JoinLimitError naming display_name), or a wrong room code (NotAllowedError naming room_code).
        """
        now = time.monotonic() if now is None else now
        limits = settings.room
        with self._lock:
            for key in list(self._joins):  # joins older than the window no longer count, anywhere
                old = self._joins[key]
                while old and now - old[0] >= limits.join_window_seconds:
                    old.popleft()
                if not old:
                    del self._joins[key]
            times = self._joins.setdefault(address, deque())
            if len(times) >= limits.joins_per_address:
                wait = limits.join_window_seconds - (now - times[0])
                raise JoinLimitError(
                    "display_name",
                    f"{len(times)} names joined from this address in the last "
                    f"{_duration(limits.join_window_seconds)}; the next may join in {_duration(wait)}",
                    allowed=f"{limits.joins_per_address} names per address every "
                    f"{_duration(limits.join_window_seconds)}; people who share one address can ask the host to raise it",
                )
            times.append(now)
        expected = self.room_code(settings)
        if expected is not None and not hmac.compare_digest(code.encode("utf-8"), expected.encode("utf-8")):
            log.warning("wrong room code from address %s", address)
            raise NotAllowedError(
                "room_code", "that is not this room's code", allowed="the code the host gave the room"
            )

    def remove(self, owner: str, *, by: Optional[Caller]) -> None:
        """Mark ``owner`` as removed by the host: sessions holding that name stop acting as it."""
        check_host(by, action="remove a participant")
        with self._lock:
            self._removed.add(owner)

    def is_removed(self, owner: str) -> bool:
        """Whether the host removed ``owner`` while this process ran."""
        with self._lock:
            return owner in self._removed


def _duration(seconds: float) -> str:
    whole = max(1, int(seconds + 0.999))
    return f"{whole} s" if whole < 120 else f"{(whole + 59) // 60} min"
