"""The schema of a CSV run: which columns feed the model, their ranges or categories, and the label's classes.

A ``CsvSchema`` is part of a config: a public declaration, typed by a person (or written in a small
JSON/YAML file), or derived privately from the rows (``dpcore.data.tabular``). It lives at the root,
beside the config that holds it, and only validates and spells values: encoding rows and deriving a
schema are the data room's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import yaml

from dpcore.errors import ConfigError
from dpcore.safe_io import quote, quote_path

SCALES = ("unit", "symmetric")  # numbers scaled to [0, 1] or to [-1, 1]
MAX_CLASSES = 50
MAX_CATEGORIES = 50
MAX_SCHEMA_COLUMNS = 1000
MAX_SCHEMA_BYTES = 256 * 1024
MAX_RANGE = 1e15  # |low|, |high| at most this, so that scaling stays finite in float64
OTHER = "(other)"  # the feature-name suffix of a categorical column's slot for unknown values

MISSING_POLICY = (
    "rows without a label are dropped; a missing or non-numeric value in a numeric column becomes the "
    "middle of its range; a missing value in a categorical column becomes all zeros in its one-hot "
    "columns, an unknown one its 'other' slot; a label outside the classes is refused"
)

# -- the schema ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericColumn:
    """A numeric feature: values are clipped to [low, high], then scaled."""

    name: str
    low: float
    high: float


@dataclass(frozen=True)
class CategoricalColumn:
    """A categorical feature: one-hot over ``categories``, plus one slot for any other value."""

    name: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class CsvSchema:
    """The public description of a CSV file's features and classes; columns not named are not used.

    Classes and categories are kept in one spelling per value (see ``canonical``), so the YAML
    ``classes: [0, 1]`` matches cells "0", "0.0" and "1".
    """

    classes: tuple[str, ...]
    numeric: tuple[NumericColumn, ...] = ()
    categorical: tuple[CategoricalColumn, ...] = ()
    scale: str = "unit"

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", _values("csv_schema.classes", self.classes, low=2, high=MAX_CLASSES))
        numeric = tuple(_numeric_column(c) for c in _sequence("csv_schema.numeric", self.numeric))
        categorical = tuple(_categorical_column(c) for c in _sequence("csv_schema.categorical", self.categorical))
        object.__setattr__(self, "numeric", numeric)
        object.__setattr__(self, "categorical", categorical)
        if self.scale not in SCALES:
            raise ConfigError(
                "csv_schema.scale",
                f"{quote(self.scale)} is not a known scale",
                allowed="unit ([0, 1]) or symmetric ([-1, 1])",
            )
        names = [c.name for c in numeric] + [c.name for c in categorical]
        if not names:
            raise ConfigError(
                "csv_schema", "names no feature column", allowed="at least one column under numeric or categorical"
            )
        if len(names) > MAX_SCHEMA_COLUMNS:
            raise ConfigError("csv_schema", f"names {len(names)} columns", allowed=f"at most {MAX_SCHEMA_COLUMNS}")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(
                schema_field(twice[0]),
                "is named more than once",
                allowed="each column once, under numeric or categorical",
            )

    @property
    def columns(self) -> tuple[str, ...]:
        """The feature columns the schema uses, numeric first."""
        return tuple(c.name for c in self.numeric) + tuple(c.name for c in self.categorical)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """One name per model input: numeric columns, then ``column=category`` and ``column=(other)``."""
        return tuple(c.name for c in self.numeric) + tuple(
            f"{c.name}={value}" for c in self.categorical for value in (*c.categories, OTHER)
        )

    @property
    def width(self) -> int:
        """The model's input width under this schema."""
        return len(self.numeric) + sum(len(c.categories) + 1 for c in self.categorical)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and mappings for JSON, YAML and share links; ``from_dict`` reads it back."""
        return {
            "classes": list(self.classes),
            "numeric": {c.name: [c.low, c.high] for c in self.numeric},
            "categorical": {c.name: list(c.categories) for c in self.categorical},
            "scale": self.scale,
        }

    @classmethod
    def from_dict(cls, data: Any) -> CsvSchema:
        """A schema from ``{"classes": [...], "numeric": {col: [low, high]}, "categorical": {col: [...]},
        "scale": ...}`` (a range may also be ``{low: ..., high: ...}``)."""
        if not isinstance(data, Mapping):
            raise ConfigError("csv_schema", f"expected a mapping, got {type(data).__name__}", allowed=SCHEMA_KEYS_TEXT)
        unknown = sorted(str(k) for k in data if k not in SCHEMA_KEYS)
        if unknown:
            raise ConfigError(schema_field(unknown[0]), "unknown schema key", allowed=SCHEMA_KEYS_TEXT)
        if "classes" not in data:
            raise ConfigError("csv_schema.classes", "is missing", allowed="the list of the label's classes")
        numeric = _mapping("csv_schema.numeric", data.get("numeric") or {})
        categorical = _mapping("csv_schema.categorical", data.get("categorical") or {})
        return cls(
            classes=data["classes"],
            numeric=tuple(_range_entry(name, value) for name, value in numeric.items()),
            categorical=tuple(CategoricalColumn(name=name, categories=value) for name, value in categorical.items()),
            scale=data.get("scale", "unit"),
        )

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_text(cls, text: str, *, filename: str = "") -> CsvSchema:
        """Parse a JSON or YAML schema (JSON is YAML too); refuses text over ``MAX_SCHEMA_BYTES``."""
        where = f" in {filename}" if filename else ""
        if len(text.encode("utf-8", "surrogatepass")) > MAX_SCHEMA_BYTES:
            raise ConfigError(
                "csv_schema",
                f"the schema{where} is too large",
                allowed=f"schema files up to {MAX_SCHEMA_BYTES // 1024} KiB",
            )
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError("csv_schema", f"not valid JSON or YAML{where}: {str(exc).splitlines()[0]}") from None
        return cls.from_dict(data)


SCHEMA_KEYS = ("classes", "numeric", "categorical", "scale")
SCHEMA_KEYS_TEXT = "classes (list), numeric (column: [low, high]), categorical (column: [categories]), scale"


def draft_schema_text(columns: Sequence[str], *, label: str) -> str:
    """A YAML schema to fill in, built from public facts only: the header's column names and the label's name.

    Nothing in it comes from the rows, so it cannot leak them; its placeholders (no classes, every
    feature numeric in [0, 1]) are for a person to replace, and the empty classes list is refused
    until they do.
    """
    features = [c for c in columns if c != label]
    lines = [
        "# A draft from the column names only: replace",
        "# the placeholders with what each column can",
        "# hold. Move text columns under categorical;",
        "# delete a column's line to leave it out.",
        f"# classes: the values of {json.dumps(label, ensure_ascii=False)}, e.g. [cat, dog]",
        "classes: []",
        "# numeric: column: [low, high]; clipped, scaled",
        "numeric:",
    ]
    lines += [
        "  " + yaml.safe_dump({name: [0, 1]}, default_flow_style=None, allow_unicode=True, width=10**6).strip()
        for name in features
    ]
    lines += [
        "# categorical: column: [a, b, ...]; any other",
        '# value goes to one "other" slot',
        "categorical: {}",
        "scale: unit  # numbers to [0, 1]; symmetric: [-1, 1]",
    ]
    return "\n".join(lines) + "\n"


def load_schema_file(path: str) -> CsvSchema:
    """Read a JSON or YAML schema file; a missing, unreadable or oversized file is a ConfigError."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SCHEMA_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("csv_schema", f"file {quote_path(path)} does not exist") from None
    except OSError as exc:
        raise ConfigError("csv_schema", f"cannot read {quote_path(path)}: {exc}") from None
    if len(raw) > MAX_SCHEMA_BYTES:
        raise ConfigError(
            "csv_schema",
            f"{quote_path(path)} is too large",
            allowed=f"schema files up to {MAX_SCHEMA_BYTES // 1024} KiB",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(
            "csv_schema", f"{quote_path(path)} is not UTF-8 text", allowed="a JSON or YAML file"
        ) from None
    return CsvSchema.from_text(text, filename=path)


def canonical(value: Any) -> Optional[str]:
    """The one spelling of a cell or declared value: numbers as "1", "0.5", "1e+20"; true/false lower-case.

    None for a missing value (None, NaN, blank). Applied cell by cell, so a value's spelling never
    depends on the other rows (pandas' column types do).
    """
    if value is None or isinstance(value, bool):
        return None if value is None else ("true" if value else "false")
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return None
    text = str(value).strip()
    if not text:
        return None
    if text.lower() in ("true", "false"):
        return text.lower()
    number = parse_number(text)
    if number is None:
        return text
    if math.isnan(number):
        return None
    if math.isfinite(number) and number == int(number) and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def parse_number(text: str) -> Optional[float]:
    if "_" in text:  # Python reads "1_000"; a CSV reader would not
        return None
    try:
        return float(text)
    except ValueError:
        return None


def number_of(spelling: Optional[str]) -> float:
    """The number a canonical spelling stands for (true = 1, false = 0), NaN if none."""
    if spelling is None:
        return math.nan
    if spelling in ("true", "false"):
        return 1.0 if spelling == "true" else 0.0
    number = parse_number(spelling)
    return math.nan if number is None else number


def _values(field: str, values: Any, *, low: int, high: int) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(
            field, f"expected a list, got {type(values).__name__}", allowed=f"a list of {low} to {high} values"
        )
    spelled = []
    for value in values:
        if isinstance(value, (Mapping, list, tuple)):
            raise ConfigError(field, f"{quote(value)} is not a single value", allowed="text or numbers")
        text = canonical(value)
        if text is None:
            raise ConfigError(field, "holds an empty value", allowed="non-empty text or numbers")
        spelled.append(text)
    if not low <= len(spelled) <= high:
        raise ConfigError(field, f"lists {len(spelled)} values", allowed=f"{low} to {high}")
    twice = sorted({v for v in spelled if spelled.count(v) > 1})
    if twice:
        raise ConfigError(field, f"lists {quote(twice[0])} more than once", allowed="each value once")
    return tuple(spelled)


def _sequence(field: str, value: Any) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ConfigError(field, f"expected a list of columns, got {type(value).__name__}")
    return tuple(value)


def _mapping(field: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            field,
            f"expected a mapping of column names, got {type(value).__name__}",
            allowed="column: [low, high]" if field.endswith("numeric") else "column: [categories]",
        )
    return value


def schema_field(*path: Any) -> str:
    """The field name of a place in a CSV schema (``csv_schema.numeric.age``); a name that is not plain
    short text (a line break, a control character, hundreds of characters) appears quoted."""
    parts = ["csv_schema"]
    for part in path:
        text = str(part)
        plain = text.isprintable() and 0 < len(text) <= 60 and text == text.strip()
        parts.append(text if plain else quote(part))
    return ".".join(parts)


def _column_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(
            f"csv_schema.{kind}", f"{quote(name)} is not a column name", allowed="the text of a header cell"
        )
    return name


def _range_entry(name: Any, value: Any) -> NumericColumn:
    field = schema_field("numeric", name)
    if isinstance(value, Mapping) and set(value) == {"low", "high"}:
        value = [value["low"], value["high"]]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(field, f"{quote(value)} is not a range", allowed="[low, high]")
    return NumericColumn(name=name, low=value[0], high=value[1])


def _numeric_column(column: Any) -> NumericColumn:
    if not isinstance(column, NumericColumn):
        raise ConfigError("csv_schema.numeric", f"{quote(column)} is not a NumericColumn")
    name = _column_name("numeric", column.name)
    field = schema_field("numeric", name)
    bounds = []
    for bound in (column.low, column.high):
        if isinstance(bound, bool) or not isinstance(bound, (int, float, np.integer, np.floating)):
            raise ConfigError(field, f"{quote(bound)} is not a number", allowed="[low, high] with low < high")
        if not math.isfinite(bound) or abs(bound) > MAX_RANGE:
            raise ConfigError(field, f"{quote(bound)} is out of range", allowed=f"finite numbers within ±{MAX_RANGE:g}")
        bounds.append(float(bound))
    if not bounds[0] < bounds[1]:
        raise ConfigError(
            field, f"low {bounds[0]:g} is not below high {bounds[1]:g}", allowed="[low, high] with low < high"
        )
    return NumericColumn(name=name, low=bounds[0], high=bounds[1])


def _categorical_column(column: Any) -> CategoricalColumn:
    if not isinstance(column, CategoricalColumn):
        raise ConfigError("csv_schema.categorical", f"{quote(column)} is not a CategoricalColumn")
    name = _column_name("categorical", column.name)
    return CategoricalColumn(
        name=name, categories=_values(schema_field("categorical", name), column.categories, low=1, high=MAX_CATEGORIES)
    )
