"""The run store's SQLite schema: its tables, and the migrations that bring an older file up to date.

The version is kept in ``PRAGMA user_version``; ``MIGRATIONS[k]`` takes a file from version k to k + 1,
so ``SCHEMA_VERSION`` is their number.
"""

from __future__ import annotations

import sqlite3
from typing import Callable

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

_SCHEMA_V2 = """
CREATE TABLE run_weights (
    run_id INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    weights BLOB NOT NULL
);
CREATE TABLE audits (
    run_id INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    created REAL NOT NULL,
    report_json TEXT NOT NULL
);
"""

_SCHEMA_V3 = """
CREATE TABLE participants (
    token_hash TEXT PRIMARY KEY,
    owner TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created REAL NOT NULL
)
"""

# Version 4: status "budget_reached" (SQLite cannot change a CHECK constraint, so the runs table is
# rebuilt; foreign keys are off during migrations, so no epoch row is cascaded away), validation
# metrics and per-step noise multipliers and clip norms.
_SCHEMA_V4 = """
CREATE TABLE runs_v4 (
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
INSERT INTO runs_v4 (id, name, owner, created, started, finished, config_json, status, error, n_train,
                     examples_per_second, seconds, process)
    SELECT id, name, owner, created, started, finished, config_json, status, error, n_train,
           examples_per_second, seconds, process FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v4 RENAME TO runs;
CREATE INDEX runs_owner ON runs (owner);
CREATE INDEX runs_status ON runs (status);
ALTER TABLE epoch_metrics ADD COLUMN validation_loss REAL;
ALTER TABLE epoch_metrics ADD COLUMN validation_accuracy REAL;
ALTER TABLE epoch_metrics ADD COLUMN noise_multipliers TEXT;
ALTER TABLE epoch_metrics ADD COLUMN clip_norms TEXT;
"""

_SCHEMA_SWEEPS = """
CREATE TABLE sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL CHECK (mode IN ('grid', 'private_selection')),
    knobs_json TEXT NOT NULL,
    seeds INTEGER NOT NULL,
    baseline INTEGER NOT NULL,
    selection_json TEXT,
    trial_count INTEGER,
    base_config_json TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE sweep_runs (
    run_id INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    sweep_id INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE
);
CREATE INDEX sweep_runs_sweep ON sweep_runs (sweep_id)
"""

# MIGRATIONS[i] brings a file from schema version i to i + 1 inside one transaction. Append new
# steps at the end; never edit a released one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    lambda conn: _run_script(conn, _SCHEMA_V1),
    lambda conn: _run_script(conn, _SCHEMA_V2),
    lambda conn: _run_script(conn, _SCHEMA_V3),
    lambda conn: _run_script(conn, _SCHEMA_V4),
    lambda conn: _run_script(conn, _SCHEMA_SWEEPS),  # SWEEPS_STEP
)
SCHEMA_VERSION = len(MIGRATIONS)
# The step that adds the sweep tables (tests build a store from just before it).
SWEEPS_STEP = len(MIGRATIONS) - 1


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Execute semicolon-separated statements one by one (executescript would commit early)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)
