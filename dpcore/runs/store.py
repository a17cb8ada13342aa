"""Run history in SQLite: every run's config, status, per-epoch metrics and timings, kept on disk.

Layout (schema version 4, kept in ``PRAGMA user_version``; ``MIGRATIONS`` brings older files up):

- ``runs``: id, name, owner, created/started/finished (Unix seconds), config_json, status,
  error, n_train, examples_per_second, seconds, process (who runs it; see ``mark_interrupted``).
- ``epoch_metrics``: one row per finished epoch, committed as the epoch ends, so a crash or a
  killed server loses at most the epoch in progress. Validation loss/accuracy (version 4; NULL
  without a validation split), and each step's noise multiplier and clip norm as JSON arrays (NULL
  in older rows, read back as empty).
- ``run_weights`` (version 2): the final model weights of a completed run (an ``.npz`` blob), so
  that the model can be audited later exactly as it was trained.
- ``audits`` (version 2): the latest empirical privacy audit of a run (``dpcore.audit.attacks``'s report
  as JSON text, written by ``dpcore.audit.attacks`` and read back as ``RunRecord.audit``).
- ``participants`` (version 3): the people of a shared server (``dpcore.room.participants``): the
  SHA-256 of each one's token, their owner id and display name.
- ``sweeps`` and ``sweep_runs`` (``_SCHEMA_SWEEPS``): a sweep started as one unit (``dpcore.runs.sweeps``):
  owner, name, mode, the knobs and their values, seeds per setting, the baseline flag, the
  selection settings and the drawn number of trials, the base config; ``sweep_runs`` links each
  of its runs (a run belongs to at most one sweep; deleting a run drops its link).

Final metrics are the last epoch's row. An infinite ε (the non-private baseline, or an accountant
that can promise nothing) is stored as NULL in ``epoch_metrics.epsilon`` and read back as
``math.inf``; every finished epoch has an ε, so NULL there never means "unknown". NaN losses are
stored as NULL too (SQLite has no NaN) and read back as NaN.

Each call opens its own connection (sqlite3 connections are not shared across threads), runs
one short transaction and closes it. The file is in WAL mode, so readers never block the writer
and several processes can share one store.

Faults: a store is checked when opened (``PRAGMA quick_check``). A damaged one still lists every
run that can be read but refuses writes with a message naming the file and what to do. One row
that cannot be read (a config from a newer version, a value outside today's limits, a wrong type)
is set aside as an ``UnreadableRun`` by id while the others list. A write that fails (disk full,
read-only file, I/O error) is a ``StoreWriteError``; every epoch committed before it stays.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import numpy as np

from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.locations import default_store_path
from dpcore.results import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    STATUSES,
    EpochMetrics,
)
from dpcore.room.participants import Caller, check_host, check_may_manage, check_may_manage_owner
from dpcore.runs.process_identity import process_alive, process_token
from dpcore.runs.records import (
    INTERRUPTED_MESSAGE,
    RunListing,
    RunRecord,
    SweepRecord,
    UnreadableRun,
    damage_message,
    epoch_values,
    float_or_none,
    insert_epochs_sql,
    readable_record,
    sweep_record,
    weights_blob,
    weights_from_blob,
)
from dpcore.runs.run_table import CSV_COLUMNS, csv_row, spreadsheet_safe
from dpcore.runs.store_schema import MIGRATIONS, SCHEMA_VERSION
from dpcore.safe_io import quote_path

if TYPE_CHECKING:
    from dpcore.results import TrainResult


BUSY_TIMEOUT_SECONDS = 30.0
# A damaged store is read back run by run; this many ids at most.
MAX_SALVAGED_IDS = 1_000_000


class StoreError(UserInputError):
    """The store file cannot be opened, is damaged, or was written by a newer DP Explorer."""

    def __init__(self, message: str) -> None:
        super().__init__("store", message)


class StoreWriteError(StoreError):
    """A write failed (disk full, read-only file or folder, I/O error); what was committed before stays."""


class UnreadableRunError(UserInputError, LookupError):
    """A stored run whose row cannot be read back (the other runs can)."""

    def __init__(self, run_id: int, reason: str) -> None:
        super().__init__("run", f"run {run_id} cannot be read: {reason}")
        self.run_id = run_id
        self.reason = reason


class UnknownRunError(UserInputError, LookupError):
    """No run with the requested id exists (it may have been deleted)."""

    def __init__(self, run_id: int) -> None:
        super().__init__("run", f"there is no run with id {run_id}")
        self.run_id = run_id


class UnknownSweepError(UserInputError, LookupError):
    """No sweep with this id in the store."""

    def __init__(self, sweep_id: int) -> None:
        super().__init__("sweep", f"there is no sweep {sweep_id} in this store", allowed="the id of a stored sweep")
        self.sweep_id = sweep_id


# -- the store -------------------------------------------------------------------------


class RunStore:
    """SQLite run history at ``path`` (default: ``default_store_path()``), safe for many threads and processes.

    ``read_only`` opens an existing store for listing only: a missing file is an error, never a new
    store, and nothing is written. Otherwise a missing file is created, but only in an existing
    folder when ``path`` is given (a mistyped path is an error, not a new tree of folders).
    ``damage`` says what ``PRAGMA quick_check`` found wrong (None for a sound store).
    """

    def __init__(self, path: Union[str, os.PathLike[str], None] = None, *, read_only: bool = False) -> None:
        if path is not None and "\x00" in os.fspath(path):
            raise StoreError(f"{quote_path(os.fspath(path))} holds a NUL byte, which no file path can")
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.read_only = read_only
        self.damage: Optional[str] = None
        self._immutable = False
        self._check_location(make_folders=path is None)
        if read_only:
            self._check_version()
        else:
            self._migrate()
        self._check_integrity()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    # -- connections ---------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        """A new connection in autocommit mode (transactions are explicit) with foreign keys on.

        Read-only stores open with ``mode=ro``; where SQLite cannot even do that (a WAL file in a
        folder it may not write), as ``immutable``, which reads the file as it is.
        """
        try:
            if self.read_only:
                uri = self.path.resolve().as_uri() + ("?mode=ro&immutable=1" if self._immutable else "?mode=ro")
                conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            else:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            if not self.read_only:
                conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise self._failure(exc, write=not self.read_only) from None
        return conn

    @staticmethod
    @contextmanager
    def _transaction(conn: sqlite3.Connection, *, write: bool) -> Iterator[sqlite3.Connection]:
        """Commit on success, roll back on any exception; writers take the lock up front (BEGIN IMMEDIATE)."""
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (a full disk does)
                conn.execute("ROLLBACK")
            raise
        if write:
            conn.execute("COMMIT")
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError:
            pass  # a reader that met a damaged page has nothing to commit; closing ends it

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One connection for one short transaction, closed afterwards; SQLite's errors become StoreErrors."""
        if write:
            self.check_writable()
        try:
            conn = self._open()
            try:
                with self._transaction(conn, write=write):
                    yield conn
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise self._failure(exc, write=write) from None

    def check_writable(self) -> None:
        """Raise the StoreError that a write would meet: a read-only or damaged store takes no writes."""
        if self.read_only:
            raise StoreError(f"{quote_path(self.path)} was opened for reading only")
        if self.damage is not None:
            raise StoreError(self.damage)

    def _failure(self, exc: sqlite3.Error, *, write: bool) -> StoreError:
        """The one-line StoreError for an SQLite error, saying what to do about it."""
        where = quote_path(self.path)
        text = str(exc) or type(exc).__name__
        lowered = text.lower()
        if "malformed" in lowered or "not a database" in lowered:
            self.damage = self.damage or damage_message(where, text)
            return StoreError(
                self.damage
                if "malformed" in lowered
                else f"cannot use {where} as a run store: {text} (a store is an SQLite file "
                "written by DP Explorer; check the path)"
            )
        if write and ("full" in lowered or "i/o error" in lowered):
            return StoreWriteError(
                f"cannot write to {where}: {text}; the run stopped as failed and every "
                "epoch committed before is kept. Free some disk space (or use another "
                "store) and start the run again"
            )
        if write and "readonly" in lowered.replace("-", "").replace(" ", ""):
            return StoreWriteError(
                f"cannot write to {where}: {text}; the file or its folder is read-only. "
                "Listing still works; use a writable store to train"
            )
        if "locked" in lowered or "busy" in lowered:
            return StoreError(f"{where} is busy: another process held it for over {BUSY_TIMEOUT_SECONDS:g} s")
        return StoreError(f"cannot use {where}: {text}")

    def _check_location(self, *, make_folders: bool) -> None:
        """The path names a regular file, or (when writing) a new file in a folder that exists."""
        where = quote_path(self.path)
        if self.path.exists():
            if self.path.is_dir():
                raise StoreError(f"{where} is a folder; a run store is a file (e.g. runs.sqlite3 inside it)")
            if not self.path.is_file():
                raise StoreError(f"{where} is not a regular file (a device, pipe or socket)")
            return
        if self.read_only:
            raise StoreError(f"there is no run store at {where}; check the path (a sweep creates a new store)")
        if self.path.parent.is_dir():
            return
        if not make_folders:
            raise StoreError(f"the folder of {where} does not exist; check the path or create the folder first")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for {where}: {exc.strerror or exc}") from None

    def _check_version(self) -> None:
        """Read-only: the file is a run store of a version this code reads (nothing is migrated)."""
        try:
            with self._connect() as conn:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except StoreError:
            if self._immutable or self.damage is not None:
                raise
            self._immutable = True  # SQLite could not open it in read-only WAL mode: read the file as is
            with self._connect() as conn:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        self._refuse_newer(version)
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"{quote_path(self.path)} is not a run store of this version "
                f"(schema version {version}); open it once for writing (a sweep) to upgrade it"
            )

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{quote_path(self.path)} has schema version {version}; this DP Explorer "
                f"reads versions up to {SCHEMA_VERSION}"
            )

    def _check_integrity(self) -> None:
        """Run SQLite's quick_check; a damaged store is remembered in ``damage`` (reads go on, writes stop)."""
        where = quote_path(self.path)
        try:
            with self._connect() as conn:
                problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)").fetchall()]
        except StoreError as exc:
            if self.damage is None:
                raise
            problems = [str(exc)]
        if problems != ["ok"] and self.damage is None:
            self.damage = damage_message(where, "; ".join(problems))

    def _migrate(self) -> None:
        """Switch the file to WAL and apply any missing migrations in the transaction that bumps the version."""
        try:
            conn = self._open()
            try:
                # A file from a newer version is refused before anything (even the journal mode) changes.
                self._refuse_newer(conn.execute("PRAGMA user_version").fetchone()[0])
                conn.execute("PRAGMA journal_mode = WAL")
                # A migration may rebuild a table that others reference; with foreign keys on, dropping
                # the old one would cascade. Off for this connection only (it cannot change in a transaction).
                conn.execute("PRAGMA foreign_keys = OFF")
                with self._transaction(conn, write=True):
                    version = conn.execute("PRAGMA user_version").fetchone()[0]
                    self._refuse_newer(version)
                    for step in range(version, SCHEMA_VERSION):
                        MIGRATIONS[step](conn)
                    if version != SCHEMA_VERSION:
                        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise StoreError(
                                f"migrating {str(self.path)!r} left {len(broken)} rows without "
                                "their run; the file is left as it was"
                            )
                        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise self._failure(exc, write=True) from None

    def schema_version(self) -> int:
        """The schema version of the file (equal to ``SCHEMA_VERSION`` once opened)."""
        with self._connect() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    # -- writing -------------------------------------------------------------------------

    def create_run(self, config: DPConfig, *, owner: str = "", name: str = "", sweep_id: Optional[int] = None) -> int:
        """Record a new queued run owned by this process (one of sweep ``sweep_id``'s when given); return its id."""
        with self._connect(write=True) as conn:
            cursor = conn.execute(
                "INSERT INTO runs (name, owner, created, config_json, status, process) "
                "VALUES (?, ?, ?, ?, 'queued', ?)",
                (name, owner, time.time(), config.to_json(), process_token()),
            )
            run_id = int(cursor.lastrowid)
            if sweep_id is not None:
                if conn.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,)).fetchone() is None:
                    raise UnknownSweepError(sweep_id)
                conn.execute("INSERT INTO sweep_runs (run_id, sweep_id) VALUES (?, ?)", (run_id, sweep_id))
            return run_id

    # -- sweeps ----------------------------------------------------------------------------

    def create_sweep(
        self,
        *,
        owner: str,
        name: str,
        mode: str,
        knobs_json: str,
        seeds: int,
        baseline: bool,
        selection_json: Optional[str],
        trial_count: Optional[int],
        base_config: DPConfig,
    ) -> int:
        """Record a sweep (``dpcore.runs.sweeps`` makes the JSON texts) and return its id; its runs link to it."""
        with self._connect(write=True) as conn:
            cursor = conn.execute(
                "INSERT INTO sweeps (owner, name, mode, knobs_json, seeds, baseline, selection_json, "
                "trial_count, base_config_json, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    owner,
                    name,
                    mode,
                    knobs_json,
                    seeds,
                    int(bool(baseline)),
                    selection_json,
                    trial_count,
                    base_config.to_json(),
                    time.time(),
                ),
            )
            return int(cursor.lastrowid)

    def get_sweep(self, sweep_id: int) -> SweepRecord:
        """One sweep with its run ids; UnknownSweepError if there is none with that id."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if row is None:
                raise UnknownSweepError(sweep_id)
            run_ids = [
                r["run_id"]
                for r in conn.execute("SELECT run_id FROM sweep_runs WHERE sweep_id = ? ORDER BY run_id", (sweep_id,))
            ]
        return sweep_record(row, run_ids)

    def list_sweeps(self, *, owner: Optional[str] = None) -> list[SweepRecord]:
        """Every sweep, oldest first (only ``owner``'s when given), each with its run ids."""
        with self._connect() as conn:
            rows = (
                conn.execute("SELECT * FROM sweeps ORDER BY id").fetchall()
                if owner is None
                else conn.execute("SELECT * FROM sweeps WHERE owner = ? ORDER BY id", (owner,)).fetchall()
            )
            links = conn.execute("SELECT run_id, sweep_id FROM sweep_runs ORDER BY run_id").fetchall()
        by_sweep: dict[int, list[int]] = {}
        for link in links:
            by_sweep.setdefault(link["sweep_id"], []).append(link["run_id"])
        return [sweep_record(row, by_sweep.get(row["id"], [])) for row in rows]

    def sweep_ids_of_runs(self) -> dict[int, int]:
        """run id -> the id of the sweep it belongs to, for every run that belongs to one."""
        with self._connect() as conn:
            return {row["run_id"]: row["sweep_id"] for row in conn.execute("SELECT run_id, sweep_id FROM sweep_runs")}

    def set_status(self, run_id: int, status: str, *, error: Optional[str] = None) -> None:
        """Move a run to ``status``; "running" stamps the start time, a final status the end time."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}; known: {', '.join(STATUSES)}")
        now = time.time()
        with self._connect(write=True) as conn:
            if status == "running":
                cursor = conn.execute(
                    "UPDATE runs SET status = ?, error = ?, started = ?, process = ? WHERE id = ?",
                    (status, error, now, process_token(), run_id),
                )
            elif status in FINAL_STATUSES:
                cursor = conn.execute(
                    "UPDATE runs SET status = ?, error = ?, finished = ? WHERE id = ?",
                    (status, error, now, run_id),
                )
            else:
                cursor = conn.execute("UPDATE runs SET status = ?, error = ? WHERE id = ?", (status, error, run_id))
            if cursor.rowcount == 0:
                raise UnknownRunError(run_id)

    def record_epoch(self, run_id: int, metrics: EpochMetrics) -> None:
        """Commit one finished epoch now, so it survives a crash later in the run."""
        with self._connect(write=True) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise UnknownRunError(run_id)
            conn.execute(insert_epochs_sql("INSERT OR REPLACE"), epoch_values(run_id, metrics))

    def finish_run(self, run_id: int, result: TrainResult) -> None:
        """Store a run's outcome: status, error, timings, and any epoch not already recorded."""
        if result.status not in FINAL_STATUSES:
            raise ValueError(f"a finished run cannot have status {result.status!r}")
        with self._connect(write=True) as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, error = ?, finished = ?, n_train = ?, "
                "examples_per_second = ?, seconds = ? WHERE id = ?",
                (
                    result.status,
                    result.error,
                    time.time(),
                    result.n_train,
                    float_or_none(result.examples_per_second),
                    float_or_none(result.seconds),
                    run_id,
                ),
            )
            if cursor.rowcount == 0:
                raise UnknownRunError(run_id)
            conn.executemany(insert_epochs_sql("INSERT OR IGNORE"), [epoch_values(run_id, m) for m in result.epochs])

    def save_weights(self, run_id: int, weights: Sequence[np.ndarray]) -> None:
        """Keep a run's final model weights (replacing any kept before)."""
        blob = weights_blob(weights)
        with self._connect(write=True) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise UnknownRunError(run_id)
            conn.execute("INSERT OR REPLACE INTO run_weights (run_id, weights) VALUES (?, ?)", (run_id, blob))

    def save_audit(self, run_id: int, report_json: str) -> None:
        """Keep a run's latest audit report (JSON text), replacing an earlier one."""
        with self._connect(write=True) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise UnknownRunError(run_id)
            conn.execute(
                "INSERT OR REPLACE INTO audits (run_id, created, report_json) VALUES (?, ?, ?)",
                (run_id, time.time(), report_json),
            )

    def rename_run(self, run_id: int, name: str, *, by: Optional[Caller] = None) -> None:
        """Give a run a display name ("" goes back to ``run <id>``); ``by`` must own it or be the host."""
        with self._connect(write=True) as conn:
            check_may_manage(by, run_id=run_id, run_owner=self._owner_of(conn, run_id), action="rename")
            conn.execute("UPDATE runs SET name = ? WHERE id = ?", (name.strip(), run_id))

    def delete_run(self, run_id: int, *, by: Optional[Caller] = None) -> None:
        """Remove a run and its epochs; ``by`` must own it or be the host."""
        with self._connect(write=True) as conn:
            check_may_manage(by, run_id=run_id, run_owner=self._owner_of(conn, run_id), action="delete")
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def delete_runs(self, *, owner: Optional[str], by: Optional[Caller] = None) -> list[int]:
        """Remove every run of ``owner`` (of everyone when None, which only the host may); return their ids.

        Refused, deleting nothing, while any of them is queued or running.
        """
        if owner is None:
            check_host(by, action="clear the board")
        else:
            check_may_manage_owner(by, owner=owner, action="delete")
        with self._connect(write=True) as conn:
            where, args = ("", ()) if owner is None else (" WHERE owner = ?", (owner,))
            rows = conn.execute(f"SELECT id, owner, status FROM runs{where}", args).fetchall()
            for row in rows:
                check_may_manage(by, run_id=row["id"], run_owner=row["owner"], action="delete")
            active = [row["id"] for row in rows if row["status"] in ACTIVE_STATUSES]
            if active:
                raise UserInputError(
                    "runs",
                    f"{len(active)} of these runs (ids {', '.join(map(str, active))}) are queued or training",
                    allowed="cancel them first, then delete",
                )
            conn.executemany("DELETE FROM runs WHERE id = ?", [(row["id"],) for row in rows])
            return [row["id"] for row in rows]

    @staticmethod
    def _owner_of(conn: sqlite3.Connection, run_id: int) -> str:
        row = conn.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRunError(run_id)
        return str(row["owner"])

    # -- participants (dpcore.room.participants) ----------------------------------------------

    def add_participant(self, *, token_hash: str, owner: str, display_name: str) -> None:
        """Keep a new participant: the hash of their token, their owner id and display name."""
        with self._connect(write=True) as conn:
            conn.execute(
                "INSERT INTO participants (token_hash, owner, display_name, created) VALUES (?, ?, ?, ?)",
                (token_hash, owner, display_name, time.time()),
            )

    def find_participant(self, token_hash: str) -> Optional[tuple[str, str]]:
        """(owner id, display name) of the participant whose token has this hash, or None."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT owner, display_name FROM participants WHERE token_hash = ?", (token_hash,)
            ).fetchone()
        return None if row is None else (str(row["owner"]), str(row["display_name"]))

    def display_names(self) -> dict[str, str]:
        """Every participant's display name by owner id, for "everyone's runs" views."""
        with self._connect() as conn:
            rows = conn.execute("SELECT owner, display_name FROM participants").fetchall()
        return {str(row["owner"]): str(row["display_name"]) for row in rows}

    def mark_interrupted(self) -> int:
        """Mark queued or running runs whose process has died as interrupted; return how many.

        Each run carries the ``host:pid:start`` token of the process that queued or runs it
        (see ``process_token``). A run is left alone while that process is alive, so a second
        live server (or a CLI sweep) sharing the store does not see its runs cut off; a reused
        pid is told apart by the kernel's process start time where /proc has it. Runs owned by
        another host are left alone, since their process cannot be checked from here.
        """
        with self._connect(write=True) as conn:
            rows = conn.execute("SELECT id, process FROM runs WHERE status IN ('queued', 'running')").fetchall()
            dead = [row["id"] for row in rows if not process_alive(row["process"])]
            now = time.time()
            conn.executemany(
                "UPDATE runs SET status = 'interrupted', finished = ?, error = COALESCE(error, ?) WHERE id = ?",
                [(now, INTERRUPTED_MESSAGE, run_id) for run_id in dead],
            )
            return len(dead)

    # -- reading -------------------------------------------------------------------------

    def get_run(self, run_id: int) -> RunRecord:
        """One run with all its committed epochs; UnknownRunError if it does not exist,
        UnreadableRunError if its row cannot be read back."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise UnknownRunError(run_id)
            epochs = conn.execute("SELECT * FROM epoch_metrics WHERE run_id = ? ORDER BY epoch", (run_id,)).fetchall()
            audit = conn.execute("SELECT report_json FROM audits WHERE run_id = ?", (run_id,)).fetchone()
        record = readable_record(row, epochs, None if audit is None else audit["report_json"])
        if isinstance(record, UnreadableRun):
            raise UnreadableRunError(record.id, record.reason)
        return record

    def list_runs(self, *, owner: Optional[str] = None) -> list[RunRecord]:
        """Every readable run, oldest first; only ``owner``'s when given (None lists everyone's).

        Rows that cannot be read are left out; ``read_runs`` names them.
        """
        return list(self.read_runs(owner=owner).runs)

    def read_runs(self, *, owner: Optional[str] = None) -> RunListing:
        """Every run that can be read, and the ids (with reasons) of those that cannot.

        On a damaged store the runs are read one by one, so one bad page costs only its rows. A
        queued or running run whose process is gone reads as interrupted (the file is not changed).
        """
        try:
            rows = self._read_rows(owner)
        except StoreError:
            if self.damage is None:
                raise
            rows = self._salvage_rows(owner)
        records: list[RunRecord] = []
        unreadable: list[UnreadableRun] = []
        for row, epoch_rows, report_json in rows:
            item = row if isinstance(row, UnreadableRun) else readable_record(row, epoch_rows, report_json)
            (unreadable if isinstance(item, UnreadableRun) else records).append(item)  # type: ignore[arg-type]
        return RunListing(runs=tuple(records), unreadable=tuple(unreadable), damage=self.damage)

    def _read_rows(self, owner: Optional[str]) -> list[tuple[Any, Sequence[sqlite3.Row], Optional[str]]]:
        """Every runs row with its epoch rows, in two queries."""
        with self._connect() as conn:
            if owner is None:
                rows = conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
                epoch_rows = conn.execute("SELECT * FROM epoch_metrics ORDER BY run_id, epoch").fetchall()
                audit_rows = conn.execute("SELECT run_id, report_json FROM audits").fetchall()
            else:
                rows = conn.execute("SELECT * FROM runs WHERE owner = ? ORDER BY id", (owner,)).fetchall()
                epoch_rows = conn.execute(
                    "SELECT e.* FROM epoch_metrics e JOIN runs r ON r.id = e.run_id "
                    "WHERE r.owner = ? ORDER BY e.run_id, e.epoch",
                    (owner,),
                ).fetchall()
                audit_rows = conn.execute(
                    "SELECT a.run_id, a.report_json FROM audits a JOIN runs r ON r.id = a.run_id WHERE r.owner = ?",
                    (owner,),
                ).fetchall()
        by_run: dict[int, list[sqlite3.Row]] = {}
        for metrics_row in epoch_rows:
            by_run.setdefault(metrics_row["run_id"], []).append(metrics_row)
        audits = {audit_row["run_id"]: audit_row["report_json"] for audit_row in audit_rows}
        return [(row, by_run.get(row["id"], []), audits.get(row["id"])) for row in rows]

    def _salvage_rows(self, owner: Optional[str]) -> list[tuple[Any, Sequence[sqlite3.Row], Optional[str]]]:
        """A damaged store's rows, run by run: a row on a damaged page becomes an UnreadableRun."""
        found: list[tuple[Any, Sequence[sqlite3.Row], Optional[str]]] = []
        with self._connect() as conn:
            last = 0
            for query in ("SELECT max(id) FROM runs", "SELECT seq FROM sqlite_sequence WHERE name = 'runs'"):
                try:
                    last = max(last, int(conn.execute(query).fetchone()[0] or 0))
                except (sqlite3.Error, TypeError, ValueError):
                    continue
            for run_id in range(1, min(last, MAX_SALVAGED_IDS) + 1):
                try:
                    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
                    if row is None or (owner is not None and row["owner"] != owner):
                        continue
                    epochs = conn.execute(
                        "SELECT * FROM epoch_metrics WHERE run_id = ? ORDER BY epoch", (run_id,)
                    ).fetchall()
                    audit = conn.execute("SELECT report_json FROM audits WHERE run_id = ?", (run_id,)).fetchone()
                except sqlite3.DatabaseError:
                    found.append((UnreadableRun(run_id, "it lies in a damaged part of the store file"), [], None))
                    continue
                found.append((row, epochs, None if audit is None else audit["report_json"]))
        return found

    def load_weights(self, run_id: int) -> Optional[list[np.ndarray]]:
        """A run's kept model weights, or None when none were kept (older or unfinished runs)."""
        with self._connect() as conn:
            row = conn.execute("SELECT weights FROM run_weights WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else weights_from_blob(row["weights"])

    def get_audit(self, run_id: int) -> Optional[str]:
        """The JSON text of a run's latest audit, or None when it was never audited."""
        with self._connect() as conn:
            row = conn.execute("SELECT report_json FROM audits WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else str(row["report_json"])

    def to_csv(
        self,
        *,
        owner: Optional[str] = None,
        run_ids: Optional[set[int]] = None,
        shown_file: Optional[Callable[[str], str]] = None,
    ) -> str:
        """The runs table as CSV text, one row per readable run (only ``run_ids`` when given; ε of a
        baseline is written as ``inf``).

        ``csv_file`` is the name of a CSV dataset's file; ``shown_file`` (a run's csv_path -> the text
        to write) lets a server write what its reader may see (another participant's upload unnamed).

        Rows end in CRLF (RFC 4180), so a CR or LF inside a cell (a run name) is quoted and stays
        in its cell; text a spreadsheet would run as a formula is written as text (``spreadsheet_safe``).
        """
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for run in self.list_runs(owner=owner):
            if run_ids is not None and run.id not in run_ids:
                continue
            writer.writerow([spreadsheet_safe(cell) for cell in csv_row(run, shown_file=shown_file)])
        return out.getvalue()


# A cell starting with one of these is read by spreadsheets as a formula (tab and CR as well).
