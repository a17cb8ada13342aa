"""Run history in SQLite: every run's config, status, per-epoch metrics and timings, kept on disk.

Layout (``store_schema.SCHEMA_VERSION``, kept in ``PRAGMA user_version``; ``store_schema.MIGRATIONS`` brings
older files up):

- ``runs``: id, name, owner, created/started/finished (Unix seconds), config_json, status,
  error, n_train, examples_per_second, seconds, process (who runs it; see ``mark_interrupted``).
- ``epoch_metrics``: one row per finished epoch, committed as the epoch ends, so a crash or a
  killed server loses at most the epoch in progress. Validation loss/accuracy (version 4; NULL
  without a validation split), and each step's noise multiplier and clip norm as JSON arrays (NULL
  in older rows, read back as empty).
- ``run_weights`` (version 2): the final model weights of a completed run (an ``.npz`` blob), so
  that the model can be audited later exactly as it was trained; read back as untrusted data,
  within bounds (``weights_archive``).
- ``audits`` (version 2): the latest empirical privacy audit of a run (``dpcore.audit.report``'s report
  as JSON text, saved by ``dpcore.runs.audits`` and read back as ``RunRecord.audit``).
- ``participants`` (version 3): the people of a shared server (``dpcore.room.participants``): the
  SHA-256 of each one's token, their owner id and display name.
- ``sweeps`` and ``sweep_runs`` (``store_schema._SCHEMA_SWEEPS``, version 5): a sweep started as one unit (``dpcore.runs.sweeps``):
  owner, name, mode, the knobs and their values, seeds per setting, the baseline flag, the
  selection settings and the drawn number of trials, the base config; ``sweep_runs`` links each
  of its runs (a run belongs to at most one sweep; deleting a run drops its link).
- ``selection_draws`` (``_SCHEMA_SELECTION_DRAWS``): every number of trials K a private-selection
  sweep drew, kept before anything runs, with the time, the owner, the training data's key, the
  spec's key, each trial's candidate, why it was refused (K above the cap) and the sweep that used
  it; one per owner, data and spec, so a refused or abandoned draw is never drawn again.

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
import functools
import io
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union

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
    SelectionDraw,
    SweepRecord,
    UnreadableRun,
    check_name,
    damage_message,
    epoch_values,
    float_or_none,
    insert_epochs_sql,
    readable_record,
    selection_draw,
    sweep_record,
)
from dpcore.runs.run_table import CSV_COLUMNS, csv_row, spreadsheet_safe
from dpcore.runs.store_schema import MIGRATIONS, SCHEMA_VERSION
from dpcore.runs.weights_archive import check_blob_size, max_blob_bytes, read_weights, weights_blob
from dpcore.safe_io import quote, quote_path

if TYPE_CHECKING:
    from dpcore.results import TrainResult


BUSY_TIMEOUT_SECONDS = 30.0
# Run and sweep ids are SQLite integers: 1 to 2**63 - 1.
MAX_ID = 2**63 - 1
# A damaged store is read back run by run; this many ids at most.
MAX_SALVAGED_IDS = 1_000_000


class StoreError(UserInputError):
    """The store file cannot be opened, is damaged, or was written by a newer DP Explorer."""

    def __init__(self, message: str) -> None:
        super().__init__("store", message)
        self.message = message


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

    def __init__(self, run_id: Any) -> None:
        super().__init__("run", f"there is no run with id {quote(run_id)}")
        self.run_id = run_id


class SelectionDrawUsedError(UserInputError):
    """A private-selection draw that a sweep has already used, or that was refused, cannot start another sweep."""

    def __init__(self, draw_id: int) -> None:
        super().__init__(
            "selection",
            f"the draw {draw_id} of this sweep's number of trials is already used or refused",
            allowed="a draw no sweep has used",
        )
        self.draw_id = draw_id


class UnknownSweepError(UserInputError, LookupError):
    """No sweep with this id in the store."""

    def __init__(self, sweep_id: int) -> None:
        super().__init__("sweep", f"there is no sweep {sweep_id} in this store", allowed="the id of a stored sweep")
        self.sweep_id = sweep_id


_Listing = TypeVar("_Listing")


def _lists_what_it_can(
    empty: Callable[[], Any],
) -> Callable[[Callable[..., _Listing]], Callable[..., _Listing]]:
    """For a store method that lists: on a store with a known problem (damaged, or with no file to read)
    an empty listing instead of a StoreError, so that pages list what they can beside the warning."""

    def wrap(method: Callable[..., _Listing]) -> Callable[..., _Listing]:
        @functools.wraps(method)
        def listing(self: RunStore, *args: Any, **kwargs: Any) -> _Listing:
            try:
                return method(self, *args, **kwargs)
            except StoreError:
                if not self._has_known_problem():
                    raise
                return empty()

        return listing

    return wrap


def _is_damage(exc: sqlite3.Error) -> bool:
    """Whether SQLite's error says the file itself is damaged or not a database at all."""
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _version_and_tables(conn: sqlite3.Connection) -> tuple[int, list[str]]:
    """The file's schema version (``PRAGMA user_version``) and the names of its tables (none when the
    schema cannot be read: the integrity check then says what is damaged)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    try:
        tables = [str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.DatabaseError:
        tables = []
    return version, tables


def _sql_id(run_id: Any) -> int:
    """``run_id`` as SQLite takes it; an id no run can have (a bool, a non-integer, over ``MAX_ID``) is an UnknownRunError."""
    if isinstance(run_id, bool) or not isinstance(run_id, (int, np.integer)) or not 0 < run_id <= MAX_ID:
        raise UnknownRunError(run_id)
    return int(run_id)


# -- the store -------------------------------------------------------------------------


class RunStore:
    """SQLite run history at ``path`` (default: ``default_store_path()``), safe for many threads and processes.

    ``read_only`` opens an existing store for listing only: a missing file is an error, never a new
    store, and nothing is written. Otherwise a missing file is created, but only in an existing
    folder when ``path`` is given (a mistyped path is an error, not a new tree of folders).
    ``damage`` says what ``PRAGMA quick_check`` found wrong (None for a sound store).

    ``serving`` (a served app's store) never stops the server over the store's state: a damaged or
    unreadable file is kept as ``damage`` (listings are empty or what can be read), a file or folder
    that cannot be written is read as it is, with ``unwritable`` saying why, and ``recheck`` opens
    it afresh once the file or its folder changed (a good copy put back, the folder made writable).
    """

    def __init__(
        self, path: Union[str, os.PathLike[str], None] = None, *, read_only: bool = False, serving: bool = False
    ) -> None:
        if path is not None and "\x00" in os.fspath(path):
            raise StoreError(f"{quote_path(os.fspath(path))} holds a NUL byte, which no file path can")
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.read_only = read_only
        self.serving = serving
        self.damage: Optional[str] = None
        self.unwritable: Optional[str] = None
        self._asked_read_only = read_only
        self._immutable = False
        # The store file's and folder's state when ``recheck`` last looked (None: not yet); one look at a time.
        self._signature: Optional[tuple[Any, ...]] = None
        self._recheck_lock = threading.Lock()
        self._check_location(make_folders=path is None)
        if serving:
            self._open_serving()
        else:
            self._open_checked()

    def _open_checked(self) -> None:
        """Check the file's version (migrating it when writable) and its integrity."""
        if self.read_only:
            self._check_version()
        else:
            self._migrate()
        self._check_integrity()

    def _open_serving(self) -> None:
        """``_open_checked`` for a server: damage is kept, a store that cannot be written is read as it is."""
        try:
            self._open_checked()
            return
        except StoreWriteError as exc:
            reason = exc.message
        except StoreError:
            if self.damage is None:
                raise
            return
        self.read_only, self.unwritable = True, reason
        if not self.path.exists():
            return  # nothing to list until a store can be made here
        try:
            self._open_checked()
        except StoreError:
            if self.damage is None:
                raise

    def recheck(self) -> None:
        """Look again at a served store once its file, its log or its folder changed since the last look
        (a few ``stat`` calls when nothing did): a sound store is read once, so that a file replaced by
        garbage is reported at once; a damaged or unwritable one is opened afresh (a good copy put back,
        the folder made writable)."""
        if not self.serving or not self._recheck_lock.acquire(blocking=False):
            return  # another page run is looking right now
        try:
            self._look_again()
        finally:
            self._recheck_lock.release()

    def _look_again(self) -> None:
        """``recheck``'s work, under its lock."""
        signature = self._file_signature()
        if signature == self._signature:
            return
        self._signature = signature
        if self.damage is None and self.unwritable is None:
            try:
                with self._connect():
                    pass  # opening reads the file's header and schema: garbage is damage from here on
            except StoreError:
                pass  # the failure itself sets damage; a busy store is simply read later
            self._signature = self._file_signature()  # closing the last connection may remove the log
            return
        self.read_only, self._immutable = self._asked_read_only, False
        self.damage = self.unwritable = None
        try:
            self._open_serving()
        except StoreError as exc:
            self.damage = self.damage or exc.message
        self._signature = self._file_signature()

    def _has_known_problem(self) -> bool:
        """Whether reads may fail for a reason the store already reports: damage, or no file to read."""
        return self.damage is not None or (self.unwritable is not None and not self.path.exists())

    def _file_signature(self) -> tuple[Any, ...]:
        """What changes when the store file is replaced or written, or its folder's permissions or entries change."""
        parts: list[Any] = []
        for item in (self.path, Path(f"{self.path}-wal"), self.path.parent):
            try:
                found = item.stat()
                parts.append((found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_mode))
            except OSError:
                parts.append(None)
        return tuple(parts)

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    # -- connections ---------------------------------------------------------------------

    def _open(self, *, immutable: bool = False) -> sqlite3.Connection:
        """A new connection in autocommit mode (transactions are explicit) with foreign keys on.

        Read-only stores open with ``mode=ro``; where SQLite cannot even do that (a WAL file in a
        folder it may not write), as ``immutable``, which reads the file as it is.
        """
        try:
            return self._sqlite_connection(immutable=immutable)
        except sqlite3.Error as exc:
            raise self._failure(exc, write=not self.read_only) from None

    def _sqlite_connection(self, *, immutable: bool = False) -> sqlite3.Connection:
        """``_open`` without turning SQLite's errors into StoreErrors."""
        if self.read_only or immutable:
            as_is = immutable or self._immutable
            uri = self.path.resolve().as_uri() + ("?mode=ro&immutable=1" if as_is else "?mode=ro")
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        else:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            if not (self.read_only or immutable):
                conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _open_to_read(self) -> sqlite3.Connection:
        """A connection for reading. A writable store whose folder stopped taking writes (SQLite cannot
        open its log there) is read as the file is, so listing goes on; a damaged file stays an error."""
        if self.read_only:
            return self._open()
        try:
            conn = self._sqlite_connection()
        except sqlite3.Error as exc:
            if _is_damage(exc):
                raise self._failure(exc, write=False) from None
            return self._open(immutable=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the log beside the file
        except sqlite3.Error as exc:
            conn.close()
            if _is_damage(exc):
                raise self._failure(exc, write=False) from None
            return self._open(immutable=True)
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
            conn = self._open() if write else self._open_to_read()
            try:
                with self._transaction(conn, write=write):
                    yield conn
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise self._failure(exc, write=write) from None

    def check_writable(self) -> None:
        """Raise the StoreError that a write would meet: a read-only or damaged store takes no writes."""
        if self.unwritable is not None:
            raise StoreWriteError(self.unwritable)
        if self.read_only:
            raise StoreError(f"{quote_path(self.path)} was opened for reading only")
        if self.damage is not None:
            raise StoreError(self.damage)

    def _failure(self, exc: sqlite3.Error, *, write: bool) -> StoreError:
        """The one-line StoreError for an SQLite error, saying what to do about it."""
        where = quote_path(self.path)
        text = str(exc) or type(exc).__name__
        lowered = text.lower()
        if _is_damage(exc):
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
        if write and ("readonly" in lowered.replace("-", "").replace(" ", "") or "unable to open" in lowered):
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
                version, tables = _version_and_tables(conn)
        except StoreError:
            if self._immutable or self.damage is not None:
                raise
            self._immutable = True  # SQLite could not open it in read-only WAL mode: read the file as is
            with self._connect() as conn:
                version, tables = _version_and_tables(conn)
        self._refuse_version(version)
        self._refuse_foreign(version, tables)
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"{quote_path(self.path)} is not a run store of this version "
                f"(schema version {version}); open it once for writing (a sweep) to upgrade it"
            )

    def _refuse_foreign(self, version: int, tables: Sequence[str]) -> None:
        """Refuse another program's SQLite file: tables without a user version, or without the runs table."""
        if tables and (version == 0 or "runs" not in tables):
            shown = ", ".join(sorted(tables)[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
            raise StoreError(
                f"{quote_path(self.path)} is an SQLite file of another program (tables: {quote(shown, limit=120)}), "
                "not a run store; it was left as it was. Check the path, or name a new file for the store"
            )

    def _refuse_version(self, version: int) -> None:
        """Refuse a schema version this code does not migrate from: a newer one, or one below 0 (which no
        DP Explorer writes, and which would index the migrations from their end)."""
        if version < 0:
            raise StoreError(
                f"{quote_path(self.path)} has schema version {version}, which no DP Explorer writes: it is not a "
                "run store; check the path"
            )
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

    def _check_before_writing(self) -> None:
        """Before anything changes the file (even its journal mode): read it read-only and refuse one that
        is not a run store this code can migrate: another program's SQLite file, a schema version below 0
        or above ``SCHEMA_VERSION``. A file SQLite cannot read this way goes on to ``_migrate``'s checks."""
        try:
            if not self.path.is_file() or self.path.stat().st_size == 0:
                return  # a new store
            conn = sqlite3.connect(
                self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None
            )
            try:
                version, tables = _version_and_tables(conn)
            finally:
                conn.close()
        except (OSError, sqlite3.Error):
            return
        self._refuse_version(version)
        self._refuse_foreign(version, tables)

    def _migrate(self) -> None:
        """Switch the file to WAL and apply any missing migrations in the transaction that bumps the version."""
        self._check_before_writing()
        try:
            conn = self._open()
            try:
                # A file from a newer version is refused before anything (even the journal mode) changes.
                self._refuse_version(conn.execute("PRAGMA user_version").fetchone()[0])
                conn.execute("PRAGMA journal_mode = WAL")
                # A migration may rebuild a table that others reference; with foreign keys on, dropping
                # the old one would cascade. Off for this connection only (it cannot change in a transaction).
                conn.execute("PRAGMA foreign_keys = OFF")
                with self._transaction(conn, write=True):
                    version = conn.execute("PRAGMA user_version").fetchone()[0]
                    self._refuse_version(version)
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
        """Record a new queued run owned by this process (one of sweep ``sweep_id``'s when given); return its id.

        A name longer than ``MAX_NAME_CHARS`` is refused (a UserInputError naming ``name``).
        """
        name = check_name(name)
        with self._connect(write=True) as conn:
            cursor = conn.execute(
                "INSERT INTO runs (name, owner, created, config_json, status, process) "
                "VALUES (?, ?, ?, ?, 'queued', ?)",
                (name, owner, time.time(), config.to_json(), process_token()),
            )
            assert cursor.lastrowid is not None  # an INSERT sets it
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
        selection_draw_id: Optional[int] = None,
    ) -> int:
        """Record a sweep (``dpcore.runs.sweeps`` makes the JSON texts) and return its id; its runs link to it.

        ``selection_draw_id``: the recorded draw it runs, marked as used by it in the same transaction
        (SelectionDrawUsedError, and no sweep, if another sweep used it first or it was refused).
        """
        name = check_name(name, field="sweep_name")
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
            assert cursor.lastrowid is not None  # an INSERT sets it
            sweep_id = int(cursor.lastrowid)
            if selection_draw_id is not None:
                used = conn.execute(
                    "UPDATE selection_draws SET sweep_id = ? WHERE id = ? AND sweep_id IS NULL AND refused IS NULL",
                    (sweep_id, selection_draw_id),
                )
                if used.rowcount == 0:
                    raise SelectionDrawUsedError(selection_draw_id)
            return sweep_id

    def find_selection_draw(self, *, owner: str, data_key: str, spec_key: str) -> Optional[SelectionDraw]:
        """The draw kept for ``owner``, this training data and this sweep spec, or None when none was drawn."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM selection_draws WHERE owner = ? AND data_key = ? AND spec_key = ?",
                (owner, data_key, spec_key),
            ).fetchone()
        return None if row is None else selection_draw(row)

    def record_selection_draw(
        self,
        *,
        owner: str,
        data_key: str,
        spec_key: str,
        trial_count: int,
        picks: Sequence[int],
        refused: Optional[str] = None,
    ) -> SelectionDraw:
        """Keep a draw of K (and each trial's candidate) unless one is kept for the same owner, data and
        spec already; return the draw kept, which is the earlier one when two starts race."""
        if isinstance(trial_count, bool) or not isinstance(trial_count, int) or trial_count < 0:
            raise ValueError(f"a number of trials is a whole number >= 0, not {trial_count!r}")
        with self._connect(write=True) as conn:
            conn.execute(
                "INSERT INTO selection_draws (created, owner, data_key, spec_key, trial_count, picks_json, refused) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner, data_key, spec_key) DO NOTHING",
                (time.time(), owner, data_key, spec_key, trial_count, json.dumps([int(p) for p in picks]), refused),
            )
            row = conn.execute(
                "SELECT * FROM selection_draws WHERE owner = ? AND data_key = ? AND spec_key = ?",
                (owner, data_key, spec_key),
            ).fetchone()
        return selection_draw(row)

    def release_selection_draw(self, draw_id: int, *, sweep_id: int) -> None:
        """Free a draw that ``sweep_id`` took but could not queue (refused whole, nothing queued), for the next start."""
        with self._connect(write=True) as conn:
            conn.execute(
                "UPDATE selection_draws SET sweep_id = NULL WHERE id = ? AND sweep_id = ?", (draw_id, sweep_id)
            )

    def list_selection_draws(self, *, owner: Optional[str] = None) -> list[SelectionDraw]:
        """Every kept draw, oldest first (only ``owner``'s when given)."""
        with self._connect() as conn:
            rows = (
                conn.execute("SELECT * FROM selection_draws ORDER BY id").fetchall()
                if owner is None
                else conn.execute("SELECT * FROM selection_draws WHERE owner = ? ORDER BY id", (owner,)).fetchall()
            )
        return [selection_draw(row) for row in rows]

    def delete_empty_sweep(self, sweep_id: int) -> bool:
        """Remove a sweep that has no runs (one refused before any run was queued); True if it was removed."""
        with self._connect(write=True) as conn:
            cursor = conn.execute(
                "DELETE FROM sweeps WHERE id = ? AND NOT EXISTS (SELECT 1 FROM sweep_runs WHERE sweep_id = ?)",
                (_sql_id(sweep_id), sweep_id),
            )
            return cursor.rowcount > 0

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
            draw = conn.execute("SELECT * FROM selection_draws WHERE sweep_id = ?", (sweep_id,)).fetchone()
        return sweep_record(row, run_ids, None if draw is None else selection_draw(draw))

    @_lists_what_it_can(list)
    def list_sweeps(self, *, owner: Optional[str] = None) -> list[SweepRecord]:
        """Every sweep, oldest first (only ``owner``'s when given), each with its run ids."""
        with self._connect() as conn:
            rows = (
                conn.execute("SELECT * FROM sweeps ORDER BY id").fetchall()
                if owner is None
                else conn.execute("SELECT * FROM sweeps WHERE owner = ? ORDER BY id", (owner,)).fetchall()
            )
            links = conn.execute("SELECT run_id, sweep_id FROM sweep_runs ORDER BY run_id").fetchall()
            draws = conn.execute("SELECT * FROM selection_draws WHERE sweep_id IS NOT NULL").fetchall()
        by_sweep: dict[int, list[int]] = {}
        for link in links:
            by_sweep.setdefault(link["sweep_id"], []).append(link["run_id"])
        draw_of = {draw["sweep_id"]: selection_draw(draw) for draw in draws}
        return [sweep_record(row, by_sweep.get(row["id"], []), draw_of.get(row["id"])) for row in rows]

    @_lists_what_it_can(dict)
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
        """Give a run a display name ("" goes back to ``run <id>``; at most ``MAX_NAME_CHARS``); ``by`` must
        own it or be the host."""
        name = check_name(name.strip() if isinstance(name, str) else name)
        with self._connect(write=True) as conn:
            check_may_manage(by, run_id=run_id, run_owner=self._owner_of(conn, run_id), action="rename")
            conn.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id))

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
        row = conn.execute("SELECT owner FROM runs WHERE id = ?", (_sql_id(run_id),)).fetchone()
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

    @_lists_what_it_can(list)
    def list_participants(self) -> list[tuple[str, str, float]]:
        """(owner id, display name, when they joined) of every participant, earliest first."""
        with self._connect() as conn:
            rows = conn.execute("SELECT owner, display_name, created FROM participants ORDER BY created").fetchall()
        return [(str(row["owner"]), str(row["display_name"]), float(row["created"])) for row in rows]

    def remove_participant(self, owner: str, *, by: Optional[Caller] = None) -> bool:
        """Forget a participant (the host only), so their token finds no one; their runs stay. False if unknown."""
        check_host(by, action="remove a participant")
        with self._connect(write=True) as conn:
            return conn.execute("DELETE FROM participants WHERE owner = ?", (owner,)).rowcount > 0

    @_lists_what_it_can(dict)
    def display_names(self) -> dict[str, str]:
        """Every participant's display name by owner id, for "everyone's runs" views."""
        with self._connect() as conn:
            rows = conn.execute("SELECT owner, display_name FROM participants").fetchall()
        return {str(row["owner"]): str(row["display_name"]) for row in rows}

    def active_run_processes(self) -> dict[int, str]:
        """run id -> the process token (``process_token``) of every queued or running run."""
        with self._connect() as conn:
            rows = conn.execute("SELECT id, process FROM runs WHERE status IN ('queued', 'running')").fetchall()
        return {int(row["id"]): str(row["process"] or "") for row in rows}

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
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (_sql_id(run_id),)).fetchone()
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
            if not self._has_known_problem():
                raise
            rows = self._salvage_rows(owner) if self.damage is not None else []
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

    @_lists_what_it_can(list)
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

    def load_weights(
        self, run_id: int, *, expected_shapes: Optional[Sequence[tuple[int, ...]]] = None
    ) -> Optional[list[np.ndarray]]:
        """A run's kept model weights, or None when none were kept (older or unfinished runs).

        The archive is read as untrusted (``weights_archive.read_weights``): its size is checked in SQL
        before it is fetched, each array's header before it is allocated, against ``expected_shapes``
        (the model's weights) when given; a damaged archive is an AuditError naming the run.
        """
        limit = max_blob_bytes(expected_shapes)
        with self._connect() as conn:
            row = conn.execute(
                "SELECT length(weights) AS size, CASE WHEN length(weights) <= ? THEN weights END AS weights "
                "FROM run_weights WHERE run_id = ?",
                (limit, _sql_id(run_id)),
            ).fetchone()
        if row is None:
            return None
        check_blob_size(int(row["size"] or 0), run_id=run_id, expected_shapes=expected_shapes)
        blob = row["weights"]
        return read_weights(blob if isinstance(blob, bytes) else b"", run_id=run_id, expected_shapes=expected_shapes)

    def has_weights(self, run_id: int) -> bool:
        """Whether a run's final model weights are kept (without reading them)."""
        with self._connect() as conn:
            return conn.execute("SELECT 1 FROM run_weights WHERE run_id = ?", (run_id,)).fetchone() is not None

    def get_audit(self, run_id: int) -> Optional[str]:
        """The JSON text of a run's latest audit, or None when it was never audited."""
        with self._connect() as conn:
            row = conn.execute("SELECT report_json FROM audits WHERE run_id = ?", (_sql_id(run_id),)).fetchone()
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
        ``owner_name`` is the display name of the participant who ran it (empty for a run of the CLI's).

        Rows end in CRLF (RFC 4180), so a CR or LF inside a cell (a run name) is quoted and stays
        in its cell; text a spreadsheet would run as a formula is written as text (``spreadsheet_safe``).
        """
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        names = self.display_names()
        for run in self.list_runs(owner=owner):
            if run_ids is not None and run.id not in run_ids:
                continue
            cells = csv_row(run, shown_file=shown_file, owner_names=names)
            writer.writerow([spreadsheet_safe(cell) for cell in cells])
        return out.getvalue()


# A cell starting with one of these is read by spreadsheets as a formula (tab and CR as well).
