"""A dataset as arrays with its metadata: what every loader returns and every trainer reads.

Arrays are read-only (``frozen``), so a cached dataset can be shared by every run of a process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from dpcore.csv_schema import CsvSchema


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
    csv_schema: Optional[CsvSchema] = None  # a CSV's features came from this (declared or derived)
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


def replace_info(info: DatasetInfo, **changes: object) -> DatasetInfo:
    import dataclasses

    return dataclasses.replace(info, **changes)


def frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.flags.writeable = False
    return array


def label_array(y: np.ndarray) -> np.ndarray:
    return frozen(np.asarray(y, dtype=np.int32).reshape(-1))
