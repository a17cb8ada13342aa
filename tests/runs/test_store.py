"""RunStore: round trips of runs and epochs, infinite ε, CSV, schema versions, dead-process runs, concurrency."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sqlite3
import subprocess
import sys
import threading

import pytest

from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.locations import default_store_path
from dpcore.results import TRAIN_ACCURACY_KEY, TRAIN_LOSS_KEY, EpochMetrics, TrainResult
from dpcore.room import participants
from dpcore.room.participants import Caller, NotAllowedError
from dpcore.runs import store_schema
from dpcore.runs.process_identity import process_alive, process_token
from dpcore.runs.run_table import CSV_COLUMNS, run_row, spreadsheet_safe
from dpcore.runs.store import RunStore, StoreError, UnknownRunError
from dpcore.runs.store_schema import SCHEMA_VERSION

CONFIG = DPConfig(
    dataset="digits", model="logreg", batch_size=32, epochs=3, max_train_examples=128, noise_multiplier=1.1
)


def _epoch(epoch: int, *, epsilon: float = 1.5, test_loss: float = 0.9) -> EpochMetrics:
    return EpochMetrics(
        epoch=epoch,
        train_loss=1.0 / epoch,
        train_accuracy=0.5 + epoch / 100,
        test_loss=test_loss,
        test_accuracy=0.4 + epoch / 100,
        epsilon=epsilon * epoch,
        seconds=0.25,
        examples=128,
    )


def _result(
    config: DPConfig, epochs: tuple[EpochMetrics, ...], *, status: str = "completed", error: str | None = None
) -> TrainResult:
    return TrainResult(
        status=status, error=error, config=config, epochs=epochs, examples_per_second=512.0, seconds=0.75, n_train=128
    )


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs.sqlite3")


def _raw(store: RunStore) -> sqlite3.Connection:
    return sqlite3.connect(store.path)


def test_new_run_round_trips_config_owner_and_name(store):
    run_id = store.create_run(CONFIG, owner="session-a", name="first try")
    run = store.get_run(run_id)
    assert run.id == run_id
    assert run.config == CONFIG
    assert (run.owner, run.name, run.label, run.status) == ("session-a", "first try", "first try", "queued")
    assert run.epochs == () and run.test_accuracy is None and run.epsilon is None
    assert run.started is None and run.finished is None


def test_epochs_committed_one_by_one_round_trip(store):
    run_id = store.create_run(CONFIG)
    store.set_status(run_id, "running")
    first, second = _epoch(1), _epoch(2)
    store.record_epoch(run_id, first)
    assert store.get_run(run_id).epochs == (first,)
    store.record_epoch(run_id, second)
    run = store.get_run(run_id)
    assert run.status == "running" and run.started is not None
    assert run.epochs == (first, second)
    assert run.test_accuracy == second.test_accuracy
    assert run.epsilon == second.epsilon


def test_infinite_epsilon_and_nan_loss_round_trip(store):
    baseline = CONFIG.as_baseline()
    run_id = store.create_run(baseline)
    store.record_epoch(run_id, _epoch(1, epsilon=math.inf, test_loss=math.nan))
    run = store.get_run(run_id)
    assert run.config.private is False
    assert run.epsilon == math.inf
    assert math.isnan(run.epochs[0].test_loss)
    assert _raw(store).execute("SELECT epsilon FROM epoch_metrics").fetchone() == (None,)


def test_finish_run_stores_outcome_and_fills_missing_epochs_once(store):
    run_id = store.create_run(CONFIG)
    epochs = (_epoch(1), _epoch(2), _epoch(3))
    store.record_epoch(run_id, epochs[0])
    store.finish_run(run_id, _result(CONFIG, epochs))
    run = store.get_run(run_id)
    assert run.status == "completed" and run.error is None
    assert run.epochs == epochs
    assert (run.examples_per_second, run.seconds, run.n_train) == (512.0, 0.75, 128)
    assert run.finished is not None


def test_failed_run_keeps_its_message(store):
    run_id = store.create_run(CONFIG)
    store.finish_run(run_id, _result(CONFIG, (), status="failed", error="csv_path: no such file"))
    run = store.get_run(run_id)
    assert (run.status, run.error, run.epochs) == ("failed", "csv_path: no such file", ())


def test_set_status_rejects_unknown_status_and_unknown_run(store):
    run_id = store.create_run(CONFIG)
    with pytest.raises(ValueError, match="unknown run status"):
        store.set_status(run_id, "paused")
    with pytest.raises(UnknownRunError):
        store.set_status(run_id + 1, "cancelled")
    with pytest.raises(UnknownRunError):
        store.record_epoch(run_id + 1, _epoch(1))


def test_list_runs_filters_by_owner_in_creation_order(store):
    a1 = store.create_run(CONFIG, owner="a")
    b1 = store.create_run(CONFIG.replace(noise_multiplier=2.0), owner="b")
    a2 = store.create_run(CONFIG, owner="a")
    store.record_epoch(b1, _epoch(1))
    store.record_epoch(a2, _epoch(1))
    store.record_epoch(a2, _epoch(2))
    assert [r.id for r in store.list_runs()] == [a1, b1, a2]
    mine = store.list_runs(owner="a")
    assert [r.id for r in mine] == [a1, a2]
    assert [len(r.epochs) for r in mine] == [0, 2]
    assert [r.config.noise_multiplier for r in store.list_runs(owner="b")] == [2.0]
    assert store.list_runs(owner="nobody") == []


def test_rename_and_delete_run(store):
    keep = store.create_run(CONFIG)
    gone = store.create_run(CONFIG)
    store.record_epoch(gone, _epoch(1))
    store.rename_run(keep, "  tuned clip  ")
    assert store.get_run(keep).name == "tuned clip"
    store.delete_run(gone)
    with pytest.raises(UnknownRunError):
        store.get_run(gone)
    assert _raw(store).execute("SELECT COUNT(*) FROM epoch_metrics").fetchone() == (0,)
    assert [r.id for r in store.list_runs()] == [keep]
    with pytest.raises(UnknownRunError):
        store.delete_run(gone)
    with pytest.raises(UnknownRunError):
        store.rename_run(gone, "x")


def test_csv_export_has_one_row_per_run(store):
    private = store.create_run(CONFIG, name="dp")
    store.finish_run(private, _result(CONFIG, (_epoch(1), _epoch(2))))
    baseline = store.create_run(CONFIG.as_baseline())
    store.finish_run(baseline, _result(CONFIG.as_baseline(), (_epoch(1, epsilon=math.inf),)))
    failed = store.create_run(CONFIG)
    store.set_status(failed, "failed", error='bad "file", line 2')

    rows = list(csv.DictReader(io.StringIO(store.to_csv())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r["id"]) for r in rows] == [private, baseline, failed]
    assert rows[0]["name"] == "dp" and rows[0]["status"] == "completed"
    assert float(rows[0]["epsilon"]) == _epoch(2).epsilon
    assert float(rows[0]["test_accuracy"]) == _epoch(2).test_accuracy
    # The last epoch's training figures, named as computed on private batches and not covered by ε.
    assert float(rows[0][TRAIN_LOSS_KEY]) == _epoch(2).train_loss
    assert float(rows[0][TRAIN_ACCURACY_KEY]) == _epoch(2).train_accuracy
    assert not {"train_loss", "train_accuracy"} & set(CSV_COLUMNS)
    assert rows[2][TRAIN_LOSS_KEY] == "" and rows[2][TRAIN_ACCURACY_KEY] == ""
    assert (rows[0]["noise_multiplier"], rows[0]["batch_size"], rows[0]["private"]) == ("1.1", "32", "True")
    assert rows[1]["epsilon"] == "inf" and rows[1]["private"] == "False"
    assert rows[2]["error"] == 'bad "file", line 2' and rows[2]["test_accuracy"] == ""
    assert {r["owner_name"] for r in rows} == {""}  # runs of no participant (the CLI's)


def test_csv_export_names_each_runs_participant(store):
    ada, _ = participants.register(store, "-Ada")
    mine = store.create_run(CONFIG, owner=ada.owner)
    gone = store.create_run(CONFIG, owner="p" + "9" * 16)  # a participant the host removed
    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(store.to_csv()))}
    assert rows[mine]["owner_name"] == "'-Ada"  # a name a spreadsheet would run stays text
    assert rows[gone]["owner_name"] == ""


def test_run_row_gives_a_baseline_infinite_epsilon_before_its_first_epoch(store):
    run_id = store.create_run(CONFIG.as_baseline(), name="base")
    row = run_row(store.get_run(run_id))
    assert (row["epsilon"], row["test_accuracy"], row["epochs_done"], row["epochs"]) == (math.inf, None, 0, 3)
    assert (row["label"], row["status"], row["private"]) == ("base", "queued", False)
    assert row["created"].endswith("+00:00")
    assert run_row(store.get_run(store.create_run(CONFIG)))["epsilon"] is None


def test_store_file_is_wal_and_versioned(store):
    assert store.schema_version() == SCHEMA_VERSION
    assert _raw(store).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_reopening_keeps_runs(tmp_path):
    path = tmp_path / "runs.sqlite3"
    run_id = RunStore(path).create_run(CONFIG, name="kept")
    assert RunStore(path).get_run(run_id).name == "kept"


def test_store_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="schema version"):
        RunStore(path)


def test_garbage_file_is_a_store_error(tmp_path):
    path = tmp_path / "not-a-db.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a database"):
        RunStore(path)


def test_default_path_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DPEXPLORER_STORE", str(tmp_path / "env.sqlite3"))
    assert default_store_path() == tmp_path / "env.sqlite3"
    monkeypatch.delenv("DPEXPLORER_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_path() == tmp_path / "xdg" / "dp-explorer" / "runs.sqlite3"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_store_path() == tmp_path / "home" / ".local" / "share" / "dp-explorer" / "runs.sqlite3"
    monkeypatch.setenv("DPEXPLORER_STORE", str(tmp_path / "made" / "here.sqlite3"))
    assert RunStore().path == tmp_path / "made" / "here.sqlite3"
    assert (tmp_path / "made" / "here.sqlite3").exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_mark_interrupted_only_touches_runs_of_dead_processes(store):
    dead_running = store.create_run(CONFIG)
    store.set_status(dead_running, "running")
    store.record_epoch(dead_running, _epoch(1))
    dead_queued = store.create_run(CONFIG)
    alive_running = store.create_run(CONFIG)
    store.set_status(alive_running, "running")
    finished = store.create_run(CONFIG)
    store.set_status(finished, "completed")
    dead = f"{process_token().split(':')[0]}:{_dead_pid()}:"
    with _raw(store) as conn:
        conn.execute("UPDATE runs SET process = ? WHERE id IN (?, ?, ?)", (dead, dead_running, dead_queued, finished))

    assert store.mark_interrupted() == 2
    assert store.get_run(dead_running).status == "interrupted"
    assert store.get_run(dead_running).epochs == (_epoch(1),)
    assert store.get_run(dead_running).error
    assert store.get_run(dead_queued).status == "interrupted"
    assert store.get_run(alive_running).status == "running"
    assert store.get_run(finished).status == "completed"
    assert store.mark_interrupted() == 0


def test_process_tokens_tell_a_reused_pid_apart():
    me = process_token()
    assert process_alive(me)
    host, pid, start = me.split(":")
    if start:  # /proc is readable: a different start time is a different process
        assert not process_alive(f"{host}:{pid}:{int(start) + 1}")
    assert not process_alive(f"{host}:{_dead_pid()}:")
    assert not process_alive("")
    assert process_alive(f"some-other-host-{host}:{os.getpid()}:1")


def test_concurrent_writers_lose_nothing(store):
    errors: list[BaseException] = []

    def write(owner: str) -> None:
        try:
            for _ in range(15):
                run_id = store.create_run(CONFIG, owner=owner)
                for epoch in (1, 2):
                    store.record_epoch(run_id, _epoch(epoch))
                store.finish_run(run_id, _result(CONFIG, (_epoch(1), _epoch(2))))
                store.list_runs(owner=owner)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    runs = store.list_runs()
    assert len(runs) == 60
    assert all(r.status == "completed" and len(r.epochs) == 2 for r in runs)
    assert len({r.id for r in runs}) == 60


def test_an_older_file_is_migrated_in_place_and_keeps_its_runs(tmp_path, monkeypatch):
    import dpcore.runs.store as store_module

    path = tmp_path / "runs.sqlite3"
    old = RunStore(path)
    run_id = old.create_run(CONFIG, name="from v1")
    old.record_epoch(run_id, _epoch(1))

    def add_notes(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE runs ADD COLUMN notes TEXT NOT NULL DEFAULT ''")

    monkeypatch.setattr(store_module, "MIGRATIONS", (*store_module.MIGRATIONS, add_notes))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    upgraded = RunStore(path)
    assert upgraded.schema_version() == SCHEMA_VERSION + 1
    assert _raw(upgraded).execute("SELECT name, notes FROM runs").fetchall() == [("from v1", "")]
    assert upgraded.get_run(run_id).epochs == (_epoch(1),)
    RunStore(path)  # opening an up-to-date file again applies nothing twice
    assert upgraded.schema_version() == SCHEMA_VERSION + 1


def test_weights_and_audits_round_trip_and_go_with_their_run(tmp_path):
    import numpy as np

    path = tmp_path / "runs.sqlite3"
    store = RunStore(path)
    run_id = store.create_run(CONFIG)
    assert store.load_weights(run_id) is None and store.get_audit(run_id) is None
    weights = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([0.5, -1.25], dtype=np.float32)]
    store.save_weights(run_id, weights)
    store.save_audit(run_id, '{"first": 1}')
    store.save_audit(run_id, '{"second": 2}')  # the latest audit replaces the earlier one

    reopened = RunStore(path)
    loaded = reopened.load_weights(run_id)
    assert [w.dtype for w in loaded] == [np.float32, np.float32]
    assert all(np.array_equal(a, b) for a, b in zip(loaded, weights)) and len(loaded) == 2
    assert reopened.get_audit(run_id) == '{"second": 2}'
    with pytest.raises(UnknownRunError):
        reopened.save_weights(run_id + 1, weights)
    with pytest.raises(UnknownRunError):
        reopened.save_audit(run_id + 1, "{}")

    reopened.delete_run(run_id)
    raw = _raw(reopened)
    assert raw.execute("SELECT COUNT(*) FROM run_weights").fetchone() == (0,)
    assert raw.execute("SELECT COUNT(*) FROM audits").fetchone() == (0,)


def test_runs_read_back_with_their_audit_and_its_summary_in_rows_and_csv(store):
    from tests.audit_samples import hand_made_report

    audited, plain = store.create_run(CONFIG, owner="a"), store.create_run(CONFIG, owner="b")
    report = hand_made_report(2.0, auc=0.58, bound=0.35, run_id=audited)
    store.save_audit(audited, report.to_json())
    assert store.get_run(audited).audit == report and store.get_run(plain).audit is None
    assert [r.audit for r in store.list_runs()] == [report, None]
    assert [r.audit for r in store.list_runs(owner="a")] == [report]
    auc, bound = "audit_auc_not_covered_by_epsilon", "audit_epsilon_lower_bound_not_covered_by_epsilon"
    row = run_row(store.get_run(audited))
    assert (row[auc], row[bound]) == (0.58, 0.35)
    assert run_row(store.get_run(plain))[auc] is None
    lines = list(csv.DictReader(io.StringIO(store.to_csv())))
    assert (lines[0][auc], lines[0][bound], lines[1][auc]) == ("0.58", "0.35", "")
    store.save_audit(plain, '{"format": 99}')  # a report this version cannot read counts as no audit
    assert store.get_run(plain).audit is None


def _old_store_with_one_run(tmp_path, *, version):
    """A store file built by the first ``version`` migrations, holding one completed run named 'old'."""

    path = tmp_path / "runs.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for step in store_schema.MIGRATIONS[:version]:
        step(conn)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute(
        "INSERT INTO runs (name, created, config_json, status) VALUES ('old', 1.0, ?, 'completed')", (CONFIG.to_json(),)
    )
    conn.execute("COMMIT")
    conn.close()
    return path


def test_a_version_1_store_gains_the_weights_and_audit_tables(tmp_path):

    path = _old_store_with_one_run(tmp_path, version=1)  # the layout every store had before version 2

    store = RunStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    (old,) = store.list_runs()
    assert old.name == "old" and old.config == CONFIG
    assert store.load_weights(old.id) is None and store.get_audit(old.id) is None
    store.save_audit(old.id, "{}")
    assert store.get_audit(old.id) == "{}"


# -- permissions (dpcore.room.participants.Caller) ------------------------------------------------

ADA, BOB = Caller(owner="pada"), Caller(owner="pbob")
HOST = Caller(owner="phost", is_host=True)


def _finished(store: RunStore, owner: str, name: str = "") -> int:
    run_id = store.create_run(CONFIG, owner=owner, name=name)
    store.finish_run(run_id, _result(CONFIG, (_epoch(1),)))
    return run_id


def test_participants_rename_and_delete_only_their_own_runs(store):
    adas = _finished(store, "pada", "ada's")
    bobs = _finished(store, "pbob", "bob's")
    store.rename_run(adas, "renamed", by=ADA)
    assert store.get_run(adas).name == "renamed"
    for action in (lambda: store.rename_run(bobs, "=evil", by=ADA), lambda: store.delete_run(bobs, by=ADA)):
        with pytest.raises(NotAllowedError) as info:
            action()
        assert info.value.field == "run" and f"run {bobs} belongs to another participant" in str(info.value)
    assert store.get_run(bobs).name == "bob's"
    store.delete_run(adas, by=ADA)
    assert [r.id for r in store.list_runs()] == [bobs]
    with pytest.raises(UnknownRunError):
        store.delete_run(adas, by=ADA)


def test_runs_without_an_owner_belong_to_nobody_but_the_host(store):
    legacy = _finished(store, "")
    with pytest.raises(NotAllowedError):
        store.delete_run(legacy, by=Caller(owner=""))
    store.rename_run(legacy, "kept", by=HOST)
    store.delete_run(legacy, by=HOST)
    assert store.list_runs() == []


def test_the_host_clears_the_board_and_a_participant_deletes_only_their_own(store):
    ada1, ada2 = _finished(store, "pada"), _finished(store, "pada")
    bobs = _finished(store, "pbob")
    with pytest.raises(NotAllowedError, match="only the host can clear the board"):
        store.delete_runs(owner=None, by=ADA)
    with pytest.raises(NotAllowedError, match="belong to another participant") as info:
        store.delete_runs(owner="pada", by=BOB)
    assert info.value.field == "runs"
    assert store.delete_runs(owner="pada", by=ADA) == [ada1, ada2]
    queued = store.create_run(CONFIG, owner="pbob")
    with pytest.raises(UserInputError, match=f"ids {queued}.*cancel them first"):
        store.delete_runs(owner=None, by=HOST)
    assert [r.id for r in store.list_runs()] == [bobs, queued]  # nothing deleted
    store.set_status(queued, "cancelled")
    assert store.delete_runs(owner=None, by=HOST) == [bobs, queued]
    assert store.list_runs() == []


def test_csv_export_names_each_runs_csv_file_as_its_reader_may_see_it(store):
    on_file = store.create_run(
        CONFIG.replace(
            dataset="csv",
            model="logreg",
            csv_path="/data/uploads/p1/people-3f2a.csv",
            csv_label="y",
            csv_preprocessing_epsilon=1.0,
        )
    )
    embedded = store.create_run(CONFIG)
    rows = list(csv.DictReader(io.StringIO(store.to_csv())))
    assert [(int(r["id"]), r["csv_file"]) for r in rows] == [(on_file, "people-3f2a.csv"), (embedded, "")]
    seen = []
    hidden = list(csv.DictReader(io.StringIO(store.to_csv(shown_file=lambda path: seen.append(path) or "=(hidden)"))))
    assert seen == ["/data/uploads/p1/people-3f2a.csv"]  # asked only for runs that have a file
    assert [r["csv_file"] for r in hidden] == ["'=(hidden)", ""]  # and what it says is written as text


def test_csv_cells_that_spreadsheets_would_run_are_text(store):
    names = [
        '=HYPERLINK("http://x","click")',
        "+1+1",
        "-2+3",
        "@SUM(A1:A9)",
        "\tTAB",
        "\rCR",
        "line one\nline two",
        "plain",
        "\n=cmd|' /C calc'!A0",
        "   =1+1",
        '\uff1dHYPERLINK("http://x")',
        "\u3000@SUM(A1)",
    ]
    for name in names:
        _finished(store, "pada", name)
    rows = list(csv.DictReader(io.StringIO(store.to_csv())))
    assert [row["name"] for row in rows] == [
        '\'=HYPERLINK("http://x","click")',
        "'+1+1",
        "'-2+3",
        "'@SUM(A1:A9)",
        "'\tTAB",
        "'\rCR",
        "line one\nline two",
        "plain",
        "'\n=cmd|' /C calc'!A0",
        "'   =1+1",
        '\'\uff1dHYPERLINK("http://x")',
        "'\u3000@SUM(A1)",
    ]
    assert len(rows) == len(names)  # the newline stayed inside one quoted cell
    text = store.to_csv()
    assert '"line one\nline two"' in text and '"\'\rCR"' in text
    assert (
        rows[0]["epsilon"] == "1.5" and float(rows[0]["test_accuracy"]) == _epoch(1).test_accuracy
    )  # numbers unchanged


@pytest.mark.parametrize(
    "cell, written",
    [
        ("-0.5", "-0.5"),
        ("+3e-05", "+3e-05"),
        ("-inf", "-inf"),
        ("-", "'-"),
        ("=1", "'=1"),
        (-1.5, -1.5),
        (7, 7),
        ("a=b", "a=b"),
        (" -0.5", " -0.5"),
        ("\uff0d1", "\uff0d1"),
        ("\n\n+x", "'\n\n+x"),
    ],
)
def test_spreadsheet_safe_leaves_numbers_alone(cell, written):
    assert spreadsheet_safe(cell) == written


def test_a_version_2_store_gains_the_participants_table(tmp_path):
    from dpcore.room import participants

    path = tmp_path / "runs.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    store_schema.MIGRATIONS[0](conn)
    store_schema.MIGRATIONS[1](conn)  # the layout of version 2, before participants
    conn.execute("PRAGMA user_version = 2")
    conn.execute("COMMIT")
    conn.close()

    store = RunStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    ada, token = participants.register(store, "Ada")
    assert participants.find(store, token) == ada


def test_a_store_from_before_sweeps_gains_the_sweep_tables_and_keeps_its_runs(tmp_path):
    import dpcore.runs.store as store_module

    path = _old_store_with_one_run(tmp_path, version=store_schema.SWEEPS_STEP)

    store = RunStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    (old,) = store.list_runs()
    assert store.list_sweeps() == [] and store.sweep_ids_of_runs() == {}
    sweep_id = store.create_sweep(
        owner="me",
        name="s",
        mode="grid",
        knobs_json="[]",
        seeds=1,
        baseline=False,
        selection_json=None,
        trial_count=None,
        base_config=CONFIG,
    )
    run_id = store.create_run(CONFIG, owner="me", sweep_id=sweep_id)
    assert store.get_sweep(sweep_id).run_ids == (run_id,) and store.sweep_ids_of_runs() == {run_id: sweep_id}
    store.delete_run(run_id)
    assert store.get_sweep(sweep_id).run_ids == ()
    with pytest.raises(store_module.UnknownSweepError):
        store.create_run(CONFIG, sweep_id=sweep_id + 1)


def test_a_store_from_before_selection_draws_gains_their_table_and_keeps_its_sweeps(tmp_path):
    path = _old_store_with_one_run(tmp_path, version=store_schema.SELECTION_DRAWS_STEP)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO sweeps (owner, name, mode, knobs_json, seeds, baseline, selection_json, trial_count, "
        "base_config_json, created) VALUES ('me', 'old', 'private_selection', '[]', 1, 0, "
        """'{"distribution": "poisson", "mean": 2.0, "shape": null}', 3, ?, 1.0)""",
        (CONFIG.to_json(),),
    )
    conn.commit()
    conn.close()

    store = RunStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    (old,) = store.list_sweeps()
    assert (old.name, old.trial_count, old.draw) == ("old", 3, None)
    assert store.list_selection_draws() == [] and [r.name for r in store.list_runs()] == ["old"]


def test_a_selection_draw_is_kept_once_per_owner_data_and_spec_and_used_by_one_sweep(store):
    from dpcore.runs.store import SelectionDrawUsedError

    key = dict(owner="me", data_key='["digits"]', spec_key='{"knobs": 1}')
    assert store.find_selection_draw(**key) is None
    first = store.record_selection_draw(**key, trial_count=3, picks=[0, 1, 1])
    assert (first.trial_count, first.picks, first.refused, first.sweep_id) == (3, (0, 1, 1), None, None)
    assert first.created > 0 and store.find_selection_draw(**key) == first
    # A second draw for the same owner, data and spec is not kept: the first one comes back.
    assert store.record_selection_draw(**key, trial_count=7, picks=[0] * 7) == first
    other = store.record_selection_draw(**{**key, "owner": "you"}, trial_count=0, picks=[])
    refused = store.record_selection_draw(**{**key, "spec_key": "{}"}, trial_count=2000, picks=[], refused="above")
    assert [d.id for d in store.list_selection_draws()] == [first.id, other.id, refused.id]
    assert store.list_selection_draws(owner="you") == [other]

    def sweep(draw_id):
        return store.create_sweep(
            owner="me",
            name="",
            mode="private_selection",
            knobs_json="[]",
            seeds=1,
            baseline=False,
            selection_json=None,
            trial_count=3,
            base_config=CONFIG,
            selection_draw_id=draw_id,
        )

    used_by = sweep(first.id)
    assert store.get_sweep(used_by).draw == store.find_selection_draw(**key)
    assert store.get_sweep(used_by).draw.sweep_id == used_by
    assert {s.id: s.draw for s in store.list_sweeps()}[used_by].picks == (0, 1, 1)
    sweeps_before = len(store.list_sweeps())
    for draw_id in (first.id, refused.id):  # used already, or refused: no second sweep, nothing stored
        with pytest.raises(SelectionDrawUsedError) as caught:
            sweep(draw_id)
        assert caught.value.field == "selection"
    assert len(store.list_sweeps()) == sweeps_before
    store.release_selection_draw(first.id, sweep_id=used_by)  # its sweep could queue nothing
    assert store.find_selection_draw(**key).sweep_id is None and store.get_sweep(used_by).draw is None
    assert store.get_sweep(sweep(first.id)).draw.picks == (0, 1, 1)
    with pytest.raises(ValueError):
        store.record_selection_draw(**{**key, "owner": "x"}, trial_count=-1, picks=[])


def _version_1_file(path) -> None:
    """A store as DP Explorer wrote it at schema version 1: a finished run with two epochs."""

    conn = sqlite3.connect(path)
    store_schema._run_script(conn, store_schema._SCHEMA_V1)
    conn.execute("PRAGMA user_version = 1")
    config_v1 = json.dumps({"schema_version": 1, "dataset": "digits", "model": "logreg", "epochs": 2})
    conn.execute(
        "INSERT INTO runs (id, name, owner, created, config_json, status, n_train) "
        "VALUES (7, 'old', 'me', 1.0, ?, 'completed', 1437)",
        (config_v1,),
    )
    conn.executemany(
        "INSERT INTO epoch_metrics (run_id, epoch, train_loss, train_accuracy, test_loss, "
        "test_accuracy, epsilon, seconds, examples) VALUES (7, ?, 1.0, 0.5, 0.9, 0.6, ?, 0.2, 1437)",
        [(1, 0.5), (2, 0.8)],
    )
    conn.commit()
    conn.close()


def test_a_version_1_store_keeps_its_runs_and_takes_the_new_status_and_metrics(tmp_path):
    path = tmp_path / "v1.sqlite3"
    _version_1_file(path)
    store = RunStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    old = store.get_run(7)
    assert (old.name, old.status, old.config, old.n_train) == (
        "old",
        "completed",
        DPConfig(model="logreg", epochs=2),
        1437,
    )
    assert [(m.epoch, m.epsilon) for m in old.epochs] == [(1, 0.5), (2, 0.8)]
    assert math.isnan(old.epochs[0].validation_accuracy) and old.epochs[0].clip_norms == ()
    assert _raw(store).execute("PRAGMA foreign_key_check").fetchall() == []

    run_id = store.create_run(CONFIG.replace(epsilon_budget=3.0, validation_fraction=0.1))
    assert run_id == 8  # ids keep counting from the old runs
    metrics = EpochMetrics(
        epoch=1,
        train_loss=1.0,
        train_accuracy=0.5,
        test_loss=0.9,
        test_accuracy=0.6,
        epsilon=2.5,
        seconds=0.3,
        examples=100,
        validation_loss=0.8,
        validation_accuracy=0.7,
        noise_multipliers=(1.2, 1.1764705882352942),
        clip_norms=(1.0, 0.987654321),
    )
    store.record_epoch(run_id, metrics)
    store.finish_run(run_id, _result(CONFIG, (metrics,), status="budget_reached"))
    again = RunStore(path).get_run(run_id)
    assert again.status == "budget_reached" and again.epochs == (metrics,)
    assert again.validation_accuracy == 0.7
    store.delete_run(7)  # deleting still cascades to the epochs
    assert _raw(store).execute("SELECT COUNT(*) FROM epoch_metrics WHERE run_id = 7").fetchone() == (0,)


# -- a served store: faults survived, recovery without a restart ----------------------------------


def _served_with_a_run(path) -> RunStore:
    served = RunStore(path, serving=True)
    run_id = served.create_run(DPConfig(), owner="pada", name="kept")
    served.set_status(run_id, "completed")
    served.create_sweep(
        owner="pada",
        name="s",
        mode="grid",
        knobs_json="[]",
        seeds=1,
        baseline=False,
        selection_json=None,
        trial_count=None,
        base_config=DPConfig(),
    )
    served.add_participant(token_hash="0" * 64, owner="pada", display_name="Ada")
    return served


def test_a_served_store_replaced_by_garbage_lists_nothing_with_its_damage_and_takes_a_good_copy_back(tmp_path):
    path = tmp_path / "runs.sqlite3"
    served = _served_with_a_run(path)
    good = path.read_bytes()
    path.write_bytes(bytes(range(256)) * 200)  # someone overwrote the file while the server runs
    listing = served.read_runs()
    assert listing.runs == () and "is damaged (file is not a database)" in listing.damage
    assert served.list_sweeps() == [] and served.display_names() == {} and served.list_participants() == []
    assert served.sweep_ids_of_runs() == {} and served.list_runs(owner="pada") == []
    with pytest.raises(StoreError, match="is damaged"):
        served.create_run(DPConfig())
    served.recheck()
    assert served.damage is not None  # unchanged file: still damaged
    path.write_bytes(good)  # the good copy is put back
    served.recheck()
    assert served.damage is None and [r.name for r in served.list_runs()] == ["kept"]
    assert served.display_names() == {"pada": "Ada"} and len(served.list_sweeps()) == 1
    assert served.create_run(DPConfig()) == 2


def test_a_served_store_whose_folder_stops_taking_writes_is_still_read(tmp_path):
    path = tmp_path / "runs.sqlite3"
    served = _served_with_a_run(path)
    # As in a folder made read-only: SQLite cannot make the log beside the store (a folder stands in its
    # way, which even root cannot write through).
    blocker = tmp_path / "runs.sqlite3-wal"
    blocker.mkdir()
    assert [r.name for r in served.list_runs()] == ["kept"] and served.display_names() == {"pada": "Ada"}
    with pytest.raises(StoreError, match="cannot write to .* the file or its folder is read-only"):
        served.create_run(DPConfig())
    blocker.rmdir()
    assert served.create_run(DPConfig()) == 2  # writable again, nothing to re-check


def test_a_store_that_cannot_be_written_at_start_is_served_for_reading_until_it_can(tmp_path):
    path = tmp_path / "runs.sqlite3"
    _served_with_a_run(path)
    blocker = tmp_path / "runs.sqlite3-wal"
    blocker.mkdir()
    with pytest.raises(StoreError):
        RunStore(path)  # the CLI still refuses
    served = RunStore(path, serving=True)
    assert served.read_only and "the file or its folder is read-only" in served.unwritable
    assert [r.name for r in served.list_runs()] == ["kept"]
    with pytest.raises(StoreError, match="cannot write to") as info:
        served.add_participant(token_hash="1" * 64, owner="pbob", display_name="Bob")
    assert info.value.field == "store"
    blocker.rmdir()
    served.recheck()
    assert served.unwritable is None and not served.read_only
    served.add_participant(token_hash="1" * 64, owner="pbob", display_name="Bob")
    assert served.display_names() == {"pada": "Ada", "pbob": "Bob"}


def test_a_served_store_that_is_garbage_at_start_serves_empty_listings(tmp_path):
    path = tmp_path / "runs.sqlite3"
    path.write_bytes(b"not a store at all" * 100)
    with pytest.raises(StoreError, match="as a run store"):
        RunStore(path)
    served = RunStore(path, serving=True)
    assert "file is not a database" in served.damage
    assert served.list_runs() == [] and served.list_sweeps() == [] and served.display_names() == {}
