"""A test accuracy is shown with the test rows it was measured on and its binomial standard error."""

from __future__ import annotations

import math

import pytest

from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.runs.run_table import accuracy_spread_text, accuracy_standard_error, accuracy_text


def test_accuracy_text_names_the_test_rows_and_the_standard_error() -> None:
    # heart.csv's test split: 61 rows, so 0.836 and 0.852 are one patient apart.
    assert accuracy_text(0.836, 61) == "0.836 (n=61 test rows, ±0.047)"
    assert accuracy_text(0.95, 10_000) == "0.950 (n=10,000 test rows, ±0.002)"
    assert accuracy_spread_text(0.836, 61) == "±0.047 (n=61 test rows)"


def test_the_standard_error_is_binomial() -> None:
    assert accuracy_standard_error(0.5, 100) == pytest.approx(0.05)
    assert accuracy_standard_error(0.836, 61) == pytest.approx(math.sqrt(0.836 * 0.164 / 61))
    assert accuracy_standard_error(1.0, 61) == 0.0


@pytest.mark.parametrize("accuracy, n_test", [(None, 61), (math.nan, 61), (0.8, None), (0.8, 0)])
def test_unknowns_show_no_spread(accuracy, n_test) -> None:
    assert accuracy_spread_text(accuracy, n_test) == ""
    assert accuracy_text(accuracy, n_test) == ("—" if accuracy is None or math.isnan(accuracy) else "0.800")


def test_the_test_rows_are_the_whole_test_split_after_subsetting() -> None:
    assert datasets.test_size_or_none(DPConfig(dataset="digits", max_train_examples=100)) == 360
    missing = DPConfig(dataset="csv", csv_path="/nonexistent/data.csv", csv_label="y", csv_preprocessing_epsilon=1.0)
    assert datasets.test_size_or_none(missing) is None
