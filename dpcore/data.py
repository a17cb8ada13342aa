"""Dataset registry: digits (bundled), Fashion-MNIST, MNIST and a user's CSV, as arrays plus metadata.

Images come back as float32 arrays of shape (n, height, width, 1) scaled to [0, 1]; tabular data as
float32 arrays of shape (n, features); labels as int32 class indices. Arrays are read-only and cached
per process, so loading the same dataset twice costs nothing.
"""
from __future__ import annotations

import contextlib
import functools
import gzip
import io
import math
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

import numpy as np

from dpcore import safe_io, tabular
from dpcore.config import DATASET_TITLES, DATASETS
from dpcore.errors import DatasetError
from dpcore.safe_io import quote

if TYPE_CHECKING:
    from dpcore.config import DPConfig

BUILTIN_DATASETS = tuple(name for name in DATASETS if name != "csv")

# Where Debian's dataset-fashion-mnist package puts the IDX files; DPEXPLORER_FASHION_MNIST_DIR
# (if set) is searched first.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_DIRS = (DEBIAN_FASHION_MNIST_DIR,)
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

# Limits for a user's CSV file: beyond these a file is refused with a message, never half-read.
T = TypeVar("T")

MAX_CSV_BYTES = 50 * 1024 * 1024
MAX_CSV_COLUMNS = 1000
MAX_CSV_LINE_CHARS = 100_000
# Features are float32: a value beyond this would become infinite.
MAX_CSV_MAGNITUDE = float(np.finfo(np.float32).max)
MIN_CSV_ROWS = 10
CSV_TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed, so n_train and the test set do not change between runs
VALIDATION_SEED = 1  # fixed too, so the validation rows are the same in every run of a config


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, without its pixels: sizes, shapes, classes and where it comes from."""

    name: str
    title: str
    n_train: int
    n_test: int
    input_shape: tuple[int, ...]
    num_classes: int
    source: str
    class_names: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = ()
    csv_schema: Optional[tabular.CsvSchema] = None  # a CSV's features came from this (declared or derived)
    n_validation: int = 0


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: its info and read-only train, test and (optional) validation arrays.

    ``x_train`` holds only the rows trained on; validation rows held out of the training set are in
    ``x_validation`` (None when the config holds out none).
    """

    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_validation: Optional[np.ndarray] = None
    y_validation: Optional[np.ndarray] = None


_DIGITS = DatasetInfo(
    name="digits", title=DATASET_TITLES["digits"], n_train=1437, n_test=360,
    input_shape=(8, 8, 1), num_classes=10, class_names=tuple(str(i) for i in range(10)),
    source="scikit-learn's bundled copy of the UCI handwritten digits; stratified 80/20 split (seed 0)",
)
_FASHION = DatasetInfo(
    name="fashion_mnist", title=DATASET_TITLES["fashion_mnist"], n_train=60000, n_test=10000,
    input_shape=(28, 28, 1), num_classes=10,
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"),
    source="Zalando Fashion-MNIST IDX files (Debian package dataset-fashion-mnist) or the Keras loader",
)
_MNIST = DatasetInfo(
    name="mnist", title=DATASET_TITLES["mnist"], n_train=60000, n_test=10000, input_shape=(28, 28, 1),
    num_classes=10, class_names=tuple(str(i) for i in range(10)),
    source="MNIST through the Keras loader (downloaded once, then cached in ~/.keras/datasets)",
)
_BUILTIN_INFO = {info.name: info for info in (_DIGITS, _FASHION, _MNIST)}


# -- public API ----------------------------------------------------------------------------


def dataset_info(name: str, *, csv_path: Optional[str] = None, csv_label: Optional[str] = None,
                 csv_schema: Optional[tabular.CsvSchema] = None) -> DatasetInfo:
    """Metadata of a dataset; built-ins answer without loading, a CSV is read (and cached) under its declared schema.

    A CSV whose schema is derived privately depends on the whole config: use ``describe(config)``.
    """
    if name in _BUILTIN_INFO:
        return _BUILTIN_INFO[name]
    if name == "csv":
        if not csv_path or not csv_label:
            raise DatasetError("csv_path", "a CSV dataset needs a file path and a label column",
                               allowed="csv_path and csv_label both set")
        return _load_csv(csv_path, csv_label, schema=csv_schema).info
    raise DatasetError("dataset", f"{quote(name)} is not a known dataset",
                       allowed=", ".join(BUILTIN_DATASETS + ("csv",)))


def config_dataset_info(config: "DPConfig") -> DatasetInfo:
    """``config``'s dataset's metadata: a built-in without loading it (before subsetting), a CSV as
    ``describe`` gives it (under the declared schema or the privately derived one)."""
    return describe(config) if config.dataset == "csv" else dataset_info(config.dataset)


def describe(config: "DPConfig") -> DatasetInfo:
    """What ``config`` trains on, after subsetting and preprocessing (a CSV's schema included); cached."""
    return load(config).info


def train_size(config: "DPConfig") -> int:
    """The n the accountant must use: the rows trained on, after ``max_train_examples`` and the
    validation hold-out (``validation_fraction``).

    For a CSV it is the training split's size, known before any schema is applied: a schema never
    drops a row (a label outside its classes is refused), so the n is the same on every route.
    """
    if config.dataset == "csv":
        n_train = _csv_train_rows(config.csv_path or "", config.csv_label or "")
    else:
        n_train = dataset_info(config.dataset).n_train
    available = _subset_size(n_train, config.max_train_examples)
    return available - validation_size(available, config.validation_fraction)


def validation_size(n: int, fraction: float) -> int:
    """Rows held out for validation from ``n`` training rows: ceil(n · fraction), so any fraction > 0
    holds out at least one row."""
    return int(math.ceil(round(n * fraction, 6)))


def load(config: "DPConfig") -> Dataset:
    """Load the dataset ``config`` names, subset to ``max_train_examples``, then hold out the
    validation rows; raises DatasetError.

    A CSV is split, then subset, then preprocessed under ``config.csv_schema`` or a schema derived
    privately from the subset's rows (``config.csv_preprocessing_epsilon``); with neither it is refused.
    """
    if config.dataset == "csv":
        return hold_out_validation(
            _load_csv(config.csv_path or "", config.csv_label or "", schema=config.csv_schema,
                      derivation=_private_derivation(config), max_train_examples=config.max_train_examples),
            config.validation_fraction)
    if config.dataset not in _LOADERS:
        raise DatasetError("dataset", f"{quote(config.dataset)} is not a known dataset",
                           allowed=", ".join(BUILTIN_DATASETS + ("csv",)))
    return hold_out_validation(subset(_load_builtin(config.dataset), config.max_train_examples), config.validation_fraction)


def hold_out_validation(dataset: Dataset, fraction: float) -> Dataset:
    """Move ``validation_size(n, fraction)`` training rows, drawn by a fixed permutation, to validation.

    The held-out rows are never trained on, so n (and ε) counts only the rest. Their metrics are not
    covered by ε: like the test set, they are released as they are.
    """
    n = dataset.info.n_train
    held = validation_size(n, fraction)
    if held == 0:
        return dataset
    if n - held < 2:
        raise DatasetError("validation_fraction",
                           f"{fraction:g} of {n} training rows leaves {n - held} to train on",
                           allowed="a fraction that leaves at least 2 training rows")
    order = np.random.default_rng(VALIDATION_SEED).permutation(n)
    validation, train = np.sort(order[:held]), np.sort(order[held:])
    info = _replace_info(dataset.info, n_train=n - held, n_validation=held)
    return Dataset(info=info, x_train=_frozen(dataset.x_train[train]), y_train=_frozen(dataset.y_train[train]),
                   x_test=dataset.x_test, y_test=dataset.y_test,
                   x_validation=_frozen(dataset.x_train[validation]),
                   y_validation=_frozen(dataset.y_train[validation]))


def subset(dataset: Dataset, max_train_examples: Optional[int]) -> Dataset:
    """The first ``max_train_examples`` of a fixed (seed 0) permutation of the training set."""
    order = _subset_order(dataset.info.n_train, max_train_examples)
    if order is None:
        return dataset
    info = _replace_info(dataset.info, n_train=len(order))
    return Dataset(info=info, x_train=_frozen(dataset.x_train[order]), y_train=_frozen(dataset.y_train[order]),
                   x_test=dataset.x_test, y_test=dataset.y_test)


def dataset_problem(name: str) -> Optional[str]:
    """None when built-in dataset ``name`` is ready to load offline, else what is missing (without loading it)."""
    if name == "fashion_mnist":
        if _fashion_mnist_dir() is not None or _keras_cached("fashion-mnist"):
            return None
        return ("Fashion-MNIST is not installed on this machine: install the Debian package "
                "dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist) or set "
                "DPEXPLORER_FASHION_MNIST_DIR. ε can still be explored; training will fail.")
    if name == "mnist":
        if (Path.home() / ".keras" / "datasets" / "mnist.npz").is_file():
            return None
        return ("MNIST is not cached on this machine (~/.keras/datasets/mnist.npz): training needs "
                "one download. ε can still be explored; offline, use digits or fashion_mnist.")
    return None


def _keras_cached(folder: str) -> bool:
    path = Path.home() / ".keras" / "datasets" / folder
    return path.is_dir() and any(path.iterdir())


def clear_cache() -> None:
    """Forget the datasets loaded so far, so the next load reads the files again."""
    _load_builtin.cache_clear()
    _load_csv_cached.cache_clear()
    _csv_columns_cached.cache_clear()


# -- built-in datasets ---------------------------------------------------------------------


def _subset_size(n_train: int, max_train_examples: Optional[int]) -> int:
    return n_train if max_train_examples is None else min(n_train, int(max_train_examples))


def _subset_order(n_train: int, max_train_examples: Optional[int]) -> Optional[np.ndarray]:
    """The sorted positions ``subset`` keeps, or None when it keeps all."""
    n = _subset_size(n_train, max_train_examples)
    if n == n_train:
        return None
    return np.sort(np.random.default_rng(SPLIT_SEED).permutation(n_train)[:n])


def _replace_info(info: DatasetInfo, **changes: object) -> DatasetInfo:
    import dataclasses

    return dataclasses.replace(info, **changes)


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.flags.writeable = False
    return array


def _images(x: np.ndarray, scale: float) -> np.ndarray:
    return _frozen((x.astype(np.float32) / scale)[..., np.newaxis])


def _labels(y: np.ndarray) -> np.ndarray:
    return _frozen(np.asarray(y, dtype=np.int32).reshape(-1))


@functools.lru_cache(maxsize=None)
def _load_builtin(name: str) -> Dataset:
    x_train, y_train, x_test, y_test = _LOADERS[name]()
    info = _BUILTIN_INFO[name]
    return Dataset(info=info, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def _digits_arrays() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.images, bunch.target, test_size=CSV_TEST_FRACTION, stratify=bunch.target,
        random_state=SPLIT_SEED,
    )
    return _images(x_train, 16.0), _labels(y_train), _images(x_test, 16.0), _labels(y_test)


def _fashion_mnist_dir() -> Optional[str]:
    """The first folder holding the four IDX files: $DPEXPLORER_FASHION_MNIST_DIR, then Debian's."""
    directories = [os.environ.get("DPEXPLORER_FASHION_MNIST_DIR", ""), *FASHION_MNIST_DIRS]
    for directory in filter(None, directories):
        if all(os.path.isfile(os.path.join(directory, f)) for f in IDX_FILES.values()):
            return directory
    return None


def _fashion_mnist_arrays() -> tuple[np.ndarray, ...]:
    directory = _fashion_mnist_dir()
    if directory is not None:
        return _idx_arrays(directory)
    return _keras_arrays(
        "fashion_mnist", problem="Fashion-MNIST is not installed and could not be downloaded",
        allowed="install it with `apt-get install dataset-fashion-mnist` (files in "
        f"{DEBIAN_FASHION_MNIST_DIR}), set DPEXPLORER_FASHION_MNIST_DIR to a folder holding the four "
        "IDX .gz files, or connect to the internet once so Keras can cache it",
    )


def _idx_arrays(directory: str) -> tuple[np.ndarray, ...]:
    arrays = {key: read_idx(os.path.join(directory, filename)) for key, filename in IDX_FILES.items()}
    return (_images(arrays["x_train"], 255.0), _labels(arrays["y_train"]),
            _images(arrays["x_test"], 255.0), _labels(arrays["y_test"]))


def read_idx(path: str) -> np.ndarray:
    """Read an (optionally gzipped) IDX file of unsigned bytes, the format of (Fashion-)MNIST."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise DatasetError("dataset", f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError("dataset", f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError("dataset", f"{path} ends inside its IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(shape)):
        raise DatasetError("dataset", f"{path} holds {len(raw) - header} bytes of data, expected {int(np.prod(shape))}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _keras_arrays(name: str, *, problem: str, allowed: str) -> tuple[np.ndarray, ...]:
    """A dataset through Keras's own loader (download once, then cache); a failure is a DatasetError."""
    try:
        import tensorflow as tf

        # Keras reports download progress on stdout; keep stdout machine-readable for the CLI.
        with contextlib.redirect_stdout(sys.stderr):
            (x_train, y_train), (x_test, y_test) = getattr(tf.keras.datasets, name).load_data()
    except Exception as exc:  # noqa: BLE001 - any download or cache failure gets one clear message
        raise DatasetError("dataset", f"{problem} ({type(exc).__name__}: {exc})", allowed=allowed) from None
    return _images(x_train, 255.0), _labels(y_train), _images(x_test, 255.0), _labels(y_test)


def _mnist_arrays() -> tuple[np.ndarray, ...]:
    return _keras_arrays(
        "mnist", problem="MNIST could not be downloaded",
        allowed="connect to the internet once so Keras can cache it in ~/.keras/datasets/mnist.npz, "
        "or copy mnist.npz there; offline, use digits or fashion_mnist",
    )


_LOADERS: dict[str, Callable[[], tuple[np.ndarray, ...]]] = {
    "digits": _digits_arrays,
    "fashion_mnist": _fashion_mnist_arrays,
    "mnist": _mnist_arrays,
}


# -- CSV -------------------------------------------------------------------------------------


def _load_csv(path: str, label: str, *, schema: Optional[tabular.CsvSchema] = None,
              derivation: Optional[tabular.PrivateDerivation] = None,
              max_train_examples: Optional[int] = None) -> Dataset:
    """The CSV dataset, cached per file version and preprocessing (in secure mode: one private draw per process)."""
    stat = _checked_csv_stat(path)
    return _read_csv_file(lambda: _load_csv_cached(os.path.abspath(path), label, stat.st_mtime_ns, stat.st_size,
                                                   schema, derivation, max_train_examples), path)


def _csv_train_rows(path: str, label: str) -> int:
    stat = _checked_csv_stat(path)
    return _read_csv_file(lambda: _csv_train_rows_cached(os.path.abspath(path), label, stat.st_mtime_ns,
                                                         stat.st_size), path)


def _private_derivation(config: "DPConfig") -> Optional[tabular.PrivateDerivation]:
    """How ``config`` derives its CSV schema privately (its ε share's noise, seeded like the run), or None."""
    from dpcore import accounting

    cost = accounting.preprocessing_cost_for_config(config)
    if cost is None:
        return None
    return tabular.PrivateDerivation(noise_multiplier=cost.noise_multiplier, threshold_delta=cost.threshold_delta,
                                     seed=None if config.secure_mode else config.seed)


def csv_file_columns(path: str) -> tuple[str, ...]:
    """The header of the CSV file at ``path``, with the same checks as loading it; cached per file version."""
    stat = _checked_csv_stat(path)
    return _read_csv_file(lambda: _csv_columns_cached(os.path.abspath(path), stat.st_mtime_ns, stat.st_size),
                          path)


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
        raise DatasetError("csv_path", f"{os.path.basename(path)} could not be read as a CSV table "
                           f"({type(exc).__name__}: {exc})") from None


def _file_bytes(path: str) -> bytes:
    return safe_io.read_file_bytes(path, field="csv_path", max_bytes=MAX_CSV_BYTES, error=DatasetError)


@functools.lru_cache(maxsize=8)
def _load_csv_cached(path: str, label: str, mtime_ns: int, size: int, schema: Optional[tabular.CsvSchema],
                     derivation: Optional[tabular.PrivateDerivation], max_train_examples: Optional[int]) -> Dataset:
    return parse_csv(_file_bytes(path), label=label, name=os.path.basename(path), schema=schema,
                     derivation=derivation, max_train_examples=max_train_examples)


@functools.lru_cache(maxsize=16)
def _csv_train_rows_cached(path: str, label: str, mtime_ns: int, size: int) -> int:
    return len(_split_table(_file_bytes(path), label=label, name=os.path.basename(path))[2])


@functools.lru_cache(maxsize=16)
def _csv_columns_cached(path: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    return csv_columns(_file_bytes(path), name=os.path.basename(path))


def csv_columns(raw: bytes, *, name: str = "data.csv") -> tuple[str, ...]:
    """The header of CSV bytes, for choosing the label column; a file that cannot be a table is refused."""
    return tuple(_read_table(raw, name=name, header_only=True).columns)


def _read_table(raw: bytes, *, name: str, header_only: bool = False) -> "object":
    """CSV bytes as a pandas frame with string column names; refuses empty, unreadable or headerless files."""
    import pandas as pd

    text = _decode_text(raw)
    if not text.strip():
        raise DatasetError("csv_path", f"{name} is empty", allowed="a CSV file with a header row and data rows")
    _check_shape(text, name=name)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=_delimiter(text), skipinitialspace=True,
                            nrows=0 if header_only else None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError("csv_path", f"{name} is not a readable CSV file: {first}") from None
    frame.columns = [str(c) for c in frame.columns]
    if all(_looks_numeric(c) for c in frame.columns):
        raise DatasetError("csv_path", f"{name} has no header row (its first row is all numbers)",
                           allowed="a first row of column names")
    return frame


def parse_csv(raw: bytes, *, label: str, name: str = "data.csv", schema: Optional[tabular.CsvSchema] = None,
              derivation: Optional[tabular.PrivateDerivation] = None,
              max_train_examples: Optional[int] = None) -> Dataset:
    """CSV bytes as a Dataset: split 80/20, subset, then preprocess under ``schema`` or one derived by ``derivation``.

    Nothing is fitted on the rows outside ``derivation``'s mechanism, which sees the subset's training
    rows only; without a schema or a derivation the file is refused, naming csv_schema.
    """
    frame, labels, train_rows, test_rows = _split_table(raw, label=label, name=name)
    order = _subset_order(len(train_rows), max_train_examples)
    if order is not None:
        train_rows = train_rows[order]
    if schema is None and derivation is None:
        raise DatasetError("csv_schema", f"{name} has no schema: its feature ranges, categories and classes are "
                           "neither declared nor paid for",
                           allowed="a csv_schema (classes, numeric ranges, categories; in the config or a "
                           "JSON/YAML file), or a csv_preprocessing_epsilon to derive one privately")
    if schema is None:
        derived = tabular.derive_schema(frame.iloc[train_rows], label=label, derivation=derivation)
        schema = derived.schema
        origin = (f"schema derived privately from the training rows (noisy counts, noise std "
                  f"{derived.noise_std:.3g}, threshold {derived.threshold:.3g}"
                  + (f"; left out: {', '.join(derived.left_out)}" if derived.left_out else "") + ")")
    else:
        origin = "declared schema"
    tabular.check_columns(schema, list(frame.columns), label=label, name=name)
    scale = "[-1, 1]" if schema.scale == "symmetric" else "[0, 1]"
    info = DatasetInfo(
        name="csv", title=name, n_train=len(train_rows), n_test=len(test_rows),
        input_shape=(schema.width,), num_classes=len(schema.classes),
        source=f"CSV file {name}, label column {label!r}; 80/20 split (seed 0); {origin}: numbers clipped to "
        f"their range and scaled to {scale}, categories one-hot with an 'other' slot; missing values: "
        f"{tabular.MISSING_POLICY}",
        class_names=schema.classes, feature_names=schema.feature_names, csv_schema=schema,
    )
    y = tabular.label_indices(schema, np.concatenate([labels[train_rows], labels[test_rows]]), label=label)
    return Dataset(info=info,
                   x_train=_frozen(tabular.encode_features(schema, frame.iloc[train_rows])),
                   y_train=_labels(y[:len(train_rows)]),
                   x_test=_frozen(tabular.encode_features(schema, frame.iloc[test_rows])),
                   y_test=_labels(y[len(train_rows):]))


def _split_table(raw: bytes, *, label: str, name: str) -> tuple["object", np.ndarray, np.ndarray, np.ndarray]:
    """(frame, canonical labels, training rows, test rows): rows without a label dropped, then split 80/20."""
    import pandas as pd

    frame = _read_table(raw, name=name)
    columns = list(frame.columns)
    if label not in columns:
        raise DatasetError("csv_label", f"{quote(label)} is not a column of {name}", allowed=_column_list(columns))
    if len(columns) < 2:
        raise DatasetError("csv_path", f"{name} has only the label column",
                           allowed="a label column and at least one feature column")
    labels = tabular.cells(frame[label])
    labelled = np.array([value is not None for value in labels], dtype=bool)
    frame = frame[labelled].reset_index(drop=True)
    labels = labels[labelled]
    if len(frame) < MIN_CSV_ROWS:
        raise DatasetError("csv_path", f"{name} has {len(frame)} rows with a label",
                           allowed=f"at least {MIN_CSV_ROWS} rows")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DatasetError("csv_label", f"column {quote(label)} has only one class ({quote(classes[0])})",
                           allowed="a label column with at least two classes")
    _check_magnitudes(frame.drop(columns=[label]), name=name)
    train_rows, test_rows = _split(pd.factorize(labels)[0])
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
        raise DatasetError("csv_path", f"{name} has a line of {longest:,} characters",
                           allowed=f"lines up to {MAX_CSV_LINE_CHARS:,} characters")
    header = text.lstrip().split("\n", 1)[0]
    columns = header.count(_delimiter(text)) + 1
    if columns > MAX_CSV_COLUMNS:
        raise DatasetError("csv_path", f"{name} has {columns:,} columns",
                           allowed=f"at most {MAX_CSV_COLUMNS:,} columns")


def _check_magnitudes(features: "object", *, name: str) -> None:
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
            raise DatasetError("csv_path", f"column {quote(column)} of {name} holds {value!s:.40}, "
                               "which is not a finite float32 number",
                               allowed=f"finite numbers up to ±{MAX_CSV_MAGNITUDE:.3g}; fix or remove the value")


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


def _split(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    counts = np.bincount(y)
    n_test = int(np.ceil(CSV_TEST_FRACTION * len(y)))
    stratify = y if counts.min() >= 2 and n_test >= len(counts) else None
    train_rows, test_rows = train_test_split(rows, test_size=n_test, stratify=stratify, random_state=SPLIT_SEED)
    return np.sort(train_rows), np.sort(test_rows)
