"""The schema of a CSV run: which columns feed the model, their ranges or categories, and the label's classes.

A ``CsvSchema`` is part of a config: a public declaration, typed by a person (or written in a small
JSON/YAML file), or derived privately from the rows (``dpcore.data.tabular``). It lives at the root,
beside the config that holds it, and only validates and spells values: encoding rows and deriving a
schema are the data room's.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import yaml

from dpcore import safe_io
from dpcore.errors import ConfigError
from dpcore.safe_io import quote, quote_path

SCALES = ("unit", "symmetric")  # numbers scaled to [0, 1] or to [-1, 1]
MAX_CLASSES = 50
MAX_CATEGORIES = 50
MAX_SCHEMA_COLUMNS = 1000
MAX_SCHEMA_BYTES = 256 * 1024
MAX_RANGE = 1e15  # |low|, |high| at most this, so that scaling stays finite in float64
# The name of what is outside a list: a categorical column's slot for unknown values (its feature-name
# suffix), and the class of every label outside the classes when a schema has ``other_class``.
OTHER = "(other)"

MISSING_POLICY = (
    "rows without a label are dropped; a missing or non-numeric value in a numeric column becomes the "
    "middle of its range; a missing value in a categorical column becomes all zeros in its one-hot "
    "columns, an unknown one its 'other' slot; a label outside the classes is the class "
    f"{OTHER!r} when the schema has other_class (a derived schema always does), else refused"
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
    ``classes: [0, 1]`` matches cells "0", "0.0" and "1". With ``other_class`` a label outside
    ``classes`` is one more class, ``OTHER`` (the model's last output), so that every row is kept as
    it is; without, such a label is refused as a mistake in the file or the schema.
    """

    classes: tuple[str, ...]
    numeric: tuple[NumericColumn, ...] = ()
    categorical: tuple[CategoricalColumn, ...] = ()
    scale: str = "unit"
    other_class: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.other_class, bool):
            raise ConfigError(
                "csv_schema.other_class", f"{quote(self.other_class)} is not true or false", allowed="true or false"
            )
        most = MAX_CLASSES - 1 if self.other_class else MAX_CLASSES
        object.__setattr__(self, "classes", _values("csv_schema.classes", self.classes, low=2, high=most))
        if self.other_class and OTHER in self.classes:
            raise ConfigError(
                "csv_schema.classes",
                f"lists {OTHER!r}, which other_class adds for every label outside the classes",
                allowed=f"the classes without {OTHER!r}",
            )
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
    def class_names(self) -> tuple[str, ...]:
        """One name per model output: the classes, then ``OTHER`` when the schema has ``other_class``."""
        return self.classes + ((OTHER,) if self.other_class else ())

    @property
    def num_classes(self) -> int:
        """The model's number of outputs under this schema."""
        return len(self.class_names)

    @property
    def width(self) -> int:
        """The model's input width under this schema."""
        return len(self.numeric) + sum(len(c.categories) + 1 for c in self.categorical)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and mappings for JSON, YAML and share links; ``from_dict`` reads it back.

        ``other_class`` is written only when set, so a schema without it reads as it always has."""
        data: dict[str, Any] = {
            "classes": list(self.classes),
            "numeric": {c.name: [c.low, c.high] for c in self.numeric},
            "categorical": {c.name: list(c.categories) for c in self.categorical},
            "scale": self.scale,
        }
        if self.other_class:
            data["other_class"] = True
        return data

    @classmethod
    def from_dict(cls, data: Any) -> CsvSchema:
        """A schema from ``{"classes": [...], "numeric": {col: [low, high]}, "categorical": {col: [...]},
        "scale": ..., "other_class": ...}`` (a range may also be ``{low: ..., high: ...}``)."""
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
            other_class=data.get("other_class", False),
        )

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_text(cls, text: str, *, filename: str = "") -> CsvSchema:
        """Parse a JSON or YAML schema (JSON is YAML too) with ``safe_io``'s bounded reader: text over
        ``MAX_SCHEMA_BYTES``, deep nesting, aliases and overlong numbers are refused, naming csv_schema."""
        where = f" in {quote_path(filename)}" if filename else ""
        if not isinstance(text, str):
            raise ConfigError("csv_schema", f"expected text, got {type(text).__name__}")
        if len(text) > MAX_SCHEMA_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_SCHEMA_BYTES:
            raise ConfigError(
                "csv_schema",
                f"the schema{where} is too large",
                allowed=f"schema files up to {MAX_SCHEMA_BYTES // 1024} KiB",
            )
        data = safe_io.parse_yaml(
            text,
            field="csv_schema",
            error=ConfigError,
            max_chars=MAX_SCHEMA_BYTES,
            allowed=SCHEMA_KEYS_TEXT,
        )
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise at_line(exc, text) from None


SCHEMA_KEYS = ("classes", "numeric", "categorical", "scale", "other_class")
SCHEMA_KEYS_TEXT = (
    "classes (list), numeric (column: [low, high]), categorical (column: [categories]), scale, other_class"
)


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
    lines += [_entry_line({name: [0, 1]}) + PLACEHOLDER_NOTE for name in features]
    lines += [
        "# categorical: column: [a, b, ...]; any other",
        '# value goes to one "other" slot',
        "categorical: {}",
        "scale: unit  # numbers to [0, 1]; symmetric: [-1, 1]",
    ]
    return "\n".join(lines) + "\n"


def load_schema_file(path: str) -> CsvSchema:
    """Read a JSON or YAML schema file: a regular UTF-8 file of at most ``MAX_SCHEMA_BYTES`` (a pipe or a
    device is refused unopened), parsed by ``CsvSchema.from_text``; any problem is a ConfigError."""
    text = safe_io.read_text_file(path, field="csv_schema", max_bytes=MAX_SCHEMA_BYTES, error=ConfigError)
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


# -- a schema being written: the per-column form and its YAML -----------------------------------

# How a column of the file is used: a numeric or categorical feature, the label, or not at all.
NUMERIC, CATEGORICAL, LABEL, IGNORE = "numeric", "categorical", "label", "ignore"
ROLES = (NUMERIC, CATEGORICAL, LABEL, IGNORE)
# The draft's range for every numeric column: a placeholder a person replaces with what the column can
# hold (a value outside a range is clipped to it: with [0, 1], an age of 63 becomes 1). A line of the
# YAML that still carries this comment and this range is a placeholder; deleting the comment keeps
# [0, 1] as the column's declared range.
PLACEHOLDER_RANGE = (0.0, 1.0)
PLACEHOLDER_NOTE = "  # placeholder"
_PLACEHOLDER_LINE = re.compile(r"^(?P<entry>\s+\S.*?)\s+# placeholder\s*$")
_NOT_USED_PREFIX = "# not used:"


@dataclass(frozen=True)
class ColumnChoice:
    """One row of the schema form: how one column is used and what it can hold.

    ``low``/``high`` are a numeric column's range (both None while it is at the draft's placeholder),
    ``values`` a categorical column's categories or the label's classes, in canonical spelling.
    """

    name: str
    role: str
    low: Optional[float] = None
    high: Optional[float] = None
    values: tuple[str, ...] = ()

    @property
    def is_placeholder(self) -> bool:
        """Whether this numeric column still has the draft's placeholder range rather than a typed one."""
        return self.role == NUMERIC and self.low is None and self.high is None


@dataclass(frozen=True)
class SchemaDraft:
    """A CSV schema as it is being written: one choice per column, kept while still incomplete.

    The form edits it, ``to_text`` renders it as the YAML box's text and ``from_text`` reads typed
    YAML back, so form and text say the same; ``schema()`` is the ``CsvSchema`` a run trains under,
    with errors naming the column.
    """

    columns: tuple[ColumnChoice, ...]
    scale: str = "unit"
    other_class: bool = False

    @property
    def label(self) -> Optional[str]:
        """The label column's name (the first marked label; None if none is)."""
        return next((c.name for c in self.columns if c.role == LABEL), None)

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The numeric columns still at the draft's [0, 1] placeholder range, in column order."""
        return tuple(c.name for c in self.columns if c.is_placeholder)

    def schema(self) -> CsvSchema:
        """The schema this draft declares; a placeholder range counts as [0, 1] (``placeholders`` lists them).

        Refuses, naming the field, no label or more than one, and whatever ``CsvSchema`` refuses."""
        labels = [c.name for c in self.columns if c.role == LABEL]
        if len(labels) != 1:
            raise ConfigError(
                "csv_label",
                "no column is the label" if not labels else f"{len(labels)} columns are marked label",
                allowed="exactly one label column",
            )
        label = next(c for c in self.columns if c.role == LABEL)
        return CsvSchema(
            classes=label.values,
            numeric=tuple(
                NumericColumn(
                    name=c.name,
                    low=PLACEHOLDER_RANGE[0] if c.low is None else c.low,
                    high=PLACEHOLDER_RANGE[1] if c.high is None else c.high,
                )
                for c in self.columns
                if c.role == NUMERIC
            ),
            categorical=tuple(
                CategoricalColumn(name=c.name, categories=c.values) for c in self.columns if c.role == CATEGORICAL
            ),
            scale=self.scale,
            other_class=self.other_class,
        )

    def to_text(self) -> str:
        """The draft as YAML that ``CsvSchema.from_text`` reads as ``schema()``; placeholder ranges keep
        their ``# placeholder`` note and unused columns are listed in a comment."""
        label = next((c for c in self.columns if c.role == LABEL), None)
        lines = [_entry_line({"classes": [_plain(v) for v in (label.values if label else ())]}).strip()]
        numeric = [c for c in self.columns if c.role == NUMERIC]
        lines.append("numeric:" if numeric else "numeric: {}")
        for c in numeric:
            if c.is_placeholder:
                lines.append(_entry_line({c.name: [0, 1]}) + PLACEHOLDER_NOTE)
            else:
                lines.append(_entry_line({c.name: [_plain_number(c.low), _plain_number(c.high)]}))
        categorical = [c for c in self.columns if c.role == CATEGORICAL]
        lines.append("categorical:" if categorical else "categorical: {}")
        lines += [_entry_line({c.name: [_plain(v) for v in c.values]}) for c in categorical]
        lines.append(f"scale: {self.scale}")
        if self.other_class:
            lines.append("other_class: true")
        unused = [c.name for c in self.columns if c.role == IGNORE]
        if unused:
            lines.append(f"{_NOT_USED_PREFIX} {json.dumps(unused, ensure_ascii=False)[1:-1]}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str, *, columns: Sequence[str], label: str) -> SchemaDraft:
        """Read a YAML or JSON schema, complete or not, into one choice per column of the file (``columns``,
        then any the text names that the file lacks); ``label`` is the label column, the text's
        ``classes`` its values. Lines with the ``# placeholder`` note and range [0, 1] stay placeholders.

        A text that does not parse, or a value that cannot be a range or a list, is a ConfigError
        naming the field and its line."""
        data = safe_io.parse_yaml(
            text, field="csv_schema", error=ConfigError, max_chars=MAX_SCHEMA_BYTES, allowed=SCHEMA_KEYS_TEXT
        )
        try:
            return cls._from_data({} if data is None else data, text=text, columns=columns, label=label)
        except ConfigError as exc:
            raise at_line(exc, text) from None

    @classmethod
    def _from_data(cls, data: Any, *, text: str, columns: Sequence[str], label: str) -> SchemaDraft:
        if not isinstance(data, Mapping):
            raise ConfigError("csv_schema", f"expected a mapping, got {type(data).__name__}", allowed=SCHEMA_KEYS_TEXT)
        unknown = sorted(str(k) for k in data if k not in SCHEMA_KEYS)
        if unknown:
            raise ConfigError(schema_field(unknown[0]), "unknown schema key", allowed=SCHEMA_KEYS_TEXT)
        classes = data.get("classes") or ()
        classes = _values("csv_schema.classes", classes, low=0, high=MAX_CLASSES) if classes else ()
        placeholders = placeholder_names(text)
        choices: dict[str, ColumnChoice] = {}
        for name, value in _mapping("csv_schema.numeric", data.get("numeric") or {}).items():
            column = _range_entry(name, value)
            if name in placeholders and (column.low, column.high) == PLACEHOLDER_RANGE:
                choices[column.name] = ColumnChoice(name=column.name, role=NUMERIC)
            else:
                column = _numeric_column(column)
                choices[column.name] = ColumnChoice(name=column.name, role=NUMERIC, low=column.low, high=column.high)
        for name, value in _mapping("csv_schema.categorical", data.get("categorical") or {}).items():
            name = _column_name("categorical", name)
            if name in choices:
                raise ConfigError(
                    schema_field(name),
                    "is named more than once",
                    allowed="each column once, under numeric or categorical",
                )
            values = _values(schema_field("categorical", name), value, low=0, high=MAX_CATEGORIES) if value else ()
            choices[name] = ColumnChoice(name=name, role=CATEGORICAL, values=values)
        if label in choices:
            raise ConfigError(
                schema_field(choices[label].role, label),
                "is the label column, so it cannot also be a feature",
                allowed="the label's values under classes",
            )
        names = list(dict.fromkeys([*columns, *choices]))
        rows = tuple(
            ColumnChoice(name=name, role=LABEL, values=classes)
            if name == label
            else choices.get(name, ColumnChoice(name=name, role=IGNORE))
            for name in names
        )
        scale = data.get("scale", "unit")
        if scale not in SCALES:
            raise ConfigError(
                "csv_schema.scale",
                f"{quote(scale)} is not a known scale",
                allowed="unit ([0, 1]) or symmetric ([-1, 1])",
            )
        other = data.get("other_class", False)
        if not isinstance(other, bool):
            raise ConfigError("csv_schema.other_class", f"{quote(other)} is not true or false", allowed="true or false")
        return cls(columns=rows, scale=scale, other_class=other)

    def with_column(self, choice: ColumnChoice) -> SchemaDraft:
        """This draft with the row of ``choice.name`` replaced by ``choice`` (a form edit)."""
        if choice.role not in ROLES:
            raise ConfigError(
                schema_field(choice.name), f"{quote(choice.role)} is not a column type", allowed=", ".join(ROLES)
            )
        if choice.name not in [c.name for c in self.columns]:
            raise ConfigError(schema_field(choice.name), "is not a column of this schema", allowed="the file's columns")
        if choice.role == NUMERIC and (choice.low is None) != (choice.high is None):
            raise ConfigError(
                schema_field(NUMERIC, choice.name),
                "has only one end of its range",
                allowed="both low and high, or neither to keep the [0, 1] placeholder",
            )
        if choice.role == NUMERIC and choice.low is not None:
            checked = _numeric_column(NumericColumn(name=choice.name, low=choice.low, high=choice.high))  # type: ignore[arg-type]
            choice = ColumnChoice(name=choice.name, role=NUMERIC, low=checked.low, high=checked.high)
        elif choice.role in (CATEGORICAL, LABEL):
            field = "csv_schema.classes" if choice.role == LABEL else schema_field(CATEGORICAL, choice.name)
            top = MAX_CLASSES if choice.role == LABEL else MAX_CATEGORIES
            choice = ColumnChoice(
                name=choice.name, role=choice.role, values=_values(field, choice.values, low=0, high=top)
            )
        else:
            choice = ColumnChoice(name=choice.name, role=choice.role)
        return SchemaDraft(
            columns=tuple(choice if c.name == choice.name else c for c in self.columns),
            scale=self.scale,
            other_class=self.other_class,
        )


def placeholder_names(text: str) -> frozenset[str]:
    """The column names on lines of ``text`` that carry the ``# placeholder`` note (their range is checked by the caller)."""
    names = set()
    for line in text.splitlines():
        match = _PLACEHOLDER_LINE.match(line)
        if not match:
            continue
        try:
            entry = safe_io.parse_yaml(match["entry"].strip(), field="csv_schema", error=ConfigError, max_chars=4096)
        except ConfigError:
            continue
        if isinstance(entry, Mapping) and len(entry) == 1:
            names.add(str(next(iter(entry))))
    return frozenset(names)


def split_values(text: str) -> tuple[str, ...]:
    """Comma-separated values as typed in the form (categories, classes), blanks dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def at_line(exc: ConfigError, text: str) -> ConfigError:
    """``exc`` with the line of ``text`` that holds the field it names (a column, ``classes``), when one does."""
    key = exc.field.rsplit(".", 1)[-1] if exc.field != "csv_schema" else ""
    if key.startswith('"') or not key or " line " in exc.message:
        return exc
    pattern = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*:")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return ConfigError(exc.field, f"{exc.message} at line {number}", allowed=exc.allowed)
    return exc


def _entry_line(entry: Mapping[str, Any]) -> str:
    """One ``name: [...]`` line of YAML, indented under its section, in flow style."""
    return "  " + yaml.safe_dump(dict(entry), default_flow_style=None, allow_unicode=True, width=10**6).strip()


def _plain_number(value: Optional[float]) -> Any:
    """A whole float as an int (29.0 as 29), so the YAML reads as typed."""
    if value is not None and float(value).is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _plain(spelling: str) -> Any:
    """A canonical value as YAML should write it: a number as a number, text as text (quoted by YAML if needed)."""
    number = parse_number(spelling)
    if number is not None and canonical(number) == spelling:
        return _plain_number(number)
    if spelling in ("true", "false"):
        return spelling == "true"
    return spelling
