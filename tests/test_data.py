"""dpcore.data: the built-in datasets, subsetting, and a user's CSV (good and bad files)."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO_ROOT
from dpcore import data
from dpcore.config import DPConfig
from dpcore.errors import DatasetError

SAMPLE_CSV = str(REPO_ROOT / "assets" / "sample.csv")


def csv_config(path: str, label: str = "decision", **changes: object) -> DPConfig:
    return DPConfig(dataset="csv", csv_path=path, csv_label=label, batch_size=16, delta=1e-4, **changes)


def write(tmp_path, text: str | bytes, name: str = "data.csv") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


# -- built-ins -------------------------------------------------------------------------------


def test_digits_loads_with_the_advertised_split_and_scaling():
    dataset = data.load(DPConfig(dataset="digits"))
    info = data.dataset_info("digits")
    assert dataset.info == info
    assert dataset.x_train.shape == (info.n_train, 8, 8, 1) == (1437, 8, 8, 1)
    assert dataset.x_test.shape == (360, 8, 8, 1)
    assert dataset.x_train.dtype == np.float32 and dataset.y_train.dtype == np.int32
    assert 0.0 <= dataset.x_train.min() and dataset.x_train.max() == 1.0
    assert set(np.unique(dataset.y_test)) == set(range(10))
    assert not dataset.x_train.flags.writeable


def test_fashion_mnist_reads_the_installed_idx_files():
    dataset = data.load(DPConfig(dataset="fashion_mnist"))
    assert dataset.x_train.shape == (60000, 28, 28, 1) and dataset.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(dataset.y_train).tolist() == [6000] * 10
    assert np.bincount(dataset.y_test).tolist() == [1000] * 10
    assert dataset.x_train.min() == 0.0 and dataset.x_train.max() == 1.0
    info = data.dataset_info("fashion_mnist")
    assert (info.n_train, info.n_test, info.input_shape, info.num_classes) == (60000, 10000, (28, 28, 1), 10)


def test_fashion_mnist_says_how_to_get_it_when_missing(monkeypatch):
    import tensorflow as tf

    def offline() -> None:
        raise OSError("network is unreachable")

    # No IDX files, and the Keras download fails as it does offline.
    monkeypatch.setattr(data, "FASHION_MNIST_DIRS", ())
    monkeypatch.delenv("DPEXPLORER_FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(tf.keras.datasets.fashion_mnist, "load_data", offline)
    data._load_builtin.cache_clear()
    try:
        with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist") as info:
            data.load(DPConfig(dataset="fashion_mnist"))
        assert "network is unreachable" in str(info.value)
    finally:
        data._load_builtin.cache_clear()


def test_idx_reader_rejects_a_file_that_is_not_idx(tmp_path):
    with pytest.raises(DatasetError, match="not an IDX file"):
        data.read_idx(write(tmp_path, b"PK\x03\x04 not idx at all", "x.idx"))
    truncated = bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + b"\x01" * 10
    with pytest.raises(DatasetError, match="expected 100"):
        data.read_idx(write(tmp_path, truncated, "short.idx"))


def test_mnist_loads_or_says_it_needs_the_internet():
    try:
        dataset = data.load(DPConfig(dataset="mnist"))
    except DatasetError as exc:
        assert "internet" in str(exc) and str(exc).startswith("dataset:")
    else:
        assert dataset.x_train.shape == (60000, 28, 28, 1)


def test_unknown_dataset_name_is_a_dataset_error():
    with pytest.raises(DatasetError, match="not a known dataset"):
        data.dataset_info("cifar")


def test_subsetting_fixes_n_for_the_accountant_and_is_deterministic():
    config = DPConfig(dataset="digits", max_train_examples=200)
    first, second = data.load(config), data.load(config)
    assert data.train_size(config) == 200 == first.info.n_train == first.x_train.shape[0]
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert first.x_test.shape[0] == 360  # the test set is never subset
    assert data.train_size(DPConfig(dataset="digits", max_train_examples=10**6)) == 1437


def test_validation_rows_are_held_out_before_training_and_n_counts_the_rest():
    config = DPConfig(dataset="digits", max_train_examples=200, validation_fraction=0.2)
    dataset = data.load(config)
    assert data.train_size(config) == 160 == dataset.info.n_train == dataset.x_train.shape[0]
    assert dataset.info.n_validation == 40 == dataset.x_validation.shape[0] == dataset.y_validation.shape[0]
    # The two parts are the subset's rows, each once.
    subset = data.load(config.replace(validation_fraction=0.0))
    rows = lambda x: {r.tobytes() for r in x}  # noqa: E731
    assert rows(dataset.x_train) | rows(dataset.x_validation) == rows(subset.x_train)
    assert not rows(dataset.x_train) & rows(dataset.x_validation)
    assert subset.x_validation is None and subset.info.n_validation == 0
    np.testing.assert_array_equal(data.load(config).x_validation, dataset.x_validation)  # same rows every run
    assert data.train_size(DPConfig(dataset="digits", validation_fraction=0.2)) == 1437 - 288  # ceil(287.4)


def test_validation_size_holds_out_at_least_one_row_and_leaves_two_to_train():
    assert [data.validation_size(n, f) for n, f in [(10, 0.0), (10, 0.01), (60000, 0.2), (1437, 0.2)]] == [
        0, 1, 12000, 288]
    with pytest.raises(DatasetError, match="validation_fraction"):
        data.load(DPConfig(dataset="digits", max_train_examples=2, validation_fraction=0.5, batch_size=1))


# -- CSV -------------------------------------------------------------------------------------


def test_sample_csv_is_encoded_with_train_only_statistics():
    config = csv_config(SAMPLE_CSV)
    dataset = data.load(config)
    info = dataset.info
    assert info.n_train + info.n_test == 240 and data.train_size(config) == info.n_train
    assert info.class_names == ("approved", "declined")
    assert info.input_shape == (len(info.feature_names),)
    assert "education=master" in info.feature_names and "income_k" in info.feature_names
    assert np.isfinite(dataset.x_train).all() and np.isfinite(dataset.x_test).all()
    numeric = [info.feature_names.index(c) for c in ("age", "income_k", "years_employed", "debt_ratio")]
    np.testing.assert_allclose(dataset.x_train[:, numeric].mean(axis=0), 0.0, atol=1e-5)
    assert not np.allclose(dataset.x_test[:, numeric].mean(axis=0), 0.0, atol=1e-3)


def test_csv_missing_values_follow_the_stated_policy():
    rows = ["x,colour,label"]
    rows += [f"{i},{'red' if i % 2 else 'blue'},{i % 2}" for i in range(40)]
    rows += [",red,1", "5,,0", "9,blue,"]
    dataset = data.parse_csv("\n".join(rows).encode(), label="label")
    info = dataset.info
    assert info.n_train + info.n_test == 42  # the row without a label is dropped
    assert info.feature_names == ("x", "colour=blue", "colour=red")
    x = np.concatenate([dataset.x_train, dataset.x_test])
    assert np.isfinite(x).all()
    assert sum(1 for row in x if row[0] == 0.0 and row[2] == 1.0) == 1  # missing number -> mean -> 0
    assert sum(1 for row in x if row[1] == 0.0 and row[2] == 0.0) == 1  # missing category -> zeros
    assert "missing" in info.source


def test_csv_encoder_uses_training_rows_only_and_zeros_unseen_categories():
    import pandas as pd

    train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "colour": ["red", "blue", "red"]})
    test = pd.DataFrame({"x": [100.0, np.nan], "colour": ["green", "blue"]})
    encoder = data._fit_encoder(train)
    encoded = encoder(test)
    np.testing.assert_allclose(encoded[:, 0], [(100.0 - 2.0) / np.std([1.0, 2.0, 3.0]), 0.0], rtol=1e-6)
    np.testing.assert_array_equal(encoded[:, 1:], [[0.0, 0.0], [1.0, 0.0]])


def test_csv_numeric_labels_and_boolean_features(tmp_path):
    rows = ["flag,score,grade"] + [f"{'true' if i % 3 else 'false'},{i * 0.5},{i % 3 + 1}" for i in range(30)]
    dataset = data.load(csv_config(write(tmp_path, "\n".join(rows)), label="grade"))
    assert dataset.info.class_names == ("1", "2", "3")
    assert dataset.info.num_classes == 3 and set(np.unique(dataset.y_train)) <= {0, 1, 2}


@pytest.mark.parametrize("separator", [";", "\t"])
def test_semicolon_and_tab_separated_files_are_read(tmp_path, separator):
    rows = [separator.join(["size", "kind", "decision"])]
    rows += [separator.join([str(i), "ab"[i % 2], str(i % 2)]) for i in range(30)]
    dataset = data.load(csv_config(write(tmp_path, "\n".join(rows))))
    assert dataset.info.feature_names == ("size", "kind=a", "kind=b")


BAD_FILES = {
    "empty": ("", "empty"),
    "only a header": ("a,b,decision\n", "rows with a label"),
    "no header": ("\n".join(f"{i},{i * 2},{i % 2}" for i in range(20)), "no header row"),
    "one class": ("a,decision\n" + "\n".join(f"{i},yes" for i in range(20)), "only one class"),
    "too many classes": ("a,decision\n" + "\n".join(f"{i},name{i}" for i in range(80)), "too many classes"),
    "continuous label": ("a,decision\n" + "\n".join(f"{i},{i * 0.37:.3f}" for i in range(80)), "too many classes"),
    "label missing": ("a,b\n" + "\n".join(f"{i},{i % 2}" for i in range(20)), "'decision' is not a column"),
    "only the label": ("decision\n" + "\n".join(str(i % 2) for i in range(20)), "only the label column"),
    "ragged rows": ("a,decision\n1,0\n2,1,3,4,5\n" + "\n".join(f"{i},{i % 2}" for i in range(20)),
                    "not a readable CSV"),
    "id-like text column": ("a,decision\n" + "\n".join(f"user{i},{i % 2}" for i in range(80)),
                            "too many to one-hot"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_csv_files_get_a_clear_error(tmp_path, case):
    text, expected = BAD_FILES[case]
    with pytest.raises(DatasetError, match=expected) as info:
        data.load(csv_config(write(tmp_path, text)))
    assert str(info.value).split(":")[0] in ("csv_path", "csv_label")


def test_binary_garbage_is_refused(tmp_path):
    garbage = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(DatasetError, match="binary"):
        data.load(csv_config(write(tmp_path, garbage)))
    with pytest.raises(DatasetError, match="binary"):
        data.load(csv_config(write(tmp_path, "".join(chr(c) for c in range(1, 31)) * 50, "ctl.csv")))


def test_too_large_and_missing_files_are_refused(tmp_path, monkeypatch):
    path = write(tmp_path, "a,decision\n" + "\n".join(f"{i},{i % 2}" for i in range(200)))
    monkeypatch.setattr(data, "MAX_CSV_BYTES", 100)
    with pytest.raises(DatasetError, match="too large"):
        data.load(csv_config(path))
    with pytest.raises(DatasetError, match="does not exist"):
        data.load(csv_config(os.path.join(str(tmp_path), "nope.csv")))


def test_csv_info_needs_path_and_label():
    with pytest.raises(DatasetError, match="csv_path"):
        data.dataset_info("csv")
    assert data.dataset_info("csv", csv_path=SAMPLE_CSV, csv_label="decision").num_classes == 2


CELLS = st.one_of(st.sampled_from(["", "NA", "x", "y", "1", "2.5", "-3", "1e308", "inf", "nan", " z "]),
                  st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=4))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(CELLS, CELLS, st.sampled_from(["yes", "no", "maybe", "", "1", "2"])),
                min_size=0, max_size=40),
       st.sampled_from([",", ";"]))
def test_any_table_is_read_or_refused_with_a_dataset_error(rows, separator):
    lines = [separator.join(["f1", "f2", "decision"])] + [separator.join(row) for row in rows]
    try:
        dataset = data.parse_csv("\n".join(lines).encode("utf-8"), label="decision")
    except DatasetError:
        return
    assert np.isfinite(dataset.x_train).all() and np.isfinite(dataset.x_test).all()
    assert dataset.info.num_classes >= 2 and len(dataset.y_train) == dataset.info.n_train
