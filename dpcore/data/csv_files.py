"""A person's CSV file as a dataset: bounded reading, the header, the label, the train/test split, the schema.

Limits hold before anything is parsed (``MAX_CSV_BYTES``, columns, line length, magnitudes): a file
beyond them is refused with a message, never half-read. The file's features come from its schema
(``dpcore.csv_schema``, declared or privately derived by ``dpcore.data.tabular``).
"""

from __future__ import annotations

import functools
import io
import os
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

import numpy as np

from dpcore import csv_schema, safe_io
from dpcore.data import tabular
from dpcore.data.splits import split_rows, subset_order
from dpcore.data.types import Dataset, DatasetInfo, frozen, label_array
from dpcore.errors import DatasetError
from dpcore.privacy import preprocessing
from dpcore.safe_io import quote

if TYPE_CHECKING:
    from dpcore.config import DPConfig


# Limits for a user's CSV file: beyond these a file is refused with a message, never half-read.
T = TypeVar("T")

MAX_CSV_BYTES = 50 * 1024 * 1024
MAX_CSV_COLUMNS = 1000
MAX_CSV_LINE_CHARS = 100_000
# Features are float32: a value beyond this would become infinite.
MAX_CSV_MAGNITUDE = float(np.finfo(np.float32).max)
MIN_CSV_ROWS = 10

# -- CSV -------------------------------------------------------------------------------------


def load_csv(
    path: str,
    label: str,
    *,
    schema: Optional[csv_schema.CsvSchema] = None,
    derivation: Optional[tabular.PrivateDerivation] = None,
    max_train_examples: Optional[int] = None,
) -> Dataset:
    """The CSV dataset, cached per file version and preprocessing (in secure mode: one private draw per process)."""
    stat = _checked_csv_stat(path)
    return _read_csv_file(
        lambda: load_csv_cached(
            os.path.abspath(path), label, stat.st_mtime_ns, stat.st_size, schema, derivation, max_train_examples
        ),
        path,
    )


def csv_train_rows(path: str, label: str) -> int:
    stat = _checked_csv_stat(path)
    return _read_csv_file(
        lambda: _csv_train_rows_cached(os.path.abspath(path), label, stat.st_mtime_ns, stat.st_size), path
    )


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


@functools.lru_cache(maxsize=8)
def load_csv_cached(
    path: str,
    label: str,
    mtime_ns: int,
    size: int,
    schema: Optional[csv_schema.CsvSchema],
    derivation: Optional[tabular.PrivateDerivation],
    max_train_examples: Optional[int],
) -> Dataset:
    return parse_csv(
        _file_bytes(path),
        label=label,
        name=os.path.basename(path),
        schema=schema,
        derivation=derivation,
        max_train_examples=max_train_examples,
    )


@functools.lru_cache(maxsize=16)
def _csv_train_rows_cached(path: str, label: str, mtime_ns: int, size: int) -> int:
    return len(_split_table(_file_bytes(path), label=label, name=os.path.basename(path))[2])


@functools.lru_cache(maxsize=16)
def csv_columns_cached(path: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    return csv_columns(_file_bytes(path), name=os.path.basename(path))


def csv_columns(raw: bytes, *, name: str = "data.csv") -> tuple[str, ...]:
    """The header of CSV bytes, for choosing the label column; a file that cannot be a table is refused."""
    return tuple(_read_table(raw, name=name, header_only=True).columns)


def _read_table(raw: bytes, *, name: str, header_only: bool = False) -> object:
    """CSV bytes as a pandas frame with string column names; refuses empty, unreadable or headerless files."""
    import pandas as pd

    text = _decode_text(raw)
    if not text.strip():
        raise DatasetError("csv_path", f"{name} is empty", allowed="a CSV file with a header row and data rows")
    _check_shape(text, name=name)
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=_delimiter(text), skipinitialspace=True, nrows=0 if header_only else None
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
) -> Dataset:
    """CSV bytes as a Dataset: split 80/20, subset, then preprocess under ``schema`` or one derived by ``derivation``.

    Nothing is fitted on the rows outside ``derivation``'s mechanism, which sees the subset's training
    rows only; without a schema or a derivation the file is refused, naming csv_schema.
    """
    frame, labels, train_rows, test_rows = _split_table(raw, label=label, name=name)
    order = subset_order(len(train_rows), max_train_examples)
    if order is not None:
        train_rows = train_rows[order]
    if schema is None and derivation is None:
        raise DatasetError(
            "csv_schema",
            f"{name} has no schema: its feature ranges, categories and classes are neither declared nor paid for",
            allowed="a csv_schema (classes, numeric ranges, categories; in the config or a "
            "JSON/YAML file), or a csv_preprocessing_epsilon to derive one privately",
        )
    if schema is None:
        derived = tabular.derive_schema(frame.iloc[train_rows], label=label, derivation=derivation)
        schema = derived.schema
        origin = (
            f"schema derived privately from the training rows (noisy counts, noise std "
            f"{derived.noise_std:.3g}, threshold {derived.threshold:.3g}"
            + (f"; left out: {', '.join(derived.left_out)}" if derived.left_out else "")
            + ")"
        )
    else:
        origin = "declared schema"
    tabular.check_columns(schema, list(frame.columns), label=label, name=name)
    scale = "[-1, 1]" if schema.scale == "symmetric" else "[0, 1]"
    info = DatasetInfo(
        name="csv",
        title=name,
        n_train=len(train_rows),
        n_test=len(test_rows),
        input_shape=(schema.width,),
        num_classes=len(schema.classes),
        source=f"CSV file {name}, label column {label!r}; 80/20 split (seed 0); {origin}: numbers clipped to "
        f"their range and scaled to {scale}, categories one-hot with an 'other' slot; missing values: "
        f"{csv_schema.MISSING_POLICY}",
        class_names=schema.classes,
        feature_names=schema.feature_names,
        csv_schema=schema,
    )
    y = tabular.label_indices(schema, np.concatenate([labels[train_rows], labels[test_rows]]), label=label)
    return Dataset(
        info=info,
        x_train=frozen(tabular.encode_features(schema, frame.iloc[train_rows])),
        y_train=label_array(y[: len(train_rows)]),
        x_test=frozen(tabular.encode_features(schema, frame.iloc[test_rows])),
        y_test=label_array(y[len(train_rows) :]),
    )


def _split_table(raw: bytes, *, label: str, name: str) -> tuple[object, np.ndarray, np.ndarray, np.ndarray]:
    """(frame, canonical labels, training rows, test rows): rows without a label dropped, then split 80/20."""
    import pandas as pd

    frame = _read_table(raw, name=name)
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
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DatasetError(
            "csv_label",
            f"column {quote(label)} has only one class ({quote(classes[0])})",
            allowed="a label column with at least two classes",
        )
    _check_magnitudes(frame.drop(columns=[label]), name=name)
    train_rows, test_rows = split_rows(pd.factorize(labels)[0])
    return frame, labels, train_rows, test_rows


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
    longest = len(max(text.split("\n"), key=len))
    if longest > MAX_CSV_LINE_CHARS:
        raise DatasetError(
            "csv_path",
            f"{name} has a line of {longest:,} characters",
            allowed=f"lines up to {MAX_CSV_LINE_CHARS:,} characters",
        )
    header = text.lstrip().split("\n", 1)[0]
    columns = header.count(_delimiter(text)) + 1
    if columns > MAX_CSV_COLUMNS:
        raise DatasetError(
            "csv_path", f"{name} has {columns:,} columns", allowed=f"at most {MAX_CSV_COLUMNS:,} columns"
        )


def _check_magnitudes(features: object, *, name: str) -> None:
    """Refuse ±inf, and numbers too large for float32, in a numeric column: they would train on inf or NaN."""
    import pandas as pd

    df: pd.DataFrame = features  # type: ignore[assignment]
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


def _delimiter(text: str) -> str:
    """Comma, unless the header row has none and semicolons or tabs instead (common CSV exports)."""
    header = text.lstrip().split("\n", 1)[0]
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
