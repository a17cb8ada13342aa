"""A person's CSV file as a dataset: bounded reading, the header, the label, the splits, the schema.

Limits hold before anything is parsed (``MAX_CSV_BYTES``, columns, line length): a file beyond them is
refused with a message, never half-read; under a declared schema, so is a number beyond float32. Cells
are read as text, so that how a cell reads never depends on the other rows (pandas' column types would).
Each row's place (test, subset, validation) is its own (``dpcore.data.splits``); its features come from
the schema (``dpcore.csv_schema``, declared or privately derived by ``dpcore.data.tabular``), and their
number, rows × input width, is bounded by ``MAX_ENCODED_VALUES`` before any is made. ``describe_csv``
says what ``load_csv`` would give without encoding (what a page needs); encoded datasets are never cached.
"""

from __future__ import annotations

import functools
import io
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

import numpy as np

from dpcore import csv_schema, safe_io
from dpcore.data import splits, tabular
from dpcore.data.types import Dataset, DatasetInfo, frozen, label_array
from dpcore.errors import DatasetError
from dpcore.privacy import preprocessing
from dpcore.safe_io import quote

if TYPE_CHECKING:
    import pandas as pd

    from dpcore.config import DPConfig


# Limits for a user's CSV file: beyond these a file is refused with a message, never half-read.
T = TypeVar("T")

MAX_CSV_BYTES = 50 * 1024 * 1024
MAX_CSV_COLUMNS = 1000
MAX_CSV_LINE_CHARS = 100_000
# Features are float32: a file under a declared schema holds no number beyond this (``_check_magnitudes``).
MAX_CSV_MAGNITUDE = float(np.finfo(np.float32).max)
MIN_CSV_ROWS = 10
# The most feature values a CSV may encode to (rows × the schema's input width), checked from the row
# count and the schema before any feature is made: 50 million float32 values are 200 MB, about what
# Fashion-MNIST's training images take (60,000 × 784). A wide one-hot schema over many rows is refused
# with the product named instead of filling a server's memory.
MAX_ENCODED_VALUES = 50_000_000
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# -- CSV -------------------------------------------------------------------------------------


def load_csv(
    path: str,
    label: str,
    *,
    schema: Optional[csv_schema.CsvSchema] = None,
    derivation: Optional[tabular.PrivateDerivation] = None,
    max_train_examples: Optional[int] = None,
    validation_fraction: float = 0.0,
) -> Dataset:
    """The CSV dataset, its features encoded (float32) now: encoded datasets are not cached, so a process
    holds one only while it trains or audits on it. Refused before encoding beyond ``MAX_ENCODED_VALUES``."""
    _checked_csv_stat(path)
    return _read_csv_file(
        lambda: parse_csv(
            _file_bytes(path),
            label=label,
            name=os.path.basename(path),
            schema=schema,
            derivation=derivation,
            max_train_examples=max_train_examples,
            validation_fraction=validation_fraction,
        ),
        path,
    )


def describe_csv(
    path: str,
    label: str,
    *,
    schema: Optional[csv_schema.CsvSchema] = None,
    derivation: Optional[tabular.PrivateDerivation] = None,
    max_train_examples: Optional[int] = None,
    validation_fraction: float = 0.0,
) -> DatasetInfo:
    """What ``load_csv`` would give, without encoding a feature: sizes, input width, classes, with the same
    checks and refusals (the encoded size included). Cached per file version and preprocessing, so a
    secure-mode derivation is drawn once per process."""
    stat = _checked_csv_stat(path)
    return _read_csv_file(
        lambda: _describe_cached(
            os.path.abspath(path),
            label,
            stat.st_mtime_ns,
            stat.st_size,
            schema,
            derivation,
            max_train_examples,
            validation_fraction,
        ),
        path,
    )


def csv_train_rows(
    path: str, label: str, *, max_train_examples: Optional[int] = None, validation_fraction: float = 0.0
) -> int:
    """How many rows of the CSV file at ``path`` train (the n of its runs); needs no schema, since none drops a row."""
    return describe_csv_undrawn(
        path, label, max_train_examples=max_train_examples, validation_fraction=validation_fraction
    ).n_train


def csv_test_rows(path: str, label: str) -> int:
    """How many rows of the CSV file at ``path`` are its test split (each row by its own test coin), on which
    every run of the file reports its test accuracy."""
    return describe_csv_undrawn(path, label).n_test


def private_derivation(config: DPConfig) -> Optional[tabular.PrivateDerivation]:
    """How ``config`` derives its CSV schema privately (its ε share's noise, seeded like the run), or None."""
    cost = preprocessing.preprocessing_cost_for_config(config)
    if cost is None:
        return None
    return tabular.PrivateDerivation(
        noise_multiplier=cost.noise_multiplier,
        threshold_delta=cost.threshold_delta,
        seed=None if config.secure_mode else config.seed,
    )


def csv_file_columns(path: str) -> tuple[str, ...]:
    """The header of the CSV file at ``path``, with the same checks as loading it; cached per file version."""
    stat = _checked_csv_stat(path)
    return _read_csv_file(lambda: csv_columns_cached(os.path.abspath(path), stat.st_mtime_ns, stat.st_size), path)


def _checked_csv_stat(path: str) -> os.stat_result:
    """The file's stat, after checking that it exists, is a regular file and is not too large."""
    return safe_io.regular_file_stat(path, field="csv_path", max_bytes=MAX_CSV_BYTES, error=DatasetError)


def _read_csv_file(read: Callable[[], T], path: str) -> T:
    """Run ``read``; anything other than a DatasetError becomes one naming csv_path, never a crash."""
    try:
        return read()
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - a file nobody foresaw still gets a message, not a crash
        raise DatasetError(
            "csv_path", f"{os.path.basename(path)} could not be read as a CSV table ({type(exc).__name__}: {exc})"
        ) from None


def _file_bytes(path: str) -> bytes:
    return safe_io.read_file_bytes(path, field="csv_path", max_bytes=MAX_CSV_BYTES, error=DatasetError)


@functools.lru_cache(maxsize=32)
def _describe_cached(
    path: str,
    label: str,
    mtime_ns: int,
    size: int,
    schema: Optional[csv_schema.CsvSchema],
    derivation: Optional[tabular.PrivateDerivation],
    max_train_examples: Optional[int],
    validation_fraction: float,
) -> DatasetInfo:
    frame, labels = labelled_table(_file_bytes(path), label=label, name=os.path.basename(path))
    return _plan(
        frame,
        labels,
        label=label,
        name=os.path.basename(path),
        schema=schema,
        derivation=derivation,
        max_train_examples=max_train_examples,
        validation_fraction=validation_fraction,
    ).info


def describe_csv_undrawn(
    path: str, label: str, *, max_train_examples: Optional[int] = None, validation_fraction: float = 0.0
) -> DatasetInfo:
    """A CSV whose schema is to be derived privately, before the derivation draws anything: its rows and
    columns only. The derivation's noisy counts are drawn once, in the run, where its ε is counted; a
    page that drew them to describe the file would release them again on every look. Cached per file
    version: the row counts (``csv_train_rows``, ``csv_test_rows``) read the file through it too."""
    stat = _checked_csv_stat(path)
    return _read_csv_file(
        lambda: _undrawn_cached(
            os.path.abspath(path), label, stat.st_mtime_ns, stat.st_size, max_train_examples, validation_fraction
        ),
        path,
    )


@functools.lru_cache(maxsize=16)
def _undrawn_cached(
    path: str, label: str, mtime_ns: int, size: int, max_train_examples: Optional[int], validation_fraction: float
) -> DatasetInfo:
    name = os.path.basename(path)
    frame, _ = labelled_table(_file_bytes(path), label=label, name=name)
    split = split_table(
        frame, name=name, max_train_examples=max_train_examples, validation_fraction=validation_fraction
    )
    features = tuple(str(column) for column in frame.columns if str(column) != label)
    return DatasetInfo(
        name="csv",
        title=name,
        n_train=len(split.train),
        n_test=len(split.test),
        input_shape=(len(features),),  # one value per column: the derivation decides each one's encoding
        num_classes=0,  # the label's classes are derived in the run
        source=f"CSV file {name}, label column {label!r}; {_split_text(split, held=validation_fraction > 0)}; "
        "schema derived privately when the run starts (its classes, categories and ranges are not drawn before)",
        feature_names=features,
        n_validation=len(split.validation),
    )


@functools.lru_cache(maxsize=16)
def csv_columns_cached(path: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    return csv_columns(_file_bytes(path), name=os.path.basename(path))


def clear_caches() -> None:
    """Forget what was read from CSV files (headers, training-row counts, descriptions), so the next call
    reads them again."""
    csv_columns_cached.cache_clear()
    _undrawn_cached.cache_clear()
    _describe_cached.cache_clear()


def csv_columns(raw: bytes, *, name: str = "data.csv") -> tuple[str, ...]:
    """The header of CSV bytes, for choosing the label column; a file that cannot be a table is refused."""
    return tuple(_read_table(raw, name=name, header_only=True).columns)


def _read_table(raw: bytes, *, name: str, header_only: bool = False) -> pd.DataFrame:
    """CSV bytes as a pandas frame with string column names; refuses empty, unreadable or headerless files."""
    import pandas as pd

    text = _decode_text(raw)
    if not text.strip():
        raise DatasetError("csv_path", f"{name} is empty", allowed="a CSV file with a header row and data rows")
    _check_shape(text, name=name)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=_delimiter(text),
            skipinitialspace=True,
            dtype=str,
            nrows=0 if header_only else None,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError("csv_path", f"{name} is not a readable CSV file: {first}") from None
    frame.columns = [str(c) for c in frame.columns]
    if all(_looks_numeric(c) for c in frame.columns):
        raise DatasetError(
            "csv_path",
            f"{name} has no header row (its first row is all numbers)",
            allowed="a first row of column names",
        )
    return frame


def parse_csv(
    raw: bytes,
    *,
    label: str,
    name: str = "data.csv",
    schema: Optional[csv_schema.CsvSchema] = None,
    derivation: Optional[tabular.PrivateDerivation] = None,
    max_train_examples: Optional[int] = None,
    validation_fraction: float = 0.0,
) -> Dataset:
    """CSV bytes as a Dataset: each row to test, train or validation by itself (``splits.csv_split``),
    then preprocessed under ``schema`` or one derived by ``derivation``.

    Nothing is fitted on the rows outside ``derivation``'s mechanism, which sees the subset's rows
    only (training and validation); without a schema or a derivation the file is refused, naming
    csv_schema. The features are encoded (float32) only after rows × input width passed
    ``MAX_ENCODED_VALUES``.
    """
    frame, labels = labelled_table(raw, label=label, name=name)
    plan = _plan(
        frame,
        labels,
        label=label,
        name=name,
        schema=schema,
        derivation=derivation,
        max_train_examples=max_train_examples,
        validation_fraction=validation_fraction,
    )
    split, schema = plan.split, plan.schema
    parts = (split.train, split.test, split.validation)
    ys = np.split(plan.y, np.cumsum([len(p) for p in parts])[:-1])
    x_train, x_test, x_validation = (tabular.encode_features(schema, frame.iloc[p]) for p in parts)
    held = validation_fraction > 0
    return Dataset(
        info=plan.info,
        x_train=frozen(x_train),
        y_train=label_array(ys[0]),
        x_test=frozen(x_test),
        y_test=label_array(ys[1]),
        x_validation=frozen(x_validation) if held else None,
        y_validation=label_array(ys[2]) if held else None,
    )


@dataclass(frozen=True)
class _Plan:
    """What a CSV file will be once encoded: its rows' places, its schema and its metadata."""

    split: splits.CsvSplit
    schema: csv_schema.CsvSchema
    info: DatasetInfo
    y: np.ndarray  # class indices of the training, test and validation rows, in that order


def _plan(
    frame: Any,
    labels: np.ndarray,
    *,
    label: str,
    name: str,
    schema: Optional[csv_schema.CsvSchema],
    derivation: Optional[tabular.PrivateDerivation],
    max_train_examples: Optional[int],
    validation_fraction: float,
) -> _Plan:
    """Split the rows, take or derive the schema, and check it against the file (columns, labels and the
    encoded size) without encoding a feature."""
    split = split_table(
        frame, name=name, max_train_examples=max_train_examples, validation_fraction=validation_fraction
    )
    if schema is None and derivation is None:
        raise DatasetError(
            "csv_schema",
            f"{name} has no schema: its feature ranges, categories and classes are neither declared nor paid for",
            allowed="a csv_schema (classes, numeric ranges, categories; in the config or a "
            "JSON/YAML file), or a csv_preprocessing_epsilon to derive one privately",
        )
    if schema is None:
        assert derivation is not None  # refused above when both are None
        subset_rows = np.sort(np.concatenate([split.train, split.validation]))
        derived = tabular.derive_schema(frame.iloc[subset_rows], label=label, derivation=derivation)
        schema = derived.schema
        origin = (
            f"schema derived privately from the training rows (noisy counts, noise std "
            f"{derived.noise_std:.3g}, threshold {derived.threshold:.3g}"
            + (f"; left out: {', '.join(derived.left_out)}" if derived.left_out else "")
            + ")"
        )
    else:
        _check_declared_file(frame, labels, label=label, name=name)
        origin = "declared schema"
    tabular.check_columns(schema, list(frame.columns), label=label, name=name)
    rows = len(split.train) + len(split.test) + len(split.validation)
    check_encoded_size(rows=rows, width=schema.width, name=name)
    y = tabular.label_indices(schema, labels[np.concatenate([split.train, split.test, split.validation])], label=label)
    scale = "[-1, 1]" if schema.scale == "symmetric" else "[0, 1]"
    info = DatasetInfo(
        name="csv",
        title=name,
        n_train=len(split.train),
        n_test=len(split.test),
        input_shape=(schema.width,),
        num_classes=schema.num_classes,
        source=f"CSV file {name}, label column {label!r}; {_split_text(split, held=validation_fraction > 0)}; "
        f"{origin}: numbers clipped to their range and scaled to {scale}, categories one-hot with an 'other' "
        f"slot; missing values: {csv_schema.MISSING_POLICY}",
        class_names=schema.class_names,
        feature_names=schema.feature_names,
        csv_schema=schema,
        n_validation=len(split.validation),
    )
    return _Plan(split=split, schema=schema, info=info, y=y)


def check_encoded_size(*, rows: int, width: int, name: str) -> None:
    """Refuse a CSV whose features would take more than ``MAX_ENCODED_VALUES`` values (rows × input width)."""
    values = rows * width
    if values > MAX_ENCODED_VALUES:
        raise DatasetError(
            "csv_schema",
            f"{name} would encode to {rows:,} rows × {width:,} model inputs = {values:,} feature values",
            allowed=f"at most {MAX_ENCODED_VALUES:,} values ({MAX_ENCODED_VALUES * 4 // 10**6:,} MB as float32): "
            "fewer rows (max_train_examples), or fewer columns or categories in the schema",
        )


def _split_text(split: splits.CsvSplit, *, held: bool) -> str:
    """How the rows were split, for a dataset's source line."""
    text = f"each row tests with chance {splits.CSV_TEST_FRACTION:g} by a coin of its own (a keyed hash of its cells)"
    if split.subset_rate < 1:
        text += f", is in the max_train_examples subset with chance {split.subset_rate:.4g} by a second"
    if held:
        text += ", validates by a third"
    return text


def labelled_table(raw: bytes, *, label: str, name: str) -> tuple[Any, np.ndarray]:
    """(frame, canonical labels) of the rows with a label, after the checks every CSV file gets."""
    frame: Any = _read_table(raw, name=name)
    columns = list(frame.columns)
    if label not in columns:
        raise DatasetError("csv_label", f"{quote(label)} is not a column of {name}", allowed=_column_list(columns))
    if len(columns) < 2:
        raise DatasetError(
            "csv_path", f"{name} has only the label column", allowed="a label column and at least one feature column"
        )
    labels = tabular.cells(frame[label])
    labelled = np.array([value is not None for value in labels], dtype=bool)
    frame = frame[labelled].reset_index(drop=True)
    labels = labels[labelled]
    if len(frame) < MIN_CSV_ROWS:
        raise DatasetError(
            "csv_path", f"{name} has {len(frame)} rows with a label", allowed=f"at least {MIN_CSV_ROWS} rows"
        )
    return frame, labels


def _check_declared_file(frame: Any, labels: np.ndarray, *, label: str, name: str) -> None:
    """A file checked against its owner's declared schema: two classes at least, no number beyond float32.

    A derived schema skips these checks, so that no single record decides whether its run exists:
    its own noisy counts refuse fewer than two classes, and it clips any number to its ranges.
    """
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DatasetError(
            "csv_label",
            f"column {quote(label)} has only one class ({quote(classes[0])})",
            allowed="a label column with at least two classes",
        )
    _check_magnitudes(frame.drop(columns=[label]), name=name)


def split_table(
    frame: Any, *, name: str, max_train_examples: Optional[int], validation_fraction: float
) -> splits.CsvSplit:
    """Each row of ``frame`` to test, train or validation by its own coins; refused when the test split
    is empty or fewer than 2 rows would train."""
    split = splits.csv_split(
        splits.row_coins(frame), max_train_examples=max_train_examples, validation_fraction=validation_fraction
    )
    if len(split.test) == 0:
        raise DatasetError(
            "csv_path",
            f"no row of {name} falls in the test split (each row does with chance {splits.CSV_TEST_FRACTION:g}, "
            "decided by its own cells)",
            allowed="more rows (each a test row with that chance)",
        )
    if len(split.train) < 2:
        subset = len(split.train) + len(split.validation)
        field = (
            "validation_fraction" if subset >= 2 else ("max_train_examples" if split.subset_rate < 1 else "csv_path")
        )
        raise DatasetError(
            field,
            f"{len(split.train)} row(s) of {name} would train",
            allowed="at least 2 training rows: a smaller validation_fraction, a larger max_train_examples, or more rows",
        )
    return split


def _decode_text(raw: bytes) -> str:
    if len(raw) > MAX_CSV_BYTES:
        raise DatasetError("csv_path", "the file is too large", allowed=f"files up to {MAX_CSV_BYTES // 2**20} MiB")
    text = safe_io.decode_text(raw, field="csv_path", name="the file", fallback="latin-1", error=DatasetError)
    sample = text[:65536]
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\r\n\t")
    if sample and control > 0.01 * len(sample):
        raise DatasetError("csv_path", "the file is binary, not a text CSV file", allowed="a comma-separated text file")
    return text


def _check_shape(text: str, *, name: str) -> None:
    """Refuse a table too wide (columns in the header) or with a line too long to be a table row."""
    longest = max(map(len, _LINE_BREAK.split(text)))
    if longest > MAX_CSV_LINE_CHARS:
        raise DatasetError(
            "csv_path",
            f"{name} has a line of {longest:,} characters",
            allowed=f"lines up to {MAX_CSV_LINE_CHARS:,} characters",
        )
    columns = _header(text).count(_delimiter(text)) + 1
    if columns > MAX_CSV_COLUMNS:
        raise DatasetError(
            "csv_path", f"{name} has {columns:,} columns", allowed=f"at most {MAX_CSV_COLUMNS:,} columns"
        )


def _check_magnitudes(features: pd.DataFrame, *, name: str) -> None:
    """Refuse ±inf, and numbers too large for float32, in a numeric column of a file under a declared
    schema: the schema would clip them to its ranges, but in a person's own file such a number is more
    likely a mistake than a value."""
    import pandas as pd

    df: pd.DataFrame = features
    for column in df.columns:
        present = df[column].dropna()
        numbers = pd.to_numeric(present, errors="coerce")
        if present.empty or pd.api.types.is_bool_dtype(present) or not numbers.notna().all():
            continue  # a text (one-hot) or empty column
        values = numbers.to_numpy(dtype=np.float64)
        bad = ~(np.abs(values) <= MAX_CSV_MAGNITUDE)
        if bad.any():
            value = present.iloc[int(np.argmax(bad))]
            raise DatasetError(
                "csv_path",
                f"column {quote(column)} of {name} holds {value!s:.40}, which is not a finite float32 number",
                allowed=f"finite numbers up to ±{MAX_CSV_MAGNITUDE:.3g}; fix or remove the value",
            )


def _header(text: str) -> str:
    """The first line of ``text``: lines end in LF, CRLF or a lone CR (old Mac files), as pandas reads them."""
    return _LINE_BREAK.split(text.lstrip(), maxsplit=1)[0]


def _delimiter(text: str) -> str:
    """Comma, unless the header row has none and semicolons or tabs instead (common CSV exports)."""
    header = _header(text)
    if "," in header:
        return ","
    return max((";", "\t"), key=header.count) if (";" in header or "\t" in header) else ","


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _column_list(columns: list[str]) -> str:
    shown = ", ".join(quote(c) for c in columns[:20])
    return shown + (f" and {len(columns) - 20} more" if len(columns) > 20 else "")
