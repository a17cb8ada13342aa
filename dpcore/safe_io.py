"""Reading what people hand us, within bounds: checked paths, capped files, shallow JSON/YAML, short quotes.

Every check here fails with a ``UserInputError`` (or the subclass the caller names) whose one-line
text names the field, so a config file, an upload or a share link that is not what it claims (a
device, a folder, a NUL byte, a 100,000-deep nesting, a YAML alias bomb) costs a message, not a
crash, a frozen worker or gigabytes of memory.
"""

from __future__ import annotations

import json
import os
import reprlib
import stat
from typing import Any, Optional

import yaml

from dpcore.errors import UserInputError

# A config is a few hundred bytes; this leaves room for comments without letting a file balloon.
MAX_CONFIG_BYTES = 64 * 1024
# A config is one flat mapping; anything deeper than this is not a config.
MAX_NESTING = 20
MAX_PATH_CHARS = 4096
# How much of a bad value an error message repeats (a file path: more, it must stay recognisable).
QUOTE_CHARS = 60
PATH_CHARS = 200

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = 4
_REPR.maxstring = _REPR.maxother = QUOTE_CHARS
_REPR.maxlong = 40


def quote(value: Any, *, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, at bounded cost for any value (huge or nested)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<a number of about {int(value.bit_length() * 0.30103) + 1} digits>"
    if isinstance(value, str):
        text = repr(value[:limit])
        return text[: limit - 1] + "…" if len(text) > limit or len(value) > limit else text
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is still named by its type
        text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def quote_path(path: Any) -> str:
    """A file path for a message: quoted like ``quote`` but kept longer, so it stays recognisable."""
    return quote(str(path) if isinstance(path, os.PathLike) else path, limit=PATH_CHARS)


def check_path(path: Any, *, field: str, error: type[UserInputError] = UserInputError) -> str:
    """``path`` as a string, refused when it is empty, too long or holds a NUL byte (which no OS path can)."""
    if not isinstance(path, str) or not path.strip():
        raise error(field, f"{quote_path(path)} is not a file path", allowed="a file path")
    if "\x00" in path:
        raise error(field, f"{quote_path(path)} holds a NUL byte, which no file path can", allowed="a file path")
    if len(path) > MAX_PATH_CHARS:
        raise error(
            field, f"the path is {len(path)} characters long", allowed=f"paths up to {MAX_PATH_CHARS} characters"
        )
    return path


def regular_file_stat(
    path: Any, *, field: str, max_bytes: int, error: type[UserInputError] = UserInputError
) -> os.stat_result:
    """The stat of ``path`` after checking it names an existing regular file of at most ``max_bytes``."""
    path = check_path(path, field=field, error=error)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(field, f"file {quote_path(path)} does not exist") from None
    except OSError as exc:
        raise error(field, f"cannot read {quote_path(path)}: {exc.strerror or type(exc).__name__}") from None
    _check_regular(info, path, field=field, max_bytes=max_bytes, error=error)
    return info


def read_file_bytes(path: Any, *, field: str, max_bytes: int, error: type[UserInputError] = UserInputError) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; devices, pipes and folders are refused unopened."""
    path = check_path(path, field=field, error=error)
    regular_file_stat(path, field=field, max_bytes=max_bytes, error=error)
    try:
        # O_NONBLOCK: should the path have become a pipe since the check, open does not hang.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise error(field, f"cannot read {quote_path(path)}: {exc.strerror or type(exc).__name__}") from None
    with os.fdopen(fd, "rb") as handle:
        _check_regular(os.fstat(fd), path, field=field, max_bytes=max_bytes, error=error)
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise error(field, f"{quote_path(path)} is too large", allowed=_size_text(max_bytes))
    return raw


def read_text_file(
    path: Any, *, field: str, max_bytes: int = MAX_CONFIG_BYTES, error: type[UserInputError] = UserInputError
) -> str:
    """A small UTF-8 text file (a config), read with the checks of ``read_file_bytes``."""
    raw = read_file_bytes(path, field=field, max_bytes=max_bytes, error=error)
    return decode_text(raw, field=field, name=quote_path(path), error=error)


def decode_text(
    raw: bytes, *, field: str, name: str, fallback: Optional[str] = None, error: type[UserInputError] = UserInputError
) -> str:
    """UTF-8 text (a BOM allowed), else ``fallback``'s decoding if given; UTF-16 and binary are refused,
    saying which."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise error(field, f"{name} is UTF-16 text", allowed="UTF-8 text; save the file as UTF-8")
    if b"\x00" in raw[:65536]:
        raise error(field, f"{name} is binary, not a text file", allowed="UTF-8 text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if fallback:
            return raw.decode(fallback)
        raise error(field, f"{name} is not UTF-8 text (byte {exc.start})", allowed="UTF-8 text") from None


def parse_json(text: str, *, field: str, error: type[UserInputError] = UserInputError) -> Any:
    """JSON text of bounded size and nesting; any failure is one line naming ``field``."""
    _check_text_size(text, field=field, error=error)
    depth = _bracket_depth(text)
    if depth > MAX_NESTING:
        raise error(field, f"nested {depth} levels deep", allowed=f"at most {MAX_NESTING} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(field, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more digits than Python converts
        raise error(field, f"not valid JSON: {quote(str(exc))}") from None


def parse_yaml(text: str, *, field: str, error: type[UserInputError] = UserInputError) -> Any:
    """YAML text of bounded size and nesting, safe tags only and no aliases (no expansion bombs)."""
    _check_text_size(text, field=field, error=error)
    loader = None
    try:
        loader = _ConfigLoader(text)  # its reader already refuses control characters
        return loader.get_single_data()
    except _Refused as exc:
        raise error(field, str(exc), allowed="a plain YAML mapping of config keys to values") from None
    except yaml.MarkedYAMLError as exc:
        where = (
            f" at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
            if exc.problem_mark is not None
            else ""
        )
        raise error(field, f"not valid YAML: {quote(exc.problem or exc.context or '', limit=120)}{where}") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise error(
            field, f"not valid YAML: {quote(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


class _Refused(Exception):
    """Raised inside the YAML loader for input a config never needs."""


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (``*name``: the way to build an expansion bomb) and deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                f"YAML aliases are not allowed (*{quote(event.anchor)[1:-1]} at line {event.start_mark.line + 1})"
            )
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _Refused(f"nested more than {MAX_NESTING} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_text_size(text: str, *, field: str, error: type[UserInputError]) -> None:
    if not isinstance(text, str):
        raise error(field, f"expected text, got {type(text).__name__}")
    if len(text) > MAX_CONFIG_BYTES:
        raise error(field, f"the text is {len(text):,} characters long", allowed=_size_text(MAX_CONFIG_BYTES))


def _bracket_depth(text: str) -> int:
    """The deepest nesting of [ and { outside JSON strings (a scan, so it never recurses)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_NESTING:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _check_regular(info: os.stat_result, path: str, *, field: str, max_bytes: int, error: type[UserInputError]) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise error(field, f"{quote_path(path)} is not a file (it is a folder)")
    if not stat.S_ISREG(info.st_mode):
        raise error(
            field, f"{quote_path(path)} is not a regular file (a device, pipe or socket)", allowed="a regular file"
        )
    if info.st_size > max_bytes:
        raise error(field, f"{quote_path(path)} is {_size(info.st_size)}, too large", allowed=_size_text(max_bytes))


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def _size_text(max_bytes: int) -> str:
    return f"files up to {_size(max_bytes)}"
