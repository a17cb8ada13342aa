"""AppTest: Explore's CSV schema: a draft from the column names, typed or uploaded schemas, the private
derivation's ε split, errors naming the column, and the schema travelling with exports and share links."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from streamlit.testing.v1 import AppTest

from app_state import CONFIG_KEY, PROBLEM_KEY
from dpcore import csv_schema
from dpcore.config import DPConfig
from dpcore.data.csv_files import csv_file_columns
from dpcore.data.datasets import train_size
from dpcore.export import share
from dpcore.privacy import accounting
from dpcore.room.participants import TOKEN_PARAM
from dpcore.runs.jobs import get_runner
from tests.app.conftest import APP, join, open_page
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "assets" / "sample.csv"
SCHEMA_FILE = REPO_ROOT / "assets" / "sample.schema.yaml"
SCHEMA_TEXT = SCHEMA_FILE.read_text()
TEXT_KEY = "w_csv_schema_text"


@pytest.fixture()
def data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPEXPLORER_DATA_DIR", str(REPO_ROOT / "assets"))


def _sample_csv(at: AppTest) -> AppTest:
    """Choose the CSV dataset and the sample file from the server's data folder."""
    at.selectbox(key="w_dataset").set_value("csv").run()
    at.text_input(key="w_csv_path").input(str(SAMPLE)).run()
    assert not at.exception
    return at


def _sample_columns() -> tuple[str, ...]:
    return csv_file_columns(str(SAMPLE))


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _projected(at: AppTest) -> float:
    return float(_metric(at, "Projected ε"))


def _interactive_epsilon(config: DPConfig) -> float:
    return round(accounting.epsilon_report_for_config(config, n=train_size(config), interactive=True).epsilon, 3)


def test_the_draft_holds_only_column_names_and_says_what_is_missing(app, data_dir) -> None:
    at = _sample_csv(app.run())
    draft = at.text_area(key=TEXT_KEY).value
    assert draft == csv_schema.draft_schema_text(_sample_columns(), label="decision")
    for column in ("age", "income_k", "education", "housing"):
        assert f"  {column}: [0, 1]" in draft
    for value in ("approved", "declined", "master", "mortgage", "67", "43.9"):  # cells of the file's rows
        assert value not in draft
    (error,) = at.error
    assert error.value.startswith("csv_schema.classes:")
    assert not [m for m in at.metric if m.label == "Projected ε"]
    assert at.session_state[PROBLEM_KEY].startswith("csv_schema.classes:")
    # A new label column gives an untouched draft that column's name.
    at.selectbox(key="w_csv_label").set_value("housing").run()
    assert '"housing"' in at.text_area(key=TEXT_KEY).value and "  decision: [0, 1]" in at.text_area(key=TEXT_KEY).value


def test_uploaded_csv_with_a_typed_schema_projects_epsilon_and_trains(app) -> None:
    at = join(app.run(), "Schema typist")
    at.selectbox(key="w_dataset").set_value("csv").run()
    at.get("file_uploader")[0].upload("people.csv", SAMPLE.read_bytes(), "text/csv").run()
    at.number_input(key="w_epochs_exact").set_value(2).run()
    assert any(e.value.startswith("csv_schema.classes:") for e in at.error)
    at.text_area(key=TEXT_KEY).input(SCHEMA_TEXT).run()
    assert not at.exception and not at.error
    config = at.session_state[CONFIG_KEY]
    assert (
        config.csv_schema == csv_schema.load_schema_file(str(SCHEMA_FILE)) and config.csv_preprocessing_epsilon is None
    )
    assert _projected(at) == _interactive_epsilon(config)
    assert any(c.value.startswith("Declared schema: nothing is learned from the rows") for c in at.caption)
    assert PROBLEM_KEY not in at.session_state

    at.switch_page("pages/train.py").run()
    start = at.button(key="train_start")
    assert not start.disabled
    start.click().run()
    job_id = at.session_state["train_selected"]
    assert get_runner().wait([job_id], timeout=300)
    at.run()
    assert not at.exception and not at.error
    assert _metric(at, "ε spent") == f"{accounting.epsilon_for_config(config, n=train_size(config)):.3f}"


def test_typed_text_survives_a_look_at_the_private_derivation(app, data_dir) -> None:
    at = _sample_csv(app.run())
    half_done = SCHEMA_TEXT.replace("classes: [approved, declined]", "classes: [approved]")
    at.text_area(key=TEXT_KEY).input(half_done).run()
    assert at.error[0].value.startswith("csv_schema.classes:")
    at.radio(key="w_csv_schema_mode").set_value("derive").run()
    assert not [t for t in at.text_area if t.key == TEXT_KEY]
    at.radio(key="w_csv_schema_mode").set_value("declare").run()
    assert at.text_area(key=TEXT_KEY).value == half_done


def test_an_uploaded_schema_file_fills_the_box(app, data_dir) -> None:
    at = _sample_csv(join(app.run(), "Schema uploader"))
    at.get("file_uploader")[1].upload("sample.schema.yaml", SCHEMA_TEXT.encode(), "application/x-yaml").run()
    assert not at.exception and not at.error
    assert at.text_area(key=TEXT_KEY).value == SCHEMA_TEXT
    assert at.session_state[CONFIG_KEY].csv_schema == csv_schema.load_schema_file(str(SCHEMA_FILE))
    assert _projected(at) == _interactive_epsilon(at.session_state[CONFIG_KEY])
    at.get("file_uploader")[1].clear().upload("bad.json", b"{\xff}", "application/json").run()
    (error,) = at.error
    assert error.value.startswith("csv_schema:") and "'bad.json' is not UTF-8" in error.value
    # Back to the draft: the placeholders are refused again.
    at.get("file_uploader")[1].clear().run()
    at.button(key="explore_schema_draft_reset").click().run()
    assert at.text_area(key=TEXT_KEY).value == csv_schema.draft_schema_text(_sample_columns(), label="decision")


@pytest.mark.parametrize(
    "change, field, named",
    [
        (("age: [18, 100]", "age: [100, 18]"), "csv_schema.numeric.age:", "low 100 is not below high 18"),
        (("housing: [rent, mortgage, own]", "housing: rent"), "csv_schema.categorical.housing:", "expected a list"),
        (("classes: [approved, declined]", "classes: [approved, maybe]"), "csv_label:", "'declined'"),
        (("  debt_ratio: [0, 1]", "  debt_ratios: [0, 1]"), "csv_schema:", "'debt_ratios'"),
    ],
)
def test_a_bad_schema_names_the_column_and_blocks_training(app, data_dir, change, field, named) -> None:
    at = _sample_csv(join(app.run(), "Schema checker"))
    at.text_area(key=TEXT_KEY).input(SCHEMA_TEXT.replace(*change)).run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith(field) and named in error.value
    assert not [m for m in at.metric if m.label == "Projected ε"]
    assert at.session_state[PROBLEM_KEY] == error.value
    at.switch_page("pages/train.py").run()
    assert at.button(key="train_start").disabled


def test_deriving_privately_shows_the_split_of_the_runs_epsilon(app, data_dir) -> None:
    at = _sample_csv(app.run())
    at.radio(key="w_csv_schema_mode").set_value("derive").run()
    at.number_input(key="w_csv_preprocessing_epsilon").set_value(2.0).run()
    assert not at.exception and not at.error
    config = at.session_state[CONFIG_KEY]
    assert config.csv_schema is None and config.csv_preprocessing_epsilon == 2.0
    split = accounting.epsilon_split(config, n=train_size(config), interactive=True)
    assert _metric(at, "Preprocessing ε") == f"{split.preprocessing:.3f}" and split.preprocessing <= 2.0
    assert _metric(at, "Training ε") == f"{split.training:.3f}"
    assert _metric(at, "Run ε (composed)") == _metric(at, "Projected ε") == f"{_interactive_epsilon(config):.3f}"
    assert split.training < split.total <= split.preprocessing + split.training
    assert any(
        c.value.startswith(f"Preprocessing {split.preprocessing:.3f} + training {split.training:.3f}")
        for c in at.caption
    )
    # Too small a share for 192 rows keeps too few noisy counts, but only the run may draw them: the
    # page draws nothing, so looking again and again at other shares or seeds releases nothing.
    at.number_input(key="w_csv_preprocessing_epsilon").set_value(0.3).run()
    assert not at.exception and not at.error
    at.number_input(key="w_csv_preprocessing_epsilon").set_value(0.0).run()
    (error,) = at.error
    assert error.value.startswith("csv_preprocessing_epsilon:") and "0.01" in error.value


def test_the_schema_travels_with_exports_and_share_links(app, data_dir) -> None:
    at = _sample_csv(app.run())
    at.text_area(key=TEXT_KEY).input(SCHEMA_TEXT).run()
    config = at.session_state[CONFIG_KEY]
    at.switch_page("pages/export.py").run()
    codes = {c.language: c.value for c in at.code}
    assert DPConfig.from_json(codes["json"]).csv_schema == config.csv_schema
    assert DPConfig.from_yaml(codes["yaml"]).csv_schema == config.csv_schema
    link = next(c.value for c in at.code if c.value.startswith("http"))
    params = {k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()}
    assert share.decode(params) == config.replace(csv_path="sample.csv")  # the file by its name, never its path

    opened = AppTest.from_file(APP, default_timeout=60)
    opened.query_params.update(params)
    opened.run()
    assert not opened.exception and not opened.error
    assert opened.session_state[CONFIG_KEY] == config
    assert csv_schema.CsvSchema.from_text(opened.text_area(key=TEXT_KEY).value) == config.csv_schema
    assert _projected(opened) == _interactive_epsilon(config)


def test_a_derived_config_from_a_link_opens_in_derive_mode(app, data_dir) -> None:
    config = DPConfig(
        dataset="csv", model="logreg", csv_path=str(SAMPLE), csv_label="decision", csv_preprocessing_epsilon=1.5
    )
    at = open_page(app, "explore", config, name=None)
    assert at.radio(key="w_csv_schema_mode").value == "derive"
    assert at.number_input(key="w_csv_preprocessing_epsilon").value == 1.5
    assert at.session_state[CONFIG_KEY] == config
    assert _metric(at, "Run ε (composed)") == f"{_interactive_epsilon(config):.3f}"


def test_a_derived_schema_is_described_in_an_accountant_process_not_the_servers(app, data_dir, monkeypatch) -> None:
    """Describing a CSV (a privately derived schema reads every row) is the accountant processes' work:
    here the server's own readers fail if called, and the page still shows the run's ε split."""
    from dpcore.data import datasets

    monkeypatch.setenv("DPEXPLORER_ACCOUNTANT_PROCESSES", "1")
    at = _sample_csv(app.run())
    at.radio(key="w_csv_schema_mode").set_value("derive").run()

    def not_here(*_args, **_kwargs):
        raise AssertionError("a CSV was read in the server process")

    # The readers the description and the row count use; the accountant process has its own, unpatched.
    monkeypatch.setattr(datasets, "describe_csv", not_here)
    monkeypatch.setattr(datasets, "describe_csv_undrawn", not_here)
    monkeypatch.setattr(datasets, "csv_train_rows", not_here)
    at.number_input(key="w_csv_preprocessing_epsilon").set_value(2.5).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    config = at.session_state[CONFIG_KEY]
    assert config.csv_preprocessing_epsilon == 2.5
    assert _metric(at, "Run ε (composed)") == _metric(at, "Projected ε")


# -- the per-column form, placeholders, and what a reload keeps ------------------------------------


def _form(at: AppTest) -> dict[str, tuple]:
    """The schema form's rows by column name: (type box, range-or-values box)."""
    roles = [s for s in at.selectbox if str(s.key).startswith("explore_schema_form_") and s.key.endswith("_role")]
    values = [t for t in at.text_input if str(t.key).startswith("explore_schema_form_") and t.key.endswith("_values")]
    return {name: (role, value) for name, role, value in zip(_sample_columns(), roles, values)}


def _fill(at: AppTest, rows: dict[str, tuple[str, str]]) -> AppTest:
    form = _form(at)
    for name, (role, value) in rows.items():
        form[name][0].set_value(role)
        form[name][1].input(value)
    at.button(key="explore_schema_form_apply").click().run()
    assert not at.exception
    return at


FORM_ROWS = {
    "age": ("numeric", "18, 100"),
    "income_k": ("numeric", "0, 1234567.25"),
    "years_employed": ("numeric", "0, 60"),
    "debt_ratio": ("numeric", ""),
    "education": ("categorical", "high_school, bachelor, master"),
    "housing": ("ignore", ""),
    "decision": ("label", "approved, declined"),
}


def _warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "placeholder range" in w.value]


def test_the_form_writes_the_yaml_and_names_a_bad_column(app, data_dir) -> None:
    at = _sample_csv(app.run())
    assert set(_form(at)) == set(_sample_columns())
    assert [r.value for r, _ in _form(at).values()] == ["numeric"] * 6 + ["label"]
    _fill(at, FORM_ROWS)
    text = at.text_area(key=TEXT_KEY).value
    assert text == (
        "classes: [approved, declined]\n"
        "numeric:\n  age: [18, 100]\n  income_k: [0, 1234567.25]\n  years_employed: [0, 60]\n"
        "  debt_ratio: [0, 1]  # placeholder\n"
        "categorical:\n  education: [high_school, bachelor, master]\n"
        'scale: unit\n# not used: "housing"\n'
    )
    config = at.session_state[CONFIG_KEY]
    assert config.csv_schema == csv_schema.CsvSchema.from_text(text) and config.csv_label == "decision"
    assert PROBLEM_KEY not in at.session_state
    (warning,) = _warnings(at)
    assert warning.split(". ")[0].endswith("[0, 1]: debt_ratio")
    # The form reads the YAML back; a range that is not two numbers is refused, naming the column.
    assert _form(at)["age"][1].value == "18, 100" and _form(at)["housing"][0].value == "ignore"
    assert _form(at)["income_k"][1].value == "0, 1234567.25"  # read back exactly, so applying again changes nothing
    _fill(at, {"debt_ratio": ("numeric", "0, 1"), "age": ("numeric", "eighteen")})
    assert any("csv_schema.numeric.age" in e.value and "not a range" in e.value for e in at.error)
    assert at.text_area(key=TEXT_KEY).value == text
    _fill(at, {"age": ("numeric", "18, 100"), "debt_ratio": ("numeric", "0, 1")})
    assert not _warnings(at) and "debt_ratio: [0, 1]\n" in at.text_area(key=TEXT_KEY).value


def test_placeholders_are_listed_on_explore_and_on_train(app, data_dir) -> None:
    at = _sample_csv(join(app.run(), "Placeholder keeper"))
    draft = at.text_area(key=TEXT_KEY).value
    at.text_area(key=TEXT_KEY).input(draft.replace("classes: []", "classes: [approved, declined]")).run()
    assert not at.error
    (warning,) = _warnings(at)
    assert "age, income_k, years_employed, debt_ratio, education, housing" in warning
    assert "an age of 63 trains as 1" in warning
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert _warnings(at) == [warning]


def test_a_reload_keeps_the_upload_and_the_text_as_typed(app) -> None:
    at = join(app.run(), "Reloader")
    at.selectbox(key="w_dataset").set_value("csv").run()
    at.get("file_uploader")[0].upload("my loans.csv", SAMPLE.read_bytes(), "text/csv").run()
    assert any("Uploaded my loans.csv" in s.value for s in at.success) or any(
        "my loans.csv" in c.value for c in at.caption
    )
    half_done = "# my notes\n" + SCHEMA_TEXT.replace("classes: [approved, declined]", "classes: [approved]")
    at.text_area(key=TEXT_KEY).input(half_done).run()
    assert at.error[0].value.startswith("csv_schema.classes:")

    again = AppTest.from_file(APP, default_timeout=60)
    again.query_params[TOKEN_PARAM] = at.query_params[TOKEN_PARAM][0]
    again.run()
    assert not again.exception
    assert again.selectbox(key="w_dataset").value == "csv"
    assert again.text_area(key=TEXT_KEY).value == half_done
    assert any(c.value == "File: my loans.csv" for c in again.caption)
    # Finished, then a look at another page: the text stays as typed, comments and all.
    done = "# my notes\n" + SCHEMA_TEXT
    again.text_area(key=TEXT_KEY).input(done).run()
    assert not again.error
    again.switch_page("pages/train.py").run()
    assert any("my loans.csv" in m.value for m in again.markdown)
    again.switch_page("pages/explore.py").run()
    assert again.text_area(key=TEXT_KEY).value == done


def test_a_link_to_another_participants_csv_config_asks_for_the_file(app) -> None:
    ada = join(app.run(), "Ada of the link")
    ada.selectbox(key="w_dataset").set_value("csv").run()
    ada.get("file_uploader")[0].upload("loans.csv", SAMPLE.read_bytes(), "text/csv").run()
    ada.text_area(key=TEXT_KEY).input(SCHEMA_TEXT).run()
    config = ada.session_state[CONFIG_KEY]
    ada.switch_page("pages/export.py").run()
    link = next(c.value for c in ada.code if c.value.startswith("http"))
    assert "uploads" not in link and "loans.csv" in link
    assert DPConfig.from_json(next(c.value for c in ada.code if c.language == "json")).csv_path == "loans.csv"

    bob = AppTest.from_file(APP, default_timeout=60)
    bob.query_params.update({k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()})
    bob.run()
    join(bob, "Bob opens it")
    assert not bob.exception
    assert bob.session_state[CONFIG_KEY] == config.replace(csv_path="loans.csv")
    assert any("upload loans.csv" in i.value for i in bob.info)
    assert bob.session_state[PROBLEM_KEY] == "no CSV file: upload loans.csv"
    bob.get("file_uploader")[0].upload("loans.csv", SAMPLE.read_bytes(), "text/csv").run()
    assert not bob.exception and not bob.error
    restored = bob.session_state[CONFIG_KEY]
    assert restored.csv_schema == config.csv_schema and restored.csv_label == config.csv_label
    assert restored.csv_path != config.csv_path  # Bob's own copy
    # Ada opening her own link finds her file.
    again = AppTest.from_file(APP, default_timeout=60)
    again.query_params.update({k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()})
    again.query_params[TOKEN_PARAM] = ada.query_params[TOKEN_PARAM][0]
    again.run()
    assert not again.exception and not again.info
    assert again.session_state[CONFIG_KEY] == config


def test_a_file_wider_than_the_form_is_declared_as_yaml(app, monkeypatch, tmp_path) -> None:
    from pages.explore_schema import MAX_FORM_COLUMNS

    monkeypatch.setenv("DPEXPLORER_DATA_DIR", str(tmp_path))
    names = [f"x{i}" for i in range(MAX_FORM_COLUMNS)] + ["y"]
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(names) + "\n" + "\n".join(",".join(["1"] * len(names)) for _ in range(4)) + "\n")
    at = app.run()
    at.selectbox(key="w_dataset").set_value("csv").run()
    at.text_input(key="w_csv_path").input(str(wide)).run()
    assert not at.exception
    assert any(f"This file has {MAX_FORM_COLUMNS + 1} columns" in i.value for i in at.info)
    assert not [s for s in at.selectbox if str(s.key).startswith("explore_schema_form_")]
    assert at.text_area(key=TEXT_KEY).value == csv_schema.draft_schema_text(names, label="y")
