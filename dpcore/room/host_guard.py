"""Guessing the host secret: each wrong secret slows the next try, a run of them locks out, each is logged.

Kept per key: the browser session that typed it and its network address (the connection's TCP peer
as Streamlit reports it; every connection from the server's own machine, a reverse proxy included,
shares one). The first ``HOST_FREE_FAILURES`` wrong secrets in a row cost nothing (a typo); after
that each try must wait 1 s, 2 s, 4 s, ... after the last one, and ``RoomLimits.host_lockout_failures``
wrong secrets in a row lock that session and that address out for ``host_lockout_seconds``. A try
made too early is refused before the secret is even compared, so waiting is the only way on. A
correct secret clears the count of its session and address; a count whose last failure is older than
the lockout starts again. Every wrong secret is logged (``logging``, this module's logger) with the
session, the address and the count, never with the text that was typed.

The host role belongs to a participant, not to a browser tab: unlocking needs a joined name (its owner
id, which the ``?me=`` token proves), and the guard remembers that owner as the host in this server
process's memory until they give the role up (``release``) or the server stops. So a reload of the
same browser, which finds the same participant from its token, is still the host.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from dpcore.room.participants import Caller, NotAllowedError, host_caller
from dpcore.room.server_settings import HOST_FIRST_DELAY_SECONDS, HOST_FREE_FAILURES

if TYPE_CHECKING:
    from dpcore.room.server_settings import RoomLimits, ServerSettings

log = logging.getLogger(__name__)


class HostSecretWaitError(NotAllowedError):
    """A host secret typed before this session or address may try again (after wrong ones, or locked out)."""


@dataclass
class _Failures:
    """Wrong secrets in a row from one key, when the last came, and until when the key is locked out."""

    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class HostGuard:
    """The wrong host secrets of every session and address of one server process. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, _Failures] = {}
        self._hosts: set[str] = set()  # owner ids that unlocked the host role and have not given it up

    def unlock(
        self,
        *,
        owner: str,
        secret: str,
        settings: ServerSettings,
        session: str,
        address: str,
        now: Optional[float] = None,
    ) -> Caller:
        """A host caller for ``owner`` if ``secret`` is the host secret and neither ``session`` nor
        ``address`` must wait; HostSecretWaitError (nothing compared) or NotAllowedError (counted, logged) otherwise.
        ``owner`` is remembered as the host (``is_host``) until ``release``; without one (a visitor who
        never joined) nothing is compared.
        """
        if not owner:
            raise NotAllowedError(
                "host_secret",
                "join with a name first: the host role belongs to a participant",
                allowed="type your name and press Join, then unlock",
            )
        now = time.monotonic() if now is None else now
        keys = (f"session {session}", f"address {address}")
        limits = settings.room
        with self._lock:
            wait = max(self._wait(key, limits, now) for key in keys)
        if wait > 0:
            raise HostSecretWaitError(
                "host_secret",
                f"too many wrong secrets from this browser or address; try again in {_seconds(wait)}",
                allowed="the secret the server was started with, after the wait",
            )
        try:
            caller = host_caller(owner, secret, settings)
        except NotAllowedError:
            if settings.host_secret is not None:
                self._fail(keys, limits, now, session=session, address=address)
            raise
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
            self._hosts.add(owner)
        return caller

    def is_host(self, owner: str) -> bool:
        """Whether ``owner`` unlocked the host role on this server and has not given it up."""
        with self._lock:
            return bool(owner) and owner in self._hosts

    def release(self, owner: str) -> None:
        """``owner`` gives the host role up (every tab of theirs, and their next reload, is a participant again)."""
        with self._lock:
            self._hosts.discard(owner)

    def wait_seconds(self, *, session: str, address: str, limits: RoomLimits, now: Optional[float] = None) -> float:
        """How long ``session`` at ``address`` must wait before its next try (0: it may try now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return max(self._wait(f"session {session}", limits, now), self._wait(f"address {address}", limits, now))

    def _wait(self, key: str, limits: RoomLimits, now: float) -> float:
        record = self._failures.get(key)
        if record is None:
            return 0.0
        if record.locked_until > now:
            return record.locked_until - now
        if record.count <= HOST_FREE_FAILURES:
            return 0.0
        delay = HOST_FIRST_DELAY_SECONDS * 2 ** (record.count - HOST_FREE_FAILURES - 1)
        return max(0.0, record.last + min(delay, limits.host_lockout_seconds) - now)

    def _fail(self, keys: tuple[str, ...], limits: RoomLimits, now: float, *, session: str, address: str) -> None:
        """Count a wrong secret against each key (a stale count starts again), lock out at the limit, log it."""
        with self._lock:
            for key in [k for k, r in self._failures.items() if now - r.last > limits.host_lockout_seconds]:
                del self._failures[key]  # stale counts go, so the table holds only recent failures
            counts = []
            for key in keys:
                record = self._failures.setdefault(key, _Failures())
                record.count += 1
                record.last = now
                if record.count >= limits.host_lockout_failures:
                    record.locked_until = now + limits.host_lockout_seconds
                counts.append(record.count)
            worst = max(counts)
            locked = worst >= limits.host_lockout_failures
        log.warning(
            "wrong host secret from session %s at address %s: %d wrong in a row%s",
            session,
            address,
            worst,
            f"; locked out for {_seconds(limits.host_lockout_seconds)}" if locked else "",
        )


def _seconds(value: float) -> str:
    whole = max(1, int(value + 0.999))
    if whole < 120:
        return f"{whole} s"
    minutes, seconds = divmod(whole, 60)
    return f"{minutes} min" + (f" {seconds} s" if seconds else "")
