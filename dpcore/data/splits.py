"""Which rows of a dataset train, test and validate: the train/test split, the subset and the validation hold-out.

The built-in datasets keep their published test sets, and take their subset and validation rows by
fixed permutations. A CSV file's rows are split here, before any schema is applied or derived, so
that the test rows never shape what the model sees, and each row by itself: three coins of its own,
drawn from a keyed hash of its cells, decide whether it tests, whether it is in the
``max_train_examples`` subset, and whether it validates. Adding or removing a row moves no other row
between training, test and validation; with a subset, it can move only the rows at the edge of the
subset's rate, which the number of rows outside the test split sets. A row's place is the same in
every run of a config, whatever its seed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from dpcore.data import tabular
from dpcore.data.types import Dataset, DatasetInfo, frozen, replace_info
from dpcore.errors import DatasetError

CSV_TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed, so n_train and the test set do not change between runs
VALIDATION_SEED = 1  # fixed too, so the validation rows are the same in every run of a config
# The key of a CSV row's coins: fixed and public (it hides nothing), so that a row's place depends on
# its cells alone, never on the run's seed or on the other rows.
CSV_SPLIT_KEY = b"DP Explorer CSV row split, v1"
COIN_BITS = 53  # a coin is a multiple of 2^-53 in [0, 1), exact in float64
TEST_COIN, SUBSET_COIN, VALIDATION_COIN = 0, 1, 2


def validation_size(n: int, fraction: float) -> int:
    """Rows held out for validation from ``n`` training rows: ceil(n · fraction), so any fraction > 0
    holds out at least one row."""
    return int(math.ceil(round(n * fraction, 6)))


def hold_out_validation(dataset: Dataset, fraction: float) -> Dataset:
    """Move ``validation_size(n, fraction)`` training rows, drawn by a fixed permutation, to validation.

    The held-out rows are never trained on, so n (and ε) counts only the rest. Their metrics are not
    covered by ε: like the test set, they are released as they are.
    """
    info = validation_info(dataset.info, fraction)
    if info is dataset.info:
        return dataset
    order = np.random.default_rng(VALIDATION_SEED).permutation(dataset.info.n_train)
    validation, train = np.sort(order[: info.n_validation]), np.sort(order[info.n_validation :])
    return Dataset(
        info=info,
        x_train=frozen(dataset.x_train[train]),
        y_train=frozen(dataset.y_train[train]),
        x_test=dataset.x_test,
        y_test=dataset.y_test,
        x_validation=frozen(dataset.x_train[validation]),
        y_validation=frozen(dataset.y_train[validation]),
    )


def validation_info(info: DatasetInfo, fraction: float) -> DatasetInfo:
    """``info`` after ``hold_out_validation`` (the same object when it holds out nothing), without the arrays;
    a fraction that leaves fewer than 2 training rows is refused."""
    n = info.n_train
    held = validation_size(n, fraction)
    if held == 0:
        return info
    if n - held < 2:
        raise DatasetError(
            "validation_fraction",
            f"{fraction:g} of {n} training rows leaves {n - held} to train on",
            allowed="a fraction that leaves at least 2 training rows",
        )
    return replace_info(info, n_train=n - held, n_validation=held)


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


# -- a CSV file's rows, each by itself ---------------------------------------------------------


def row_coins(frame: Any) -> np.ndarray:
    """Three coins in [0, 1) per row of ``frame`` (test, subset, validation), from its cells alone.

    A row's coins are the BLAKE2b hash, keyed with ``CSV_SPLIT_KEY``, of its cells in header order,
    each in its canonical spelling (``tabular.cells``: "1.0" and "1" spell alike) written as
    ``<length>:<spelling>``, a missing cell as ``-``. Rows that read the same get the same coins, so
    a duplicated row is wholly in one split.
    """
    import pandas as pd

    texts = np.full(len(frame), "", dtype=object)
    for column in frame.columns:
        codes, spellings = pd.factorize(tabular.cells(frame[column]), use_na_sentinel=True)
        tokens = np.array([f"{len(s)}:{s}" for s in spellings] + ["-"], dtype=object)
        texts = texts + tokens[codes]
    digests = b"".join(
        hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=CSV_SPLIT_KEY, digest_size=24).digest()
        for text in texts
    )
    words = np.frombuffer(digests, dtype=">u8").reshape(len(frame), 3)
    return (words >> np.uint64(64 - COIN_BITS)).astype(np.float64) / 2.0**COIN_BITS


@dataclass(frozen=True)
class CsvSplit:
    """Where each row of a CSV file goes (sorted positions), and the subset's rate.

    ``subset_rate`` is the chance that a row outside the test split is in the ``max_train_examples``
    subset: that number over the rows outside the test split (1 without a subset).
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    subset_rate: float


def csv_split(coins: np.ndarray, *, max_train_examples: Optional[int], validation_fraction: float) -> CsvSplit:
    """Each row by its coins: it tests when its test coin is below ``CSV_TEST_FRACTION``; else it is in
    the subset when its subset coin is below ``subset_rate``; a row of the subset validates when its
    validation coin is below ``validation_fraction``, and trains otherwise.

    The sizes follow from the rows: about ``max_train_examples`` rows in the subset, about
    ``validation_fraction`` of them held out. The only rate that depends on the file is the subset's,
    through the number of rows outside the test split, which is public like n.
    """
    outside_test = coins[:, TEST_COIN] >= CSV_TEST_FRACTION
    rate = subset_rate(int(outside_test.sum()), max_train_examples)
    kept = outside_test & (coins[:, SUBSET_COIN] < rate)
    validates = kept & (coins[:, VALIDATION_COIN] < validation_fraction)
    return CsvSplit(
        train=np.flatnonzero(kept & ~validates),
        validation=np.flatnonzero(validates),
        test=np.flatnonzero(~outside_test),
        subset_rate=rate,
    )


def subset_rate(rows: int, max_train_examples: Optional[int]) -> float:
    """The chance that each of ``rows`` CSV rows outside the test split is in the subset: all of them
    without ``max_train_examples`` or when it is at least ``rows``, else ``max_train_examples / rows``."""
    if max_train_examples is None or rows <= int(max_train_examples):
        return 1.0
    return int(max_train_examples) / rows
