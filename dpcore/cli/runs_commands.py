"""``sweep`` (train a grid of configs through the job runner) and ``runs`` (list stored runs)."""
from __future__ import annotations

import argparse
import itertools
import math
import sys
from typing import TYPE_CHECKING, Any, Sequence

from dpcore.cli import CliError, epoch_json, print_json
from dpcore.config import FIELD_NAMES, DPConfig, load_config_file, parse_field
from dpcore.errors import UserInputError
from dpcore.explain import format_epsilon
from dpcore.jobs import MAX_WORKERS
from dpcore.safe_io import quote
from dpcore.store import CSV_COLUMNS, RunRecord, RunStore, default_store_path, run_row

if TYPE_CHECKING:
    from dpcore.jobs import JobRunner

SWEEP_OWNER = "cli"
POLL_SECONDS = 0.25
# The most runs one sweep may queue: each is a training run and a row in the store.
MAX_SWEEP_RUNS = 1000
# How many unreadable runs `runs` names one by one before summing up the rest.
MAX_FLAGGED_RUNS = 20


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
        help="a config field and the values to try; repeat for more fields (the grid is their product, "
        f"at most {MAX_SWEEP_RUNS} runs)",
    )
    sweep.add_argument("--store", metavar="PATH",
                       help="run store file, created if missing in an existing folder "
                       "(default: $DPEXPLORER_STORE or the user data folder)")
    sweep.add_argument("--workers", metavar="K", type=_positive_int, default=1,
                       help=f"runs trained at the same time, 1 to {MAX_WORKERS} (default 1)")
    sweep.set_defaults(handler=run_sweep)

    runs = subparsers.add_parser("runs", help="list the stored runs",
                                 description="List the runs kept in the run store.")
    runs.add_argument("--store", metavar="PATH", help="an existing run store file, opened read-only "
                      "(default: $DPEXPLORER_STORE or the user data folder)")
    runs.add_argument("--owner", metavar="OWNER", help="only runs of this owner (the CLI's sweeps use 'cli')")
    output = runs.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON array of runs on one line")
    output.add_argument("--csv", action="store_true", help="the runs table as CSV")
    runs.set_defaults(handler=list_runs)


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{quote(text)} is not a whole number from 1 to {MAX_WORKERS}")
    return int(text)


# -- grid parsing ----------------------------------------------------------------------

def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``["noise_multiplier=0.5,1.0", "epochs=5"]`` -> field -> values, each parsed to the field's type."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values_text = spec.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CliError(f"--grid {quote(spec)}: expected FIELD=V1,V2,... (e.g. noise_multiplier=0.5,1.0)")
        if name not in FIELD_NAMES:
            raise CliError(f"--grid {quote(spec)}: unknown config field {quote(name)} "
                           f"(allowed: {', '.join(sorted(FIELD_NAMES))})")
        if name in grid:
            raise CliError(f"--grid: {name!r} is given twice; list all its values in one --grid")
        texts = [t.strip() for t in values_text.split(",", MAX_SWEEP_RUNS)]
        if len(texts) > MAX_SWEEP_RUNS:
            raise CliError(f"--grid {quote(name)}: more than {MAX_SWEEP_RUNS} values "
                           f"(allowed: grids of at most {MAX_SWEEP_RUNS} runs; split the sweep)")
        if not texts or any(not t for t in texts):
            raise CliError(f"--grid {quote(spec)}: empty value; expected {name}=V1,V2,...")
        try:
            grid[name] = [parse_field(name, text) for text in texts]
        except UserInputError as exc:
            raise CliError(f"--grid {exc}") from None
        _check_grid_size(grid)
    return grid


def _check_grid_size(grid: dict[str, list[Any]]) -> None:
    """Refuse a grid of more than MAX_SWEEP_RUNS combinations (counted, never listed)."""
    size = math.prod(len(values) for values in grid.values())
    if size > MAX_SWEEP_RUNS:
        shape = " x ".join(f"{len(values)} {name}" for name, values in grid.items())
        raise CliError(f"--grid: {shape} values make {size:,} runs (allowed: grids of at most "
                       f"{MAX_SWEEP_RUNS} runs; split the sweep)")


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


def check_runs(runs: list[tuple[dict[str, Any], DPConfig]]) -> None:
    """Check each grid point against its training set size n (batch size, δ < 1/n, the accountant's
    bounds) before anything trains, so a sweep is refused whole rather than failing run by run."""
    from dpcore import accounting, data

    for combo, config in runs:
        try:
            n = data.train_size(config)
            config.check_dataset_size(n)
            accounting.check_config(config, n=n)
        except UserInputError as exc:
            setting = " ".join(f"{k}={v}" for k, v in combo.items()) or "(base config)"
            raise CliError(f"--grid {quote(setting, limit=120)[1:-1]}: {exc}") from None


def run_sweep(args: argparse.Namespace) -> int:
    """Train the grid through a JobRunner with a progress bar; print a summary; 0 if every run trained
    all the epochs it was allowed (completed, or stopped by its ε budget).

    Everything is checked (grid size, configs, each run against n, the store) before the store is
    created or anything trains; a store that fills up stops the sweep with its message (exit 1).
    """
    from tqdm import tqdm  # noqa: F401 - imported before any worker thread starts (see JobRunner.submit)

    from dpcore.jobs import JobRunner
    from dpcore.store import FINISHED_STATUSES

    grid = parse_grid(args.grid)
    base = load_config_file(args.config) if args.config else DPConfig()
    runs = grid_configs(base, grid)
    check_runs(runs)
    store = RunStore(args.store)
    store.check_writable()
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
            "" if last is None else format_epsilon(last.epsilon),
            job.error or "",
        ])
    print(f"{len(ids)} run(s) stored in {store.path}")
    _print_table(["id", "config", "status", "test_accuracy", "epsilon", "error"], rows)
    if runner.store_failure:
        print(f"error: {runner.store_failure}", file=sys.stderr)
    return 0 if all(runner.get(i).state in FINISHED_STATUSES for i in ids) else 1


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
    """Print the stored runs as a table, one JSON array (--json) or CSV (--csv).

    The store is opened read-only. Damage and unreadable runs are reported on stderr, one line
    each, while every readable run is listed; a run whose process is gone shows as interrupted.
    """
    if args.store is None and not default_store_path().exists():
        return _print_no_runs(args, default_store_path())  # nothing stored yet; nothing is created
    store = RunStore(args.store, read_only=True)
    listing = store.read_runs(owner=args.owner)
    _warn_unreadable(listing.damage, listing.unreadable)
    if args.csv:
        sys.stdout.write(store.to_csv(owner=args.owner))
        return 0
    records = listing.runs
    if args.json:
        print_json([run_to_json(r) for r in records])
        return 0
    if not records:
        return _print_no_runs(args, store.path)
    rows = [
        [
            str(r["id"]), r["name"], r["created"], r["status"], r["dataset"], r["model"],
            f"{r['noise_multiplier']:g}" if r["private"] else "-", f"{r['epochs_done']}/{r['epochs']}",
            "" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}",
            format_epsilon(r["epsilon"], unknown=""),
        ]
        for r in map(run_row, records)
    ]
    _print_table(["id", "name", "created", "status", "dataset", "model", "noise", "epochs",
                  "test_accuracy", "epsilon"], rows)
    return 0


def _print_no_runs(args: argparse.Namespace, path: Any) -> int:
    if args.csv:
        sys.stdout.write(",".join(CSV_COLUMNS) + "\n")
    elif args.json:
        print_json([])
    else:
        print(f"no runs in {path}")
    return 0


def _warn_unreadable(damage: Optional[str], unreadable: Sequence[Any]) -> None:
    if damage:
        print(f"warning: store: {damage}", file=sys.stderr)
    for bad in unreadable[:MAX_FLAGGED_RUNS]:
        print(f"warning: run {bad.id} cannot be read and is left out: {bad.reason}", file=sys.stderr)
    if len(unreadable) > MAX_FLAGGED_RUNS:
        print(f"warning: {len(unreadable) - MAX_FLAGGED_RUNS} more runs cannot be read", file=sys.stderr)


def run_to_json(run: RunRecord) -> dict[str, Any]:
    """A stored run for ``print_json`` (which writes ε = ∞ of a baseline and NaN losses as null).

    Each epoch's training loss and accuracy are named ``*_not_covered_by_epsilon``: they are
    computed on the private training batches without noise (``results.TRAIN_METRICS_NOTE``).
    """
    row = run_row(run)
    return {
        **{key: row[key] for key in ("id", "name", "owner", "created", "status", "error")},
        "config": run.config.to_dict(),
        **{key: row[key] for key in ("test_accuracy", "validation_accuracy", "epsilon", "examples_per_second", "seconds")},
        "epochs": [epoch_json(m) for m in run.epochs],
    }


# -- formatting ------------------------------------------------------------------------


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns separated by two spaces; the last column is left out when it is empty."""
    keep = [i for i in range(len(header)) if i < len(header) - 1 or any(row[i] for row in rows)]
    table = [[header[i] for i in keep]] + [[row[i] for i in keep] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(keep))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
