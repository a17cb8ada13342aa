"""``sweep`` (train a grid of configs through the job runner) and ``runs`` (list stored runs)."""
from __future__ import annotations

import argparse
import itertools
import math
import sys
import typing
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional, Sequence

from dpcore.cli import CliError, print_json
from dpcore.config import FIELD_NAMES, DPConfig, load_config_file
from dpcore.errors import UserInputError
from dpcore.store import RunRecord, RunStore

if TYPE_CHECKING:
    from dpcore.jobs import JobRunner

SWEEP_OWNER = "cli"
POLL_SECONDS = 0.25

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null")


def register(subparsers: Any) -> None:
    """Add the ``sweep`` and ``runs`` commands."""
    sweep = subparsers.add_parser(
        "sweep", help="train every combination of a grid of config values and store the runs",
        description="Train every combination of the --grid values on top of a base config, "
        "through the background job runner, and store each run.",
    )
    sweep.add_argument("--config", metavar="BASE", help="base config file (.json, .yaml); default: the defaults")
    sweep.add_argument(
        "--grid", metavar="FIELD=V1,V2,...", action="append", default=[],
        help="a config field and the values to try; repeat for more fields (the grid is their product)",
    )
    sweep.add_argument("--store", metavar="PATH", help="run store file (default: $DPEXPLORER_STORE or the user data folder)")
    sweep.add_argument("--workers", metavar="K", type=_positive_int, default=1,
                       help="runs trained at the same time (default 1)")
    sweep.set_defaults(handler=run_sweep)

    runs = subparsers.add_parser("runs", help="list the stored runs",
                                 description="List the runs kept in the run store.")
    runs.add_argument("--store", metavar="PATH", help="run store file (default: $DPEXPLORER_STORE or the user data folder)")
    runs.add_argument("--owner", metavar="OWNER", help="only runs of this owner (the CLI's sweeps use 'cli')")
    output = runs.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON array of runs on one line")
    output.add_argument("--csv", action="store_true", help="the runs table as CSV")
    runs.set_defaults(handler=list_runs)


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


# -- grid parsing ----------------------------------------------------------------------

_FIELD_TYPES = typing.get_type_hints(DPConfig)


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``["noise_multiplier=0.5,1.0", "epochs=5"]`` -> field -> values, each parsed to the field's type."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values_text = spec.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CliError(f"--grid {spec!r}: expected FIELD=V1,V2,... (e.g. noise_multiplier=0.5,1.0)")
        if name not in FIELD_NAMES:
            raise CliError(f"--grid {spec!r}: unknown config field {name!r} (allowed: {', '.join(sorted(FIELD_NAMES))})")
        if name in grid:
            raise CliError(f"--grid: {name!r} is given twice; list all its values in one --grid")
        texts = [t.strip() for t in values_text.split(",")]
        if not texts or any(not t for t in texts):
            raise CliError(f"--grid {spec!r}: empty value; expected {name}=V1,V2,...")
        grid[name] = [_parse_value(name, text) for text in texts]
    return grid


def _parse_value(name: str, text: str) -> Any:
    """One grid value, read as the DPConfig field's type (``none`` for optional fields)."""
    hint = _FIELD_TYPES[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    kind = next((a for a in args if a is not type(None)), hint) if optional else hint
    lower = text.lower()
    if optional and lower in _NONE:
        return None
    try:
        if kind is bool:
            if lower in _TRUE:
                return True
            if lower in _FALSE:
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        expected = {bool: "true or false", int: "a whole number", float: "a number"}[kind]
        raise CliError(f"--grid {name}: {text!r} is not {expected}") from None
    return text


def grid_configs(base: DPConfig, grid: dict[str, list[Any]]) -> list[tuple[dict[str, Any], DPConfig]]:
    """Every combination of the grid applied to ``base`` (validated), in the order the flags were given."""
    names = list(grid)
    runs = []
    for values in itertools.product(*(grid[n] for n in names)):
        combo = dict(zip(names, values))
        try:
            runs.append((combo, base.replace(**combo)))
        except UserInputError as exc:
            setting = " ".join(f"{k}={v}" for k, v in combo.items())
            raise CliError(f"--grid {setting}: {exc}") from None
    return runs


# -- sweep -----------------------------------------------------------------------------


def run_sweep(args: argparse.Namespace) -> int:
    """Train the grid through a JobRunner with a progress bar; print a summary; 0 if every run trained
    all the epochs it was allowed (completed, or stopped by its ε budget)."""
    from dpcore.jobs import FINISHED_STATES, JobRunner

    base = load_config_file(args.config) if args.config else DPConfig()
    runs = grid_configs(base, parse_grid(args.grid))
    store = RunStore(args.store)
    runner = JobRunner(store=store, workers=args.workers)
    ids: list[int] = []
    try:
        for _, config in runs:
            ids.append(runner.submit(config, owner=SWEEP_OWNER))
        _follow(runner, ids)
    except BaseException:
        runner.shutdown(wait=True)
        raise
    runner.shutdown(wait=True)

    rows = []
    for (combo, _), job_id in zip(runs, ids):
        job = runner.get(job_id)
        last = job.latest
        rows.append([
            str(job_id),
            " ".join(f"{k}={v}" for k, v in combo.items()) or "(base config)",
            job.state,
            "" if last is None else f"{last.test_accuracy:.4f}",
            "" if last is None else _format_epsilon(last.epsilon),
            job.error or "",
        ])
    print(f"{len(ids)} run(s) stored in {store.path}")
    _print_table(["id", "config", "status", "accuracy", "epsilon", "error"], rows)
    return 0 if all(runner.get(i).state in FINISHED_STATES for i in ids) else 1


def _follow(runner: "JobRunner", ids: list[int]) -> None:
    """Show overall progress (in runs) on stderr until every job has ended."""
    from tqdm import tqdm

    with tqdm(total=len(ids), unit="run", file=sys.stderr, disable=None, dynamic_ncols=True,
              bar_format="{l_bar}{bar}| {n:.2f}/{total} runs [{elapsed}<{remaining}]") as bar:
        while True:
            done = runner.wait(ids, timeout=POLL_SECONDS)
            jobs = [runner.get(i) for i in ids]
            bar.n = sum(1.0 if j.done else j.progress for j in jobs)
            running = [j for j in jobs if j.state == "running"]
            if running:
                job = running[0]
                where = f"epoch {job.epoch}/{job.epochs_total}" if job.epoch else "starting"
                bar.set_description(f"run {job.id} {where}", refresh=False)
            bar.refresh()
            if done:
                return


# -- runs ------------------------------------------------------------------------------


def list_runs(args: argparse.Namespace) -> int:
    """Print the stored runs as a table, one JSON array (--json) or CSV (--csv)."""
    store = RunStore(args.store)
    if args.csv:
        sys.stdout.write(store.to_csv(owner=args.owner))
        return 0
    records = store.list_runs(owner=args.owner)
    if args.json:
        print_json([run_to_json(r) for r in records])
        return 0
    if not records:
        print(f"no runs in {store.path}")
        return 0
    rows = [
        [
            str(r.id), r.name, _iso(r.created), r.status, r.config.dataset, r.config.model,
            f"{r.config.noise_multiplier:g}" if r.config.private else "-", str(r.config.epochs),
            "" if r.test_accuracy is None else f"{r.test_accuracy:.4f}",
            "" if r.epsilon is None else _format_epsilon(r.epsilon),
        ]
        for r in records
    ]
    _print_table(["id", "name", "created", "status", "dataset", "model", "noise", "epochs",
                  "accuracy", "epsilon"], rows)
    return 0


def run_to_json(run: RunRecord) -> dict[str, Any]:
    """A stored run as JSON-safe data; ε = ∞ (baseline) and NaN losses are written as null."""
    return {
        "id": run.id, "name": run.name, "owner": run.owner, "created": _iso(run.created),
        "status": run.status, "error": run.error, "config": run.config.to_dict(),
        "test_accuracy": _finite(run.test_accuracy), "validation_accuracy": _finite(run.validation_accuracy),
        "epsilon": _finite(run.epsilon),
        "examples_per_second": _finite(run.examples_per_second), "seconds": _finite(run.seconds),
        "epochs": [
            {
                "epoch": m.epoch, "train_loss": _finite(m.train_loss), "train_accuracy": _finite(m.train_accuracy),
                "test_loss": _finite(m.test_loss), "test_accuracy": _finite(m.test_accuracy),
                "epsilon": _finite(m.epsilon), "seconds": _finite(m.seconds), "examples": m.examples,
                "validation_loss": _finite(m.validation_loss),
                "validation_accuracy": _finite(m.validation_accuracy),
                "noise_multipliers": list(m.noise_multipliers), "clip_norms": list(m.clip_norms),
            }
            for m in run.epochs
        ],
    }


# -- formatting ------------------------------------------------------------------------


def _finite(value: Optional[float]) -> Optional[float]:
    return value if value is not None and math.isfinite(value) else None


def _format_epsilon(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3f}"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns separated by two spaces; the last column is left out when it is empty."""
    keep = [i for i in range(len(header)) if i < len(header) - 1 or any(row[i] for row in rows)]
    table = [[header[i] for i in keep]] + [[row[i] for i in keep] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(keep))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
