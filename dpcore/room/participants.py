"""Who is asking: participants of a shared server, the host, and what each may do to a run.

A participant types a display name once; ``register`` gives them an unguessable token (the page
keeps it in the URL or a cookie, so a reload finds them again) and an owner id that their runs and
uploads carry. The store keeps only a hash of the token, so neither a copy of the store nor the
owner ids shown beside runs let anyone act as someone else. The host (the instructor) is a
participant who also typed the server's host secret (``ServerSettings.host_secret``); it is
compared in constant time and never belongs in a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Protocol

from dpcore.errors import UserInputError

if TYPE_CHECKING:
    from dpcore.room.server_settings import ServerSettings


class ParticipantRecords(Protocol):
    """Where participants are kept (the run store): a token's hash, the owner id and the display name."""

    def add_participant(self, *, token_hash: str, owner: str, display_name: str) -> None: ...

    def find_participant(self, token_hash: str) -> Optional[tuple[str, str]]: ...


# The query parameter that carries a participant's token (share links leave it alone).
TOKEN_PARAM = "me"
MAX_DISPLAY_NAME_CHARS = 40
# 32 URL-safe characters: 192 random bits.
TOKEN_BYTES = 24
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32}")
# Owner ids name upload folders, so they are plain lowercase hex with a prefix.
OWNER_PATTERN = re.compile(r"p[0-9a-f]{16}")
_NAME_PUNCTUATION = " .'-_"


class NotAllowedError(UserInputError):
    """The caller may not do this to this run (it belongs to someone else, or needs the host)."""


@dataclass(frozen=True)
class Participant:
    """One person at a shared server: the owner id their runs carry and the name they chose."""

    owner: str
    display_name: str


@dataclass(frozen=True)
class Caller:
    """Who asks for an action on the server: a participant's owner id, and whether they unlocked the host role.

    Build a host caller only through ``host_caller``, which checks the secret. Library calls made
    without a caller (``by=None``) act for the person who owns the store file (the CLI).
    """

    owner: str
    is_host: bool = False

    def may_manage(self, run_owner: str) -> bool:
        """Whether this caller may rename, delete or cancel a run owned by ``run_owner``."""
        return self.is_host or (bool(self.owner) and self.owner == run_owner)


def validate_display_name(name: object) -> str:
    """The display name with surrounding spaces removed; refused unless 1–40 letters, digits, spaces or . ' - _."""
    allowed = f"1 to {MAX_DISPLAY_NAME_CHARS} characters: letters, digits, spaces and . ' - _"
    if not isinstance(name, str):
        raise UserInputError("display_name", f"{type(name).__name__} is not text", allowed=allowed)
    text = unicodedata.normalize("NFC", name).strip()
    if not text:
        raise UserInputError("display_name", "the name is empty", allowed=allowed)
    if len(text) > MAX_DISPLAY_NAME_CHARS:
        raise UserInputError("display_name", f"the name has {len(text)} characters", allowed=allowed)
    bad = sorted({ch for ch in text if not (ch.isalnum() or ch in _NAME_PUNCTUATION)})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad[:5])
        raise UserInputError("display_name", f"the name holds {shown}", allowed=allowed)
    if "  " in text:
        raise UserInputError("display_name", "the name holds two spaces in a row", allowed=allowed)
    return text


def new_token() -> str:
    """A fresh unguessable participant token (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def check_token(token: object) -> str:
    """``token`` if it has the form ``new_token`` makes; a UserInputError naming ``token`` otherwise."""
    if not isinstance(token, str) or not _TOKEN_PATTERN.fullmatch(token):
        raise UserInputError(
            "token",
            "this link's participant token is not one this server hands out",
            allowed="the token from your own link, or a new name",
        )
    return token


def token_hash(token: str) -> str:
    """What the store keeps of a token: its SHA-256, so a copy of the store does not let anyone log in."""
    return hashlib.sha256(check_token(token).encode("ascii")).hexdigest()


def register(store: ParticipantRecords, display_name: str) -> tuple[Participant, str]:
    """A new participant with a checked display name, kept in ``store``; returns it and its token."""
    name = validate_display_name(display_name)
    token = new_token()
    participant = Participant(owner="p" + secrets.token_hex(8), display_name=name)
    store.add_participant(token_hash=token_hash(token), owner=participant.owner, display_name=name)
    return participant, token


def find(store: ParticipantRecords, token: str) -> Optional[Participant]:
    """The participant ``token`` belongs to, or None when the store has no such participant."""
    row = store.find_participant(token_hash(token))
    return None if row is None else Participant(owner=row[0], display_name=row[1])


def host_caller(owner: str, secret: str, settings: ServerSettings) -> Caller:
    """A host caller for ``owner`` when ``secret`` is the server's host secret (compared in constant time)."""
    if settings.host_secret is None:
        raise NotAllowedError(
            "host_secret",
            "this server has no host role",
            allowed="start the server with DPEXPLORER_HOST_SECRET or DPEXPLORER_HOST_SECRET_FILE set",
        )
    if not hmac.compare_digest(secret.encode("utf-8"), settings.host_secret.encode("utf-8")):
        raise NotAllowedError(
            "host_secret", "that is not the host secret", allowed="the secret the server was started with"
        )
    return Caller(owner=owner, is_host=True)


def check_may_manage(caller: Optional[Caller], *, run_id: int, run_owner: str, action: str) -> None:
    """Raise NotAllowedError naming the run unless ``caller`` may ``action`` it (None: the store's owner may)."""
    if caller is None or caller.may_manage(run_owner):
        return
    raise NotAllowedError(
        "run",
        f"run {run_id} belongs to another participant, so you cannot {action} it",
        allowed="your own runs; the host can manage every run",
    )


def check_may_manage_owner(caller: Optional[Caller], *, owner: str, action: str) -> None:
    """Raise NotAllowedError unless ``caller`` may ``action`` everything of ``owner`` (their runs and uploads)."""
    if caller is None or caller.may_manage(owner):
        return
    raise NotAllowedError(
        "runs",
        f"these belong to another participant, so you cannot {action} them",
        allowed="your own runs and uploads; the host can manage everyone's",
    )


def check_host(caller: Optional[Caller], *, action: str) -> None:
    """Raise NotAllowedError unless ``caller`` is the host (or None: the store's owner)."""
    if caller is not None and not caller.is_host:
        raise NotAllowedError(
            "host", f"only the host can {action}", allowed="unlock the host role with the server's host secret"
        )
