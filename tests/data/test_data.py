"""dpcore.data.datasets: the built-in datasets, subsetting, and a user's CSV (good and bad files)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpcore import csv_schema
from dpcore.config import DPConfig
from dpcore.data import csv_files, datasets, tabular
from dpcore.errors import DatasetError
from tests.conftest import REPO_ROOT

SAMPLE_CSV = str(REPO_ROOT / "assets" / "sample.csv")


SAMPLE_SCHEMA = csv_schema.load_schema_file(str(REPO_ROOT / "assets" / "sample.schema.yaml"))


def csv_config(path: str, label: str = "decision", **changes: object) -> DPConfig:
    changes.setdefault("csv_schema", SAMPLE_SCHEMA)
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
    dataset = datasets.load(DPConfig(dataset="digits"))
    info = datasets.dataset_info("digits")
    assert dataset.info == info
    assert dataset.x_train.shape == (info.n_train, 8, 8, 1) == (1437, 8, 8, 1)
    assert dataset.x_test.shape == (360, 8, 8, 1)
    assert dataset.x_train.dtype == np.float32 and dataset.y_train.dtype == np.int32
    assert 0.0 <= dataset.x_train.min() and dataset.x_train.max() == 1.0
    assert set(np.unique(dataset.y_test)) == set(range(10))
    assert not dataset.x_train.flags.writeable


def test_fashion_mnist_reads_the_installed_idx_files():
    dataset = datasets.load(DPConfig(dataset="fashion_mnist"))
    assert dataset.x_train.shape == (60000, 28, 28, 1) and dataset.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(dataset.y_train).tolist() == [6000] * 10
    assert np.bincount(dataset.y_test).tolist() == [1000] * 10
    assert dataset.x_train.min() == 0.0 and dataset.x_train.max() == 1.0
    info = datasets.dataset_info("fashion_mnist")
    assert (info.n_train, info.n_test, info.input_shape, info.num_classes) == (60000, 10000, (28, 28, 1), 10)


def test_fashion_mnist_says_how_to_get_it_when_missing(monkeypatch):
    import tensorflow as tf

    def offline() -> None:
        raise OSError("network is unreachable")

    # No IDX files, and the Keras download fails as it does offline.
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIRS", ())
    monkeypatch.delenv("DPEXPLORER_FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(tf.keras.datasets.fashion_mnist, "load_data", offline)
    datasets.clear_cache()
    try:
        with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist") as info:
            datasets.load(DPConfig(dataset="fashion_mnist"))
        assert "network is unreachable" in str(info.value)
    finally:
        datasets.clear_cache()


def test_idx_reader_rejects_a_file_that_is_not_idx(tmp_path):
    with pytest.raises(DatasetError, match="not an IDX file"):
        datasets.read_idx(write(tmp_path, b"PK\x03\x04 not idx at all", "x.idx"))
    truncated = bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + b"\x01" * 10
    with pytest.raises(DatasetError, match="expected 100"):
        datasets.read_idx(write(tmp_path, truncated, "short.idx"))


def test_mnist_loads_or_says_it_needs_the_internet():
    try:
        dataset = datasets.load(DPConfig(dataset="mnist"))
    except DatasetError as exc:
        assert "internet" in str(exc) and str(exc).startswith("dataset:")
    else:
        assert dataset.x_train.shape == (60000, 28, 28, 1)


def test_unknown_dataset_name_is_a_dataset_error():
    with pytest.raises(DatasetError, match="not a known dataset"):
        datasets.dataset_info("cifar")


def test_subsetting_fixes_n_for_the_accountant_and_is_deterministic():
    config = DPConfig(dataset="digits", max_train_examples=200)
    first, second = datasets.load(config), datasets.load(config)
    assert datasets.train_size(config) == 200 == first.info.n_train == first.x_train.shape[0]
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert first.x_test.shape[0] == 360  # the test set is never subset
    assert datasets.train_size(DPConfig(dataset="digits", max_train_examples=10**6)) == 1437


def test_validation_rows_are_held_out_before_training_and_n_counts_the_rest():
    config = DPConfig(dataset="digits", max_train_examples=200, validation_fraction=0.2)
    dataset = datasets.load(config)
    assert datasets.train_size(config) == 160 == dataset.info.n_train == dataset.x_train.shape[0]
    assert dataset.info.n_validation == 40 == dataset.x_validation.shape[0] == dataset.y_validation.shape[0]
    # The two parts are the subset's rows, each once.
    subset = datasets.load(config.replace(validation_fraction=0.0))
    rows = lambda x: {r.tobytes() for r in x}  # noqa: E731
    assert rows(dataset.x_train) | rows(dataset.x_validation) == rows(subset.x_train)
    assert not rows(dataset.x_train) & rows(dataset.x_validation)
    assert subset.x_validation is None and subset.info.n_validation == 0
    np.testing.assert_array_equal(datasets.load(config).x_validation, dataset.x_validation)  # same rows every run
    assert datasets.train_size(DPConfig(dataset="digits", validation_fraction=0.2)) == 1437 - 288  # ceil(287.4)


def test_validation_size_holds_out_at_least_one_row_and_leaves_two_to_train():
    assert [datasets.validation_size(n, f) for n, f in [(10, 0.0), (10, 0.01), (60000, 0.2), (1437, 0.2)]] == [
        0,
        1,
        12000,
        288,
    ]
    with pytest.raises(DatasetError, match="validation_fraction"):
        datasets.load(DPConfig(dataset="digits", max_train_examples=2, validation_fraction=0.5, batch_size=1))


# -- CSV -------------------------------------------------------------------------------------


def test_sample_csv_is_encoded_by_its_public_schema():
    config = csv_config(SAMPLE_CSV)
    dataset = datasets.load(config)
    info = dataset.info
    assert info.n_train + info.n_test == 240 and datasets.train_size(config) == info.n_train == len(dataset.x_train)
    assert info.n_validation == 0 and dataset.x_validation is None
    assert info.class_names == ("approved", "declined") and info.csv_schema == SAMPLE_SCHEMA
    assert info.input_shape == (len(info.feature_names),) == (13,)
    assert "education=master" in info.feature_names and "education=(other)" in info.feature_names
    x = np.concatenate([dataset.x_train, dataset.x_test])
    assert x.min() >= 0.0 and x.max() <= 1.0
    age = info.feature_names.index("age")
    assert x[:, age].min() == pytest.approx((21 - 18) / (100 - 18))  # the youngest is 21 in [18, 100]
    assert datasets.describe(config) == info
    assert datasets.dataset_info("csv", csv_path=SAMPLE_CSV, csv_label="decision", csv_schema=SAMPLE_SCHEMA) == info


@pytest.mark.parametrize(
    "changes",
    [
        {"csv_schema": csv_schema.load_schema_file(str(REPO_ROOT / "assets" / "sample.schema.yaml"))},
        {
            "csv_schema": csv_schema.load_schema_file(str(REPO_ROOT / "assets" / "sample.schema.yaml")),
            "max_train_examples": 100,
            "validation_fraction": 0.1,
        },
        {"csv_preprocessing_epsilon": 5.0, "seed": 3},
        {"csv_preprocessing_epsilon": 5.0, "seed": 4, "max_train_examples": 150, "validation_fraction": 0.2},
    ],
)
def test_describing_a_csv_gives_the_info_of_loading_it_without_encoding(changes):
    config = DPConfig(
        dataset="csv", csv_path=str(REPO_ROOT / "assets" / "sample.csv"), csv_label="decision", model="logreg"
    ).replace(**changes)
    datasets.clear_cache()
    described = datasets.describe(config)
    assert described == datasets.load(config).info
    assert described == datasets.describe(config)  # and again, from what was kept


def test_a_csv_over_the_encoded_size_is_refused_naming_rows_and_width(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_files, "MAX_ENCODED_VALUES", 1000)
    path = tmp_path / "wide.csv"
    path.write_text("a,b,y\n" + "".join(f"v{i % 40},{i},{i % 2}\n" for i in range(100)))
    schema = csv_schema.CsvSchema.from_dict(
        {"classes": [0, 1], "numeric": {"b": [0, 100]}, "categorical": {"a": [f"v{i}" for i in range(40)]}}
    )
    config = DPConfig(dataset="csv", csv_path=str(path), csv_label="y", model="logreg", csv_schema=schema)
    for attempt in (lambda: datasets.describe(config), lambda: datasets.load(config)):
        with pytest.raises(DatasetError) as info:
            attempt()
        assert info.value.field == "csv_schema" and "100 rows × 42 model inputs = 4,200 feature values" in str(
            info.value
        )
        assert "at most 1,000 values" in str(info.value)
    # Without the categories the file fits: 100 rows × 1 input.
    narrow = config.replace(csv_schema=csv_schema.CsvSchema.from_dict({"classes": [0, 1], "numeric": {"b": [0, 100]}}))
    narrow_set = datasets.load(narrow)
    assert (
        narrow_set.x_train.shape == (datasets.train_size(narrow), 1)
        and len(narrow_set.x_train) + len(narrow_set.x_test) == 100
    )


def test_a_csv_without_a_schema_is_refused_naming_what_is_missing():
    config = DPConfig(dataset="csv", csv_path=SAMPLE_CSV, csv_label="decision", batch_size=16, delta=1e-4)
    for attempt in (
        lambda: datasets.load(config),
        lambda: datasets.dataset_info("csv", csv_path=SAMPLE_CSV, csv_label="decision"),
    ):
        with pytest.raises(DatasetError, match="csv_preprocessing_epsilon") as info:
            attempt()
        assert info.value.field == "csv_schema"
    # n needs no schema: a schema never drops a row
    assert datasets.train_size(config) == datasets.load(csv_config(SAMPLE_CSV)).info.n_train


def test_test_size_is_the_rows_every_run_of_the_data_reports_its_accuracy_on():
    # A built-in's test split is fixed: neither a subset nor a validation hold-out touches it.
    config = DPConfig(dataset="digits", max_train_examples=200, validation_fraction=0.2)
    assert datasets.test_size(config) == 360 == datasets.load(config).x_test.shape[0]
    csv = csv_config(SAMPLE_CSV)
    assert datasets.test_size(csv) == datasets.load(csv).info.n_test
    assert datasets.test_size(csv.replace(max_train_examples=50)) == datasets.test_size(csv)
    with pytest.raises(DatasetError) as missing:
        datasets.test_size(csv.replace(csv_path=SAMPLE_CSV + ".gone"))
    assert missing.value.field == "csv_path"


def test_csv_missing_values_follow_the_stated_policy():
    rows = ["x,colour,label"]
    rows += [f"{i},{'red' if i % 2 else 'blue'},{i % 2}" for i in range(40)]
    rows += [",red,1", "5,,0", "9,blue,"]
    schema = csv_schema.CsvSchema.from_dict(
        {"classes": [0, 1], "numeric": {"x": [0, 40]}, "categorical": {"colour": ["blue", "red"]}}
    )
    dataset = csv_files.parse_csv("\n".join(rows).encode(), label="label", schema=schema)
    info = dataset.info
    assert info.n_train + info.n_test == 42  # the row without a label is dropped
    assert info.feature_names == ("x", "colour=blue", "colour=red", "colour=(other)")
    x = np.concatenate([dataset.x_train, dataset.x_test])
    assert np.isfinite(x).all()
    assert sum(1 for row in x if row[0] == 0.5 and row[2] == 1.0) == 1  # missing number -> middle of the range
    assert sum(1 for row in x if not row[1:].any()) == 1  # missing category -> zeros
    assert "missing" in info.source and "declared schema" in info.source


def test_csv_numeric_labels_and_boolean_features(tmp_path):
    rows = ["flag,score,grade"] + [f"{'true' if i % 3 else 'false'},{i * 0.5},{i % 3 + 1}.0" for i in range(30)]
    schema = {"classes": [1, 2, 3], "numeric": {"score": [0, 20]}, "categorical": {"flag": [True, False]}}
    dataset = datasets.load(csv_config(write(tmp_path, "\n".join(rows)), label="grade", csv_schema=schema))
    assert dataset.info.class_names == ("1", "2", "3")
    assert dataset.info.num_classes == 3 and set(np.unique(dataset.y_train)) <= {0, 1, 2}
    flags = dataset.x_train[:, 1:3]
    assert (flags.sum(axis=1) == 1).all()


@pytest.mark.parametrize("separator", [";", "\t"])
def test_semicolon_and_tab_separated_files_are_read(tmp_path, separator):
    rows = [separator.join(["size", "kind", "decision"])]
    rows += [separator.join([str(i), "ab"[i % 2], str(i % 2)]) for i in range(30)]
    schema = {"classes": [0, 1], "numeric": {"size": [0, 30]}, "categorical": {"kind": ["a", "b"]}}
    dataset = datasets.load(csv_config(write(tmp_path, "\n".join(rows)), csv_schema=schema))
    assert dataset.info.feature_names == ("size", "kind=a", "kind=b", "kind=(other)")


def test_a_schema_that_does_not_fit_the_file_is_refused(tmp_path):
    path = write(tmp_path, "a,decision\n" + "\n".join(f"{i},{'yes' if i % 2 else 'maybe'}" for i in range(20)))
    with pytest.raises(DatasetError, match="'b'") as info:
        datasets.load(csv_config(path, csv_schema={"classes": ["yes", "maybe"], "numeric": {"b": [0, 1]}}))
    assert info.value.field == "csv_schema"
    with pytest.raises(DatasetError, match="label column 'decision' is also listed"):
        datasets.load(csv_config(path, csv_schema={"classes": ["yes", "maybe"], "categorical": {"decision": ["yes"]}}))
    with pytest.raises(DatasetError, match=r"some rows .*'decision'.*: 'maybe'") as info:
        datasets.load(csv_config(path, csv_schema={"classes": ["yes", "no"], "numeric": {"a": [0, 20]}}))
    assert info.value.field == "csv_label" and "10" not in str(info.value)  # the file's 10 'maybe' rows, uncounted


def test_private_preprocessing_sees_only_the_training_subset(monkeypatch):
    seen = []
    real = tabular.derive_schema

    def recording(frame, **kwargs):
        seen.append(frame)
        return real(frame, **kwargs)

    monkeypatch.setattr(tabular, "derive_schema", recording)
    config = DPConfig(
        dataset="csv",
        csv_path=SAMPLE_CSV,
        csv_label="decision",
        batch_size=16,
        delta=1e-3,
        csv_preprocessing_epsilon=8.0,
        max_train_examples=120,
        seed=11,
    )
    dataset = datasets.load(config)
    assert dataset.info.n_train == datasets.train_size(config) == len(dataset.x_train)
    frame, _ = csv_files.labelled_table(open(SAMPLE_CSV, "rb").read(), label="decision", name="sample.csv")
    everything = csv_files.split_table(frame, name="sample.csv", max_train_examples=None, validation_fraction=0.0)
    subset = csv_files.split_table(frame, name="sample.csv", max_train_examples=120, validation_fraction=0.0)
    (derived_from,) = seen
    assert derived_from.index.tolist() == subset.train.tolist() and len(subset.train) == dataset.info.n_train
    assert set(subset.train) < set(everything.train) and not set(derived_from.index) & set(everything.test)
    assert "derived privately" in dataset.info.source
    assert dataset.info.csv_schema.classes == ("approved", "declined")
    assert dataset.info.class_names == ("approved", "declined", "(other)")
    again = csv_files.parse_csv(
        open(SAMPLE_CSV, "rb").read(),
        label="decision",
        max_train_examples=120,
        derivation=csv_files.private_derivation(config),
    )
    np.testing.assert_array_equal(again.x_train, dataset.x_train)  # seeded like the run: it repeats


BAD_FILES = {
    "empty": ("", "empty"),
    "only a header": ("a,b,decision\n", "rows with a label"),
    "no header": ("\n".join(f"{i},{i * 2},{i % 2}" for i in range(20)), "no header row"),
    "label missing": ("a,b\n" + "\n".join(f"{i},{i % 2}" for i in range(20)), "'decision' is not a column"),
    "only the label": ("decision\n" + "\n".join(str(i % 2) for i in range(20)), "only the label column"),
    "ragged rows": (
        "a,decision\n1,0\n2,1,3,4,5\n" + "\n".join(f"{i},{i % 2}" for i in range(20)),
        "not a readable CSV",
    ),
    "continuous label": (
        "a,decision\n" + "\n".join(f"{i},{i * 0.37:.3f}" for i in range(80)),
        "not one of the classes",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_csv_files_get_a_clear_error(tmp_path, case):
    text, expected = BAD_FILES[case]
    with pytest.raises(DatasetError, match=expected) as info:
        datasets.load(csv_config(write(tmp_path, text), csv_schema={"classes": [0, 1], "numeric": {"a": [0, 1]}}))
    assert str(info.value).split(":")[0] in ("csv_path", "csv_label")


def test_binary_garbage_is_refused(tmp_path):
    garbage = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(DatasetError, match="binary"):
        datasets.load(csv_config(write(tmp_path, garbage)))
    with pytest.raises(DatasetError, match="binary"):
        datasets.load(csv_config(write(tmp_path, "".join(chr(c) for c in range(1, 31)) * 50, "ctl.csv")))


def test_too_large_and_missing_files_are_refused(tmp_path, monkeypatch):
    path = write(tmp_path, "a,decision\n" + "\n".join(f"{i},{i % 2}" for i in range(200)))
    monkeypatch.setattr(csv_files, "MAX_CSV_BYTES", 100)
    with pytest.raises(DatasetError, match="too large"):
        datasets.load(csv_config(path))
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.load(csv_config(os.path.join(str(tmp_path), "nope.csv")))


def test_csv_info_needs_path_and_label():
    with pytest.raises(DatasetError, match="csv_path"):
        datasets.dataset_info("csv")


CELLS = st.one_of(
    st.sampled_from(["", "NA", "x", "y", "1", "2.5", "-3", "1e308", "inf", "nan", " z "]),
    st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=4),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(CELLS, CELLS, st.sampled_from(["yes", "no", "maybe", "", "1", "2"])), min_size=0, max_size=40),
    st.sampled_from([",", ";"]),
)
def test_any_table_is_read_or_refused_with_a_dataset_error(rows, separator):
    lines = [separator.join(["f1", "f2", "decision"])] + [separator.join(row) for row in rows]
    try:
        dataset = csv_files.parse_csv("\n".join(lines).encode("utf-8"), label="decision", schema=ANY_TABLE_SCHEMA)
    except DatasetError:
        return
    x = np.concatenate([dataset.x_train, dataset.x_test])
    assert ((0.0 <= x) & (x <= 1.0)).all() and x.shape[1] == ANY_TABLE_SCHEMA.width
    assert dataset.info.num_classes == 5 and len(dataset.y_train) == dataset.info.n_train


ANY_TABLE_SCHEMA = csv_schema.CsvSchema.from_dict(
    {"classes": ["yes", "no", "maybe", 1, 2], "numeric": {"f1": [-3, 3]}, "categorical": {"f2": ["x", "y", "z"]}}
)


# -- offline availability, checked without loading --------------------------------------------


def test_digits_is_always_available() -> None:
    assert datasets.dataset_problem("digits") is None


def test_missing_fashion_mnist_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIRS", (str(tmp_path / "none"),))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DPEXPLORER_FASHION_MNIST_DIR", raising=False)
    problem = datasets.dataset_problem("fashion_mnist")
    assert problem is not None and "dataset-fashion-mnist" in problem


def test_fashion_mnist_found_in_the_env_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in datasets.IDX_FILES.values():
        with gzip.open(tmp_path / name, "wb") as handle:
            handle.write(b"")
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIRS", ())
    monkeypatch.setenv("DPEXPLORER_FASHION_MNIST_DIR", str(tmp_path))
    assert datasets.dataset_problem("fashion_mnist") is None


def test_mnist_needs_the_keras_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert "mnist.npz" in (datasets.dataset_problem("mnist") or "")
    (tmp_path / ".keras" / "datasets").mkdir(parents=True)
    (tmp_path / ".keras" / "datasets" / "mnist.npz").write_bytes(b"x")
    assert datasets.dataset_problem("mnist") is None
