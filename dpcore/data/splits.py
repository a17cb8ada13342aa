"""Which rows of a dataset train, test and validate: the train/test split, the subset and the validation hold-out.

The built-in datasets keep their published test sets; a CSV file's rows are split here, before any
schema is applied or derived, so that the test rows never shape what the model sees.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from dpcore.data.types import Dataset, frozen, replace_info
from dpcore.errors import DatasetError

CSV_TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed, so n_train and the test set do not change between runs
VALIDATION_SEED = 1  # fixed too, so the validation rows are the same in every run of a config


def validation_size(n: int, fraction: float) -> int:
    """Rows held out for validation from ``n`` training rows: ceil(n · fraction), so any fraction > 0
    holds out at least one row."""
    return int(math.ceil(round(n * fraction, 6)))


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
        raise DatasetError(
            "validation_fraction",
            f"{fraction:g} of {n} training rows leaves {n - held} to train on",
            allowed="a fraction that leaves at least 2 training rows",
        )
    order = np.random.default_rng(VALIDATION_SEED).permutation(n)
    validation, train = np.sort(order[:held]), np.sort(order[held:])
    info = replace_info(dataset.info, n_train=n - held, n_validation=held)
    return Dataset(
        info=info,
        x_train=frozen(dataset.x_train[train]),
        y_train=frozen(dataset.y_train[train]),
        x_test=dataset.x_test,
        y_test=dataset.y_test,
        x_validation=frozen(dataset.x_train[validation]),
        y_validation=frozen(dataset.y_train[validation]),
    )


def subset(dataset: Dataset, max_train_examples: Optional[int]) -> Dataset:
    """The first ``max_train_examples`` of a fixed (seed 0) permutation of the training set."""
    order = subset_order(dataset.info.n_train, max_train_examples)
    if order is None:
        return dataset
    info = replace_info(dataset.info, n_train=len(order))
    return Dataset(
        info=info,
        x_train=frozen(dataset.x_train[order]),
        y_train=frozen(dataset.y_train[order]),
        x_test=dataset.x_test,
        y_test=dataset.y_test,
    )


def subset_size(n_train: int, max_train_examples: Optional[int]) -> int:
    return n_train if max_train_examples is None else min(n_train, int(max_train_examples))


def subset_order(n_train: int, max_train_examples: Optional[int]) -> Optional[np.ndarray]:
    """The sorted positions ``subset`` keeps, or None when it keeps all."""
    n = subset_size(n_train, max_train_examples)
    if n == n_train:
        return None
    return np.sort(np.random.default_rng(SPLIT_SEED).permutation(n_train)[:n])


def split_rows(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    counts = np.bincount(y)
    n_test = int(np.ceil(CSV_TEST_FRACTION * len(y)))
    stratify = y if counts.min() >= 2 and n_test >= len(counts) else None
    train_rows, test_rows = train_test_split(rows, test_size=n_test, stratify=stratify, random_state=SPLIT_SEED)
    return np.sort(train_rows), np.sort(test_rows)
