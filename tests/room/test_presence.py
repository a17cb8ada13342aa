"""Who was here lately and when the host last cleared the board, as one server process saw it."""

from __future__ import annotations

from dpcore.room.presence import RoomPresence


def test_each_participant_keeps_their_latest_page_load_and_visitors_are_not_noted():
    presence = RoomPresence()
    presence.seen("pada", now=100.0)
    presence.seen("pbob", now=110.0)
    presence.seen("pada", now=130.0)
    presence.seen("", now=140.0)
    seen = presence.last_seen()
    assert seen == {"pada": 130.0, "pbob": 110.0}
    seen["pada"] = 0.0  # a copy: the caller cannot change what the server saw
    assert presence.last_seen()["pada"] == 130.0


def test_a_clear_of_the_board_is_news_only_to_who_joined_before_it():
    presence = RoomPresence()
    assert presence.cleared_since(0.0) is None
    assert presence.board_cleared(now=500.0) == 500.0
    assert presence.cleared_since(400.0) == 500.0  # joined before the clear: their runs went
    assert presence.cleared_since(500.0) is None and presence.cleared_since(600.0) is None
    presence.board_cleared(now=700.0)
    assert presence.cleared_since(600.0) == 700.0
