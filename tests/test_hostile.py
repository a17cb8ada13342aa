"""Hostile input and faults, every way in: CLI flags, config files, share links, CSV files and stores.

Each refused case must end in one short line naming the field or file (exit status 2 on the CLI, a
UserInputError in the library), with no traceback and the store left as it was. Random bytes and
random nested structures go through every parser; a store that fills up mid-sweep keeps its
committed epochs; several sweeps started at once all finish; SIGTERM stops a sweep like Ctrl-C.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpcore import safe_io
from dpcore.cli import main
from dpcore.config import FIELD_NAMES, DPConfig
from dpcore.csv_schema import CsvSchema
from dpcore.data import csv_files, datasets
from dpcore.errors import UserInputError
from dpcore.export import share
from dpcore.results import EpochMetrics
from dpcore.room import participants
from dpcore.runs import sweeps
from dpcore.runs.process_identity import process_token
from dpcore.runs.store import RunStore, StoreError, UnreadableRunError
from dpcore.runs.weights_archive import weights_blob
from tests.conftest import REPO_ROOT

# A refusal is one line, short enough to read: the value quoted at most briefly.
MAX_MESSAGE_CHARS = 600
TINY = DPConfig(dataset="digits", model="logreg", batch_size=16, epochs=1, max_train_examples=64)
SAMPLE_CSV = (REPO_ROOT / "assets" / "sample.csv").read_bytes()


def _epoch(epoch: int) -> EpochMetrics:
    return EpochMetrics(
        epoch=epoch,
        train_loss=1.0,
        train_accuracy=0.5,
        test_loss=1.0,
        test_accuracy=0.5,
        epsilon=0.5 * epoch,
        seconds=0.1,
        examples=64,
    )


def _store_with_runs(path: Path, count: int = 2) -> RunStore:
    store = RunStore(path)
    for i in range(count):
        run_id = store.create_run(TINY.replace(seed=i), owner="test", name=f"kept {i}")
        store.record_epoch(run_id, _epoch(1))
        store.set_status(run_id, "completed")
    return store


def _fingerprint(path: Path) -> str:
    """The store's data as bytes on disk (the file and any write-ahead log), for "unchanged" checks."""
    digest = hashlib.sha256()
    for suffix in ("", "-wal"):
        part = Path(str(path) + suffix)
        digest.update(part.read_bytes() if part.exists() else b"")
    return digest.hexdigest()


def _nested(depth: int, *, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def _billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("dataset: *i")
    return "\n".join(lines) + "\n"


# -- the hostile files -------------------------------------------------------------------------


def _csv(header: list[str], rows: list[list[Any]]) -> bytes:
    return ("\n".join([",".join(header)] + [",".join(str(v) for v in row) for row in rows]) + "\n").encode()


GOOD_ROWS = [[i, i % 3, "yes" if i % 2 else "no"] for i in range(30)]
CSV_FILES: dict[str, bytes] = {
    "utf16.csv": "f1,f2,decision\n".encode("utf-16")
    + "\n".join(f"{i},{i},{'yes' if i % 2 else 'no'}" for i in range(30)).encode("utf-16")[2:],
    "binary.csv": bytes(range(256)) * 64,
    "wide.csv": _csv([f"c{i}" for i in range(10_000)] + ["decision"], [[0] * 10_000 + ["yes"]] * 12),
    "long-line.csv": b"f1,decision\n" + b"x" * 200_000 + b",yes\n" + b"1,no\n" * 20,
    "inf.csv": _csv(["f1", "f2", "decision"], GOOD_ROWS[:-1] + [[1, "inf", "yes"]]),
    "huge.csv": _csv(["f1", "f2", "decision"], GOOD_ROWS[:-1] + [[1e300, 2, "no"]]),
    "neg-huge.csv": _csv(["f1", "big", "decision"], GOOD_ROWS[:-1] + [[1, -1e39, "no"]]),
    "empty.csv": b"",
    "header-only.csv": b"f1,f2,decision\n",
    "one-class.csv": _csv(["f1", "decision"], [[i, "yes"] for i in range(20)]),
    "no-header.csv": b"1,2,3\n4,5,6\n",
}

CONFIG_FILES: dict[str, bytes] = {
    "deep.json": _nested(30_000).encode(),
    "deeper.json": _nested(100_000).encode(),
    "deep-objects.json": (('{"a":' * 25) + "1" + "}" * 25).encode(),
    "deep-flow.yaml": _nested(30_000).encode(),
    "deep-block.yaml": "".join(f"{'  ' * i}k{i}:\n" for i in range(25)).encode() + b"  " * 25 + b"x: 1\n",
    "bomb.yaml": _billion_laughs().encode(),
    "alias.yaml": b"base: &b 0.5\nnoise_multiplier: *b\n",
    "binary.yaml": bytes(range(256)) * 16,
    "utf16.yaml": "epochs: 3\n".encode("utf-16"),
    "latin1.yaml": "dataset: caf\u00e9\n".encode("latin-1"),
    "unknown-key.yaml": b"colour: red\n",
    "wrong-type.yaml": b"epochs: ten\n",
    "out-of-range.yaml": b"epochs: 5000\n",
    "future.json": b'{"schema_version": 99, "epochs": 3}',
    "bad-version.yaml": b"schema_version: abc\n",
    "nul-csv-path.json": b'{"dataset": "csv", "csv_path": "a\\u0000b.csv", "csv_label": "y"}',
    "long-value.yaml": b"dataset: " + b"q" * 60_000 + b"\n",
    "list.yaml": b"- 1\n- 2\n",
    "empty.yaml": b"",
    "notes.txt": b"epochs: 3\n",
    "nan.json": b'{"delta": NaN}',
    "huge-int.json": b'{"epochs": ' + b"9" * 5000 + b"}",
    "python-tag.yaml": b"!!python/object/apply:os.system ['true']\n",
    "big.yaml": b"# padding\n" * 10_000,
    "batch-over-n.yaml": b"batch_size: 5000\n",
    "delta-over-1-n.yaml": b"delta: 0.01\n",
    "mapping-key.yaml": b"? [a, b]\n: 1\n",
    "int-keys.yaml": b"1: 2\nepochs: 3\n",
    "tiny.json": TINY.to_json().encode(),
    # σ from 1000 down to 0.05 in steps of 5%: 195 noise levels, each a PLD to build
    "pld-schedule-195-levels.yaml": b"accountant: pld\nnoise_multiplier: 1000\nnoise_schedule: step\n"
    b"noise_decay_rate: 0.05\nnoise_floor: 0.05\n",
}

SCHEMA_FILES: dict[str, bytes] = {
    "schema-deep.yaml": _nested(100_000).encode(),
    "schema-huge-int.yaml": b"classes: [" + b"9" * 5000 + b", 1]\nnumeric: {f1: [0, 1]}\n",
    "schema-huge-hex.json": b'{"classes": [0, 1], "numeric": {"f1": [0, 0x' + b"f" * 5000 + b"]}}",
    "schema-utf16.yaml": "classes: [0, 1]\n".encode("utf-16"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A folder of hostile files, plus stores: sound, damaged, garbage and from a newer version."""
    root = tmp_path_factory.mktemp("hostile")
    for name, raw in {**CSV_FILES, **CONFIG_FILES, **SCHEMA_FILES}.items():
        (root / name).write_bytes(raw)
    (root / "a-folder").mkdir()
    os.mkfifo(root / "fifo")  # a named pipe: opening it would wait for a writer (or reader) forever
    (root / "garbage.sqlite3").write_bytes(b"this is not a database " * 400)
    future = sqlite3.connect(root / "future.sqlite3")
    future.execute("PRAGMA user_version = 99")
    future.close()
    other = sqlite3.connect(root / "other-program.sqlite3")  # another program's database, in rollback mode
    with other:
        other.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
        other.execute("INSERT INTO contacts VALUES ('Ada', '555-0100')")
    other.close()
    other = sqlite3.connect(root / "other-versioned.sqlite3")  # one that uses user_version for itself
    with other:
        other.execute("CREATE TABLE notes (body TEXT)")
    other.execute("PRAGMA user_version = 2")
    other.close()
    negative = root / "negative.sqlite3"
    _store_with_runs(negative, 1)
    conn = sqlite3.connect(negative)
    conn.execute("PRAGMA user_version = -3")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    damaged = root / "damaged.sqlite3"
    _store_with_runs(damaged, 60)
    raw = bytearray(damaged.read_bytes())
    raw[4096 * 6 : 4096 * 7] = bytes(range(256)) * 16  # garbage in the middle of the file
    damaged.write_bytes(bytes(raw))
    return root


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A store with two runs at $DPEXPLORER_STORE (what commands without --store use)."""
    path = tmp_path / "runs.sqlite3"
    _store_with_runs(path)
    monkeypatch.setenv("DPEXPLORER_STORE", str(path))
    return path


# -- the catalogue: CLI flags, config files and stores through `python -m dpcore` ----------------------


@dataclass(frozen=True)
class CliCase:
    argv: tuple[str, ...]
    words: tuple[str, ...]  # each must appear in the one-line message

    def resolve(self, files: Path) -> list[str]:
        return [a.replace("{files}", str(files)) for a in self.argv]


EPS = ("epsilon", "--n", "1437", "--batch-size", "64", "--delta", "1e-5")
EPS_RUN = EPS + ("--epochs", "10", "--noise-multiplier", "1.1")
CAL = ("calibrate", "--n", "1437", "--batch-size", "64", "--delta", "1e-5", "--epochs", "10")
SWEEP = ("sweep", "--grid", "epochs=1")
ONE_THOUSAND = ",".join(str(i) for i in range(1000))

CLI_CASES: dict[str, CliCase] = {
    # flags
    "epsilon a billion epochs with PLD": CliCase(
        EPS + ("--epochs", "1000000000", "--noise-multiplier", "1.1", "--accountant", "pld"), ("--epochs", "PLD", "rdp")
    ),
    "epsilon PLD sigma 0.001": CliCase(
        EPS + ("--epochs", "10", "--noise-multiplier", "0.001", "--accountant", "pld"),
        ("--noise-multiplier", "too small"),
    ),
    "epsilon steps beyond the cap": CliCase(
        EPS + ("--epochs", "9" * 30, "--noise-multiplier", "1.1"), ("--epochs", "steps")
    ),
    "epsilon n zero": CliCase(
        ("epsilon", "--n", "0", "--batch-size", "1", "--delta", "1e-5", "--epochs", "1", "--noise-multiplier", "1"),
        ("--n",),
    ),
    "epsilon n text": CliCase(
        ("epsilon", "--n", "abc", "--batch-size", "1", "--delta", "1e-5", "--epochs", "1", "--noise-multiplier", "1"),
        ("--n", "not a whole number"),
    ),
    "epsilon batch over n": CliCase(
        ("epsilon", "--n", "100", "--batch-size", "200", "--delta", "1e-5", "--epochs", "1", "--noise-multiplier", "1"),
        ("--batch-size",),
    ),
    "epsilon delta one": CliCase(EPS[:5] + ("--delta", "1", "--epochs", "1", "--noise-multiplier", "1"), ("--delta",)),
    "epsilon delta nan": CliCase(
        EPS[:5] + ("--delta", "nan", "--epochs", "1", "--noise-multiplier", "1"), ("--delta",)
    ),
    "epsilon negative noise": CliCase(EPS + ("--epochs", "1", "--noise-multiplier", "-1"), ("--noise-multiplier",)),
    "epsilon infinite noise": CliCase(EPS + ("--epochs", "1", "--noise-multiplier", "inf"), ("--noise-multiplier",)),
    "epsilon unknown accountant": CliCase(EPS_RUN + ("--accountant", "moments"), ("--accountant",)),
    "epsilon huge value quoted briefly": CliCase(
        EPS + ("--epochs", "1", "--noise-multiplier", "x" * 100_000), ("--noise-multiplier",)
    ),
    "calibrate target zero": CliCase(CAL + ("--target-epsilon", "0"), ("--target-epsilon",)),
    "calibrate unreachable target": CliCase(CAL + ("--target-epsilon", "1e-9"), ("--target-epsilon",)),
    "sweep 20000 workers": CliCase(SWEEP + ("--workers", "20000"), ("--workers", "1 to 32")),
    "sweep zero workers": CliCase(SWEEP + ("--workers", "0"), ("--workers",)),
    "sweep a million combinations": CliCase(
        ("sweep", "--grid", f"seed={ONE_THOUSAND}", "--grid", "epochs=" + ",".join(str(i) for i in range(1, 1001))),
        ("--grid", "1,000,000 runs"),
    ),
    "sweep a million values in one flag": CliCase(
        ("sweep", "--grid", "seed=" + ",".join(map(str, range(10**6)))), ("--grid", "more than 1000 values")
    ),
    "sweep previewing a thousand noise multipliers": CliCase(
        ("sweep", "--grid", "noise_multiplier=" + ",".join(f"{0.5 + 0.001 * i:.3f}" for i in range(1000))),
        ("--grid", "1,000 different ε", "at most 100 different ε"),
    ),
    "sweep batch size over n": CliCase(
        ("sweep", "--grid", "batch_size=64,5000"), ("--grid batch_size=5000", "batch_size")
    ),
    "sweep delta over 1/n": CliCase(("sweep", "--grid", "delta=1e-5,0.01"), ("--grid delta=0.01", "delta")),
    "sweep PLD beyond bounds": CliCase(
        ("sweep", "--grid", "accountant=pld", "--grid", "noise_multiplier=0.001"), ("noise_multiplier", "PLD")
    ),
    "sweep text epochs": CliCase(("sweep", "--grid", "epochs=abc"), ("--grid epochs", "whole number")),
    "sweep a 300-character name": CliCase(SWEEP + ("--name", "n" * 300), ("--name", "300 characters", "at most 200")),
    "sweep on Ray at an http address": CliCase(
        SWEEP + ("--backend", "ray", "--ray-address", "http://127.0.0.1:8265"),
        ("--ray-address", "not a Ray address", "ray://host:port"),
    ),
    "sweep on Ray at an address without a port": CliCase(
        SWEEP + ("--backend", "ray", "--ray-address", "head"), ("--ray-address", "not a Ray address")
    ),
    "sweep on Ray at shell syntax": CliCase(
        SWEEP + ("--backend", "ray", "--ray-address", "$(touch {files}/pwned):1"), ("--ray-address",)
    ),
    "sweep store in a missing folder": CliCase(
        SWEEP + ("--store", "{files}/no/such/runs.sqlite3"), ("store", "does not exist")
    ),
    "sweep base config is a folder": CliCase(SWEEP + ("--config", "{files}/a-folder"), ("config", "folder")),
    "unknown command": CliCase(("frobnicate",), ("frobnicate",)),
    "train without config": CliCase(("train",), ("--config",)),
    # config files
    "config /dev/zero": CliCase(("train", "--config", "/dev/zero"), ("config", "/dev/zero", "regular file")),
    "config a folder": CliCase(("train", "--config", "{files}/a-folder"), ("config", "folder")),
    "config NUL in path": CliCase(("train", "--config", "{files}/x\x00.yaml"), ("config", "NUL")),
    "config missing": CliCase(("train", "--config", "{files}/missing.yaml"), ("config", "does not exist")),
    "config too large": CliCase(("train", "--config", "{files}/big.yaml"), ("config", "too large")),
    "config JSON 30000 deep": CliCase(("train", "--config", "{files}/deep.json"), ("config", "nested")),
    "config JSON 100000 deep": CliCase(("train", "--config", "{files}/deeper.json"), ("config", "too large")),
    "config JSON objects 25 deep": CliCase(("train", "--config", "{files}/deep-objects.json"), ("config", "nested")),
    "config YAML flow 30000 deep": CliCase(("train", "--config", "{files}/deep-flow.yaml"), ("config", "nested")),
    "config YAML block 25 deep": CliCase(("train", "--config", "{files}/deep-block.yaml"), ("config", "nested")),
    "config YAML alias bomb": CliCase(("train", "--config", "{files}/bomb.yaml"), ("config", "aliases")),
    "config YAML alias": CliCase(("train", "--config", "{files}/alias.yaml"), ("config", "aliases")),
    "config binary": CliCase(("train", "--config", "{files}/binary.yaml"), ("config", "binary")),
    "config UTF-16": CliCase(("train", "--config", "{files}/utf16.yaml"), ("config", "UTF-16")),
    "config Latin-1": CliCase(("train", "--config", "{files}/latin1.yaml"), ("config", "UTF-8")),
    "config unknown key": CliCase(("train", "--config", "{files}/unknown-key.yaml"), ("colour", "unknown config key")),
    "config wrong type": CliCase(("train", "--config", "{files}/wrong-type.yaml"), ("epochs", "'ten'")),
    "config out of range": CliCase(("train", "--config", "{files}/out-of-range.yaml"), ("epochs", "out of range")),
    "config future schema": CliCase(("train", "--config", "{files}/future.json"), ("schema_version", "99")),
    "config text schema": CliCase(("train", "--config", "{files}/bad-version.yaml"), ("schema_version", "'abc'")),
    "config NUL in csv_path": CliCase(("train", "--config", "{files}/nul-csv-path.json"), ("csv_path", "NUL")),
    "config 60 kB value": CliCase(("train", "--config", "{files}/long-value.yaml"), ("dataset", "not a known dataset")),
    "config a list": CliCase(("train", "--config", "{files}/list.yaml"), ("config", "mapping")),
    "config empty": CliCase(("train", "--config", "{files}/empty.yaml"), ("config", "mapping")),
    "config .txt": CliCase(("train", "--config", "{files}/notes.txt"), ("config", ".json, .yaml")),
    "config NaN": CliCase(("train", "--config", "{files}/nan.json"), ("delta", "finite")),
    "config 5000-digit number": CliCase(
        ("train", "--config", "{files}/huge-int.json"), ("config", "5,000 characters", "at most 100")
    ),
    "config a named pipe": CliCase(("train", "--config", "{files}/fifo"), ("config", "regular file")),
    # CSV schema files
    "csv schema a named pipe": CliCase(
        ("train", "--config", "{files}/tiny.json", "--csv-schema", "{files}/fifo"), ("csv_schema", "regular file")
    ),
    "csv schema 100,000 deep": CliCase(
        ("train", "--config", "{files}/tiny.json", "--csv-schema", "{files}/schema-deep.yaml"),
        ("csv_schema", "nested more than 20"),
    ),
    "csv schema 5000-digit integer": CliCase(
        ("train", "--config", "{files}/tiny.json", "--csv-schema", "{files}/schema-huge-int.yaml"),
        ("csv_schema", "5,000 characters", "at most 100"),
    ),
    "csv schema 5000-digit hex integer": CliCase(
        ("train", "--config", "{files}/tiny.json", "--csv-schema", "{files}/schema-huge-hex.json"),
        ("csv_schema", "5,002 characters"),
    ),
    "csv schema UTF-16": CliCase(
        ("train", "--config", "{files}/tiny.json", "--csv-schema", "{files}/schema-utf16.yaml"),
        ("csv_schema", "UTF-16"),
    ),
    "csv schema a folder": CliCase(
        ("train", "--config", "{files}/tiny.json", "--csv-schema", "{files}/a-folder"), ("csv_schema", "folder")
    ),
    # output files
    "export to a named pipe": CliCase(
        ("export", "--config", "{files}/tiny.json", "--format", "json", "--output", "{files}/fifo"),
        ("--output", "regular file"),
    ),
    "export to a folder": CliCase(
        ("export", "--config", "{files}/tiny.json", "--format", "yaml", "--output", "{files}/a-folder"),
        ("--output", "folder"),
    ),
    "export to /dev/full": CliCase(
        ("export", "--config", "{files}/tiny.json", "--format", "script", "--output", "/dev/full"),
        ("--output", "regular file"),
    ),
    "export into a missing folder": CliCase(
        ("export", "--config", "{files}/tiny.json", "--format", "json", "--output", "{files}/no/out.json"),
        ("--output", "No such file"),
    ),
    "config python tag": CliCase(("train", "--config", "{files}/python-tag.yaml"), ("config", "YAML")),
    "config complex key": CliCase(("train", "--config", "{files}/mapping-key.yaml"), ("config", "YAML")),
    "config number key": CliCase(("train", "--config", "{files}/int-keys.yaml"), ("1: unknown config key",)),
    "config batch over n": CliCase(("train", "--config", "{files}/batch-over-n.yaml"), ("batch_size", "1437")),
    "config delta over 1/n": CliCase(("train", "--config", "{files}/delta-over-1-n.yaml"), ("delta", "1/n")),
    # audits
    "audit run 10**30": CliCase(
        ("audit", "--run", str(10**30)), ("--run", "out of range", "9,223,372,036,854,775,807")
    ),
    "audit a 5000-digit run": CliCase(("audit", "--run", "9" * 5000), ("--run", "out of range")),
    "audit run -1": CliCase(("audit", "--run", "-1"), ("--run", "not a whole number")),
    "audit a run that is not there": CliCase(("audit", "--run", "999"), ("run", "no run with id 999")),
    "config PLD schedule through 195 levels": CliCase(
        ("train", "--config", "{files}/pld-schedule-195-levels.yaml"),
        ("noise_schedule", "195 noise level", "the bound is 30 s", "higher noise floor"),
    ),
    # stores
    "runs missing store": CliCase(("runs", "--store", "{files}/typo.sqlite3"), ("store", "no run store")),
    "runs store is a folder": CliCase(("runs", "--store", "{files}/a-folder"), ("store", "folder")),
    "runs store /dev/zero": CliCase(("runs", "--store", "/dev/zero"), ("store", "regular file")),
    "runs store NUL": CliCase(("runs", "--store", "{files}/r\x00.sqlite3"), ("store", "NUL")),
    "runs garbage store": CliCase(("runs", "--store", "{files}/garbage.sqlite3"), ("store", "not a database")),
    "runs newer store": CliCase(("runs", "--store", "{files}/future.sqlite3"), ("store", "schema version 99")),
    "sweep garbage store": CliCase(SWEEP + ("--store", "{files}/garbage.sqlite3"), ("store", "not a database")),
    "sweep damaged store": CliCase(SWEEP + ("--store", "{files}/damaged.sqlite3"), ("store", "damaged", "recover")),
    "sweep newer store": CliCase(SWEEP + ("--store", "{files}/future.sqlite3"), ("store", "schema version 99")),
    "runs another program's SQLite file": CliCase(
        ("runs", "--store", "{files}/other-program.sqlite3"), ("store", "another program", "contacts")
    ),
    "sweep another program's SQLite file": CliCase(
        SWEEP + ("--store", "{files}/other-program.sqlite3"), ("store", "another program", "left as it was")
    ),
    "sweep another program's versioned SQLite file": CliCase(
        SWEEP + ("--store", "{files}/other-versioned.sqlite3"), ("store", "another program", "notes")
    ),
    "runs a store of schema version -3": CliCase(
        ("runs", "--store", "{files}/negative.sqlite3"), ("store", "schema version -3", "no DP Explorer writes")
    ),
    "sweep a store of schema version -3": CliCase(
        SWEEP + ("--store", "{files}/negative.sqlite3"), ("store", "schema version -3", "no DP Explorer writes")
    ),
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_refuses_in_one_line_and_leaves_the_store_alone(name, files, store, capsys):
    case = CLI_CASES[name]
    touched = [p for p in files.glob("*.sqlite3")] + [store]
    before = {p: _fingerprint(p) for p in touched}
    status = main(case.resolve(files))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    shown = err[:MAX_MESSAGE_CHARS] + out[:200]
    assert status == 2, shown
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert "Traceback" not in err + out and len(lines[0]) <= MAX_MESSAGE_CHARS, shown
    for word in case.words:
        assert word in lines[0], (word, shown)
    assert {p: _fingerprint(p) for p in touched} == before
    assert not (files / "no").exists() and not (files / "typo.sqlite3").exists() and not (files / "pwned").exists()


def test_a_billion_epochs_is_answered_by_rdp_in_one_line(capsys):
    assert main(list(EPS) + ["--epochs", "1000000000", "--noise-multiplier", "1.1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == -(-(10**9) * 1437 // 64) and report["epsilon"] > 0 and not report["approximate"]


def test_pld_with_sigma_005_is_answered_on_a_coarser_grid_and_says_so(capsys):
    assert main(list(EPS) + ["--epochs", "1", "--noise-multiplier", "0.05", "--accountant", "pld"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ε = ") and "approximate" in out and "upper bound" in out


def test_pld_over_sixty_million_steps_is_answered_at_once(capsys, monkeypatch):
    """Fashion-MNIST, batch 1, 1,000 epochs, σ 1000: dp_accounting's sparse path took minutes per σ."""
    from dp_accounting.pld import pld_pmf

    def never(*_args, **_kwargs):
        raise AssertionError("dp_accounting's sparse self-composition was entered")

    monkeypatch.setattr(pld_pmf.SparsePLDPmf, "self_compose", never)
    argv = ["epsilon", "--n", "60000", "--batch-size", "1", "--epochs", "1000", "--noise-multiplier", "1000"]
    assert main(argv + ["--delta", "1e-5", "--accountant", "pld", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 6 * 10**7 and 0 < report["epsilon"] < 1 and not report["approximate"]


def test_rdp_below_dp_accountings_resolution_is_answered_as_an_upper_bound_and_says_so(capsys):
    """n = 10.4 M, batch 2, σ 20: "Renyi divergence cannot be negative" from dp_accounting before."""
    argv = ["epsilon", "--n", "10400000", "--batch-size", "2", "--epochs", "1", "--noise-multiplier", "20"]
    assert main(argv + ["--delta", "1e-8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ε = ") and "rounding allowance" in out and "upper bound" in out
    assert main(argv + ["--delta", "1e-8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["approximate"] and 0 < report["epsilon"] < 1


def test_calibrate_warns_for_delta_of_1_over_n_or_more(capsys):
    assert (
        main(
            [
                "calibrate",
                "--n",
                "100",
                "--batch-size",
                "10",
                "--delta",
                "0.05",
                "--epochs",
                "1",
                "--target-epsilon",
                "5",
            ]
        )
        == 0
    )
    assert "warning: --delta 0.05 is not below 1/n" in capsys.readouterr().err


def test_help_states_the_sweep_limits(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "at most 1000 runs" in text and "1 to 32" in text


# Commands whose standard output cannot be written: a full disk (/dev/full) is one line and status 2;
# a reader that closed the pipe early ends the command quietly with status 141, as SIGPIPE would.
OUTPUT_CASES: dict[str, tuple[tuple[str, ...], str]] = {
    "runs --csv to a full disk": (("runs", "--csv"), "full"),
    "runs --json to a full disk": (("runs", "--json"), "full"),
    "epsilon --json to a full disk": (EPS_RUN + ("--json",), "full"),
    "export to a full disk": (("export", "--config", "{files}/tiny.json", "--format", "script"), "full"),
    "runs --json to a closed pipe": (("runs", "--json"), "closed"),
    "runs --csv to a closed pipe": (("runs", "--csv"), "closed"),
    "epsilon to a closed pipe": (EPS_RUN, "closed"),
}


@pytest.mark.parametrize("name", sorted(OUTPUT_CASES))
def test_output_that_cannot_be_written_ends_without_a_traceback(name, files, store):
    argv, sink = OUTPUT_CASES[name]
    command = [sys.executable, "-m", "dpcore", *CliCase(argv, ()).resolve(files)]
    env = {**_env(), "DPEXPLORER_STORE": str(store)}
    if sink == "full":
        with open("/dev/full", "w") as full:
            done = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=full, stderr=subprocess.PIPE, text=True)
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stderr.splitlines() == ["error: cannot write the output: No space left on device"]
        return
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    process.stdout.close()  # the reader is gone before the command writes a byte
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr[-2000:]
    assert stderr == ""


SCHEMA_TEXT_CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "100,000 levels deep": (_nested(100_000), ("csv_schema", "nested more than 20")),
    "40,000 levels deep in objects": ('{"a":' * 40_000 + "1" + "}" * 40_000, ("csv_schema", "nested")),
    "a 5000-digit class": ("classes: [" + "9" * 5000 + ", 1]\nnumeric: {a: [0, 1]}\n", ("5,000 characters",)),
    "a 5000-digit bound": ("classes: [0, 1]\nnumeric: {a: [0, " + "9" * 5000 + "]}\n", ("5,000 characters",)),
    "a 5000-digit hex bound": ('{"classes": [0, 1], "numeric": {"a": [0, 0x' + "f" * 5000 + "]}}", ("5,002",)),
    "a 100-digit bound": ("classes: [0, 1]\nnumeric: {a: [0, " + "9" * 100 + "]}\n", ("csv_schema.numeric.a",)),
    "an alias": ("c: &c [0, 1]\nclasses: *c\n", ("csv_schema", "aliases")),
    "a python tag": ("!!python/object/apply:os.system ['true']\n", ("csv_schema", "YAML")),
    "over 256 KiB": ("#" * (256 * 1024 + 1), ("csv_schema", "too large")),
}


@pytest.mark.parametrize("name", sorted(SCHEMA_TEXT_CASES))
def test_schema_text_is_refused_in_one_line(name):
    from dpcore.csv_schema import CsvSchema

    text, words = SCHEMA_TEXT_CASES[name]
    with pytest.raises(UserInputError) as info:
        CsvSchema.from_text(text)
    message = _one_line(info.value)
    assert message.startswith("csv_schema") and all(word in message for word in words), message


@pytest.mark.parametrize("address", ["http://127.0.0.1:8265", "head", "ray://:1", "head:0", "a;b:1", ""])
def test_a_ray_backend_refuses_an_address_of_no_ray_form_before_asking_ray(address):
    from dpcore.runs.ray_backend import RayBackend, RayBackendError

    with pytest.raises(RayBackendError) as info:
        RayBackend(address=address)
    assert _one_line(info.value).startswith("ray_address: ") and "ray://host:port, host:port or auto" in str(info.value)


# Text a person types, refused where it enters the library: (call on a fresh store, words in the message).
MIB_TEXT = "x" * 2**20
TEXT_CASES: dict[str, tuple[Callable[[RunStore], Any], tuple[str, ...]]] = {
    "a 1 MiB run name": (lambda s: s.create_run(TINY, owner="p", name=MIB_TEXT), ("name", "1,048,576 characters")),
    "a 201-character run name": (lambda s: s.create_run(TINY, owner="p", name="n" * 201), ("name", "at most 200")),
    "a 1 MiB rename": (
        lambda s: s.rename_run(s.create_run(TINY, owner="p"), MIB_TEXT),
        ("name", "1,048,576 characters"),
    ),
    "a run name that is not text": (lambda s: s.create_run(TINY, owner="p", name=b"x"), ("name", "not text")),
    "a 1 MiB sweep name": (
        lambda s: sweeps.SweepSpec(base=TINY, knobs=(("epochs", (1,)),), name=MIB_TEXT),
        ("sweep_name", "1,048,576 characters"),
    ),
    "a 1 MiB sweep name in the store": (
        lambda s: s.create_sweep(
            owner="p",
            name=MIB_TEXT,
            mode="grid",
            knobs_json="[]",
            seeds=1,
            baseline=False,
            selection_json=None,
            trial_count=None,
            base_config=TINY,
        ),
        ("sweep_name", "1,048,576 characters"),
    ),
    "a 1 MiB values box": (lambda s: sweeps.parse_values("epochs", "1," * 2**19), ("epochs", "at most 4,000")),
    "a values box of 1001 values": (
        lambda s: sweeps.parse_values("seed", ",".join(map(str, range(1001)))),
        ("seed", "1,001 values", "at most 1000"),
    ),
    "a 1 MiB schema": (lambda s: CsvSchema.from_text(MIB_TEXT), ("csv_schema", "too large")),
    "a 1 MiB display name": (lambda s: participants.register(s, MIB_TEXT), ("display_name", "1048576 characters")),
}


@pytest.mark.parametrize("name", sorted(TEXT_CASES))
def test_long_text_is_refused_where_it_enters_and_nothing_is_stored(name, tmp_path):
    call, words = TEXT_CASES[name]
    store = RunStore(tmp_path / "runs.sqlite3")
    before = (len(store.list_runs()), len(store.list_sweeps()))
    with pytest.raises(UserInputError) as info:
        call(store)
    message = _one_line(info.value)
    assert all(word in message for word in words), message
    assert all(len(run.name) <= 200 for run in store.list_runs())
    assert len(store.list_sweeps()) == before[1] and not store.display_names()


def test_a_sweep_of_many_knobs_names_its_runs_within_the_limit(tmp_path):
    from dpcore.runs.jobs import JobRunner

    spec = sweeps.SweepSpec(
        base=TINY,
        knobs=tuple(
            (field, (value,))
            for field, value in [
                ("learning_rate", 0.123456789012345),
                ("l2_norm_clip", 1.23456789012345),
                ("noise_multiplier", 1.12345678901234),
                ("momentum", 0.123456789012345),
                ("activation", "tanh"),
                ("optimizer", "momentum"),
            ]
        ),
        name="n" * 150,
    )
    runner = JobRunner(store=RunStore(tmp_path / "runs.sqlite3"), workers=1)
    try:
        started = sweeps.start(runner, spec, owner="cli")
        runner.cancel_all(by=None)
    finally:
        runner.shutdown(wait=True)
    (run,) = RunStore(tmp_path / "runs.sqlite3").list_runs()
    assert run.id == started.run_ids[0] and len(run.name) == 200 and run.name.endswith("…")
    assert run.name.startswith("n" * 150 + ": lr 0.123457 · C 1.23457 · σ 1.12346")


# -- the catalogue: config text, share links and CSV bytes through the library ---------------------------


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and len(text) <= MAX_MESSAGE_CHARS, text[:MAX_MESSAGE_CHARS]
    return text


CONFIG_TEXT_CASES: dict[str, tuple[str, str]] = {
    "numbers as people write them are read": ("delta: 1e-5\nschema_version: '1'\nepochs: '3'\n", ""),
    "JSON numbers in quotes are read": ('{"delta": "1e-5", "batch_size": " 32 ", "schema_version": "1"}', ""),
    "a whole number written 1e2": ("batch_size: 1e2\n", ""),
    "a fractional epoch count": ("epochs: 2.5\n", "epochs"),
    "a text delta": ("delta: small\n", "delta"),
    "nested value": ("epochs: {a: {b: {c: 1}}}\n", "epochs"),
    "a 10 kB key": ('{"' + "k" * 10_000 + '": 1}', "unknown config key"),
    "a 10 kB YAML key": ("k" * 10_000 + ": 1\n", "YAML"),
}


@pytest.mark.parametrize("name", sorted(CONFIG_TEXT_CASES))
def test_config_text_is_read_or_refused_in_one_line(name):
    text, field = CONFIG_TEXT_CASES[name]
    if not field:
        config = DPConfig.from_text(text)
        assert config.delta in (1e-5, DPConfig().delta) and config.epochs in (3, DPConfig().epochs)
        return
    with pytest.raises(UserInputError) as info:
        DPConfig.from_text(text)
    assert field in _one_line(info.value)


SHARE_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "NUL byte in csv_path": ({"dataset": "csv", "csv_path": "a\x00b", "csv_label": "y"}, "csv_path"),
    "unknown parameter": ({"colour": "red"}, "unknown parameter"),
    "a 10 kB parameter name": ({"x" * 10_000: "1"}, "unknown parameter"),
    "a 5000-digit epoch count": ({"epochs": "9" * 5000}, "epochs"),
    "epochs 1e400": ({"epochs": "1e400"}, "epochs"),
    "infinite delta": ({"delta": "inf"}, "delta"),
    "NaN noise": ({"noise_multiplier": "nan"}, "noise_multiplier"),
    "a newer link": ({"dpx": "99"}, "schema_version"),
    "a maybe": ({"private": "maybe"}, "private"),
    "a 10 kB dataset name": ({"dataset": "d" * 10_000}, "dataset"),
    "a negative batch": ({"batch_size": "-5"}, "batch_size"),
    "a label of 5000 characters": ({"dataset": "csv", "csv_path": "a.csv", "csv_label": "l" * 5000}, "csv_label"),
}


@pytest.mark.parametrize("name", sorted(SHARE_CASES))
def test_share_links_are_refused_in_one_line(name):
    params, field = SHARE_CASES[name]
    with pytest.raises(UserInputError) as info:
        share.decode({"dpx": "1", **params})
    assert field in _one_line(info.value)


def test_share_links_read_numbers_as_people_write_them():
    assert share.decode({"dpx": "1", "delta": "1e-5", "epochs": " 4 "}) == DPConfig(delta=1e-5, epochs=4)


CSV_CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "UTF-16": ("utf16.csv", ("csv_path", "UTF-16")),
    "binary": ("binary.csv", ("csv_path", "binary")),
    "10,000 columns": ("wide.csv", ("csv_path", "10,001 columns")),
    "a 200,000-character line": ("long-line.csv", ("csv_path", "line of 200,004 characters")),
    "inf": ("inf.csv", ("csv_path", "'f2'", "inf")),
    "1e300 overflows float32": ("huge.csv", ("csv_path", "'f1'", "1e+300")),
    "-1e39 overflows float32": ("neg-huge.csv", ("csv_path", "'big'", "-1e+39")),
    "empty": ("empty.csv", ("csv_path", "empty")),
    "header only": ("header-only.csv", ("csv_path", "rows")),
    "one class": ("one-class.csv", ("csv_label", "one class")),
    "no header": ("no-header.csv", ("csv_path", "header")),
}


# The files' own schema: under it, a number beyond float32 is refused as a mistake in the file.
HOSTILE_SCHEMA = {"classes": ["yes", "no"], "numeric": {"f1": [0, 100]}}


@pytest.mark.parametrize("name", sorted(CSV_CASES))
def test_csv_files_are_refused_in_one_line_naming_the_problem(name, files):
    filename, words = CSV_CASES[name]
    config = DPConfig(
        dataset="csv", csv_path=str(files / filename), csv_label="decision", model="logreg", csv_schema=HOSTILE_SCHEMA
    )
    for attempt in (
        lambda: datasets.load(config),
        lambda: csv_files.parse_csv(
            (files / filename).read_bytes(), label="decision", name=filename, schema=config.csv_schema
        ),
    ):
        with pytest.raises(UserInputError) as info:
            attempt()
        text = _one_line(info.value)
        for word in words:
            assert word in text, (word, text)


@pytest.mark.parametrize("filename", ["inf.csv", "huge.csv", "neg-huge.csv"])
def test_a_derived_schema_clips_a_number_beyond_float32_in_its_own_record(filename, files):
    """Under a derived schema one record never stops the run: its number is clipped to the range like any other."""
    config = DPConfig(
        dataset="csv",
        csv_path=str(files / filename),
        csv_label="decision",
        model="logreg",
        batch_size=4,
        delta=1e-3,
        csv_preprocessing_epsilon=8.0,
    )
    dataset = datasets.load(config)
    x = np.concatenate([dataset.x_train, dataset.x_test])
    assert np.isfinite(x).all() and ((0 <= x) & (x <= 1)).all()
    assert dataset.info.n_train + dataset.info.n_test == 30 == len(x)


@pytest.mark.parametrize("line_end", ["\r", "\r\n"])
def test_csv_lines_ending_in_a_carriage_return_are_read_as_lines(line_end):
    from dpcore.csv_schema import CsvSchema

    # 600 rows: 1,202 commas in all, which were once counted as the header's columns.
    lf = _csv(["f1", "f2", "decision"], [[i, i % 3, "yes" if i % 2 else "no"] for i in range(600)])
    other = lf.replace(b"\n", line_end.encode())
    schema = CsvSchema.from_dict({"classes": ["no", "yes"], "numeric": {"f1": [0, 600], "f2": [0, 2]}})
    assert csv_files.csv_columns(other) == ("f1", "f2", "decision")
    expected = csv_files.parse_csv(lf, label="decision", schema=schema)
    got = csv_files.parse_csv(other, label="decision", schema=schema)
    assert got.info.n_train == expected.info.n_train > 0
    np.testing.assert_array_equal(got.x_train, expected.x_train)
    np.testing.assert_array_equal(got.y_test, expected.y_test)
    wide = b"\r".join([b",".join(b"c%d" % i for i in range(1447)) + b",decision"] + [b"0," * 1447 + b"yes"] * 12)
    with pytest.raises(UserInputError, match="1,448 columns"):
        csv_files.csv_columns(wide)  # the header alone is counted, not the whole file


WIDE_PROBE = """
import resource, sys
import numpy, pandas, sklearn.model_selection  # loaded before the limit, as a server has them
from dpcore.config import DPConfig
from dpcore.csv_schema import CsvSchema
from dpcore.data import datasets
from dpcore.errors import UserInputError
columns = [f"c{j}" for j in range(999)]
schema = CsvSchema.from_dict({"classes": ["no", "yes"], "categorical": {c: [f"v{k}" for k in range(50)] for c in columns}})
declared = DPConfig(dataset="csv", csv_path=sys.argv[1], csv_label="label", model="logreg", csv_schema=schema)
derived = declared.replace(csv_schema=None, csv_preprocessing_epsilon=100.0, max_train_examples=500)
pages = int(open("/proc/self/statm").read().split()[0])
limit = pages * resource.getpagesize() + 256 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for what, call in [
    ("describe", lambda: datasets.describe(declared)),
    ("load", lambda: datasets.load(declared)),
    *[(f"describe derived seed {seed}", lambda seed=seed: datasets.describe(derived.replace(seed=seed)).input_shape)
      for seed in range(3)],
    ("load 500", lambda: datasets.load(declared.replace(max_train_examples=500)).x_train.shape),
    ("n 500", lambda: datasets.train_size(declared.replace(max_train_examples=500))),
]:
    try:
        print(what, "->", call())
    except UserInputError as exc:
        print(what, "->", str(exc)[:100])
"""


def test_a_wide_csv_is_refused_before_encoding_and_encoded_in_float32_within_a_limited_address_space(tmp_path):
    # 999 columns of 50 categories: a one-hot input of 999 × 51 = 50,949 (the file, 1,100 rows
    # instead of 12,500). Read in a child whose address space may grow by 256 MiB only: the whole file
    # (56 million values) is refused from its rows and width, before encoding; 500 training rows (36.7
    # million values, 147 MB as float32) are encoded; a derived schema is described for three seeds.
    # The float64 one-hot of before needed over 512 MiB here.
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 50, size=(1100, 999))
    lines = [",".join(f"c{j}" for j in range(999)) + ",label"]
    lines += [",".join(f"v{v}" for v in row) + ("," + ("yes" if i % 2 else "no")) for i, row in enumerate(cells)]
    path = tmp_path / "wide.csv"
    path.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [sys.executable, "-c", WIDE_PROBE, str(path)],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    results = dict(line.split(" -> ", 1) for line in done.stdout.strip().splitlines())
    refusal = "csv_schema: wide.csv would encode to 1,100 rows × 50,949 model inputs = 56,043,900 feature values"
    assert results["describe"].startswith(refusal[:100]) and results["load"].startswith(refusal[:100]), results
    assert all(results[f"describe derived seed {seed}"].startswith("(") for seed in range(3)), results
    # A subset of about 500 rows (each row's own coin): encoded within the limit, as wide as the schema.
    n_500 = int(results["n 500"])
    assert results["load 500"] == f"({n_500}, 50949)" and 400 < n_500 < 600, results


@pytest.mark.parametrize(
    "path, words",
    [
        ("/dev/zero", ("csv_path", "regular file")),
        ("{files}/a-folder", ("csv_path", "folder")),
        ("{files}/gone.csv", ("csv_path", "does not exist")),
    ],
)
def test_csv_paths_that_are_not_files_are_refused(path, words, files):
    config = DPConfig(dataset="csv", csv_path=path.replace("{files}", str(files)), csv_label="decision")
    for attempt in (
        lambda: datasets.load(config),
        lambda: datasets.train_size(config),
        lambda: csv_files.csv_file_columns(config.csv_path),
    ):
        with pytest.raises(UserInputError) as info:
            attempt()
        assert all(word in _one_line(info.value) for word in words)


def test_quote_is_short_and_cheap_for_any_value():
    nested: list[Any] = []
    for _ in range(10_000):
        nested = [nested, nested]  # 2**10000 leaves if expanded
    for value in ("x" * 10**6, 10**10_000, nested, {"k" * 1000: [1] * 10**5}, b"\x00" * 10**6, float("nan")):
        assert len(safe_io.quote(value)) <= safe_io.QUOTE_CHARS


# -- stored weights: damaged archives are refused before anything is allocated ----------------------

# TINY's model (logistic regression on 8x8 digits) has weights of these shapes.
TINY_SHAPES = [(64, 10), (10,)]


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _npz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)
    return buffer.getvalue()


def _inflating_npz(shape: tuple[int, ...], *, zero_bytes: int, declared_size: Optional[int] = None) -> bytes:
    """A one-member archive whose arr_0.npy (a header for ``shape``, then ``zero_bytes`` zeros) is
    deflated to about a thousandth of its size: the deflate stream of 16 MiB of zeros, repeated.
    ``declared_size``: the size its zip entries claim instead of the true one."""
    header = _npy_header(shape)
    chunk = 16 * 2**20
    assert zero_bytes % chunk == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(header) + compressor.flush(zlib.Z_SYNC_FLUSH)
    zeros = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    stream = start + zeros * (zero_bytes // chunk) + compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    for _ in range(zero_bytes // chunk):
        crc = zlib.crc32(bytes(chunk), crc)
    size = len(header) + zero_bytes if declared_size is None else declared_size
    name = b"arr_0.npy"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(stream), size, len(name), 0) + name
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(stream), size, len(name), 0, 0, 0, 0, 0, 0
        )
        + name
    )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(stream), 0)
    return local + stream + central + end


def _pickled_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, np.array([{"a": 1}, None], dtype=object), np.zeros(10, np.float32))
    return buffer.getvalue()


def _tiny_weights(first: np.ndarray) -> bytes:
    return weights_blob([first, np.zeros(10, np.float32)])


WEIGHTS_CASES: dict[str, tuple[Callable[[], bytes], tuple[str, ...]]] = {
    "empty": (lambda: b"", ("not a weights archive",)),
    "garbage": (lambda: b"this is not a zip file " * 50, ("not a weights archive",)),
    "a pickled object array": (_pickled_npz, ("arr_0", "Python objects")),
    "NaN weights": (lambda: _tiny_weights(np.full((64, 10), np.nan, np.float32)), ("arr_0", "NaN or infinite")),
    "infinite weights": (lambda: _tiny_weights(np.full((64, 10), np.inf, np.float64)), ("NaN or infinite",)),
    "a header declaring 1 TiB": (
        lambda: _npz({"arr_0.npy": _npy_header((2**37,), "<f8") + bytes(64), "arr_1.npy": _npy_header((10,))}),
        ("arr_0", "137438953472"),
    ),
    "a 1 MiB blob inflating to 1 GiB": (
        lambda: _inflating_npz((2**28,), zero_bytes=2**30),
        ("take 1,0", "bytes, more than its model's weights can"),
    ),
    "a 16 KiB blob inflating to 16 MiB": (
        lambda: _inflating_npz((64, 10), zero_bytes=2**24),
        ("arr_0 declares 16,777,344 bytes where its header says 2,688",),
    ),
    "a 16 KiB blob inflating to 16 MiB, its entry claiming less": (
        lambda: _inflating_npz((64, 10), zero_bytes=2**24, declared_size=2688),
        ("arr_0 cannot be read", "CRC"),
    ),
    "the wrong shapes": (lambda: _tiny_weights(np.zeros((10, 64), np.float32)), ("arr_0", "(10, 64)", "(64, 10)")),
    "integers": (lambda: _tiny_weights(np.zeros((64, 10), np.int64)), ("arr_0", "int64")),
    "a third array": (
        lambda: weights_blob([np.zeros((64, 10)), np.zeros(10), np.zeros(3)]),
        ("3 arrays", "its model has 2"),
    ),
    "other members": (lambda: _npz({"evil.py": b"print(1)"}), ("evil.py",)),
    "an .npy header of 1 MB": (
        lambda: _npz({"arr_0.npy": b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**20) + b" " * 2**20}),
        ("arr_0", "header"),
    ),
    "a short array": (
        lambda: _npz({"arr_0.npy": _npy_header((64, 10)) + bytes(100), "arr_1.npy": _npy_header((10,)) + bytes(40)}),
        ("arr_0", "bytes"),
    ),
}


def _completed_run_with_weights(path: Path, blob: bytes) -> int:
    store = RunStore(path)
    run_id = store.create_run(TINY, owner="test", name="audited")
    store.record_epoch(run_id, _epoch(1))
    store.set_status(run_id, "completed")
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO run_weights (run_id, weights) VALUES (?, ?)", (run_id, blob))
    conn.close()
    return run_id


@pytest.mark.parametrize("name", sorted(WEIGHTS_CASES))
def test_audit_refuses_damaged_stored_weights_naming_the_run(name, tmp_path, capsys):
    make, words = WEIGHTS_CASES[name]
    path = tmp_path / "runs.sqlite3"
    run_id = _completed_run_with_weights(path, make())
    before = _fingerprint(path)
    assert main(["audit", "--run", str(run_id), "--store", str(path)]) == 2
    out, err = capsys.readouterr()
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: run: run {run_id}'s stored weights") and len(line) <= MAX_MESSAGE_CHARS, line
    assert all(word in line for word in words) and "Traceback" not in out + err, line
    assert _fingerprint(path) == before  # no audit report was written


def test_sound_stored_weights_read_back_exactly(tmp_path):
    path = tmp_path / "runs.sqlite3"
    first = np.arange(640, dtype=np.float32).reshape(64, 10)
    run_id = _completed_run_with_weights(path, _tiny_weights(first))
    loaded = RunStore(path).load_weights(run_id, expected_shapes=TINY_SHAPES)
    np.testing.assert_array_equal(loaded[0], first)
    assert [w.shape for w in loaded] == TINY_SHAPES and loaded[0].dtype == np.float32


@pytest.mark.parametrize(
    "declared_size, words",
    [(None, "arr_0 declares 1,073,741,952 bytes where its header says 2,688"), (2688, "arr_0 cannot be read")],
)
def test_an_archive_inflating_to_1_gib_is_refused_within_a_limited_address_space(declared_size, words, tmp_path):
    # Read in a child whose address space may grow by 256 MiB only, so inflating the member (as
    # np.load would) cannot fit, while reading its header and refusing it must. Without the model's
    # shapes the archive passes the size check (MAX_STORED_WEIGHT_VALUES), so its member is opened.
    path = tmp_path / "runs.sqlite3"
    bomb = _inflating_npz((64, 10), zero_bytes=2**30, declared_size=declared_size)
    assert len(bomb) < 2**21
    run_id = _completed_run_with_weights(path, bomb)
    probe = (
        "import resource, sys\n"
        "from dpcore.errors import UserInputError\n"
        "from dpcore.runs.store import RunStore\n"
        "store = RunStore(sys.argv[1], read_only=True)\n"
        "pages = int(open('/proc/self/statm').read().split()[0])\n"
        "limit = pages * resource.getpagesize() + 256 * 2**20\n"
        "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "try:\n"
        "    bytearray(2**30)\n"
        "    print('the limit did not hold')\n"
        "except MemoryError:\n"
        "    pass\n"
        "try:\n"
        "    store.load_weights(int(sys.argv[2]))\n"
        "    print('read')\n"
        "except UserInputError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(path), str(run_id)],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    (line,) = done.stdout.strip().splitlines()
    assert line.startswith(f"run: run {run_id}'s stored weights: {words}"), line


# -- stores: flagged rows, damage, dead owners, read-only listing --------------------------------


def _raw_update(path: Path, sql: str, *args: Any) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA ignore_check_constraints = ON")  # to store what the schema would refuse
    with conn:
        conn.execute(sql, args)
    conn.close()


@pytest.mark.parametrize(
    "column, value, reason",
    [
        ("config_json", json.dumps({**TINY.to_dict(), "schema_version": 99}), "schema_version"),
        ("config_json", json.dumps({**TINY.to_dict(), "epochs": 5000}), "epochs"),
        ("config_json", "{not json", "JSON"),
        ("created", "abc", "created"),
        ("examples_per_second", "abc", "examples_per_second"),
        ("status", "exploded", "status"),
    ],
)
def test_one_unreadable_run_is_flagged_by_id_while_the_others_list(column, value, reason, store, capsys):
    bad_id = RunStore(store).list_runs()[0].id
    _raw_update(store, f"UPDATE runs SET {column} = ? WHERE id = ?", value, bad_id)
    before = _fingerprint(store)

    assert main(["runs"]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.strip().splitlines()[1:]] == [str(bad_id + 1)]
    (warning,) = err.strip().splitlines()
    assert warning.startswith(f"warning: run {bad_id} cannot be read") and reason in warning
    assert main(["runs", "--json"]) == 0 and [r["id"] for r in json.loads(capsys.readouterr().out)] == [bad_id + 1]
    assert main(["runs", "--csv"]) == 0 and len(capsys.readouterr().out.strip().splitlines()) == 2

    library = RunStore(store)  # what the Compare and Export pages use
    assert [r.id for r in library.list_runs()] == [bad_id + 1]
    assert [u.id for u in library.read_runs().unreadable] == [bad_id]
    assert library.to_csv().count("\n") == 2
    with pytest.raises(UnreadableRunError, match=f"run {bad_id} cannot be read"):
        library.get_run(bad_id)
    assert _fingerprint(store) == before


def test_a_bad_epoch_value_flags_its_run(store, capsys):
    bad_id = RunStore(store).list_runs()[1].id
    _raw_update(store, "UPDATE epoch_metrics SET test_accuracy = 'abc' WHERE run_id = ?", bad_id)
    assert main(["runs"]) == 0
    out, err = capsys.readouterr()
    assert f"run {bad_id} cannot be read" in err and "test_accuracy" in err
    assert len(out.strip().splitlines()) == 2


def test_a_damaged_store_lists_what_it_can_and_says_what_to_do(files, tmp_path, capsys):
    path = tmp_path / "damaged.sqlite3"
    path.write_bytes((files / "damaged.sqlite3").read_bytes())
    before = _fingerprint(path)
    assert main(["runs", "--store", str(path)]) == 0
    out, err = capsys.readouterr()
    listed = [int(line.split()[0]) for line in out.strip().splitlines()[1:]]
    flagged = [line for line in err.strip().splitlines() if "cannot be read" in line]
    assert err.startswith(f"warning: store: '{path}' is damaged") and "recover" in err.splitlines()[0]
    assert len(listed) >= 30 and len(listed) + len(flagged) == 60 and "Traceback" not in err
    assert _fingerprint(path) == before
    assert len(RunStore(path).list_runs()) == len(listed)  # the pages read the same runs


def test_a_run_whose_process_is_gone_lists_as_interrupted_with_its_epochs(store, capsys):
    orphan = RunStore(store).create_run(TINY.replace(epochs=3), owner="cli")
    RunStore(store).record_epoch(orphan, _epoch(1))
    RunStore(store).record_epoch(orphan, _epoch(2))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = process_token().split(":")[0]
    _raw_update(
        store, "UPDATE runs SET status = 'running', process = ? WHERE id = ?", f"{host}:{gone.stdout.strip()}:", orphan
    )
    before = _fingerprint(store)
    assert main(["runs"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert row[0] == str(orphan) and "interrupted" in row and "2/3" in row
    assert _fingerprint(store) == before  # listing marks nothing in the file


def test_listing_opens_an_existing_store_read_only(store, capsys):
    before = _fingerprint(store)
    reader = RunStore(store, read_only=True)
    assert len(reader.list_runs()) == 2
    with pytest.raises(UserInputError, match="reading only"):
        reader.create_run(TINY)
    assert main(["runs", "--store", str(store), "--json"]) == 0 and len(json.loads(capsys.readouterr().out)) == 2
    assert _fingerprint(store) == before


def test_a_store_whose_side_files_cannot_be_made_is_still_listed(store, capsys):
    # As in a read-only folder: SQLite cannot create the write-ahead log beside the store (here a
    # folder stands in its way, which even root cannot write through); listing reads the file as is.
    Path(str(store) + "-wal").mkdir()
    assert main(["runs", "--store", str(store)]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 3 and not err
    with pytest.raises(UserInputError, match="store: cannot"):
        RunStore(store).create_run(TINY)


def test_a_missing_default_store_lists_nothing_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DPEXPLORER_STORE", str(tmp_path / "later" / "runs.sqlite3"))
    assert main(["runs"]) == 0 and "no runs" in capsys.readouterr().out
    assert not (tmp_path / "later").exists()


# -- random input at every parser --------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["1e-5", "nan", "inf", "-0", "1_000", " 7 ", "\x00", "csv", "pld"]),
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=25,
)
CONFIG_DICTS = st.dictionaries(
    st.one_of(st.sampled_from(sorted(FIELD_NAMES | {"schema_version"})), st.text(max_size=8)), NESTED, max_size=6
)


def _read_or_refuse(parse: Callable[[], Any]) -> None:
    try:
        parse()
    except UserInputError as exc:
        _one_line(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=400), filename=st.sampled_from(["", "c.json", "c.yaml", "c.yml"]))
def test_random_bytes_at_the_config_parser(raw, filename):
    _read_or_refuse(lambda: DPConfig.from_text(raw.decode("utf-8", errors="replace"), filename=filename))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=CONFIG_DICTS)
def test_random_nested_structures_at_the_config_readers(body):
    _read_or_refuse(lambda: DPConfig.from_dict(body))
    try:
        as_json = json.dumps(body)
    except (ValueError, TypeError):
        as_json = None
    if as_json is not None:
        _read_or_refuse(lambda: DPConfig.from_text(as_json, filename="c.json"))
        _read_or_refuse(lambda: DPConfig.from_text(as_json, filename="c.yaml"))  # JSON is YAML too


@settings(max_examples=300, deadline=None)
@given(
    params=st.dictionaries(
        st.one_of(st.sampled_from(sorted(FIELD_NAMES | {"dpx"})), st.text(max_size=8)),
        st.one_of(st.text(max_size=30), st.lists(st.text(max_size=10), max_size=3)),
        max_size=6,
    )
)
def test_random_share_links(params):
    _read_or_refuse(lambda: share.decode(params))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.one_of(
        st.binary(max_size=600),
        st.lists(
            st.lists(st.one_of(st.text(max_size=6), st.floats().map(repr)), min_size=1, max_size=4), max_size=30
        ).map(lambda rows: "\n".join(["a,b,decision"] + [",".join(r) for r in rows]).encode("utf-8", errors="replace")),
    ),
    label=st.sampled_from(["decision", "a", "nope"]),
)
def test_random_bytes_at_the_csv_parser(raw, label):
    _read_or_refuse(lambda: csv_files.csv_columns(raw))
    _read_or_refuse(lambda: csv_files.parse_csv(raw, label=label))


# -- processes: a full disk, simultaneous sweeps, SIGTERM --------------------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _write_config(path: Path, config: DPConfig) -> str:
    path.write_text(config.to_json(), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "content, words",
    [
        ("epochs: ten\n", ("epochs",)),
        ("batch_size: 5000\n", ("batch_size", "1437")),
        ("accountant: pld\nnoise_multiplier: 0.001\n", ("noise_multiplier", "PLD")),
    ],
)
def test_train_refuses_a_bad_config_before_importing_tensorflow(content, words, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    probe = (
        "import sys; from dpcore.cli import main; status = main(['train', '--config', sys.argv[1]]); "
        "print(status, 'tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(path)],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.stdout.split() == ["2", "False"], done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and all(word in line for word in words)


@pytest.mark.timeout(300)
def test_a_store_that_fills_up_mid_sweep_keeps_every_committed_epoch(tmp_path):
    path = tmp_path / "runs.sqlite3"
    RunStore(path)
    base = _write_config(tmp_path / "base.json", TINY.replace(epochs=300, max_train_examples=16, batch_size=16))
    # Files this process writes may not grow past 64 KiB (at least SQLite's 32 KiB shared-memory index,
    # and above a fresh store's last page, which a run's first write may touch): the store's log fills
    # up after some epochs. SIGXFSZ is ignored so the write fails instead.
    limit = 64 * 1024

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dpcore",
            "sweep",
            "--config",
            base,
            "--grid",
            "noise_multiplier=1,2",
            "--store",
            str(path),
        ],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=280,
        preexec_fn=small_disk,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: store: cannot write to '{path}'")
    assert "committed before is kept" in done.stdout and "cancelled" in done.stdout

    store = RunStore(path, read_only=True)
    assert store.damage is None
    first, second = store.list_runs()
    assert len(first.epochs) >= 1 and [m.epoch for m in first.epochs] == list(range(1, len(first.epochs) + 1))
    assert first.status in ("failed", "interrupted") and len(first.epochs) < 300
    assert not second.epochs and second.status in ("cancelled", "interrupted")


@pytest.mark.timeout(300)
def test_sweeps_started_at_once_all_finish(tmp_path):
    base = _write_config(tmp_path / "base.json", TINY)
    sweeps = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dpcore",
                "sweep",
                "--config",
                base,
                "--grid",
                f"seed={i}",
                "--workers",
                "2",
                "--store",
                str(tmp_path / f"runs{i}.sqlite3"),
            ],
            cwd=REPO_ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for i in range(4)
    ]
    try:
        results = [(sweep.communicate(timeout=280), sweep.returncode) for sweep in sweeps]
    finally:
        for sweep in sweeps:
            if sweep.poll() is None:
                sweep.kill()
    for (out, err), status in results:
        assert status == 0, err[-2000:]
        assert "completed" in out
    for i in range(4):
        (run,) = RunStore(tmp_path / f"runs{i}.sqlite3").list_runs()
        assert run.status == "completed" and run.config.seed == i


@pytest.mark.timeout(300)
def test_sigterm_stops_a_sweep_like_ctrl_c(tmp_path):
    path = tmp_path / "runs.sqlite3"
    base = _write_config(tmp_path / "base.json", TINY.replace(epochs=500, max_train_examples=32, batch_size=16))
    sweep = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dpcore",
            "sweep",
            "--config",
            base,
            "--grid",
            "noise_multiplier=1,2",
            "--store",
            str(path),
        ],
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and sweep.poll() is None:
            try:
                if path.exists() and any(r.epochs for r in RunStore(path, read_only=True).list_runs()):
                    break
            except StoreError:  # the sweep has created the file but not yet written its schema
                pass
            time.sleep(0.5)
        assert sweep.poll() is None, sweep.communicate()[1][-2000:]
        sweep.send_signal(signal.SIGTERM)
        out, err = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    first, second = RunStore(path).list_runs()
    assert first.status == "cancelled" and 1 <= len(first.epochs) < 500
    assert second.status == "cancelled" and not second.epochs
