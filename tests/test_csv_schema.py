"""The schema form's model: a draft read from YAML, edited column by column, rendered back as YAML that
reads as the same schema; placeholder ranges found; errors naming the column and its line."""

from __future__ import annotations

import pytest

from dpcore import csv_schema
from dpcore.csv_schema import CATEGORICAL, IGNORE, LABEL, NUMERIC, ColumnChoice, CsvSchema, SchemaDraft
from dpcore.errors import ConfigError

HEART = ("age", "sex", "cp", "trestbps", "chol", "thal", "target")


def _draft() -> SchemaDraft:
    return SchemaDraft.from_text(csv_schema.draft_schema_text(HEART, label="target"), columns=HEART, label="target")


def test_the_column_name_draft_reads_as_placeholders_for_every_feature() -> None:
    draft = _draft()
    assert [c.name for c in draft.columns] == list(HEART)
    assert [c.role for c in draft.columns] == [NUMERIC] * 6 + [LABEL]
    assert draft.placeholders == HEART[:-1] and draft.label == "target"
    with pytest.raises(ConfigError) as info:
        draft.schema()  # the classes are still to be typed
    assert info.value.field == "csv_schema.classes"


def test_form_edits_render_as_yaml_that_reads_back_as_the_same_schema() -> None:
    draft = (
        _draft()
        .with_column(ColumnChoice(name="age", role=NUMERIC, low=29, high=77))
        .with_column(ColumnChoice(name="trestbps", role=NUMERIC, low=94.5, high=200))
        .with_column(ColumnChoice(name="cp", role=CATEGORICAL, values=("0", "1", "2", "3")))
        .with_column(ColumnChoice(name="thal", role=CATEGORICAL, values=("normal", "fixed", "reversable")))
        .with_column(ColumnChoice(name="chol", role=IGNORE))
        .with_column(ColumnChoice(name="target", role=LABEL, values=("0", "1")))
    )
    assert draft.placeholders == ("sex",)
    text = draft.to_text()
    assert "  age: [29, 77]\n" in text and "  trestbps: [94.5, 200]\n" in text
    assert "  sex: [0, 1]  # placeholder\n" in text and "chol" not in text.split("# not used:")[0]
    schema = CsvSchema.from_text(text)
    assert schema == draft.schema()
    assert schema.columns == ("age", "sex", "trestbps", "cp", "thal") and schema.classes == ("0", "1")
    assert [(c.low, c.high) for c in schema.numeric] == [(29.0, 77.0), (0.0, 1.0), (94.5, 200.0)]
    back = SchemaDraft.from_text(text, columns=HEART, label="target")
    assert back == draft and back.to_text() == text


def test_a_placeholder_stays_one_until_its_range_or_its_note_changes() -> None:
    text = csv_schema.draft_schema_text(HEART, label="target").replace("classes: []", "classes: [0, 1]")
    typed_range = text.replace("  age: [0, 1]  # placeholder", "  age: [29, 77]  # placeholder")
    kept_binary = text.replace("  sex: [0, 1]  # placeholder", "  sex: [0, 1]")
    assert SchemaDraft.from_text(text, columns=HEART, label="target").placeholders == HEART[:-1]
    assert "age" not in SchemaDraft.from_text(typed_range, columns=HEART, label="target").placeholders
    assert "sex" not in SchemaDraft.from_text(kept_binary, columns=HEART, label="target").placeholders
    # A placeholder trains as [0, 1]: the schema says so, the draft lists it.
    assert CsvSchema.from_text(text).numeric[0] == csv_schema.NumericColumn(name="age", low=0.0, high=1.0)


@pytest.mark.parametrize(
    "choice, field",
    [
        (ColumnChoice(name="age", role=NUMERIC, low=80, high=20), "csv_schema.numeric.age"),
        (ColumnChoice(name="age", role=NUMERIC, low=20), "csv_schema.numeric.age"),
        (ColumnChoice(name="cp", role=CATEGORICAL, values=("1", "1.0")), "csv_schema.categorical.cp"),
        (ColumnChoice(name="cp", role="text"), "csv_schema.cp"),
        (ColumnChoice(name="weight", role=NUMERIC, low=1, high=2), "csv_schema.weight"),
    ],
)
def test_a_form_edit_that_cannot_be_is_refused_naming_the_column(choice: ColumnChoice, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        _draft().with_column(choice)
    assert info.value.field == field


def test_two_labels_or_none_are_refused_naming_the_label() -> None:
    draft = _draft().with_column(ColumnChoice(name="target", role=LABEL, values=("0", "1")))
    with pytest.raises(ConfigError, match="2 columns are marked label") as info:
        draft.with_column(ColumnChoice(name="thal", role=LABEL, values=("a", "b"))).schema()
    assert info.value.field == "csv_label"
    with pytest.raises(ConfigError, match="no column is the label"):
        draft.with_column(ColumnChoice(name="target", role=IGNORE)).schema()


@pytest.mark.parametrize(
    "text, field, line",
    [
        ("classes: [0, 1]\nnumeric:\n  age: [29, 77]\n  chol: [300, 100]\n", "csv_schema.numeric.chol", 4),
        ("classes: [0, 1]\nnumeric:\n  age: [29, 77]\ncategorical:\n  cp: 3\n", "csv_schema.categorical.cp", 5),
        ("numeric:\n  age: [29, 77]\nclasses: [0]\n", "csv_schema.classes", 3),
        ("classes: [0, 1]\nnumeric:\n  age: [29, 77\n", "csv_schema", 4),
    ],
)
def test_schema_errors_name_the_field_and_its_line(text: str, field: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        CsvSchema.from_text(text)
    assert info.value.field == field and f"at line {line}" in str(info.value)
    if field != "csv_schema.classes":  # the form reads an incomplete list of classes, to be finished there
        with pytest.raises(ConfigError) as info:
            SchemaDraft.from_text(text, columns=HEART, label="target")
        assert info.value.field == field and f"at line {line}" in str(info.value)


def test_the_label_cannot_also_be_a_feature_and_unknown_columns_stay_listed() -> None:
    with pytest.raises(ConfigError, match="is the label column") as info:
        SchemaDraft.from_text("classes: [0, 1]\nnumeric:\n  target: [0, 1]\n", columns=HEART, label="target")
    assert info.value.field == "csv_schema.numeric.target" and "at line 3" in str(info.value)
    draft = SchemaDraft.from_text("classes: [0, 1]\nnumeric:\n  weight: [1, 200]\n", columns=HEART, label="target")
    assert draft.columns[-1] == ColumnChoice(name="weight", role=NUMERIC, low=1.0, high=200.0)
    assert {c.role for c in draft.columns[:-2]} == {IGNORE}


def test_comma_separated_values_as_typed_in_the_form() -> None:
    assert csv_schema.split_values(" a, b ,, c ") == ("a", "b", "c")
    assert csv_schema.split_values("") == ()
