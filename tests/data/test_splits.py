"""dpcore.data.splits: each CSV row's test, subset and validation membership is its own."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpcore import csv_schema
from dpcore.config import DPConfig
from dpcore.data import csv_files, datasets, splits
from dpcore.errors import DatasetError

N_ROWS = 2000
HEADER = "id,income,city,label"
# The id makes every row distinct, and its feature (scaled to [0, 1]) names the row in the arrays.
SCHEMA = csv_schema.CsvSchema.from_dict(
    {
        "classes": ["no", "yes"],
        "numeric": {"id": [0, 10_000], "income": [0, 100]},
        "categorical": {"city": ["Lyon", "Paris"]},
    }
)


def _rows(count: int = N_ROWS) -> list[str]:
    rng = np.random.default_rng(0)
    return [
        f"{i},{rng.uniform(10, 90):.2f},{'Paris' if rng.random() < 0.6 else 'Lyon'},{'yes' if rng.random() < 0.5 else 'no'}"
        for i in range(count)
    ]


def _bytes(rows: list[str]) -> bytes:
    return "\n".join([HEADER, *rows]).encode()


def _membership(rows: list[str], **options: object) -> dict[str, str]:
    """Each row's text and where it goes: 'train', 'validation', 'test', or 'outside' (not in the subset)."""
    frame, _ = csv_files.labelled_table(_bytes(rows), label="label", name="data.csv")
    options = {"max_train_examples": None, "validation_fraction": 0.0, **options}
    split = csv_files.split_table(frame, name="data.csv", **options)  # type: ignore[arg-type]
    where = ["outside"] * len(rows)
    for part in ("train", "validation", "test"):
        for position in getattr(split, part):
            where[position] = part
    return dict(zip(rows, where))


def _coins(rows: list[str]) -> dict[str, np.ndarray]:
    """Each row's three coins, each computed from that row alone."""
    return dict(zip(rows, splits.row_coins(pd.DataFrame([row.split(",") for row in rows], columns=HEADER.split(",")))))


def _tests(row: str) -> bool:
    return bool(_coins([row])[row][splits.TEST_COIN] < splits.CSV_TEST_FRACTION)


def _ids(x: np.ndarray) -> set[int]:
    return {int(v) for v in np.rint(x[:, 0] * 10_000)}


# One row added (an existing label, a label no other row has, an extreme value), or one removed.
NEIGHBOURS = {
    "added, existing label": lambda rows: rows + ["5000,55.00,Paris,yes"],
    "added, a new label": lambda rows: rows + ["5001,55.00,Paris,appeal_pending"],
    "added, an extreme value": lambda rows: rows + ["5002,1e30,Atlantis,no"],
    "removed": lambda rows: rows[:1234] + rows[1235:],
}


@pytest.mark.parametrize("neighbour", sorted(NEIGHBOURS))
def test_a_neighbouring_file_moves_no_other_row_between_train_test_and_validation(neighbour):
    rows = _rows()
    other = NEIGHBOURS[neighbour](rows)
    schema = csv_schema.CsvSchema.from_dict({**SCHEMA.to_dict(), "other_class": True})  # takes the new label
    places = []
    for data in (rows, other):
        dataset = csv_files.parse_csv(_bytes(data), label="label", schema=schema, validation_fraction=0.2)
        places.append(
            {
                part: _ids(getattr(dataset, f"x_{part}"))
                for part in ("train", "validation", "test")
                if getattr(dataset, f"x_{part}") is not None
            }
        )
    shared = {int(row.split(",")[0]) for row in set(rows) & set(other)}
    for part in ("train", "validation", "test"):
        assert places[0][part] & shared == places[1][part] & shared, part
    assert sum(len(ids) for ids in places[0].values()) == len(rows)  # every row is somewhere, once
    assert len(shared) == min(len(rows), len(other))


@pytest.mark.parametrize("neighbour", sorted(NEIGHBOURS))
def test_with_a_subset_only_rows_at_the_edge_of_its_rate_can_move(neighbour):
    """The subset's rate is max_train_examples over the rows outside the test split: a row added there
    or removed from there changes that rate, and with it exactly the rows whose subset coin lies
    between the two rates; no row's test or validation coin changes."""
    rows = _rows()
    other = NEIGHBOURS[neighbour](rows)
    options = {"max_train_examples": 600, "validation_fraction": 0.1}
    before, after = _membership(rows, **options), _membership(other, **options)
    coins = _coins(sorted(set(rows) | set(other)))
    outside_test = [
        sum(1 for row in data if coins[row][splits.TEST_COIN] >= splits.CSV_TEST_FRACTION) for data in (rows, other)
    ]
    rates = [splits.subset_rate(count, 600) for count in outside_test]
    low, high = sorted(rates)
    shared = set(rows) & set(other)
    moved = {row for row in shared if before[row] != after[row]}
    at_the_edge = {row for row in shared if before[row] != "test" and low <= coins[row][splits.SUBSET_COIN] < high}
    assert moved == at_the_edge
    assert len(moved) <= 3  # on average 600 / 1600 of a row
    assert all((before[row] == "test") == (after[row] == "test") for row in shared)


def test_replacing_a_row_by_one_on_the_same_side_of_the_test_split_moves_no_other_row():
    rows = _rows()
    options = {"max_train_examples": 600, "validation_fraction": 0.1}
    before = _membership(rows, **options)
    removed = rows[77]
    side = before[removed] == "test"
    added = next(row for row in (f"{6000 + i},42.00,Lyon,no" for i in range(100)) if _tests(row) == side)
    after = _membership(rows[:77] + rows[78:] + [added], **options)
    assert all(before[row] == after[row] for row in rows if row != removed)


def test_a_rows_coins_are_its_own_whatever_the_other_rows_and_their_order():
    rows = _rows(50)
    frame, _ = csv_files.labelled_table(_bytes(rows), label="label", name="data.csv")
    coins = splits.row_coins(frame)
    assert coins.shape == (50, 3) and ((0 <= coins) & (coins < 1)).all()
    picked = [31, 4, 17, 4]
    few, _ = csv_files.labelled_table(_bytes([rows[i] for i in picked] + rows[40:46]), label="label", name="d.csv")
    np.testing.assert_array_equal(splits.row_coins(few)[:4], coins[picked])
    # Cells that read the same give the same coins, whatever the column's other cells make pandas think.
    spelled = pd.DataFrame({"a": ["1.0", "x", " 7 "], "b": [None, "", "TRUE"]})
    alike = pd.DataFrame({"a": ["1", "x", "7"], "b": [np.nan, np.nan, "true"]})
    np.testing.assert_array_equal(splits.row_coins(spelled), splits.row_coins(alike))
    assert len({tuple(c) for c in coins}) == 50


def test_a_duplicated_row_is_wholly_in_one_split():
    rows = _rows(300)
    twice = rows + rows[:40]
    dataset = csv_files.parse_csv(_bytes(twice), label="label", schema=SCHEMA, validation_fraction=0.2)
    for part in ("train", "validation", "test"):
        ids = np.rint(getattr(dataset, f"x_{part}")[:, 0] * 10_000).astype(int)
        counts = np.bincount(ids, minlength=300)
        assert (counts[:40] % 2 == 0).all() and (counts[40:] <= 1).all(), part


def test_the_splits_have_their_advertised_sizes_within_chance():
    rows = _rows()
    frame, _ = csv_files.labelled_table(_bytes(rows), label="label", name="data.csv")
    split = csv_files.split_table(frame, name="data.csv", max_train_examples=600, validation_fraction=0.25)
    outside_test = N_ROWS - len(split.test)

    def within_chance(count: int, trials: int, p: float) -> bool:
        return abs(count - trials * p) <= 4 * math.sqrt(trials * p * (1 - p))

    assert within_chance(len(split.test), N_ROWS, splits.CSV_TEST_FRACTION)
    assert split.subset_rate == 600 / outside_test
    subset = len(split.train) + len(split.validation)
    assert within_chance(subset, outside_test, split.subset_rate)
    assert within_chance(len(split.validation), subset, 0.25)
    assert not set(split.train) & set(split.validation) and not set(split.test) & (
        set(split.train) | set(split.validation)
    )


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"max_train_examples": 500},
        {"validation_fraction": 0.3},
        {"max_train_examples": 700, "validation_fraction": 0.2},
    ],
)
def test_n_for_the_accountant_is_the_number_of_rows_that_train(tmp_path, changes):
    path = tmp_path / "data.csv"
    path.write_bytes(_bytes(_rows(1000)))
    config = DPConfig(
        dataset="csv", csv_path=str(path), csv_label="label", csv_schema=SCHEMA, batch_size=16, delta=1e-4, **changes
    )
    dataset = datasets.load(config)
    assert datasets.train_size(config) == dataset.info.n_train == len(dataset.x_train) == len(dataset.y_train)
    assert dataset.info.n_validation == (0 if dataset.x_validation is None else len(dataset.x_validation))
    assert (dataset.x_validation is None) == (config.validation_fraction == 0)
    # The same rows in every run: the split does not follow the run's seed.
    again = datasets.load(config.replace(seed=config.seed + 1))
    np.testing.assert_array_equal(again.x_train, dataset.x_train)
    np.testing.assert_array_equal(again.x_test, dataset.x_test)


def test_a_file_whose_rows_all_train_or_too_few_train_is_refused_naming_the_setting():
    rows = _rows()
    frame, _ = csv_files.labelled_table(_bytes(rows), label="label", name="data.csv")
    coins = splits.row_coins(frame)
    training_rows = [row for row, c in zip(rows, coins) if c[splits.TEST_COIN] >= splits.CSV_TEST_FRACTION]
    with pytest.raises(DatasetError, match="test split") as refused:
        csv_files.parse_csv(_bytes(training_rows[:12]), label="label", schema=SCHEMA)
    assert refused.value.field == "csv_path"
    with pytest.raises(DatasetError) as refused:
        csv_files.parse_csv(_bytes(rows[:40]), label="label", schema=SCHEMA, validation_fraction=0.99)
    assert refused.value.field == "validation_fraction"
