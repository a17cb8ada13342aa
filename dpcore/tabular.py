"""CSV preprocessing that one record cannot move: a public schema, or one derived privately and paid for.

A model trained on a CSV file sees features made by a ``CsvSchema``: each numeric column clipped to a
range [low, high] and scaled to [0, 1] (or [-1, 1]), each categorical column one-hot over its list of
categories plus one "other" slot, and the label mapped onto a list of classes. Nothing in a schema is
fitted on the private rows, so adding or removing one record changes no other record's features and
never the model's input width. A schema is declared by a person (typed values, a small JSON/YAML
file, or saved in the config), or derived from the training rows by ``derive_schema``: noisy,
thresholded counts whose cost ``dpcore.accounting`` composes with training's into the run's ε.
"""
from __future__ import annotations

import json
import math
import secrets
import statistics
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import yaml

from dpcore.errors import ConfigError, DatasetError
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

# The public grid of the private range estimate: bins with edges at ±10^(k/4) from 1e-3 to 1e9, a
# bin [-1e-3, 1e-3) around zero and outer bins reaching ±1e12 (numbers beyond are clipped).
GRID_STEPS_PER_DECADE = 4
_MAGNITUDES = 10.0 ** (np.arange(-3 * GRID_STEPS_PER_DECADE, 9 * GRID_STEPS_PER_DECADE + 1) / GRID_STEPS_PER_DECADE)
GRID_EDGES = np.concatenate([[-1e12], -_MAGNITUDES[::-1], _MAGNITUDES, [1e12]])
# Keeps the preprocessing noise apart from the training noise drawn from the same seed.
PREPROCESSING_STREAM = 0x5C4E3A


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
            raise ConfigError("csv_schema.scale", f"{quote(self.scale)} is not a known scale",
                              allowed="unit ([0, 1]) or symmetric ([-1, 1])")
        names = [c.name for c in numeric] + [c.name for c in categorical]
        if not names:
            raise ConfigError("csv_schema", "names no feature column",
                              allowed="at least one column under numeric or categorical")
        if len(names) > MAX_SCHEMA_COLUMNS:
            raise ConfigError("csv_schema", f"names {len(names)} columns", allowed=f"at most {MAX_SCHEMA_COLUMNS}")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(schema_field(twice[0]), "is named more than once",
                              allowed="each column once, under numeric or categorical")

    @property
    def columns(self) -> tuple[str, ...]:
        """The feature columns the schema uses, numeric first."""
        return tuple(c.name for c in self.numeric) + tuple(c.name for c in self.categorical)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """One name per model input: numeric columns, then ``column=category`` and ``column=(other)``."""
        return tuple(c.name for c in self.numeric) + tuple(
            f"{c.name}={value}" for c in self.categorical for value in (*c.categories, OTHER))

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
    def from_dict(cls, data: Any) -> "CsvSchema":
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
    def from_text(cls, text: str, *, filename: str = "") -> "CsvSchema":
        """Parse a JSON or YAML schema (JSON is YAML too); refuses text over ``MAX_SCHEMA_BYTES``."""
        where = f" in {filename}" if filename else ""
        if len(text.encode("utf-8", "surrogatepass")) > MAX_SCHEMA_BYTES:
            raise ConfigError("csv_schema", f"the schema{where} is too large",
                              allowed=f"schema files up to {MAX_SCHEMA_BYTES // 1024} KiB")
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
    lines += ["  " + yaml.safe_dump({name: [0, 1]}, default_flow_style=None, allow_unicode=True, width=10**6).strip()
              for name in features]
    lines += ["# categorical: column: [a, b, ...]; any other",
              "# value goes to one \"other\" slot",
              "categorical: {}",
              "scale: unit  # numbers to [0, 1]; symmetric: [-1, 1]"]
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
        raise ConfigError("csv_schema", f"{quote_path(path)} is too large",
                          allowed=f"schema files up to {MAX_SCHEMA_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError("csv_schema", f"{quote_path(path)} is not UTF-8 text", allowed="a JSON or YAML file") from None
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
    number = _parse_number(text)
    if number is None:
        return text
    if math.isnan(number):
        return None
    if math.isfinite(number) and number == int(number) and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def _parse_number(text: str) -> Optional[float]:
    if "_" in text:  # Python reads "1_000"; a CSV reader would not
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _number(spelling: Optional[str]) -> float:
    """The number a canonical spelling stands for (true = 1, false = 0), NaN if none."""
    if spelling is None:
        return math.nan
    if spelling in ("true", "false"):
        return 1.0 if spelling == "true" else 0.0
    number = _parse_number(spelling)
    return math.nan if number is None else number


def _values(field: str, values: Any, *, low: int, high: int) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(field, f"expected a list, got {type(values).__name__}",
                          allowed=f"a list of {low} to {high} values")
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
        raise ConfigError(field, f"expected a mapping of column names, got {type(value).__name__}",
                          allowed="column: [low, high]" if field.endswith("numeric") else "column: [categories]")
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
        raise ConfigError(f"csv_schema.{kind}", f"{quote(name)} is not a column name", allowed="the text of a header cell")
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
        raise ConfigError(field, f"low {bounds[0]:g} is not below high {bounds[1]:g}",
                          allowed="[low, high] with low < high")
    return NumericColumn(name=name, low=bounds[0], high=bounds[1])


def _categorical_column(column: Any) -> CategoricalColumn:
    if not isinstance(column, CategoricalColumn):
        raise ConfigError("csv_schema.categorical", f"{quote(column)} is not a CategoricalColumn")
    name = _column_name("categorical", column.name)
    return CategoricalColumn(name=name, categories=_values(schema_field("categorical", name), column.categories,
                                                           low=1, high=MAX_CATEGORIES))


# -- applying a schema -------------------------------------------------------------------------


def cells(series: Any) -> np.ndarray:
    """The canonical spelling of each cell of a pandas column (None where missing), as an object array."""
    return _per_value(series, canonical, missing=None, dtype=object)


def numbers(series: Any) -> np.ndarray:
    """The number in each cell of a pandas column (true = 1, false = 0), NaN where missing or not a number."""
    return _per_value(series, lambda value: _number(canonical(value)), missing=math.nan, dtype=np.float64)


def _per_value(series: Any, convert: Any, *, missing: Any, dtype: Any) -> np.ndarray:
    """``convert`` applied to each distinct value of a column once, then spread over its cells."""
    import pandas as pd

    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return np.array([convert(u) for u in uniques] + [missing], dtype=dtype)[codes]


def check_columns(schema: CsvSchema, columns: Sequence[str], *, label: str, name: str) -> None:
    """Every schema column is a column of the file, and none is the label; else a DatasetError naming it."""
    if label in schema.columns:
        raise DatasetError("csv_schema", f"the label column {quote(label)} is also listed as a feature",
                           allowed="feature columns only; the label's values go under classes")
    missing = [c for c in schema.columns if c not in columns]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:5])
        raise DatasetError("csv_schema", f"names column(s) {shown} that {name} does not have",
                           allowed=", ".join(repr(c) for c in columns if c != label)[:500])


def encode_features(schema: CsvSchema, frame: Any) -> np.ndarray:
    """The float32 features of ``frame``'s rows under ``schema``; each row's features depend on that row only."""
    parts = []
    for column in schema.numeric:
        values = numbers(frame[column.name])
        scaled = (np.clip(values, column.low, column.high) - column.low) / (column.high - column.low)
        scaled = np.where(np.isnan(scaled), 0.5, scaled)
        parts.append((2.0 * scaled - 1.0 if schema.scale == "symmetric" else scaled)[:, None])
    for column in schema.categorical:
        spelled = cells(frame[column.name])
        hot = np.stack([spelled == c for c in column.categories], axis=1)
        other = np.array([s is not None for s in spelled]) & ~hot.any(axis=1)
        parts.append(np.concatenate([hot, other[:, None]], axis=1).astype(np.float64))
    return np.concatenate(parts, axis=1).astype(np.float32)


def label_indices(schema: CsvSchema, spelled: np.ndarray, *, label: str) -> np.ndarray:
    """Class indices of canonical labels; a label outside the schema's classes is refused, naming it."""
    index = {c: i for i, c in enumerate(schema.classes)}
    unknown = [s for s in spelled if s not in index]
    if unknown:
        values, counts = np.unique(np.array(unknown, dtype=str), return_counts=True)
        shown = ", ".join(f"{quote(v)} ({c})" for v, c in sorted(zip(values, counts), key=lambda p: -p[1])[:5])
        raise DatasetError(
            "csv_label", f"{len(unknown)} row(s) have a value in column {quote(label)} that is not one of the "
            f"classes {', '.join(repr(c) for c in schema.classes[:10])}: {shown}",
            allowed="add those classes to the schema's classes, or remove those rows from the file",
        )
    return np.array([index[s] for s in spelled], dtype=np.int32)


def class_sort_key(name: str) -> tuple[int, float, str]:
    """Numbers in numeric order, then text in alphabetical order."""
    number = _parse_number(name)
    return (0, number, "") if number is not None and math.isfinite(number) else (1, 0.0, name)


# -- deriving a schema privately -----------------------------------------------------------------


@dataclass(frozen=True)
class PrivateDerivation:
    """The mechanism of ``derive_schema``: the noise of the whole release, the δ its thresholds spend, the seed.

    ``noise_multiplier`` is that of one Gaussian mechanism with L2 sensitivity 1 over all the counts
    (each count's noise is ``noise_multiplier * sqrt(columns)``); ``seed`` None draws from the
    operating system (secure mode).
    """

    noise_multiplier: float
    threshold_delta: float
    seed: Optional[int]
    scale: str = "unit"


@dataclass(frozen=True)
class DerivedSchema:
    """A privately derived schema, with the noise and threshold it was derived with and the columns left out."""

    schema: CsvSchema
    noise_std: float
    threshold: float
    left_out: tuple[str, ...]


def derivation_rng(seed: Optional[int]) -> np.random.Generator:
    """The preprocessing noise's generator: a stream of the run's seed, or 128 bits from the OS (seed None)."""
    return np.random.default_rng(secrets.randbits(128) if seed is None else [seed, PREPROCESSING_STREAM])


def threshold_for(*, noise_std: float, threshold_delta: float, columns: int) -> float:
    """The noisy count a value needs to be kept: a value only one record holds passes with probability
    ``threshold_delta / columns`` in each of the record's columns, so at most ``threshold_delta`` in all."""
    return 1.0 - noise_std * statistics.NormalDist().inv_cdf(threshold_delta / columns)


def derive_schema(frame: Any, *, label: str, derivation: PrivateDerivation) -> DerivedSchema:
    """A schema from the training rows in ``frame`` through noisy, thresholded counts.

    Each record adds 1 to one count per column (its label's class; a grid bin for a number, its
    spelling for text; nothing for a missing cell). Every non-empty count gets Gaussian noise and
    is kept only above the threshold. From the kept counts alone: classes are the kept labels; a
    column is numeric when its kept bins outweigh its kept text values, with the range spanned by
    those bins, else categorical with its kept values (the most frequent ``MAX_CATEGORIES``); a
    column with nothing kept is left out. Its cost in ε: ``accounting.preprocessing_cost``.
    """
    features = [c for c in frame.columns if c != label]
    columns = 1 + len(features)
    noise_std = derivation.noise_multiplier * math.sqrt(columns)
    threshold = threshold_for(noise_std=noise_std, threshold_delta=derivation.threshold_delta, columns=columns)
    rng = derivation_rng(derivation.seed)

    kept_labels = _kept(_counts(cells(frame[label]), numeric=False), rng, noise_std, threshold)
    classes = sorted((v for _, v in kept_labels), key=lambda v: -kept_labels[(1, v)])[:MAX_CLASSES]
    if len(classes) < 2:
        raise DatasetError(
            "csv_preprocessing_epsilon", f"only {len(classes)} class(es) of column {quote(label)} have a noisy count "
            f"above the threshold {threshold:.3g} (noise std {noise_std:.3g})",
            allowed="a larger csv_preprocessing_epsilon, or a declared csv_schema",
        )
    numeric, categorical, left_out = [], [], []
    for name in features:
        kept = _kept(_counts(cells(frame[name]), numeric=True), rng, noise_std, threshold)
        bins = sorted(key for kind, key in kept if kind == 0)
        texts = [key for kind, key in kept if kind == 1]
        if not kept:
            left_out.append(name)
        elif bins and sum(kept[(0, b)] for b in bins) >= sum(kept[(1, t)] for t in texts):
            numeric.append(NumericColumn(name=name, low=_round(GRID_EDGES[bins[0]], math.floor),
                                         high=_round(GRID_EDGES[bins[-1] + 1], math.ceil)))
        else:
            top = sorted(texts, key=lambda t: -kept[(1, t)])[:MAX_CATEGORIES]
            categorical.append(CategoricalColumn(name=name, categories=tuple(sorted(top, key=class_sort_key))))
    if not numeric and not categorical:
        raise DatasetError("csv_preprocessing_epsilon", f"no feature column has a value with a noisy count above "
                           f"the threshold {threshold:.3g} (noise std {noise_std:.3g})",
                           allowed="a larger csv_preprocessing_epsilon, or a declared csv_schema")
    schema = CsvSchema(classes=tuple(sorted(classes, key=class_sort_key)), numeric=tuple(numeric),
                       categorical=tuple(categorical), scale=derivation.scale)
    return DerivedSchema(schema=schema, noise_std=noise_std, threshold=threshold, left_out=tuple(left_out))


def _counts(spelled: np.ndarray, *, numeric: bool) -> dict[tuple[int, Any], int]:
    """Counts per partition: (0, grid bin) for a number when ``numeric``, (1, spelling) for anything else."""
    present = [s for s in spelled if s is not None]
    numbers = np.array([_number(s) for s in present], dtype=np.float64) if numeric else np.full(len(present), np.nan)
    counts: dict[tuple[int, Any], int] = {}
    is_number = ~np.isnan(numbers)
    if is_number.any():
        bins = np.searchsorted(GRID_EDGES, np.clip(numbers[is_number], GRID_EDGES[0], GRID_EDGES[-1]), side="right") - 1
        for b, count in zip(*np.unique(np.minimum(bins, len(GRID_EDGES) - 2), return_counts=True)):
            counts[(0, int(b))] = int(count)
    texts, text_counts = np.unique(np.array([s for s, n in zip(present, is_number) if not n], dtype=object),
                                   return_counts=True)
    for text, count in zip(texts, text_counts):
        counts[(1, str(text))] = int(count)
    return counts


def _kept(counts: dict[tuple[int, Any], int], rng: np.random.Generator, noise_std: float,
          threshold: float) -> dict[tuple[int, Any], float]:
    """The noisy counts above the threshold; noise is drawn in sorted partition order, so a seed repeats."""
    keys = sorted(counts, key=lambda k: (k[0], k[1] if k[0] == 0 else 0, "" if k[0] == 0 else k[1]))
    noisy = np.array([counts[k] for k in keys], dtype=np.float64) + rng.normal(0.0, noise_std, size=len(keys))
    return {k: float(v) for k, v in zip(keys, noisy) if v > threshold}


def _round(value: float, direction: Any) -> float:
    """``value`` to 4 significant digits, rounded outwards so the range only widens."""
    if value == 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(abs(value))) - 3)
    return float(direction(value / step) * step)
