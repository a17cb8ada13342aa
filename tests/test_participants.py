"""Participants: display names, tokens that find their owner again after a reload, the host role, permissions."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.room import participants
from dpcore.room.participants import Caller, NotAllowedError, check_may_manage
from dpcore.room.server_settings import ServerSettings
from dpcore.runs.store import RunStore

SECRET = "correct horse battery"


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs.sqlite3")


@pytest.mark.parametrize(
    "typed, kept",
    [
        ("  Ada  ", "Ada"),
        ("Ana María", "Ana María"),
        ("O'Neil-Smith_2", "O'Neil-Smith_2"),
        ("x" * 40, "x" * 40),
    ],
)
def test_display_names_that_are_kept(typed, kept):
    assert participants.validate_display_name(typed) == kept


@pytest.mark.parametrize(
    "typed, problem",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 41, "41 characters"),
        ("=HYPERLINK(1)", "'('"),
        ("a<script>", "'<'"),
        ("tab\there", "'\\t'"),
        ("two  spaces", "two spaces"),
        (None, "not text"),
    ],
)
def test_display_names_that_are_refused_name_the_field(typed, problem):
    with pytest.raises(UserInputError) as info:
        participants.validate_display_name(typed)
    assert info.value.field == "display_name"
    assert problem in str(info.value) and "1 to 40 characters" in str(info.value)


def test_a_token_finds_its_participant_again_and_the_store_keeps_only_its_hash(store):
    ada, token = participants.register(store, " Ada ")
    assert ada.display_name == "Ada" and participants.OWNER_PATTERN.fullmatch(ada.owner)
    assert participants.find(RunStore(store.path), token) == ada  # as after a reload: a fresh store object
    assert participants.find(store, participants.new_token()) is None
    raw = store.path.read_bytes()
    assert token.encode() not in raw and participants.token_hash(token).encode() in raw
    bob, bob_token = participants.register(store, "Bob")
    assert bob.owner != ada.owner and bob_token != token
    assert store.display_names() == {ada.owner: "Ada", bob.owner: "Bob"}


def test_tokens_are_unguessable_and_malformed_ones_are_refused(store):
    tokens = {participants.new_token() for _ in range(200)}
    assert len(tokens) == 200 and all(len(t) == 32 for t in tokens)
    for bad in ("", "short", "x" * 31 + "!", "p" + "0" * 16, None):
        with pytest.raises(UserInputError) as info:
            participants.find(store, bad)  # type: ignore[arg-type]
        assert info.value.field == "token"


def test_the_host_role_needs_the_configured_secret():
    settings = ServerSettings(host_secret=SECRET)
    host = participants.host_caller("p" + "1" * 16, SECRET, settings)
    assert host == Caller(owner="p" + "1" * 16, is_host=True)
    with pytest.raises(NotAllowedError, match="not the host secret"):
        participants.host_caller("p" + "1" * 16, SECRET + "x", settings)
    with pytest.raises(NotAllowedError, match="no host role") as info:
        participants.host_caller("p" + "1" * 16, SECRET, ServerSettings())
    assert info.value.field == "host_secret"


def test_who_may_manage_a_run():
    ada, bob = Caller(owner="pada"), Caller(owner="pbob")
    host = Caller(owner="phost", is_host=True)
    assert ada.may_manage("pada") and not ada.may_manage("pbob") and not ada.may_manage("")
    assert not Caller(owner="").may_manage("")  # an empty owner id owns nothing
    assert host.may_manage("pbob") and host.may_manage("")
    check_may_manage(None, run_id=3, run_owner="pbob", action="delete")  # the store's owner (CLI)
    with pytest.raises(NotAllowedError) as info:
        check_may_manage(bob, run_id=3, run_owner="pada", action="delete")
    assert info.value.field == "run"
    assert "run 3 belongs to another participant" in str(info.value) and "host can manage every run" in str(info.value)


def test_share_links_ignore_the_participant_token():
    from dpcore.export import share

    params = {**share.encode(DPConfig(epochs=4)), participants.TOKEN_PARAM: participants.new_token()}
    assert share.decode(params) == DPConfig(epochs=4)
    url = share.share_url(f"http://host/explore?{participants.TOKEN_PARAM}=abc", DPConfig())
    assert participants.TOKEN_PARAM not in parse_qs(urlsplit(url).query)
