"""Run history in SQLite: every run's config, status, per-epoch metrics and timings, kept on disk.

Layout (schema version 2, kept in ``PRAGMA user_version``; ``MIGRATIONS`` brings older files up):

- ``runs``: id, name, owner, created/started/finished (Unix seconds), config_json, status,
  error, n_train, examples_per_second, seconds, process (who runs it; see ``mark_interrupted``).
- ``epoch_metrics``: one row per finished epoch, committed as the epoch ends, so a crash or a
  killed server loses at most the epoch in progress. Validation loss/accuracy (NULL without a
  validation split), and each step's noise multiplier and clip norm as JSON arrays (NULL in
  rows from schema version 1, read back as empty).

Final metrics are the last epoch's row. An infinite ε (the non-private baseline, or an accountant
that can promise nothing) is stored as NULL in ``epoch_metrics.epsilon`` and read back as
``math.inf``; every finished epoch has an ε, so NULL there never means "unknown". NaN losses are
stored as NULL too (SQLite has no NaN) and read back as NaN.

Each call opens its own connection (sqlite3 connections are not shared across threads), runs
one short transaction and closes it. The file is in WAL mode, so readers never block the writer
and several processes can share one store.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, Union

from dpcore.config import DPConfig
from dpcore.errors import UserInputError

if TYPE_CHECKING:
    from dpcore.results import EpochMetrics, TrainResult

ENV_STORE = "DPEXPLORER_STORE"

STATUSES = ("queued", "running", "completed", "budget_reached", "cancelled", "failed", "interrupted")
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("completed", "budget_reached", "cancelled", "failed", "interrupted")

CSV_COLUMNS = (
    "id", "name", "created", "status", "dataset", "model", "optimizer", "noise_multiplier",
    "l2_norm_clip", "batch_size", "epochs", "sampling", "accountant", "private", "test_accuracy",
    "validation_accuracy", "epsilon", "delta", "examples_per_second", "seconds", "error",
)

# How long a call waits for another writer's lock before giving up.
BUSY_TIMEOUT_SECONDS = 30.0


class StoreError(UserInputError):
    """The store file cannot be opened or was written by a newer DP Explorer."""

    def __init__(self, message: str) -> None:
        super().__init__("store", message)


class UnknownRunError(UserInputError, LookupError):
    """No run with the requested id exists (it may have been deleted)."""

    def __init__(self, run_id: int) -> None:
        super().__init__("run", f"there is no run with id {run_id}")
        self.run_id = run_id


def default_store_path() -> Path:
    """Where runs are kept: $DPEXPLORER_STORE, else $XDG_DATA_HOME (or ~/.local/share)/dp-explorer."""
    env = os.environ.get(ENV_STORE, "").strip()
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(data_home).expanduser() if data_home else Path.home() / ".local" / "share"
    return base / "dp-explorer" / "runs.sqlite3"


# -- schema ----------------------------------------------------------------------------

_SCHEMA_V1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'cancelled',
                                           'failed', 'interrupted')),
    error TEXT,
    n_train INTEGER,
    examples_per_second REAL,
    seconds REAL,
    process TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_owner ON runs (owner);
CREATE INDEX runs_status ON runs (status);
CREATE TABLE epoch_metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    train_loss REAL,
    train_accuracy REAL,
    test_loss REAL,
    test_accuracy REAL,
    epsilon REAL,
    seconds REAL,
    examples INTEGER,
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;
"""

# Version 2: status "budget_reached" (SQLite cannot change a CHECK constraint, so the runs table is
# rebuilt; foreign keys are off during migrations, so no epoch row is cascaded away), validation
# metrics and per-step noise multipliers and clip norms.
_SCHEMA_V2 = """
CREATE TABLE runs_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'budget_reached',
                                           'cancelled', 'failed', 'interrupted')),
    error TEXT,
    n_train INTEGER,
    examples_per_second REAL,
    seconds REAL,
    process TEXT NOT NULL DEFAULT ''
);
INSERT INTO runs_v2 (id, name, owner, created, started, finished, config_json, status, error, n_train,
                     examples_per_second, seconds, process)
    SELECT id, name, owner, created, started, finished, config_json, status, error, n_train,
           examples_per_second, seconds, process FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v2 RENAME TO runs;
CREATE INDEX runs_owner ON runs (owner);
CREATE INDEX runs_status ON runs (status);
ALTER TABLE epoch_metrics ADD COLUMN validation_loss REAL;
ALTER TABLE epoch_metrics ADD COLUMN validation_accuracy REAL;
ALTER TABLE epoch_metrics ADD COLUMN noise_multipliers TEXT;
ALTER TABLE epoch_metrics ADD COLUMN clip_norms TEXT;
"""

# MIGRATIONS[i] brings a file from schema version i to i + 1 inside one transaction. Append new
# steps at the end; never edit a released one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    lambda conn: _run_script(conn, _SCHEMA_V1),
    lambda conn: _run_script(conn, _SCHEMA_V2),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Execute semicolon-separated statements one by one (executescript would commit early)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


# -- process identity ------------------------------------------------------------------


def _process_start_ticks(pid: int) -> Optional[str]:
    """The kernel's start time of ``pid`` (Linux /proc), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after it are plain.
    rest = text[text.rfind(")") + 2:].split()
    if len(rest) < 20:
        return None
    if rest[0] in ("Z", "X"):  # a zombie or dead process is not running anything
        return "dead"
    return rest[19]


def process_token(pid: Optional[int] = None) -> str:
    """``host:pid:start`` naming a live process, so a reused pid is not mistaken for it."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_start_ticks(pid) or ''}"


def process_alive(token: str) -> bool:
    """Whether the process named by ``token`` still runs; a process on another host counts as alive."""
    host, _, rest = token.partition(":")
    pid_text, _, start = rest.partition(":")
    if not host or not pid_text.isdigit():
        return False
    if host != socket.gethostname():
        return True
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    now = _process_start_ticks(pid)
    if now == "dead":
        return False
    return not (start and now and now != start)


# -- records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """One stored run as read back from the store; ``epochs`` holds every committed epoch."""

    id: int
    name: str
    owner: str
    created: float
    config: DPConfig
    status: str
    error: Optional[str]
    epochs: tuple["EpochMetrics", ...]
    examples_per_second: Optional[float]
    seconds: Optional[float]
    started: Optional[float] = None
    finished: Optional[float] = None
    n_train: Optional[int] = None

    @property
    def test_accuracy(self) -> Optional[float]:
        """The last committed epoch's test accuracy; None before the first epoch ends."""
        return self.epochs[-1].test_accuracy if self.epochs else None

    @property
    def validation_accuracy(self) -> Optional[float]:
        """The last committed epoch's validation accuracy (NaN without a validation split); None before
        the first epoch ends."""
        return self.epochs[-1].validation_accuracy if self.epochs else None

    @property
    def epsilon(self) -> Optional[float]:
        """The last committed epoch's ε (math.inf for a baseline); None before the first epoch ends."""
        return self.epochs[-1].epsilon if self.epochs else None

    @property
    def label(self) -> str:
        """The name if one was given, else ``run <id>``: what lists and legends show."""
        return self.name or f"run {self.id}"


def _float_or_none(value: Optional[float]) -> Optional[float]:
    """NaN and ±∞ become NULL for SQLite; finite numbers pass through."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _nan_if_null(value: Optional[float]) -> float:
    return math.nan if value is None else float(value)


_EPOCH_COLUMNS = ("run_id", "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "epsilon",
                  "seconds", "examples", "validation_loss", "validation_accuracy", "noise_multipliers",
                  "clip_norms")


def _insert_epochs(verb: str) -> str:
    """``<verb> INTO epoch_metrics`` with every column, in ``_EPOCH_COLUMNS`` order."""
    return (f"{verb} INTO epoch_metrics ({', '.join(_EPOCH_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _EPOCH_COLUMNS)})")


def _epoch_row(run_id: int, m: "EpochMetrics") -> tuple[Any, ...]:
    return (
        run_id, int(m.epoch), _float_or_none(m.train_loss), _float_or_none(m.train_accuracy),
        _float_or_none(m.test_loss), _float_or_none(m.test_accuracy),
        _float_or_none(m.epsilon), _float_or_none(m.seconds), int(m.examples),
        _float_or_none(m.validation_loss), _float_or_none(m.validation_accuracy),
        json.dumps([float(v) for v in m.noise_multipliers]), json.dumps([float(v) for v in m.clip_norms]),
    )


def _floats(text: Optional[str]) -> tuple[float, ...]:
    return tuple(float(v) for v in json.loads(text)) if text else ()


def _epoch_from_row(row: sqlite3.Row) -> "EpochMetrics":
    from dpcore.results import EpochMetrics

    return EpochMetrics(
        epoch=row["epoch"],
        train_loss=_nan_if_null(row["train_loss"]),
        train_accuracy=_nan_if_null(row["train_accuracy"]),
        test_loss=_nan_if_null(row["test_loss"]),
        test_accuracy=_nan_if_null(row["test_accuracy"]),
        epsilon=math.inf if row["epsilon"] is None else float(row["epsilon"]),
        seconds=_nan_if_null(row["seconds"]),
        examples=row["examples"] or 0,
        validation_loss=_nan_if_null(row["validation_loss"]),
        validation_accuracy=_nan_if_null(row["validation_accuracy"]),
        noise_multipliers=_floats(row["noise_multipliers"]),
        clip_norms=_floats(row["clip_norms"]),
    )


# -- the store -------------------------------------------------------------------------


class RunStore:
    """SQLite run history at ``path`` (default: ``default_store_path()``), safe for many threads and processes."""

    def __init__(self, path: Union[str, os.PathLike[str], None] = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for {str(self.path)!r}: {exc}") from None
        self._migrate()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    # -- connections ---------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        """A new connection in autocommit mode (transactions are explicit) with foreign keys on."""
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {str(self.path)!r}: {exc}") from None
        return conn

    @staticmethod
    @contextmanager
    def _transaction(conn: sqlite3.Connection, *, write: bool) -> Iterator[sqlite3.Connection]:
        """Commit on success, roll back on any exception; writers take the lock up front (BEGIN IMMEDIATE)."""
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One connection for one short transaction, closed afterwards."""
        conn = self._open()
        try:
            with self._transaction(conn, write=write):
                yield conn
        finally:
            conn.close()

    def _migrate(self) -> None:
        """Switch the file to WAL and apply any missing migrations in the transaction that bumps the version."""
        try:
            conn = self._open()
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                # A migration may rebuild a table that others reference; with foreign keys on, dropping
                # the old one would cascade. Off for this connection only (it cannot change in a transaction).
                conn.execute("PRAGMA foreign_keys = OFF")
                with self._transaction(conn, write=True):
                    version = conn.execute("PRAGMA user_version").fetchone()[0]
                    if version > SCHEMA_VERSION:
                        raise StoreError(
                            f"{str(self.path)!r} has schema version {version}; this DP Explorer "
                            f"reads versions up to {SCHEMA_VERSION}"
                        )
                    for step in range(version, SCHEMA_VERSION):
                        MIGRATIONS[step](conn)
                    if version != SCHEMA_VERSION:
                        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise StoreError(f"migrating {str(self.path)!r} left {len(broken)} rows without "
                                             "their run; the file is left as it was")
                        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use {str(self.path)!r} as a run store: {exc}") from None

    def schema_version(self) -> int:
        """The schema version of the file (equal to ``SCHEMA_VERSION`` once opened)."""
        with self._connect() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    # -- writing -------------------------------------------------------------------------

    def create_run(self, config: DPConfig, *, owner: str = "", name: str = "") -> int:
        """Record a new queued run owned by this process and return its id."""
        with self._connect(write=True) as conn:
            cursor = conn.execute(
                "INSERT INTO runs (name, owner, created, config_json, status, process) "
                "VALUES (?, ?, ?, ?, 'queued', ?)",
                (name, owner, time.time(), config.to_json(), process_token()),
            )
            return int(cursor.lastrowid)

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
                cursor = conn.execute(
                    "UPDATE runs SET status = ?, error = ? WHERE id = ?", (status, error, run_id)
                )
            if cursor.rowcount == 0:
                raise UnknownRunError(run_id)

    def record_epoch(self, run_id: int, metrics: "EpochMetrics") -> None:
        """Commit one finished epoch now, so it survives a crash later in the run."""
        with self._connect(write=True) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise UnknownRunError(run_id)
            conn.execute(_insert_epochs("INSERT OR REPLACE"), _epoch_row(run_id, metrics))

    def finish_run(self, run_id: int, result: "TrainResult") -> None:
        """Store a run's outcome: status, error, timings, and any epoch not already recorded."""
        if result.status not in FINAL_STATUSES:
            raise ValueError(f"a finished run cannot have status {result.status!r}")
        with self._connect(write=True) as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, error = ?, finished = ?, n_train = ?, "
                "examples_per_second = ?, seconds = ? WHERE id = ?",
                (
                    result.status, result.error, time.time(), result.n_train,
                    _float_or_none(result.examples_per_second), _float_or_none(result.seconds), run_id,
                ),
            )
            if cursor.rowcount == 0:
                raise UnknownRunError(run_id)
            conn.executemany(_insert_epochs("INSERT OR IGNORE"), [_epoch_row(run_id, m) for m in result.epochs])

    def rename_run(self, run_id: int, name: str) -> None:
        """Give a run a display name ("" goes back to ``run <id>``)."""
        with self._connect(write=True) as conn:
            if conn.execute("UPDATE runs SET name = ? WHERE id = ?", (name.strip(), run_id)).rowcount == 0:
                raise UnknownRunError(run_id)

    def delete_run(self, run_id: int) -> None:
        """Remove a run and its epochs."""
        with self._connect(write=True) as conn:
            if conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount == 0:
                raise UnknownRunError(run_id)

    def mark_interrupted(self) -> int:
        """Mark queued or running runs whose process has died as interrupted; return how many.

        Each run carries the ``host:pid:start`` token of the process that queued or runs it
        (see ``process_token``). A run is left alone while that process is alive, so a second
        live server (or a CLI sweep) sharing the store does not see its runs cut off; a reused
        pid is told apart by the kernel's process start time where /proc has it. Runs owned by
        another host are left alone, since their process cannot be checked from here.
        """
        with self._connect(write=True) as conn:
            rows = conn.execute(
                "SELECT id, process FROM runs WHERE status IN ('queued', 'running')"
            ).fetchall()
            dead = [row["id"] for row in rows if not process_alive(row["process"])]
            now = time.time()
            conn.executemany(
                "UPDATE runs SET status = 'interrupted', finished = ?, "
                "error = COALESCE(error, 'the process running it stopped before it finished') "
                "WHERE id = ?",
                [(now, run_id) for run_id in dead],
            )
            return len(dead)

    # -- reading -------------------------------------------------------------------------

    def get_run(self, run_id: int) -> RunRecord:
        """One run with all its committed epochs; UnknownRunError if it does not exist."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise UnknownRunError(run_id)
            epochs = conn.execute(
                "SELECT * FROM epoch_metrics WHERE run_id = ? ORDER BY epoch", (run_id,)
            ).fetchall()
        return _record(row, epochs)

    def list_runs(self, *, owner: Optional[str] = None) -> list[RunRecord]:
        """Every run, oldest first; only ``owner``'s when given (None lists everyone's)."""
        with self._connect() as conn:
            if owner is None:
                rows = conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
                epoch_rows = conn.execute(
                    "SELECT * FROM epoch_metrics ORDER BY run_id, epoch"
                ).fetchall()
            else:
                rows = conn.execute("SELECT * FROM runs WHERE owner = ? ORDER BY id", (owner,)).fetchall()
                epoch_rows = conn.execute(
                    "SELECT e.* FROM epoch_metrics e JOIN runs r ON r.id = e.run_id "
                    "WHERE r.owner = ? ORDER BY e.run_id, e.epoch",
                    (owner,),
                ).fetchall()
        by_run: dict[int, list[sqlite3.Row]] = {}
        for epoch_row in epoch_rows:
            by_run.setdefault(epoch_row["run_id"], []).append(epoch_row)
        return [_record(row, by_run.get(row["id"], [])) for row in rows]

    def to_csv(self, *, owner: Optional[str] = None) -> str:
        """The runs table as CSV text, one row per run (ε of a baseline is written as ``inf``)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for run in self.list_runs(owner=owner):
            writer.writerow(csv_row(run))
        return out.getvalue()


def csv_row(run: RunRecord) -> list[Any]:
    """The CSV cells of one run, in ``CSV_COLUMNS`` order."""
    c = run.config
    created = datetime.fromtimestamp(run.created, tz=timezone.utc).isoformat(timespec="seconds")
    return [
        run.id, run.name, created, run.status, c.dataset, c.model, c.optimizer, c.noise_multiplier,
        c.l2_norm_clip, c.batch_size, c.epochs, c.sampling, c.accountant, c.private,
        _cell(run.test_accuracy), _cell(run.validation_accuracy), _cell(run.epsilon), c.delta, _cell(run.examples_per_second),
        _cell(run.seconds), run.error or "",
    ]


def _cell(value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if math.isinf(value):
        return "inf"
    return repr(float(value))


def _record(row: sqlite3.Row, epoch_rows: Sequence[sqlite3.Row]) -> RunRecord:
    return RunRecord(
        id=row["id"],
        name=row["name"],
        owner=row["owner"],
        created=row["created"],
        config=DPConfig.from_json(row["config_json"]),
        status=row["status"],
        error=row["error"],
        epochs=tuple(_epoch_from_row(e) for e in epoch_rows),
        examples_per_second=row["examples_per_second"],
        seconds=row["seconds"],
        started=row["started"],
        finished=row["finished"],
        n_train=row["n_train"],
    )
