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
        (["--format", "script", "--output", "{tmp}"], "--output: cannot write"),
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
