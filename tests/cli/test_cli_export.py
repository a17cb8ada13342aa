"""``python -m dpcore export``: the Export page's texts on stdout or in a file; bad input is one line and exit 2."""

from __future__ import annotations

import pytest

from dpcore.cli import main
from dpcore.config import DPConfig
from dpcore.export.script import EXPORT_FORMATS, render_export

CONFIG = DPConfig(noise_multiplier=1.7, batch_size=100, epochs=3, sampling="shuffle", accountant="pld")


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(CONFIG.to_yaml(), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("export_format", EXPORT_FORMATS)
def test_each_format_prints_what_the_export_page_offers(config_file, capsys, export_format):
    assert main(["export", "--config", config_file, "--format", export_format]) == 0
    assert capsys.readouterr().out == render_export(CONFIG, export_format=export_format)


def test_output_writes_the_file_and_prints_nothing(tmp_path, config_file, capsys):
    target = tmp_path / "train_dp.py"
    assert main(["export", "--config", config_file, "--format", "script", "--output", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert target.read_text(encoding="utf-8") == render_export(CONFIG, export_format="script")
    json_target = tmp_path / "run.json"
    assert main(["export", "--config", config_file, "--format", "json", "--output", str(json_target)]) == 0
    assert DPConfig.from_json(json_target.read_text(encoding="utf-8")) == CONFIG


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (["--format", "script", "--output", "{tmp}/no/such/folder/x.py"], "--output: cannot write"),
        (["--format", "script", "--output", "{tmp}"], "(it is a folder)"),
        ([], "the following arguments are required: --format"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tmp_path, config_file, capsys, arguments, expected):
    arguments = [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    assert main(["export", "--config", config_file, *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and expected in captured.err
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "does not exist"),
        ('{"dataset": "digits", "batch_size": 0}', "batch_size"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_config_files_exit_2_with_one_line(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["export", "--config", str(path), "--format", "script"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and expected in captured.err
    assert captured.err.count("\n") == 1


def test_notebook_and_reports_of_a_config_file(config_file, capsys):
    from dpcore.export.notebook import render_notebook
    from dpcore.privacy import accounting, explain

    assert main(["export", "--config", config_file, "--format", "notebook"]) == 0
    assert capsys.readouterr().out == render_notebook(CONFIG)
    epsilon = explain.format_epsilon(accounting.epsilon_for_config(CONFIG, n=1437))
    assert main(["export", "--config", config_file, "--format", "report-md"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("# Privacy report: a config before training\n")
    assert f"(ε, δ) = ({epsilon}, 1e-05) after 45 noisy steps over 3 epoch(s), PLD accountant, shuffle" in markdown
    assert main(["export", "--config", config_file, "--format", "report-html"]) == 0
    page = capsys.readouterr().out
    assert page.startswith("<!DOCTYPE html>") and f"({epsilon}, 1e-05) after 45 noisy steps" in page


def test_a_stored_runs_report_model_and_config(export_runs, tmp_path, capsys):
    import zipfile

    from dpcore.privacy import explain

    store, run_id = export_runs.store, export_runs.private
    record = store.get_run(run_id)
    where = ["--run", str(run_id), "--store", str(store.path)]
    assert main(["export", *where, "--format", "report-md"]) == 0
    markdown = capsys.readouterr().out
    assert f"# Privacy report: run {run_id} " in markdown
    assert f"(ε, δ) = ({explain.format_epsilon(record.epsilon)}, 1e-05) after 8 noisy steps" in markdown
    assert main(["export", *where, "--format", "json"]) == 0
    assert DPConfig.from_json(capsys.readouterr().out) == record.config
    target = tmp_path / "model.zip"
    assert main(["export", *where, "--format", "model", "--output", str(target)]) == 0
    assert capsys.readouterr().out == ""
    with zipfile.ZipFile(target) as archive:
        assert f"dp-run-{run_id}/model.keras" in archive.namelist()


def test_what_cannot_be_exported_exits_2_with_one_line(export_runs, config_file, tmp_path, capsys):
    store = str(export_runs.store.path)
    cases = [
        (["--config", config_file, "--format", "model", "--output", "m.zip"], "--format: model needs a trained run"),
        (["--run", "1", "--store", store, "--format", "model"], "--output: a model is a zip file"),
        (
            ["--config", config_file, "--store", store, "--format", "report-md"],
            "--store: a store is read only for a run",
        ),
        (["--run", "999", "--store", store, "--format", "report-md"], "run: there is no run with id 999"),
        (
            ["--run", str(export_runs.queued), "--store", store, "--format", "report-html"],
            f"run: run {export_runs.queued} is queued and has not finished an epoch",
        ),
        (
            ["--run", str(export_runs.private), "--store", str(export_runs.unkept_store.path), "--format", "model"]
            + ["--output", str(tmp_path / "m.zip")],
            f"run: the weights of run {export_runs.private} were not kept",
        ),
        (
            ["--run", "1", "--config", config_file, "--format", "json"],
            "argument --config: not allowed with argument --run",
        ),
        (["--format", "json"], "one of the arguments --config --run is required"),
        (["--run", "0", "--format", "json"], "--run: 0 is too small"),
    ]
    for arguments, expected in cases:
        assert main(["export", *arguments]) == 2, arguments
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith("error: ") and expected in captured.err, captured.err
        assert captured.err.count("\n") == 1
    assert not (tmp_path / "m.zip").exists()
