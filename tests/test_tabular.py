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
    with pytest.raises(ConfigError, match="not valid JSON or YAML"):
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


def test_a_label_outside_the_classes_is_refused_with_its_count():
    spelled = np.array(["yes", "no", "maybe", "maybe", "later"], dtype=object)
    with pytest.raises(DatasetError, match=r"3 row\(s\) .* column 'answer'.*'maybe' \(2\), 'later' \(1\)") as info:
        tabular.label_indices(SCHEMA, spelled, label="answer")
    assert info.value.field == "csv_label"
    assert tabular.label_indices(SCHEMA, spelled[:2], label="answer").tolist() == [1, 0]


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
