"""Uploaded CSV files: checked, kept once per content and per owner, usable only by their owner; server paths confined."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from dpcore import csv_schema
from dpcore.config import DPConfig
from dpcore.data import csv_files, datasets
from dpcore.errors import DatasetError, UserInputError
from dpcore.room import server_paths, uploads
from dpcore.room.participants import Caller, NotAllowedError
from dpcore.room.server_settings import RoomLimits, ServerSettings
from dpcore.runs import owners
from dpcore.runs.jobs import JobRunner
from dpcore.runs.store import RunStore
from tests.conftest import REPO_ROOT

SAMPLE = (REPO_ROOT / "assets" / "sample.csv").read_bytes()


def test_a_good_csv_is_kept_once_and_trains_as_a_dataset(tmp_path):
    first = uploads.save_csv(SAMPLE, name="my data.csv", directory=tmp_path)
    again = uploads.save_csv(SAMPLE, name="my data.csv", directory=tmp_path)
    assert first == again and first.read_bytes() == SAMPLE and first.name.startswith("my_data-")
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name, first.name + uploads.NAME_SUFFIX]
    assert uploads.original_name(str(first), directory=tmp_path) == "my data.csv"
    columns = csv_files.csv_columns(SAMPLE, name="my data.csv")
    label = columns[-1]
    schema = csv_schema.load_schema_file(str(REPO_ROOT / "assets" / "sample.schema.yaml"))
    config = DPConfig(dataset="csv", csv_path=str(first), csv_label=label, model="logreg", csv_schema=schema)
    assert datasets.load(config).info.n_train == datasets.train_size(config) > 0


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "empty"),
        (b"1,2,3\n4,5,6\n", "no header row"),
        (b"\x00\x01\x02garbage", "binary"),
    ],
)
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
    assert csv_files.csv_file_columns(str(path)) == csv_files.csv_columns(SAMPLE)
    with pytest.raises(DatasetError, match="is not a file"):
        csv_files.csv_file_columns(str(tmp_path))
    with pytest.raises(DatasetError, match="does not exist"):
        csv_files.csv_file_columns(str(tmp_path / "missing.csv"))


# -- a shared server's quotas ----------------------------------------------------------------

ADA, BOB = Caller(owner="p" + "a" * 16), Caller(owner="p" + "b" * 16)
HOST = Caller(owner="p" + "c" * 16, is_host=True)
QUOTA = 3 * len(SAMPLE)


def _variant(rows: int) -> bytes:
    """SAMPLE with its first ``rows`` rows repeated: another file, larger by those rows."""
    lines = SAMPLE.splitlines(keepends=True)
    return b"".join(lines + lines[1 : rows + 1])


def test_on_a_shared_server_an_upload_needs_a_participant(tmp_path):
    with pytest.raises(UserInputError) as info:
        uploads.save_csv(SAMPLE, name="anon.csv", owner="", directory=tmp_path, limits=RoomLimits())
    assert info.value.field == "display_name" and "type your name" in str(info.value)
    assert not any(tmp_path.iterdir())


def test_uploads_fit_the_participants_quota_and_the_servers_total(tmp_path):
    limits = RoomLimits(upload_quota_bytes=QUOTA, uploads_total_bytes=5 * len(SAMPLE), disk_reserve_bytes=0)
    first = uploads.save_csv(SAMPLE, name="a.csv", owner=ADA.owner, directory=tmp_path, limits=limits)
    second = uploads.save_csv(_variant(5), name="b.csv", owner=ADA.owner, directory=tmp_path, limits=limits)
    assert uploads.used_bytes(owner=ADA.owner, directory=tmp_path) == len(SAMPLE) + len(_variant(5))
    with pytest.raises(uploads.UploadQuotaError) as info:
        uploads.save_csv(_variant(60), name="c.csv", owner=ADA.owner, directory=tmp_path, limits=limits)
    assert info.value.field == "upload" and "exceed your upload quota" in str(info.value)
    assert f"{QUOTA / 2**20:.1f} MiB of uploads per participant" in str(info.value)
    # The same content again takes no more space, so it is kept even at the quota.
    assert uploads.save_csv(SAMPLE, name="a.csv", owner=ADA.owner, directory=tmp_path, limits=limits) == first
    uploads.save_csv(_variant(7), name="b.csv", owner=BOB.owner, directory=tmp_path, limits=limits)
    uploads.save_csv(_variant(9), name="b.csv", owner=BOB.owner, directory=tmp_path, limits=limits)
    with pytest.raises(uploads.UploadQuotaError, match="exceed its total") as info:
        uploads.save_csv(_variant(11), name="c.csv", owner=HOST.owner, directory=tmp_path, limits=limits)
    assert "ask the host to clear the board" in str(info.value)
    assert uploads.used_bytes(owner=None, directory=tmp_path) <= limits.uploads_total_bytes
    assert not list(tmp_path.rglob("*.part")) and second.exists()


def test_an_upload_that_would_eat_into_the_disk_reserve_is_refused(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    limits = RoomLimits(disk_reserve_bytes=free)  # any file leaves less than this free
    with pytest.raises(uploads.UploadQuotaError, match="would leave less than the space kept for the run store"):
        uploads.save_csv(SAMPLE, name="a.csv", owner=ADA.owner, directory=tmp_path / "new", limits=limits)
    assert not (tmp_path / "new").exists()


def test_a_write_that_fails_leaves_no_partial_file(tmp_path):
    # A file-size limit stands in for a full disk: the write fails part-way, as it would at 100%.
    script = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from dpcore.room import uploads\n"
        "from dpcore.errors import DatasetError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    uploads.save_csv(Path(sys.argv[1]).read_bytes(), name='big.csv', owner='p' + 'a' * 16,"
        " directory=Path(sys.argv[2]))\n"
        "except DatasetError as exc:\n"
        "    print(exc)\n"
    )
    source = tmp_path / "big.csv"
    source.write_bytes(SAMPLE)
    folder = tmp_path / "uploads"
    done = subprocess.run(
        [sys.executable, "-c", script, str(source), str(folder)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("csv_path: cannot keep the upload in") and "File too large" in done.stdout
    assert list(folder.rglob("*")) == [folder / ADA.owner]  # the owner's folder, empty: no .part left


def test_partial_files_left_by_a_stopped_server_are_removed_and_counted_until_then(tmp_path):
    folder = tmp_path / ADA.owner
    folder.mkdir()
    old, fresh = folder / "tmpold.part", folder / "tmpnew.part"
    old.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y" * 10)
    long_ago = time.time() - 2 * uploads.STALE_PART_SECONDS
    os.utime(old, (long_ago, long_ago))
    assert uploads.used_bytes(owner=ADA.owner, directory=tmp_path) == 1010
    uploads.save_csv(SAMPLE, name="a.csv", owner=ADA.owner, directory=tmp_path, limits=RoomLimits())
    assert not old.exists() and fresh.exists()  # a fresh one may be another upload being written


# -- ownership ------------------------------------------------------------------------------


def _csv_config(path) -> DPConfig:
    return DPConfig(dataset="csv", csv_path=str(path), csv_label=csv_files.csv_columns(SAMPLE)[-1], model="logreg")


def test_an_upload_belongs_to_its_uploader(tmp_path):
    adas = uploads.save_csv(SAMPLE, name="ada.csv", owner=ADA.owner, directory=tmp_path)
    bobs = uploads.save_csv(SAMPLE, name="bob.csv", owner=BOB.owner, directory=tmp_path)
    assert adas.parent == tmp_path / ADA.owner and bobs.parent == tmp_path / BOB.owner
    assert uploads.upload_owner(str(adas), directory=tmp_path) == ADA.owner
    assert (
        uploads.upload_owner(str(tmp_path / BOB.owner / ".." / ADA.owner / adas.name), directory=tmp_path) == ADA.owner
    )
    assert uploads.upload_owner(str(REPO_ROOT / "assets" / "sample.csv"), directory=tmp_path) is None
    assert uploads.may_use(str(adas), ADA, directory=tmp_path) and uploads.may_use(str(adas), HOST, directory=tmp_path)
    assert not uploads.may_use(str(adas), BOB, directory=tmp_path)
    assert uploads.shown_name(str(adas), ADA, directory=tmp_path) == "ada.csv"  # its own name, not the kept copy's
    assert uploads.shown_name(str(adas), BOB, directory=tmp_path) == "(another participant's upload)"
    with pytest.raises(UserInputError) as info:
        uploads.save_csv(SAMPLE, name="x.csv", owner="../escape", directory=tmp_path)
    assert info.value.field == "owner"


def test_only_the_owner_and_the_host_train_on_an_upload(tmp_path):
    adas = uploads.save_csv(SAMPLE, name="ada.csv", owner=ADA.owner, directory=tmp_path)
    settings = ServerSettings()  # no data folder
    config = _csv_config(adas)
    assert server_paths.check_server_path(config, settings, caller=ADA, uploads_directory=tmp_path) == config
    assert server_paths.check_server_path(config, settings, caller=HOST, uploads_directory=tmp_path) == config
    with pytest.raises(NotAllowedError) as info:
        server_paths.check_server_path(config, settings, caller=BOB, uploads_directory=tmp_path)
    assert info.value.field == "csv_path" and "another participant" in str(info.value)


def test_deleting_a_participants_runs_deletes_their_uploads(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    folder = tmp_path / "uploads"
    adas = uploads.save_csv(SAMPLE, name="ada.csv", owner=ADA.owner, directory=folder)
    bobs = uploads.save_csv(SAMPLE, name="bob.csv", owner=BOB.owner, directory=folder)
    (folder / "notes.txt").write_text("not an upload")
    for owner in (ADA.owner, BOB.owner):
        run_id = store.create_run(_csv_config(adas), owner=owner)
        store.set_status(run_id, "cancelled")
    runner = JobRunner(store=store, workers=1)
    try:
        with pytest.raises(NotAllowedError):
            owners.delete_runs_and_uploads(runner, by=BOB, owner=ADA.owner, uploads_directory=folder)
        carols = uploads.save_csv(SAMPLE, name="c.csv", owner="p" + "d" * 16, directory=folder)
        with pytest.raises(NotAllowedError):  # no runs to check, still not Bob's to delete
            owners.delete_runs_and_uploads(runner, by=BOB, owner="p" + "d" * 16, uploads_directory=folder)
        with pytest.raises(NotAllowedError, match="only the host can clear the board"):
            owners.delete_runs_and_uploads(runner, by=BOB, owner=None, uploads_directory=folder)
        assert adas.exists() and carols.exists()
        mine = owners.delete_runs_and_uploads(runner, by=ADA, owner=ADA.owner, uploads_directory=folder)
        assert (len(mine.run_ids), mine.owners, mine.uploads) == (1, 1, 1)
        assert not adas.exists() and not (folder / ADA.owner).exists() and bobs.exists()
        assert [r.owner for r in store.list_runs()] == [BOB.owner]
        board = owners.delete_runs_and_uploads(runner, by=HOST, owner=None, uploads_directory=folder)
        assert (len(board.run_ids), board.owners, board.uploads) == (1, 1, 2)  # Bob's run; Bob's and Carol's files
        assert store.list_runs() == [] and not bobs.exists() and not carols.exists()
        assert (folder / "notes.txt").read_text() == "not an upload"  # only uploads are deleted
    finally:
        runner.shutdown(wait=True)


def test_an_upload_keeps_its_own_name_and_is_found_by_it(tmp_path):
    kept = uploads.save_csv(SAMPLE, name="C:\\data\\heart disease.csv", owner=ADA.owner, directory=tmp_path)
    assert kept.name != "heart disease.csv" and kept.parent == tmp_path / ADA.owner
    assert uploads.original_name(str(kept), directory=tmp_path) == "heart disease.csv"
    assert uploads.shown_name(str(kept), HOST, directory=tmp_path) == "heart disease.csv"
    assert uploads.find_upload("heart disease.csv", owner=ADA.owner, directory=tmp_path) == kept
    assert uploads.find_upload("heart disease.csv", owner=BOB.owner, directory=tmp_path) is None
    assert uploads.original_name(str(REPO_ROOT / "assets" / "sample.csv"), directory=tmp_path) is None
    # The same name for different content is ambiguous: nothing is picked for the owner.
    uploads.save_csv(
        SAMPLE.rstrip(b"\n") + b"\n30,40.0,1,0.1,master,rent,approved\n",
        name="heart disease.csv",
        owner=ADA.owner,
        directory=tmp_path,
    )
    assert uploads.find_upload("heart disease.csv", owner=ADA.owner, directory=tmp_path) is None
    assert uploads.delete_uploads(owner=ADA.owner, directory=tmp_path) == 2  # the two uploads (their names go too)
    assert not (tmp_path / ADA.owner).exists()


# -- confinement of server paths ------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "table.csv").write_bytes(SAMPLE)
    secret = tmp_path / "secret.csv"
    secret.write_bytes(SAMPLE)
    (folder / "link.csv").symlink_to(secret)
    (folder / "inside-link.csv").symlink_to(folder / "sub" / "table.csv")
    return folder


def test_server_files_are_off_without_a_data_folder(tmp_path):
    settings = ServerSettings()
    assert not server_paths.server_files_enabled(settings)
    with pytest.raises(UserInputError, match="does not read files named by path") as info:
        server_paths.check_server_path(_csv_config("/etc/os-release"), settings, caller=ADA, uploads_directory=tmp_path)
    assert info.value.field == "csv_path"


def test_only_files_under_the_data_folder_are_accepted(data_dir, tmp_path):
    settings = ServerSettings(data_dir=data_dir.resolve())
    uploads_folder = tmp_path / "uploads"
    table = (data_dir / "sub" / "table.csv").resolve()
    for given in (str(table), "sub/table.csv", str(data_dir / "sub" / ".." / "sub" / "table.csv"), "inside-link.csv"):
        checked = server_paths.check_server_path(
            _csv_config(given), settings, caller=ADA, uploads_directory=uploads_folder
        )
        assert checked.csv_path == str(table)
    assert server_paths.resolve_data_file("sub/table.csv", settings) == table
    for escape in (
        "/etc/passwd",
        "../secret.csv",
        str(data_dir / ".." / "secret.csv"),
        "link.csv",
        str(data_dir / "link.csv"),
        "/etc/no-such-file",
    ):
        with pytest.raises(UserInputError, match="outside the data folder") as info:
            server_paths.check_server_path(_csv_config(escape), settings, caller=HOST, uploads_directory=uploads_folder)
        assert info.value.field == "csv_path"
    with pytest.raises(UserInputError, match="NUL byte"):
        server_paths.resolve_data_file("sub/table.csv\x00.txt", settings)


def test_a_config_without_a_file_passes_unchanged():
    config = DPConfig()
    assert server_paths.check_server_path(config, ServerSettings(), caller=ADA) is config
