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
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

import numpy as np

from dpcore.errors import DatasetError

if TYPE_CHECKING:
    from dpcore.config import DPConfig

BUILTIN_DATASETS = ("digits", "fashion_mnist", "mnist")

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
MIN_CSV_ROWS = 10
MAX_CLASSES = 50
MAX_CATEGORIES = 50
CSV_TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed, so n_train and the test set do not change between runs
VALIDATION_SEED = 1  # fixed too, so the validation rows are the same in every run of a config

CSV_MISSING_POLICY = (
    "rows without a label are dropped; a missing numeric value becomes the training mean "
    "(0 after standardisation); a missing or unseen category becomes all zeros in its one-hot "
    "columns; columns with no values at all are ignored"
)


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
    name="digits", title="Digits (8x8, scikit-learn)", n_train=1437, n_test=360,
    input_shape=(8, 8, 1), num_classes=10, class_names=tuple(str(i) for i in range(10)),
    source="scikit-learn's bundled copy of the UCI handwritten digits; stratified 80/20 split (seed 0)",
)
_FASHION = DatasetInfo(
    name="fashion_mnist", title="Fashion-MNIST (28x28)", n_train=60000, n_test=10000,
    input_shape=(28, 28, 1), num_classes=10,
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"),
    source="Zalando Fashion-MNIST IDX files (Debian package dataset-fashion-mnist) or the Keras loader",
)
_MNIST = DatasetInfo(
    name="mnist", title="MNIST (28x28)", n_train=60000, n_test=10000, input_shape=(28, 28, 1),
    num_classes=10, class_names=tuple(str(i) for i in range(10)),
    source="MNIST through the Keras loader (downloaded once, then cached in ~/.keras/datasets)",
)
_BUILTIN_INFO = {info.name: info for info in (_DIGITS, _FASHION, _MNIST)}


# -- public API ----------------------------------------------------------------------------


def dataset_info(name: str, *, csv_path: Optional[str] = None, csv_label: Optional[str] = None) -> DatasetInfo:
    """Metadata of a dataset; built-ins answer without loading, a CSV is read (and cached)."""
    if name in _BUILTIN_INFO:
        return _BUILTIN_INFO[name]
    if name == "csv":
        if not csv_path or not csv_label:
            raise DatasetError("csv_path", "a CSV dataset needs a file path and a label column",
                               allowed="csv_path and csv_label both set")
        return _load_csv(csv_path, csv_label).info
    raise DatasetError("dataset", f"{name!r} is not a known dataset",
                       allowed=", ".join(BUILTIN_DATASETS + ("csv",)))


def train_size(config: "DPConfig") -> int:
    """The n the accountant must use: the rows trained on, after ``max_train_examples`` and the
    validation hold-out (``validation_fraction``)."""
    info = dataset_info(config.dataset, csv_path=config.csv_path, csv_label=config.csv_label)
    available = _subset_size(info.n_train, config.max_train_examples)
    return available - validation_size(available, config.validation_fraction)


def validation_size(n: int, fraction: float) -> int:
    """Rows held out for validation from ``n`` training rows: ceil(n · fraction), so any fraction > 0
    holds out at least one row."""
    return int(math.ceil(round(n * fraction, 6)))


def load(config: "DPConfig") -> Dataset:
    """Load the dataset ``config`` names, subset to ``max_train_examples``, then hold out the
    validation rows; raises DatasetError."""
    if config.dataset == "csv":
        full = _load_csv(config.csv_path or "", config.csv_label or "")
    elif config.dataset in _LOADERS:
        full = _load_builtin(config.dataset)
    else:
        raise DatasetError("dataset", f"{config.dataset!r} is not a known dataset",
                           allowed=", ".join(BUILTIN_DATASETS + ("csv",)))
    return hold_out_validation(subset(full, config.max_train_examples), config.validation_fraction)


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
    n = _subset_size(dataset.info.n_train, max_train_examples)
    if n == dataset.info.n_train:
        return dataset
    order = np.random.default_rng(SPLIT_SEED).permutation(dataset.info.n_train)[:n]
    order.sort()
    info = _replace_info(dataset.info, n_train=n)
    return Dataset(info=info, x_train=_frozen(dataset.x_train[order]), y_train=_frozen(dataset.y_train[order]),
                   x_test=dataset.x_test, y_test=dataset.y_test)


# -- built-in datasets ---------------------------------------------------------------------


def _subset_size(n_train: int, max_train_examples: Optional[int]) -> int:
    return n_train if max_train_examples is None else min(n_train, int(max_train_examples))


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


def _fashion_mnist_arrays() -> tuple[np.ndarray, ...]:
    directories = [os.environ.get("DPEXPLORER_FASHION_MNIST_DIR", ""), *FASHION_MNIST_DIRS]
    for directory in filter(None, directories):
        if all(os.path.isfile(os.path.join(directory, f)) for f in IDX_FILES.values()):
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


def _load_csv(path: str, label: str) -> Dataset:
    stat = _checked_csv_stat(path)
    return _read_csv_file(lambda: _load_csv_cached(os.path.abspath(path), label, stat.st_mtime_ns, stat.st_size),
                          path)


def csv_file_columns(path: str) -> tuple[str, ...]:
    """The header of the CSV file at ``path``, with the same checks as loading it; cached per file version."""
    stat = _checked_csv_stat(path)
    return _read_csv_file(lambda: _csv_columns_cached(os.path.abspath(path), stat.st_mtime_ns, stat.st_size),
                          path)


def _checked_csv_stat(path: str) -> os.stat_result:
    """The file's stat, after checking that it exists, is a file and is not too large."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise DatasetError("csv_path", f"file {path!r} does not exist") from None
    except OSError as exc:
        raise DatasetError("csv_path", f"cannot read {path!r}: {exc}") from None
    if not os.path.isfile(path):
        raise DatasetError("csv_path", f"{path!r} is not a file")
    if stat.st_size > MAX_CSV_BYTES:
        raise DatasetError("csv_path", f"{path!r} is {stat.st_size / 2**20:.1f} MiB, too large",
                           allowed=f"files up to {MAX_CSV_BYTES // 2**20} MiB")
    return stat


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
    with open(path, "rb") as handle:
        return handle.read(MAX_CSV_BYTES + 1)


@functools.lru_cache(maxsize=8)
def _load_csv_cached(path: str, label: str, mtime_ns: int, size: int) -> Dataset:
    return parse_csv(_file_bytes(path), label=label, name=os.path.basename(path))


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


def parse_csv(raw: bytes, *, label: str, name: str = "data.csv") -> Dataset:
    """Turn CSV bytes into a Dataset: split 80/20, fit the preprocessing on the training rows only."""
    frame = _read_table(raw, name=name)
    columns = list(frame.columns)
    if label not in columns:
        raise DatasetError("csv_label", f"{label!r} is not a column of {name}", allowed=_column_list(columns))
    if len(columns) < 2:
        raise DatasetError("csv_path", f"{name} has only the label column",
                           allowed="a label column and at least one feature column")
    frame = frame[frame[label].notna()].reset_index(drop=True)
    if len(frame) < MIN_CSV_ROWS:
        raise DatasetError("csv_path", f"{name} has {len(frame)} rows with a label",
                           allowed=f"at least {MIN_CSV_ROWS} rows")

    y_all, class_names = _encode_labels(frame[label], label)
    features = frame.drop(columns=[label])
    features = features.loc[:, features.notna().any(axis=0)]
    if features.shape[1] == 0:
        raise DatasetError("csv_path", f"{name} has no feature column with values",
                           allowed="at least one column besides the label")
    train_rows, test_rows = _split(y_all)
    encoder = _fit_encoder(features.iloc[train_rows])
    x_train = encoder(features.iloc[train_rows])
    x_test = encoder(features.iloc[test_rows])
    info = DatasetInfo(
        name="csv", title=name, n_train=len(train_rows), n_test=len(test_rows),
        input_shape=(x_train.shape[1],), num_classes=len(class_names),
        source=f"CSV file {name}, label column {label!r}; 80/20 split (seed 0); numeric features "
        f"standardised, text features one-hot encoded; missing values: {CSV_MISSING_POLICY}",
        class_names=class_names, feature_names=encoder.names,
    )
    return Dataset(info=info, x_train=_frozen(x_train), y_train=_labels(y_all[train_rows]),
                   x_test=_frozen(x_test), y_test=_labels(y_all[test_rows]))


def _decode_text(raw: bytes) -> str:
    if len(raw) > MAX_CSV_BYTES:
        raise DatasetError("csv_path", "the file is too large", allowed=f"files up to {MAX_CSV_BYTES // 2**20} MiB")
    if b"\x00" in raw[:65536]:
        raise DatasetError("csv_path", "the file is binary, not a text CSV file", allowed="a comma-separated text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    sample = text[:65536]
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\r\n\t")
    if sample and control > 0.01 * len(sample):
        raise DatasetError("csv_path", "the file is binary, not a text CSV file", allowed="a comma-separated text file")
    return text


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
    shown = ", ".join(repr(c) for c in columns[:20])
    return shown + (f" and {len(columns) - 20} more" if len(columns) > 20 else "")


def _encode_labels(column: "object", label: str) -> tuple[np.ndarray, tuple[str, ...]]:
    import pandas as pd

    series: pd.Series = column  # type: ignore[assignment]
    if pd.api.types.is_float_dtype(series) and (series % 1 == 0).all():
        series = series.astype(np.int64)
    values = series.astype(str).str.strip()
    class_names = tuple(sorted(values.unique(), key=_class_sort_key))
    if len(class_names) < 2:
        raise DatasetError("csv_label", f"column {label!r} has only one class ({class_names[0]!r})",
                           allowed="a label column with at least two classes")
    if len(class_names) > MAX_CLASSES:
        kind = "numbers" if pd.api.types.is_numeric_dtype(column) else "text values"  # type: ignore[arg-type]
        raise DatasetError("csv_label", f"column {label!r} has {len(class_names)} distinct {kind}; "
                           "too many classes for a classifier",
                           allowed=f"a label column with 2 to {MAX_CLASSES} classes")
    index = {name: i for i, name in enumerate(class_names)}
    return values.map(index).to_numpy(dtype=np.int32), class_names


def _class_sort_key(name: str) -> tuple[int, float, str]:
    return (0, float(name), "") if _looks_numeric(name) else (1, 0.0, name)


def _split(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    counts = np.bincount(y)
    n_test = int(np.ceil(CSV_TEST_FRACTION * len(y)))
    stratify = y if counts.min() >= 2 and n_test >= len(counts) else None
    train_rows, test_rows = train_test_split(rows, test_size=n_test, stratify=stratify, random_state=SPLIT_SEED)
    return np.sort(train_rows), np.sort(test_rows)


@dataclass(frozen=True)
class _Encoder:
    """Preprocessing fitted on training rows: standardise numbers, one-hot encode text."""

    numeric: tuple[tuple[str, float, float], ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c for c, _, _ in self.numeric) + tuple(
            f"{c}={v}" for c, values in self.categorical for v in values
        )

    def __call__(self, frame: "object") -> np.ndarray:
        import pandas as pd

        df: pd.DataFrame = frame  # type: ignore[assignment]
        parts = []
        for column, mean, std in self.numeric:
            values = _numeric(df[column]).fillna(mean).to_numpy(dtype=np.float64)
            parts.append(((values - mean) / std)[:, None])
        for column, categories in self.categorical:
            text = _text(df[column])
            parts.append(np.stack([(text == c).to_numpy() for c in categories], axis=1).astype(np.float64))
        return np.concatenate(parts, axis=1).astype(np.float32)


def _numeric(series: "object") -> "object":
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce")  # type: ignore[arg-type]
    return values.replace([np.inf, -np.inf], np.nan).astype(np.float64)


def _text(series: "object") -> "object":
    import pandas as pd

    s: pd.Series = series  # type: ignore[assignment]
    return s.where(s.isna(), s.astype(str).str.strip())


def _fit_encoder(train: "object") -> _Encoder:
    import pandas as pd

    df: pd.DataFrame = train  # type: ignore[assignment]
    numeric, categorical = [], []
    for column in df.columns:
        series = df[column]
        present = series.dropna()
        if present.empty:
            continue
        as_number = _numeric(present)
        if pd.api.types.is_bool_dtype(series) or as_number.notna().all():
            values = as_number.to_numpy(dtype=np.float64)
            values = values[np.isfinite(values)]
            mean = float(values.mean()) if values.size else 0.0
            std = float(values.std()) if values.size else 0.0
            numeric.append((column, mean, std if std > 0 else 1.0))
        else:
            categories = tuple(sorted(_text(present).unique()))
            if len(categories) > MAX_CATEGORIES:
                raise DatasetError("csv_path", f"column {column!r} has {len(categories)} distinct text values, "
                                   "too many to one-hot encode",
                                   allowed=f"at most {MAX_CATEGORIES} categories per text column; "
                                   "drop the column or make it numeric")
            categorical.append((column, categories))
    if not numeric and not categorical:
        raise DatasetError("csv_path", "no feature column has values in the training rows",
                           allowed="at least one column besides the label")
    return _Encoder(numeric=tuple(numeric), categorical=tuple(categorical))
