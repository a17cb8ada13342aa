"""Joining a room: names per address and time window (wrong room codes count too), the room code from the
settings or the host, and names the host removed."""

from __future__ import annotations

import logging

import pytest

from dpcore.errors import UserInputError
from dpcore.room.joins import JoinGuard, JoinLimitError
from dpcore.room.participants import Caller, NotAllowedError
from dpcore.room.server_settings import RoomLimits, ServerSettings

LIMITS = RoomLimits(joins_per_address=3, join_window_seconds=600.0)
OPEN = ServerSettings(room=LIMITS)
HOST = Caller(owner="p" + "1" * 16, is_host=True)
ADA = Caller(owner="p" + "2" * 16)


def test_one_address_may_join_so_many_names_per_window_and_others_are_not_held_back():
    guard = JoinGuard()
    for i in range(LIMITS.joins_per_address):
        guard.admit(address="10.0.0.1", code="", settings=OPEN, now=100.0 + i)
    with pytest.raises(JoinLimitError) as info:
        guard.admit(address="10.0.0.1", code="", settings=OPEN, now=200.0)
    text = str(info.value)
    assert info.value.field == "display_name"
    assert "3 names joined from this address in the last 10 min" in text and "the next may join in 9 min" in text
    assert "3 names per address every 10 min" in text
    guard.admit(address="10.0.0.2", code="", settings=OPEN, now=200.0)  # another address
    guard.admit(address="10.0.0.1", code="", settings=OPEN, now=700.0)  # the first join has left the window
    with pytest.raises(JoinLimitError):
        guard.admit(address="10.0.0.1", code="", settings=OPEN, now=700.5)


def test_a_room_code_is_needed_and_wrong_codes_use_up_the_addresses_joins(caplog):
    guard = JoinGuard()
    coded = ServerSettings(room=LIMITS, room_code="ROOM-7")
    with caplog.at_level(logging.WARNING, logger="dpcore.room.joins"):
        for guess in ("room-7", "ROOM-8"):
            with pytest.raises(NotAllowedError, match="not this room's code") as info:
                guard.admit(address="10.0.0.9", code=guess, settings=coded, now=0.0)
            assert info.value.field == "room_code"
    assert [r.getMessage() for r in caplog.records] == ["wrong room code from address 10.0.0.9"] * 2
    guard.admit(address="10.0.0.9", code="ROOM-7", settings=coded, now=0.0)
    with pytest.raises(JoinLimitError):  # two guesses and one join: the window is full
        guard.admit(address="10.0.0.9", code="ROOM-7", settings=coded, now=1.0)


def test_the_host_sets_a_room_code_and_can_go_back_to_the_servers():
    guard = JoinGuard()
    assert guard.room_code(OPEN) is None
    with pytest.raises(NotAllowedError, match="only the host can set the room code"):
        guard.set_room_code("LET-ME-IN", by=ADA)
    guard.set_room_code("WORKSHOP", by=HOST)
    assert guard.room_code(OPEN) == "WORKSHOP"
    with pytest.raises(NotAllowedError):
        guard.admit(address="a", code="", settings=OPEN, now=0.0)
    guard.admit(address="b", code="WORKSHOP", settings=OPEN, now=0.0)
    with pytest.raises(UserInputError, match="room_code") as info:
        guard.set_room_code(" spaced ", by=HOST)
    assert "spaces around" in str(info.value) and guard.room_code(OPEN) == "WORKSHOP"
    guard.set_room_code("", by=HOST)
    assert guard.room_code(OPEN) is None and guard.room_code(ServerSettings(room_code="ENV-CODE")) == "ENV-CODE"


def test_only_the_host_removes_a_name():
    guard = JoinGuard()
    with pytest.raises(NotAllowedError, match="only the host can remove a participant"):
        guard.remove(ADA.owner, by=Caller(owner="p" + "3" * 16))
    assert not guard.is_removed(ADA.owner)
    guard.remove(ADA.owner, by=HOST)
    assert guard.is_removed(ADA.owner) and not guard.is_removed(HOST.owner)
