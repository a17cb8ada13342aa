"""The host secret's guard: free typos, then growing waits, a lockout per session and per address, every
wrong secret logged without its text, and a correct secret that clears the count."""

from __future__ import annotations

import logging

import pytest

from dpcore.room.host_guard import HostGuard, HostSecretWaitError
from dpcore.room.participants import Caller, NotAllowedError
from dpcore.room.server_settings import HOST_FREE_FAILURES, RoomLimits, ServerSettings

SECRET = "a-host-secret-of-24-chars"
LIMITS = RoomLimits(host_lockout_failures=HOST_FREE_FAILURES + 4, host_lockout_seconds=600.0)
SETTINGS = ServerSettings(host_secret=SECRET, room=LIMITS)
OWNER = "p" + "1" * 16


def _try(guard: HostGuard, secret: str, *, now: float, session: str = "s1", address: str = "10.0.0.1") -> Caller:
    return guard.unlock(owner=OWNER, secret=secret, settings=SETTINGS, session=session, address=address, now=now)


def test_typos_are_free_then_each_try_waits_twice_as_long_and_an_early_try_is_not_even_compared():
    guard = HostGuard()
    now = 1000.0
    for _ in range(HOST_FREE_FAILURES):
        with pytest.raises(NotAllowedError, match="not the host secret"):
            _try(guard, "wrong-guess", now=now)
    waits = []
    for _ in range(3):
        with pytest.raises(NotAllowedError, match="not the host secret"):
            _try(guard, "wrong-guess", now=now)
        waits.append(guard.wait_seconds(session="s1", address="10.0.0.1", limits=LIMITS, now=now))
        with pytest.raises(HostSecretWaitError, match="try again in") as info:
            _try(guard, SECRET, now=now + waits[-1] / 2)  # the right secret, too early: refused
        assert info.value.field == "host_secret"
        now += waits[-1]
    assert waits == [1.0, 2.0, 4.0]
    assert _try(guard, SECRET, now=now) == Caller(owner=OWNER, is_host=True)
    assert guard.wait_seconds(session="s1", address="10.0.0.1", limits=LIMITS, now=now) == 0.0  # cleared


def test_a_run_of_wrong_secrets_locks_out_the_address_for_new_sessions_too():
    guard = HostGuard()
    now = 0.0
    for attempt in range(LIMITS.host_lockout_failures):
        session = f"tab {attempt}"  # a new connection for every guess
        with pytest.raises(NotAllowedError, match="not the host secret"):
            _try(guard, f"guess {attempt}", now=now, session=session)
        now += 100.0  # never too early for the address's growing wait
    # Locked out for 10 minutes from the last wrong secret, 100 s ago.
    with pytest.raises(HostSecretWaitError, match="try again in 8 min 20 s"):
        _try(guard, SECRET, now=now, session="a fresh tab")
    assert _try(guard, SECRET, now=now, session="elsewhere", address="10.0.0.2").is_host  # another address
    # Once the lockout is over the address may try again, and a correct secret clears its count.
    later = now - 100.0 + LIMITS.host_lockout_seconds
    assert _try(guard, SECRET, now=later, session="a fresh tab").is_host
    assert guard.wait_seconds(session="a fresh tab", address="10.0.0.1", limits=LIMITS, now=later) == 0.0


def test_a_stale_count_starts_again():
    guard = HostGuard()
    for _ in range(HOST_FREE_FAILURES + 1):
        with pytest.raises(NotAllowedError):
            _try(guard, "wrong-guess", now=0.0)
    assert guard.wait_seconds(session="s1", address="10.0.0.1", limits=LIMITS, now=0.0) == 1.0
    with pytest.raises(NotAllowedError, match="not the host secret"):
        _try(guard, "wrong-guess", now=LIMITS.host_lockout_seconds + 1)  # one failure again, no wait after it
    assert guard.wait_seconds(session="s1", address="10.0.0.1", limits=LIMITS, now=LIMITS.host_lockout_seconds + 1) == 0


def test_each_wrong_secret_is_logged_with_session_address_and_count_never_its_text(caplog):
    guard = HostGuard()
    with caplog.at_level(logging.WARNING, logger="dpcore.room.host_guard"):
        for attempt in range(LIMITS.host_lockout_failures):
            with pytest.raises(NotAllowedError):
                _try(guard, f"secret-guess-{attempt}", now=100.0 * attempt)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == LIMITS.host_lockout_failures
    assert lines[0] == "wrong host secret from session s1 at address 10.0.0.1: 1 wrong in a row"
    assert lines[-1].endswith(f"{LIMITS.host_lockout_failures} wrong in a row; locked out for 10 min")
    assert not any("secret-guess" in line for line in lines)


def test_without_a_host_secret_nothing_is_counted():
    guard = HostGuard()
    for _ in range(LIMITS.host_lockout_failures + 1):
        with pytest.raises(NotAllowedError, match="no host role"):
            guard.unlock(owner=OWNER, secret="x", settings=ServerSettings(), session="s", address="a", now=0.0)
    assert guard.wait_seconds(session="s", address="a", limits=LIMITS, now=0.0) == 0.0


def test_the_host_role_is_remembered_for_the_participant_until_given_up():
    guard = HostGuard()
    assert not guard.is_host(OWNER)
    with pytest.raises(NotAllowedError, match="not the host secret"):
        _try(guard, "wrong-guess", now=0.0)
    assert not guard.is_host(OWNER)  # a wrong secret makes no one the host
    _try(guard, SECRET, now=0.0, session="first-tab")
    # Another session of the same participant (a reload finds them by their token) is the host too.
    assert guard.is_host(OWNER) and not guard.is_host("p" + "2" * 16) and not guard.is_host("")
    guard.release(OWNER)
    assert not guard.is_host(OWNER)
    guard.release(OWNER)  # giving up twice is no error


def test_a_visitor_who_never_joined_cannot_unlock_and_nothing_is_counted():
    guard = HostGuard()
    for secret in (SECRET, "wrong-guess"):
        with pytest.raises(NotAllowedError, match="join with a name first") as info:
            guard.unlock(owner="", secret=secret, settings=SETTINGS, session="s", address="a", now=0.0)
        assert info.value.field == "host_secret"
    assert guard.wait_seconds(session="s", address="a", limits=LIMITS, now=0.0) == 0.0 and not guard.is_host("")
