"""Encode a DPConfig into URL query parameters and back, so a link carries a whole config.

A link names a CSV file by the file's own name (``heart.csv``), never by its path on the server: it
carries the settings, the label column and the schema, not the data, and whoever opens it is asked
for the file unless it is theirs (``app_state.restore_paths``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union
from urllib.parse import urlencode, urlsplit, urlunsplit

from dpcore.config import FIELD_NAMES, SCHEMA_VERSION, DPConfig, check_schema_version, parse_field
from dpcore.errors import ConfigError
from dpcore.export.files import file_name_only
from dpcore.room.participants import TOKEN_PARAM
from dpcore.safe_io import quote

# The parameter that marks a query string as a shared config (and carries the schema version).
MARKER = "dpx"
# Query parameters Streamlit itself reads, and the participant token the app keeps in the URL
# (never part of a shared config); a link may carry them beside a config.
_STREAMLIT_PARAMS = frozenset({"embed", "embed_options", TOKEN_PARAM})


def encode(config: DPConfig) -> dict[str, str]:
    """Every field of ``config`` as a string, plus the marker; fields that are None are left out.

    A CSV schema travels as compact JSON in its one parameter.
    """
    params = {MARKER: str(SCHEMA_VERSION)}
    for name, value in config.to_dict().items():
        if value is None or name == "schema_version":
            continue
        if isinstance(value, Mapping):
            params[name] = json.dumps(value, separators=(",", ":"), allow_nan=False)
        elif isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, float):
            params[name] = repr(value)
        else:
            params[name] = str(value)
    return params


def is_shared(params: Mapping[str, Any]) -> bool:
    """Whether a query string carries a shared config."""
    return MARKER in params


@dataclass(frozen=True)
class SharedLink:
    """What a link carried: its config, and the names of parameters that are not config fields (ignored)."""

    config: DPConfig
    ignored: tuple[str, ...] = ()


def decode(params: Mapping[str, Union[str, list[str]]]) -> DPConfig:
    """The DPConfig in ``params`` (missing fields take their defaults, also in links of an older
    schema version); bad values and unknown names name the field."""
    return _decode(params, ignore_unknown=False).config


def decode_link(params: Mapping[str, Union[str, list[str]]]) -> SharedLink:
    """Like ``decode``, for a link someone opened: parameters that are not config fields (a tracking
    ``fbclid``, say) are ignored and listed, quoted, in ``ignored``, so the page can say what it left out."""
    return _decode(params, ignore_unknown=True)


def _decode(params: Mapping[str, Union[str, list[str]]], *, ignore_unknown: bool) -> SharedLink:
    check_schema_version(_single(params.get(MARKER, str(SCHEMA_VERSION))))
    values: dict[str, Any] = {}
    ignored: list[str] = []
    for name, raw in params.items():
        if name == MARKER or name in _STREAMLIT_PARAMS:
            continue
        if name not in FIELD_NAMES and ignore_unknown:
            ignored.append(quote(str(name)))
            continue
        if name not in FIELD_NAMES:
            raise ConfigError(
                quote(str(name))[1:-1], "unknown parameter in the link", allowed=", ".join(sorted(FIELD_NAMES))
            )
        values[name] = parse_field(name, _single(raw))
    return SharedLink(config=DPConfig(**values), ignored=tuple(ignored))


def share_url(base_url: str, config: DPConfig) -> str:
    """``base_url`` (its path kept, its query and fragment replaced) carrying ``config``, its CSV file by name only."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(encode(file_name_only(config))), ""))


def _single(raw: Union[str, list[str]]) -> str:
    if isinstance(raw, (list, tuple)):
        return str(raw[-1]) if raw else ""
    return str(raw)


def base_of(url: Optional[str], page_paths: tuple[str, ...] = ()) -> str:
    """The app's root URL from a page URL: drops a trailing page path such as ``/export``."""
    if not url:
        return "http://localhost:8501/"
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    for page in page_paths:
        if path.endswith("/" + page):
            path = path[: -len(page) - 1]
            break
    return urlunsplit((parts.scheme, parts.netloc, path + "/", "", ""))
