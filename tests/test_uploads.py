"""Uploaded CSV files: checked before they are kept, kept once per content, readable as datasets."""
from __future__ import annotations

import pytest

from dpcore import data, tabular, uploads
from dpcore.config import DPConfig
from dpcore.errors import DatasetError
from tests.conftest import REPO_ROOT

SAMPLE = (REPO_ROOT / "assets" / "sample.csv").read_bytes()


def test_a_good_csv_is_kept_once_and_trains_as_a_dataset(tmp_path):
    first = uploads.save_csv(SAMPLE, name="my data.csv", directory=tmp_path)
    again = uploads.save_csv(SAMPLE, name="my data.csv", directory=tmp_path)
    assert first == again and first.read_bytes() == SAMPLE and first.name.startswith("my_data-")
    assert len(list(tmp_path.iterdir())) == 1
    columns = data.csv_columns(SAMPLE, name="my data.csv")
    label = columns[-1]
    schema = tabular.load_schema_file(str(REPO_ROOT / "assets" / "sample.schema.yaml"))
    config = DPConfig(dataset="csv", csv_path=str(first), csv_label=label, model="logreg", csv_schema=schema)
    assert data.load(config).info.n_train == data.train_size(config) > 0


@pytest.mark.parametrize("raw, message", [
    (b"", "empty"), (b"1,2,3\n4,5,6\n", "no header row"), (b"\x00\x01\x02garbage", "binary"),
])
def test_bad_files_are_refused_before_they_are_kept(tmp_path, raw, message):
    with pytest.raises(DatasetError, match=message) as info:
        uploads.save_csv(raw, name="bad.csv", directory=tmp_path)
    assert info.value.field == "csv_path"
    assert not any(tmp_path.iterdir())


def test_the_default_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DPEXPLORER_UPLOADS", str(tmp_path / "up"))
    assert uploads.uploads_dir() == tmp_path / "up"
    monkeypatch.delenv("DPEXPLORER_UPLOADS")
    monkeypatch.setenv("DPEXPLORER_STORE", str(tmp_path / "store" / "runs.sqlite3"))
    assert uploads.uploads_dir() == tmp_path / "store" / "uploads"


def test_file_columns_apply_the_load_checks(tmp_path):
    path = uploads.save_csv(SAMPLE, name="sample.csv", directory=tmp_path / "kept")
    assert data.csv_file_columns(str(path)) == data.csv_columns(SAMPLE)
    with pytest.raises(DatasetError, match="is not a file"):
        data.csv_file_columns(str(tmp_path))
    with pytest.raises(DatasetError, match="does not exist"):
        data.csv_file_columns(str(tmp_path / "missing.csv"))
