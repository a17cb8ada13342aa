"""dpcore.data.tabular: public CSV schemas (declared, parsed, applied) and their private derivation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from dpcore import csv_schema
from dpcore.data import csv_files, tabular, types
from dpcore.errors import ConfigError, DatasetError
from dpcore.privacy import preprocessing
from tests.conftest import REPO_ROOT

SAMPLE_SCHEMA = REPO_ROOT / "assets" / "sample.schema.yaml"
SCHEMA = csv_schema.CsvSchema(
    classes=("no", "yes"),
    numeric=(csv_schema.NumericColumn(name="income", low=0.0, high=100.0),),
    categorical=(csv_schema.CategoricalColumn(name="city", categories=("Lyon", "Paris")),),
)


# -- declaring a schema ------------------------------------------------------------------------


def test_a_schema_round_trips_through_dict_json_and_yaml():
    schema = csv_schema.load_schema_file(str(SAMPLE_SCHEMA))
    assert schema.classes == ("approved", "declined")
    assert schema.columns == ("age", "income_k", "years_employed", "debt_ratio", "education", "housing")
    assert csv_schema.CsvSchema.from_dict(schema.to_dict()) == schema
    assert csv_schema.CsvSchema.from_text(json.dumps(schema.to_dict()), filename="s.json") == schema
    assert csv_schema.CsvSchema.from_text(schema.to_yaml()) == schema
    assert schema.width == 4 + 5 + 4 == len(schema.feature_names)
    assert schema.feature_names[-1] == "housing=(other)"


def test_typed_values_are_spelled_one_way():
    schema = csv_schema.CsvSchema.from_dict(
        {
            "classes": [0, 1.0],
            "numeric": {"x": {"low": -1, "high": 1}},
            "categorical": {"flag": [True, "FALSE"], "code": ["007", 2.50]},
        }
    )
    assert schema.classes == ("0", "1")
    assert schema.categorical[0].categories == ("true", "false")
    assert schema.categorical[1].categories == ("7", "2.5")
    assert schema.numeric[0] == csv_schema.NumericColumn(name="x", low=-1.0, high=1.0)
    assert [csv_schema.canonical(v) for v in ("1e5", " 3 ", 1.5, np.nan, "", "inf", "1_000", None)] == [
        "100000",
        "3",
        "1.5",
        None,
        None,
        "inf",
        "1_000",
        None,
    ]


@pytest.mark.parametrize(
    "mapping, field",
    [
        ([1, 2], "csv_schema"),
        ({"numeric": {"x": [0, 1]}}, "csv_schema.classes"),
        ({"classes": ["a"], "numeric": {"x": [0, 1]}}, "csv_schema.classes"),
        ({"classes": ["a", "a"], "numeric": {"x": [0, 1]}}, "csv_schema.classes"),
        ({"classes": ["a", "b"]}, "csv_schema"),
        ({"classes": ["a", "b"], "numeric": {"x": [1, 0]}}, "csv_schema.numeric.x"),
        ({"classes": ["a", "b"], "numeric": {"x": [0, float("inf")]}}, "csv_schema.numeric.x"),
        ({"classes": ["a", "b"], "numeric": {"x": [0, 1e300]}}, "csv_schema.numeric.x"),
        ({"classes": ["a", "b"], "numeric": {"x": "0-1"}}, "csv_schema.numeric.x"),
        ({"classes": ["a", "b"], "categorical": {"c": []}}, "csv_schema.categorical.c"),
        ({"classes": ["a", "b"], "categorical": {"c": [f"v{i}" for i in range(51)]}}, "csv_schema.categorical.c"),
        ({"classes": ["a", "b"], "numeric": {"x": [0, 1]}, "categorical": {"x": ["a"]}}, "csv_schema.x"),
        ({"classes": ["a", "b"], "numeric": {"x": [0, 1]}, "scale": "log"}, "csv_schema.scale"),
        ({"classes": ["a", "b"], "numeric": {"x": [0, 1]}, "colour": 1}, "csv_schema.colour"),
    ],
)
def test_a_bad_schema_names_the_field(mapping, field):
    with pytest.raises(ConfigError) as info:
        csv_schema.CsvSchema.from_dict(mapping)
    assert info.value.field == field


def test_schema_files_are_small_and_readable(tmp_path):
    with pytest.raises(ConfigError, match="too large"):
        csv_schema.CsvSchema.from_text("#" * (csv_schema.MAX_SCHEMA_BYTES + 1))
    with pytest.raises(ConfigError, match="not valid YAML"):
        csv_schema.CsvSchema.from_text("classes: [a, b\n")
    big = tmp_path / "big.yaml"
    big.write_bytes(b" " * (csv_schema.MAX_SCHEMA_BYTES + 1))
    with pytest.raises(ConfigError, match="too large"):
        csv_schema.load_schema_file(str(big))
    with pytest.raises(ConfigError, match="does not exist"):
        csv_schema.load_schema_file(str(tmp_path / "missing.yaml"))


# -- applying it -------------------------------------------------------------------------------


def test_features_are_clipped_scaled_and_one_hot_with_an_other_slot():
    frame = pd.DataFrame(
        {"income": [50, -5, 1e300, np.nan, "n/a"], "city": ["Paris", "Rome", np.nan, "Lyon", " Paris "]}
    )
    x = tabular.encode_features(SCHEMA, frame)
    np.testing.assert_array_equal(x, [[0.5, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0.5, 1, 0, 0], [0.5, 0, 1, 0]])
    symmetric = csv_schema.CsvSchema.from_dict({**SCHEMA.to_dict(), "scale": "symmetric"})
    np.testing.assert_array_equal(tabular.encode_features(symmetric, frame)[:, 0], [0, -1, 1, 0, 0])


def test_features_are_float32_and_equal_a_one_hot_built_cell_by_cell():
    rng = np.random.default_rng(0)
    categories = tuple(f"c{i}" for i in range(12))
    schema = csv_schema.CsvSchema(
        classes=("no", "yes"),
        numeric=(csv_schema.NumericColumn(name="x", low=-1.0, high=3.0),),
        categorical=tuple(csv_schema.CategoricalColumn(name=f"k{j}", categories=categories) for j in range(3)),
        scale="symmetric",
    )
    cells = rng.choice([*categories, "unknown", None], size=(500, 3))
    frame = pd.DataFrame({"x": rng.uniform(-2, 4, 500), **{f"k{j}": cells[:, j] for j in range(3)}})
    x = tabular.encode_features(schema, frame)
    assert x.dtype == np.float32 and x.shape == (500, schema.width) == (500, 1 + 3 * 13)
    expected = np.zeros((500, 1 + 3 * 13))
    expected[:, 0] = 2 * (np.clip(frame["x"], -1, 3) + 1) / 4 - 1
    for row in range(500):
        for j in range(3):
            cell = cells[row, j]
            if cell is not None:
                expected[row, 1 + 13 * j + (categories.index(cell) if cell in categories else 12)] = 1
    np.testing.assert_allclose(x, expected, rtol=1e-6)


def test_a_label_outside_declared_classes_is_refused_naming_it_but_never_counting_rows():
    spelled = np.array(["yes", "no", "maybe", "maybe", "maybe", "later"], dtype=object)
    with pytest.raises(DatasetError) as info:
        tabular.label_indices(SCHEMA, spelled, label="answer")
    message = str(info.value)
    assert info.value.field == "csv_label" and "some rows" in message and "column 'answer'" in message
    assert "'later', 'maybe'" in message  # alphabetical: an order by frequency would tell which is commoner
    assert not any(ch.isdigit() for ch in message), message  # no count of rows, nor of labels
    many = np.array(["yes"] + [f"v{chr(97 + i)}" for i in range(8)], dtype=object)
    with pytest.raises(DatasetError, match="'va', 'vb', 'vc', 'vd', 've' and others"):
        tabular.label_indices(SCHEMA, many, label="answer")
    assert tabular.label_indices(SCHEMA, spelled[:2], label="answer").tolist() == [1, 0]


def test_with_other_class_each_label_outside_the_classes_is_the_last_class():
    schema = csv_schema.CsvSchema.from_dict({**SCHEMA.to_dict(), "other_class": True})
    assert schema.other_class and schema.class_names == ("no", "yes", "(other)") and schema.num_classes == 3
    assert SCHEMA.class_names == ("no", "yes") and SCHEMA.num_classes == 2
    spelled = np.array(["yes", "no", "maybe", "(other)", "later"], dtype=object)
    assert tabular.label_indices(schema, spelled, label="answer").tolist() == [1, 0, 2, 2, 2]
    # Each row's class is its own: dropping the others changes none.
    assert tabular.label_indices(schema, spelled[2:3], label="answer").tolist() == [2]
    assert csv_schema.CsvSchema.from_dict(schema.to_dict()) == schema
    assert schema.to_dict()["other_class"] is True and "other_class" not in SCHEMA.to_dict()
    assert csv_schema.CsvSchema.from_text(schema.to_yaml()) == schema


@pytest.mark.parametrize(
    "mapping",
    [
        {"classes": ["a", "(other)"], "numeric": {"x": [0, 1]}, "other_class": True},
        {"classes": [f"c{i}" for i in range(csv_schema.MAX_CLASSES)], "numeric": {"x": [0, 1]}, "other_class": True},
        {"classes": ["a", "b"], "numeric": {"x": [0, 1]}, "other_class": "yes please"},
    ],
)
def test_other_class_is_refused_beside_a_class_of_its_name_too_many_classes_or_a_non_boolean(mapping):
    with pytest.raises(ConfigError) as info:
        csv_schema.CsvSchema.from_dict(mapping)
    assert info.value.field in ("csv_schema.classes", "csv_schema.other_class")


def _rows(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        f"{i},{rng.uniform(10, 90):.2f},{'Paris' if rng.random() < 0.6 else 'Lyon'},{'yes' if rng.random() < 0.5 else 'no'}"
        for i in range(count)
    ]


def test_neighbouring_files_have_the_same_feature_map_under_a_declared_schema():
    rows = ["id,income,city,label", *_rows(60)]
    smaller = csv_files.parse_csv("\n".join(rows).encode(), label="label", schema=SCHEMA)
    # One more record, with a category nobody else has and an extreme value.
    larger = csv_files.parse_csv("\n".join(rows + ["60,1e12,Atlantis,yes"]).encode(), label="label", schema=SCHEMA)
    assert larger.info.input_shape == smaller.info.input_shape == (4,)
    assert larger.info.feature_names == smaller.info.feature_names
    assert larger.info.class_names == smaller.info.class_names

    def features(dataset: types.Dataset) -> list[tuple[float, ...]]:
        return sorted(map(tuple, np.concatenate([dataset.x_train, dataset.x_test]).tolist()))

    extra = features(larger)
    for row in features(smaller):
        extra.remove(row)  # every shared record keeps exactly its features
    assert extra == [(1.0, 0.0, 0.0, 1.0)]  # the new record: clipped to the top, in the "other" slot


# -- deriving it privately ---------------------------------------------------------------------


def _frame(n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    city = np.where(rng.random(n) < 0.6, "Paris", "Lyon").astype(object)
    city[0] = "Atlantis"  # a value only one record holds
    score = np.where(np.arange(n) < n // 10, 1.5, 12.0)  # a tenth of the records in a low bin
    return pd.DataFrame(
        {
            "age": rng.integers(20, 70, n),
            "city": city,
            "empty": [np.nan] * n,
            "score": score,
            "label": np.where(rng.random(n) < 0.5, "yes", "no"),
        }
    )


def test_a_private_derivation_finds_what_many_records_share_and_not_what_one_holds():
    derivation = tabular.PrivateDerivation(noise_multiplier=0.5, threshold_delta=1e-6, seed=0)
    derived = tabular.derive_schema(_frame(), label="label", derivation=derivation)
    schema = derived.schema
    assert schema.classes == ("no", "yes")
    assert schema.categorical == (csv_schema.CategoricalColumn(name="city", categories=("Lyon", "Paris")),)
    age, score = schema.numeric
    assert age.name == "age" and age.low <= 20 and 70 <= age.high <= 100
    assert (score.low, score.high) == (1.0, 17.79)  # the grid's bins [1, 1.778) to [10, 17.78)
    assert derived.left_out == ("empty",)
    noise_std = 0.5 * np.sqrt(5)  # five columns, label included
    assert derived.noise_std == pytest.approx(noise_std)
    assert derived.threshold == pytest.approx(1 + noise_std * norm.isf(1e-6 / 5), rel=1e-9)


def test_a_private_derivation_repeats_per_seed_and_varies_between_seeds():
    def derive(seed):
        derivation = tabular.PrivateDerivation(noise_multiplier=30.0, threshold_delta=1e-6, seed=seed)
        return tabular.derive_schema(_frame(), label="label", derivation=derivation).schema

    assert derive(3) == derive(3)
    # The noise (std 67) decides whether the low bin's 300 records clear the threshold (about 340).
    assert {derive(seed).numeric[1].low for seed in range(8)} == {1.0, 10.0}
    assert tabular.derivation_rng(5).normal(size=4).tolist() == tabular.derivation_rng(5).normal(size=4).tolist()
    assert tabular.derivation_rng(None).normal(size=4).tolist() != tabular.derivation_rng(None).normal(size=4).tolist()


def test_deriving_from_kept_counts_draws_the_same_schema_as_from_the_rows():
    frame = _frame()
    counts = tabular.count_columns(frame, label="label")
    assert counts.features == ("age", "city", "empty", "score") and counts.label_counts[(1, "yes")] > 1000
    for seed in range(4):
        derivation = tabular.PrivateDerivation(noise_multiplier=30.0, threshold_delta=1e-6, seed=seed)
        assert tabular.derive_from_counts(counts, derivation=derivation) == tabular.derive_schema(
            frame, label="label", derivation=derivation
        )


def test_too_little_epsilon_for_the_counts_says_what_to_change():
    derivation = tabular.PrivateDerivation(noise_multiplier=5000.0, threshold_delta=1e-6, seed=0)
    with pytest.raises(DatasetError, match="class") as info:
        tabular.derive_schema(_frame(200), label="label", derivation=derivation)
    assert info.value.field == "csv_preprocessing_epsilon" and "csv_schema" in str(info.value)


def test_the_draft_schema_names_every_feature_column_and_is_refused_until_its_classes_are_filled() -> None:
    columns = ("age", "a: b # c", "label", "1")
    draft = csv_schema.draft_schema_text(columns, label="label")
    with pytest.raises(ConfigError) as refused:
        csv_schema.CsvSchema.from_text(draft)
    assert refused.value.field == "csv_schema.classes"
    filled = csv_schema.CsvSchema.from_text(draft.replace("classes: []", "classes: [cat, dog]"))
    assert filled.columns == ("age", "a: b # c", "1") and filled.classes == ("cat", "dog")
    assert all((c.low, c.high) == (0.0, 1.0) for c in filled.numeric) and not filled.categorical
    assert '"label"' in draft


@pytest.mark.parametrize(
    "data",
    [
        {"\n": None},
        {"classes": ["a", "b"], "numeric": {"x\ny": [1, 0]}},
        {"classes": ["a", "b"], "numeric": {"x" * 5000: "wide"}},
        {"classes": ["a", "b"], "categorical": {"c\r": ["p", "p"]}},
    ],
)
def test_schema_errors_are_one_short_line_whatever_the_names(data) -> None:
    with pytest.raises(ConfigError) as caught:
        csv_schema.CsvSchema.from_dict(data)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message and len(message) < 400, message
    assert message.startswith("csv_schema")


# A record of assets/sample.csv's kind whose label no other record has: a derived schema never keeps it.
APPEALED = "33,61.0,4,0.2,master,rent,appeal_pending"


def test_a_record_whose_label_a_derived_schema_left_out_is_trained_as_other_for_every_seed():
    sample = (REPO_ROOT / "assets" / "sample.csv").read_text().rstrip("\n")
    plus_one = (sample + "\n" + APPEALED + "\n").encode()
    cost = preprocessing.preprocessing_cost(epsilon=1.0, delta=1e-3)
    for seed in range(40):
        derivation = tabular.PrivateDerivation(
            noise_multiplier=cost.noise_multiplier, threshold_delta=cost.threshold_delta, seed=seed
        )
        dataset = csv_files.parse_csv(plus_one, label="decision", name="plus_one.csv", derivation=derivation)
        schema = dataset.info.csv_schema
        assert schema.other_class and "appeal_pending" not in schema.classes
        assert dataset.info.class_names == (*schema.classes, "(other)") == ("approved", "declined", "(other)")
        # The record is a training row (its own coins say so) and trains in the class "(other)".
        assert np.bincount(dataset.y_train, minlength=3)[2] == 1 and (dataset.y_test < 2).all()
        assert "appeal_pending" not in dataset.info.source
        same = csv_files.parse_csv(sample.encode(), label="decision", name="plus_one.csv", derivation=derivation)
        assert (same.info.n_train, same.info.n_test) == (dataset.info.n_train - 1, dataset.info.n_test)


def test_under_a_derived_schema_only_the_noisy_counts_can_refuse_a_file_never_one_record():
    derivation = tabular.PrivateDerivation(noise_multiplier=0.5, threshold_delta=1e-6, seed=0)
    rows = [f"{i % 50},{'Paris' if i % 3 else 'Lyon'},yes" for i in range(300)]
    one_class = "\n".join(["age,city,label", *rows]).encode()
    plus_one = "\n".join(["age,city,label", *rows, "33,Lyon,no"]).encode()
    for raw in (one_class, plus_one):
        with pytest.raises(DatasetError) as refused:
            csv_files.parse_csv(raw, label="label", derivation=derivation)
        assert refused.value.field == "csv_preprocessing_epsilon" and "only 1 class(es)" in str(refused.value)
        assert "'yes'" not in str(refused.value) and "'no'" not in str(refused.value)
    # A declared schema checks its owner's file instead, and says what is wrong with it.
    declared = csv_schema.CsvSchema.from_dict({"classes": ["yes", "no"], "numeric": {"age": [0, 50]}})
    with pytest.raises(DatasetError, match="only one class"):
        csv_files.parse_csv(one_class, label="label", schema=declared)


def test_a_page_describes_a_derived_schema_config_without_drawing_its_noisy_counts(monkeypatch):
    """Describing before a run never draws the derivation: each look would be another release."""
    from dpcore.config import DPConfig
    from dpcore.data import datasets

    sample = str(REPO_ROOT / "assets" / "sample.csv")
    config = DPConfig(
        dataset="csv", csv_path=sample, csv_label="decision", csv_preprocessing_epsilon=0.3, secure_mode=True
    )

    def no_draw(*_args, **_kwargs):
        raise AssertionError("the derivation drew its noisy counts")

    monkeypatch.setattr(tabular, "derive_schema", no_draw)
    monkeypatch.setattr(tabular, "derive_from_counts", no_draw)
    csv_files.clear_caches()
    info = datasets.describe_before_run(config)
    columns = csv_files.csv_file_columns(sample)
    assert info.n_train == datasets.train_size(config) and info.csv_schema is None and info.num_classes == 0
    assert info.feature_names == tuple(c for c in columns if c != "decision") and info.input_shape == (
        len(columns) - 1,
    )
    assert "derived privately when the run starts" in info.source
    # A declared schema is described as before.
    declared = config.replace(
        csv_preprocessing_epsilon=None,
        csv_schema=csv_schema.load_schema_file(str(REPO_ROOT / "assets" / "sample.schema.yaml")),
    )
    assert datasets.describe_before_run(declared) == datasets.config_dataset_info(declared)
