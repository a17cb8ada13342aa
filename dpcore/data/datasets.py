"""Dataset registry: digits (bundled), Fashion-MNIST, MNIST and a user's CSV, as arrays plus metadata.

Images come back as float32 arrays of shape (n, height, width, 1) scaled to [0, 1]; tabular data as
float32 arrays of shape (n, features); labels as int32 class indices. Arrays are read-only and cached
per process, so loading the same dataset twice costs nothing.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from dpcore.config import DATASET_TITLES, DATASETS
from dpcore.csv_schema import CsvSchema
from dpcore.data import csv_files
from dpcore.data.csv_files import (
    csv_test_rows,
    csv_train_rows,
    describe_csv,
    describe_csv_undrawn,
    load_csv,
    private_derivation,
)
from dpcore.data.splits import (
    CSV_TEST_FRACTION,
    SPLIT_SEED,
    hold_out_validation,
    subset,
    subset_size,
    validation_size,
)
from dpcore.data.types import Dataset, DatasetInfo, frozen, label_array
from dpcore.errors import DatasetError, UserInputError
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


_DIGITS = DatasetInfo(
    name="digits",
    title=DATASET_TITLES["digits"],
    n_train=1437,
    n_test=360,
    input_shape=(8, 8, 1),
    num_classes=10,
    class_names=tuple(str(i) for i in range(10)),
    source="scikit-learn's bundled copy of the UCI handwritten digits; stratified 80/20 split (seed 0)",
)
_FASHION = DatasetInfo(
    name="fashion_mnist",
    title=DATASET_TITLES["fashion_mnist"],
    n_train=60000,
    n_test=10000,
    input_shape=(28, 28, 1),
    num_classes=10,
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    source="Zalando Fashion-MNIST IDX files (Debian package dataset-fashion-mnist) or the Keras loader",
)
_MNIST = DatasetInfo(
    name="mnist",
    title=DATASET_TITLES["mnist"],
    n_train=60000,
    n_test=10000,
    input_shape=(28, 28, 1),
    num_classes=10,
    class_names=tuple(str(i) for i in range(10)),
    source="MNIST through the Keras loader (downloaded once, then cached in ~/.keras/datasets)",
)
_BUILTIN_INFO = {info.name: info for info in (_DIGITS, _FASHION, _MNIST)}


# -- public API ----------------------------------------------------------------------------


def dataset_info(
    name: str,
    *,
    csv_path: Optional[str] = None,
    csv_label: Optional[str] = None,
    csv_schema: Optional[CsvSchema] = None,
) -> DatasetInfo:
    """Metadata of a dataset; built-ins answer without loading, a CSV is described under its declared schema
    (``csv_files.describe_csv``: read, never encoded).

    A CSV whose schema is derived privately depends on the whole config: use ``describe(config)``.
    """
    if name in _BUILTIN_INFO:
        return _BUILTIN_INFO[name]
    if name == "csv":
        if not csv_path or not csv_label:
            raise DatasetError(
                "csv_path",
                "a CSV dataset needs a file path and a label column",
                allowed="csv_path and csv_label both set",
            )
        return describe_csv(csv_path, csv_label, schema=csv_schema)
    raise DatasetError(
        "dataset", f"{quote(name)} is not a known dataset", allowed=", ".join(BUILTIN_DATASETS + ("csv",))
    )


def config_dataset_info(config: DPConfig) -> DatasetInfo:
    """``config``'s dataset's metadata: a built-in without loading it (before subsetting), a CSV as
    ``describe`` gives it (under the declared schema or the privately derived one)."""
    return describe(config) if config.dataset == "csv" else dataset_info(config.dataset)


def describe_before_run(config: DPConfig) -> DatasetInfo:
    """What a page may say of ``config``'s data before it runs: ``config_dataset_info``, except that a CSV
    schema to be derived privately is not drawn (``csv_files.describe_csv_undrawn``): its noisy counts are
    released once, by the run whose ε counts them, not on every look at a page."""
    if config.dataset == "csv" and private_derivation(config) is not None:
        return describe_csv_undrawn(
            config.csv_path or "",
            config.csv_label or "",
            max_train_examples=config.max_train_examples,
            validation_fraction=config.validation_fraction,
        )
    return config_dataset_info(config)


def describe(config: DPConfig) -> DatasetInfo:
    """What ``config`` trains on, after subsetting, preprocessing (a CSV's schema included) and the
    validation hold-out, as ``load(config).info`` says it, without encoding a CSV's features."""
    if config.dataset != "csv":
        return load(config).info
    return describe_csv(
        config.csv_path or "",
        config.csv_label or "",
        schema=config.csv_schema,
        derivation=private_derivation(config),
        max_train_examples=config.max_train_examples,
        validation_fraction=config.validation_fraction,
    )


def train_size(config: DPConfig) -> int:
    """The n the accountant must use: the rows trained on, after ``max_train_examples`` and the
    validation hold-out (``validation_fraction``).

    For a CSV it is the number of rows whose own coins put them in training (``splits.csv_split``),
    known before any schema is applied: a schema never drops a row (a label outside its classes is
    the class "(other)", or refused), so the n is the same on every route.
    """
    if config.dataset == "csv":
        return csv_train_rows(
            config.csv_path or "",
            config.csv_label or "",
            max_train_examples=config.max_train_examples,
            validation_fraction=config.validation_fraction,
        )
    available = subset_size(dataset_info(config.dataset).n_train, config.max_train_examples)
    return available - validation_size(available, config.validation_fraction)


def test_size(config: DPConfig) -> int:
    """How many test rows ``config``'s runs report their test accuracy on: a built-in's fixed test split
    (no subset or validation hold-out touches it), or a CSV file's rows whose test coin fell below
    ``splits.CSV_TEST_FRACTION``. Raises DatasetError when the data cannot be read."""
    if config.dataset == "csv":
        return csv_test_rows(config.csv_path or "", config.csv_label or "")
    return dataset_info(config.dataset).n_test


def test_size_or_none(config: DPConfig) -> Optional[int]:
    """``test_size``, or None when a CSV cannot be read now."""
    try:
        return test_size(config)
    except UserInputError:
        return None


def train_size_or_none(config: DPConfig) -> Optional[int]:
    """``train_size``, or None when the data cannot be read now (a run then fails with the reason)."""
    try:
        return train_size(config)
    except UserInputError:
        return None


def load(config: DPConfig) -> Dataset:
    """Load the dataset ``config`` names, subset to ``max_train_examples``, then hold out the
    validation rows; raises DatasetError.

    A CSV's rows go to test, the subset and validation each by its own coins, then are preprocessed
    under ``config.csv_schema`` or a schema derived privately from the subset's rows
    (``config.csv_preprocessing_epsilon``); with neither it is refused.
    """
    if config.dataset == "csv":
        return load_csv(
            config.csv_path or "",
            config.csv_label or "",
            schema=config.csv_schema,
            derivation=private_derivation(config),
            max_train_examples=config.max_train_examples,
            validation_fraction=config.validation_fraction,
        )
    if config.dataset not in _LOADERS:
        raise DatasetError(
            "dataset", f"{quote(config.dataset)} is not a known dataset", allowed=", ".join(BUILTIN_DATASETS + ("csv",))
        )
    return hold_out_validation(
        subset(_load_builtin(config.dataset), config.max_train_examples), config.validation_fraction
    )


def dataset_problem(name: str) -> Optional[str]:
    """None when built-in dataset ``name`` is ready to load offline, else what is missing (without loading it)."""
    if name == "fashion_mnist":
        if _fashion_mnist_dir() is not None or _keras_cached("fashion-mnist"):
            return None
        return (
            "Fashion-MNIST is not installed on this machine: install the Debian package "
            "dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist) or set "
            "DPEXPLORER_FASHION_MNIST_DIR. ε can still be explored; training will fail."
        )
    if name == "mnist":
        if (Path.home() / ".keras" / "datasets" / "mnist.npz").is_file():
            return None
        return (
            "MNIST is not cached on this machine (~/.keras/datasets/mnist.npz): training needs "
            "one download. ε can still be explored; offline, use digits or fashion_mnist."
        )
    return None


def _keras_cached(folder: str) -> bool:
    path = Path.home() / ".keras" / "datasets" / folder
    return path.is_dir() and any(path.iterdir())


def clear_cache() -> None:
    """Forget the datasets loaded so far, so the next load reads the files again."""
    _load_builtin.cache_clear()
    csv_files.clear_caches()


# -- built-in datasets ---------------------------------------------------------------------


def _images(x: np.ndarray, scale: float) -> np.ndarray:
    return frozen((x.astype(np.float32) / scale)[..., np.newaxis])


@functools.cache
def _load_builtin(name: str) -> Dataset:
    x_train, y_train, x_test, y_test = _LOADERS[name]()
    info = _BUILTIN_INFO[name]
    return Dataset(info=info, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def _digits_arrays() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.images,
        bunch.target,
        test_size=CSV_TEST_FRACTION,
        stratify=bunch.target,
        random_state=SPLIT_SEED,
    )
    return _images(x_train, 16.0), label_array(y_train), _images(x_test, 16.0), label_array(y_test)


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
        "fashion_mnist",
        problem="Fashion-MNIST is not installed and could not be downloaded",
        allowed="install it with `apt-get install dataset-fashion-mnist` (files in "
        f"{DEBIAN_FASHION_MNIST_DIR}), set DPEXPLORER_FASHION_MNIST_DIR to a folder holding the four "
        "IDX .gz files, or connect to the internet once so Keras can cache it",
    )


def _idx_arrays(directory: str) -> tuple[np.ndarray, ...]:
    arrays = {key: read_idx(os.path.join(directory, filename)) for key, filename in IDX_FILES.items()}
    return (
        _images(arrays["x_train"], 255.0),
        label_array(arrays["y_train"]),
        _images(arrays["x_test"], 255.0),
        label_array(arrays["y_test"]),
    )


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
    return _images(x_train, 255.0), label_array(y_train), _images(x_test, 255.0), label_array(y_test)


def _mnist_arrays() -> tuple[np.ndarray, ...]:
    return _keras_arrays(
        "mnist",
        problem="MNIST could not be downloaded",
        allowed="connect to the internet once so Keras can cache it in ~/.keras/datasets/mnist.npz, "
        "or copy mnist.npz there; offline, use digits or fashion_mnist",
    )


_LOADERS: dict[str, Callable[[], tuple[np.ndarray, ...]]] = {
    "digits": _digits_arrays,
    "fashion_mnist": _fashion_mnist_arrays,
    "mnist": _mnist_arrays,
}
