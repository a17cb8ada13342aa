"""Encode a DPConfig into URL query parameters and back, so a link carries a whole config."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Union
from urllib.parse import urlencode, urlsplit, urlunsplit

from dpcore.config import DPConfig, FIELD_NAMES, SCHEMA_VERSION, check_schema_version
from dpcore.errors import ConfigError

# The parameter that marks a query string as a shared config (and carries the schema version).
MARKER = "dpx"
# Query parameters Streamlit itself reads; a link may carry them beside a config.
_STREAMLIT_PARAMS = frozenset({"embed", "embed_options"})

_TYPES: dict[str, Any] = {f.name: f.type for f in dataclasses.fields(DPConfig)}


def encode(config: DPConfig) -> dict[str, str]:
    """Every field of ``config`` as a string, plus the marker; fields that are None are left out."""
    params = {MARKER: str(SCHEMA_VERSION)}
    for name, value in dataclasses.asdict(config).items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, float):
            params[name] = repr(value)
        else:
            params[name] = str(value)
    return params


def is_shared(params: Mapping[str, Any]) -> bool:
    """Whether a query string carries a shared config."""
    return MARKER in params


def decode(params: Mapping[str, Union[str, list[str]]]) -> DPConfig:
    """The DPConfig in ``params`` (missing fields take their defaults, also in links of an older
    schema version); bad values name the field."""
    check_schema_version(_single(params.get(MARKER, str(SCHEMA_VERSION))))
    values: dict[str, Any] = {}
    for name, raw in params.items():
        if name == MARKER or name in _STREAMLIT_PARAMS:
            continue
        if name not in FIELD_NAMES:
            raise ConfigError(name, "unknown parameter in the link", allowed=", ".join(sorted(FIELD_NAMES)))
        values[name] = _parse(name, _single(raw))
    return DPConfig(**values)


def share_url(base_url: str, config: DPConfig) -> str:
    """``base_url`` (its path kept, its query and fragment replaced) carrying ``config``."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(encode(config)), ""))


def _single(raw: Union[str, list[str]]) -> str:
    if isinstance(raw, (list, tuple)):
        return str(raw[-1]) if raw else ""
    return str(raw)


def _parse(name: str, text: str) -> Any:
    kind = str(_TYPES[name])
    text = text.strip()
    if "Optional" in kind and text.lower() in ("", "none", "null"):
        return None
    if "bool" in kind:
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ConfigError(name, f"{text!r} is not true or false", allowed="true, false")
    if "int" in kind:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(name, f"{text!r} is not a whole number") from None
    if "float" in kind:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(name, f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise ConfigError(name, f"{text!r} is not a finite number")
        return value
    return text


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
