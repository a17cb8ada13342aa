"""``sweep`` (train a grid of configs through the job runner) and ``runs`` (list stored runs)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from dpcore.cli import CliError, epoch_json, print_json
from dpcore.config import FIELD_NAMES, DPConfig, load_config_file, parse_field
from dpcore.errors import UserInputError
from dpcore.locations import default_store_path
from dpcore.privacy.explain import format_epsilon
from dpcore.privacy.selection import MAX_EXPECTED_TRIALS, SELECTION_DISTRIBUTIONS, SelectionSettings
from dpcore.room.server_settings import RAY_ADDRESS_FORMS, check_ray_address
from dpcore.runs.jobs import MAX_WORKERS
from dpcore.runs.records import MAX_NAME_CHARS, RunRecord
from dpcore.runs.run_table import CSV_COLUMNS, run_row
from dpcore.runs.store import RunStore
from dpcore.runs.sweeps import MAX_SEEDS, MAX_SWEEP_RUNS
from dpcore.safe_io import quote

if TYPE_CHECKING:
    from dpcore.runs.jobs import JobRunner
    from dpcore.runs.sweeps import SweepSpec

SWEEP_OWNER = "cli"
SELECTION_CHOICES = ("best", "private-selection")
POLL_SECONDS = 0.25
# How many unreadable runs `runs` names one by one before summing up the rest.
MAX_FLAGGED_RUNS = 20


def register(subparsers: Any) -> None:
    """Add the ``sweep`` and ``runs`` commands."""
    sweep = subparsers.add_parser(
        "sweep",
        help="train every combination of a grid of config values and store the runs",
        description="Train every combination of the --grid values on top of a base config, "
        "through the background job runner, and store each run.",
    )
    sweep.add_argument("--config", metavar="BASE", help="base config file (.json, .yaml); default: the defaults")
    sweep.add_argument(
        "--grid",
        metavar="FIELD=V1,V2,...",
        action="append",
        default=[],
        help="a config field and the values to try; repeat for more fields (the grid is their product, "
        f"at most {MAX_SWEEP_RUNS} runs)",
    )
    sweep.add_argument(
        "--store",
        metavar="PATH",
        help="run store file, created if missing in an existing folder "
        "(default: $DPEXPLORER_STORE or the user data folder)",
    )
    sweep.add_argument(
        "--workers",
        metavar="K",
        type=_worker_count,
        default=1,
        help=f"runs trained at the same time, 1 to {MAX_WORKERS} (default 1)",
    )
    sweep.add_argument(
        "--seeds",
        metavar="N",
        type=_seed_count,
        default=1,
        help=f"runs per setting with seeds base, base+1, ... (1 to {MAX_SEEDS}; default 1)",
    )
    sweep.add_argument(
        "--baseline",
        action="store_true",
        help="also train the non-private baseline of the base config (one per seed; ε = ∞)",
    )
    sweep.add_argument(
        "--name",
        metavar="NAME",
        default="",
        help=f"a name for the sweep and its runs (at most {MAX_NAME_CHARS} characters)",
    )
    sweep.add_argument(
        "--selection",
        choices=SELECTION_CHOICES,
        default="best",
        help="best: train every grid point (releasing the best costs their composition); "
        "private-selection: draw the number of trials K at random and train K random grid points "
        "(Papernot & Steinke's bound)",
    )
    sweep.add_argument(
        "--selection-distribution",
        choices=SELECTION_DISTRIBUTIONS,
        default="poisson",
        help="how K is drawn with private-selection (default poisson)",
    )
    sweep.add_argument(
        "--expected-trials",
        metavar="MEAN",
        type=_number("--expected-trials"),
        default=None,
        help="E[K] with private-selection (required there)",
    )
    sweep.add_argument(
        "--selection-shape",
        metavar="ETA",
        type=_number("--selection-shape"),
        default=None,
        help="η of the truncated negative binomial (1 geometric, 0 logarithmic)",
    )
    sweep.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: worker threads here (default); ray: each run a Ray task",
    )
    sweep.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        type=_ray_address,
        default=None,
        help=f"the Ray cluster with --backend ray: {RAY_ADDRESS_FORMS} (default: start a local Ray "
        "instance for this sweep and stop it after)",
    )
    sweep.set_defaults(handler=run_sweep)

    runs = subparsers.add_parser(
        "runs", help="list the stored runs", description="List the runs kept in the run store."
    )
    runs.add_argument(
        "--store",
        metavar="PATH",
        help="an existing run store file, opened read-only (default: $DPEXPLORER_STORE or the user data folder)",
    )
    runs.add_argument("--owner", metavar="OWNER", help="only runs of this owner (the CLI's sweeps use 'cli')")
    runs.add_argument(
        "--sweep", metavar="ID", type=_sweep_id, default=None, help="only the runs of this sweep, with its selection ε"
    )
    output = runs.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON array of runs on one line")
    output.add_argument("--csv", action="store_true", help="the runs table as CSV")
    runs.set_defaults(handler=list_runs)


def _ray_address(text: str) -> str:
    try:
        return check_ray_address(text, field="--ray-address")
    except UserInputError as exc:
        raise CliError(str(exc)) from None


def _seed_count(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"{quote(text)} is not a whole number from 1 to {MAX_SEEDS}")
    return int(text)


def _sweep_id(text: str) -> int:
    if not text.strip().isdigit() or len(text.strip()) > 18:
        raise argparse.ArgumentTypeError(f"{quote(text)} is not a sweep id (a whole number)")
    return int(text)


def _number(flag: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{quote(text)} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{quote(text)} is not a finite number")
        return value

    return parse


def _worker_count(text: str) -> int:
    """--workers: a whole number from 1 to MAX_WORKERS."""
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
            raise CliError(
                f"--grid {quote(spec)}: unknown config field {quote(name)} (allowed: {', '.join(sorted(FIELD_NAMES))})"
            )
        if name in grid:
            raise CliError(f"--grid: {name!r} is given twice; list all its values in one --grid")
        texts = [t.strip() for t in values_text.split(",", MAX_SWEEP_RUNS)]
        if len(texts) > MAX_SWEEP_RUNS:
            raise CliError(
                f"--grid {quote(name)}: more than {MAX_SWEEP_RUNS} values "
                f"(allowed: grids of at most {MAX_SWEEP_RUNS} runs; split the sweep)"
            )
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
        raise CliError(
            f"--grid: {shape} values make {size:,} runs (allowed: grids of at most "
            f"{MAX_SWEEP_RUNS} runs; split the sweep)"
        )


def sweep_spec(args: argparse.Namespace) -> SweepSpec:
    """The sweep the flags describe (grid, seeds, baseline, selection), checked as a whole."""
    from dpcore.runs.sweeps import SweepError, SweepSpec

    grid = parse_grid(args.grid)
    base = load_config_file(args.config) if args.config else DPConfig()
    private = args.selection == "private-selection"
    selection = None
    if private:
        if args.expected_trials is None:
            raise CliError(
                "--expected-trials: required with --selection private-selection "
                f"(allowed: an expected number of trials in [1, {MAX_EXPECTED_TRIALS:g}])"
            )
        try:
            selection = SelectionSettings(
                distribution=args.selection_distribution, mean=args.expected_trials, shape=args.selection_shape
            )
        except UserInputError as exc:
            raise CliError(
                f"--selection-{exc}"
                if exc.field in ("distribution", "shape")
                else f"--expected-trials: {str(exc).partition(': ')[2]}"
            ) from None
    elif args.expected_trials is not None or args.selection_shape is not None:
        raise CliError("--expected-trials/--selection-shape: only with --selection private-selection")
    try:
        return SweepSpec(
            base=base,
            knobs=tuple((name, tuple(values)) for name, values in grid.items()),
            seeds=args.seeds,
            baseline=args.baseline,
            mode="private_selection" if private else "grid",
            selection=selection,
            name=args.name,
        )
    except SweepError as exc:
        raise CliError(f"{_flag_of(exc)} {exc}") from None


def run_sweep(args: argparse.Namespace) -> int:
    """Train the sweep through a JobRunner with a progress bar; print a summary and its selection ε; 0 if every run trained
    all the epochs it was allowed (completed, or stopped by its ε budget).

    Everything is checked (grid size, configs, each run against n, the store, the backend) before the
    store is created or anything trains; a store that fills up stops the sweep with its message (exit 1).
    """
    from tqdm import tqdm  # noqa: F401 - imported before any worker thread starts (see JobRunner.submit)

    from dpcore.results import FINISHED_STATUSES
    from dpcore.runs import sweeps
    from dpcore.runs.capacity import ThroughputTable
    from dpcore.runs.jobs import JobRunner

    spec = sweep_spec(args)
    if args.ray_address is not None and args.backend != "ray":
        raise CliError("--ray-address: only with --backend ray")
    try:  # the projection on the interactive grid, as in the app: bounded, and quick for PLD
        preview = sweeps.preview(
            spec, throughput=ThroughputTable(), privacy=sweeps.preview_privacy(spec, interactive=True)
        )
    except UserInputError as exc:
        raise CliError(f"{_flag_of(exc)} {quote(str(exc), limit=300)[1:-1]}") from None
    store = RunStore(args.store)
    store.check_writable()
    backend = None
    if args.backend == "ray":
        from dpcore.runs.ray_backend import RayBackend

        backend = RayBackend(address=args.ray_address, local_cpus=args.workers)
    runner = JobRunner(store=store, workers=args.workers, backend=backend)
    print(f"projected: {preview.selection_text()}", file=sys.stderr)
    started = None
    try:
        started = sweeps.start(runner, spec, owner=SWEEP_OWNER)
        if started.run_ids:
            _follow(runner, list(started.run_ids))
    except BaseException as exc:
        runner.shutdown(wait=True)
        if backend is not None:
            backend.close()
        if isinstance(exc, UserInputError):
            raise CliError(f"{_flag_of(exc)} {exc}") from None
        raise
    runner.shutdown(wait=True)
    if backend is not None:
        backend.close()

    ids = list(started.run_ids)
    rows = []
    for point, job_id in zip(started.points, ids):
        job = runner.get(job_id)
        last = job.latest
        rows.append(
            [
                str(job_id),
                point.label(),
                job.state,
                "" if last is None else f"{last.test_accuracy:.4f}",
                "" if last is None else format_epsilon(last.epsilon),
                job.error or "",
            ]
        )
    drawn = (
        ""
        if started.trial_count is None
        else f"; K = {started.trial_count} trials drawn at random and recorded (never drawn again for this data)"
    )
    print(f"sweep {started.sweep_id}: {len(ids)} run(s) stored in {store.path}{drawn}")
    if rows:
        _print_table(["id", "config", "status", "test_accuracy", "epsilon", "error"], rows)
    record = store.get_sweep(started.sweep_id)
    print(f"selection: {sweeps.sweep_epsilon(record, store.list_runs()).text()}")
    if runner.store_failure:
        print(f"error: {runner.store_failure}", file=sys.stderr)
    return 0 if all(runner.get(i).state in FINISHED_STATUSES for i in ids) else 1


# The flag behind a sweep's own fields and its selection settings' (any other field is a --grid knob's).
_SWEEP_FLAGS = {
    "seeds": "--seeds",
    "selection": "--selection",
    "mean": "--expected-trials",
    "shape": "--selection-shape",
    "distribution": "--selection-distribution",
    "csv_path": "--config",
    "sweep_name": "--name",
    "csv_preprocessing_epsilon": "--config",
}


def _flag_of(exc: UserInputError) -> str:
    return _SWEEP_FLAGS.get(exc.field, "--grid")


def _follow(runner: JobRunner, ids: list[int]) -> None:
    """Show overall progress (in runs) on stderr until every job has ended."""
    from tqdm import tqdm

    with tqdm(
        total=len(ids),
        unit="run",
        file=sys.stderr,
        disable=None,
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n:.2f}/{total} runs [{elapsed}<{remaining}]",
    ) as bar:
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
    sweep_of = store.sweep_ids_of_runs()
    records = listing.runs
    sweep = None
    if args.sweep is not None:
        from dpcore.runs import sweeps

        try:
            sweep = store.get_sweep(args.sweep)
        except UserInputError as exc:
            raise CliError(f"--sweep {exc}") from None
        records = tuple(r for r in records if r.id in set(sweep.run_ids))
        chosen = sweeps.sweep_epsilon(sweep, records)
    if args.csv:
        keep = None if sweep is None else {r.id for r in records}
        sys.stdout.write(store.to_csv(owner=args.owner, run_ids=keep))
        return 0
    if args.json:
        runs_json = [{**run_to_json(r), "sweep_id": sweep_of.get(r.id)} for r in records]
        if sweep is None:
            print_json(runs_json)
        else:
            print_json(
                {
                    "sweep": {
                        "id": sweep.id,
                        "name": sweep.name,
                        "owner": sweep.owner,
                        "mode": sweep.mode,
                        "seeds": sweep.seeds,
                        "baseline": sweep.baseline,
                        "trial_count": sweep.trial_count,
                        **chosen.as_json(),
                    },
                    "runs": runs_json,
                }
            )
        return 0
    if not records:
        return _print_no_runs(args, store.path)
    rows = [
        [
            str(r["id"]),
            r["name"],
            r["created"],
            r["status"],
            r["dataset"],
            r["model"],
            f"{r['noise_multiplier']:g}" if r["private"] else "-",
            f"{r['epochs_done']}/{r['epochs']}",
            "" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}",
            format_epsilon(r["epsilon"], unknown=""),
            str(sweep_of.get(r["id"], "")),
        ]
        for r in map(run_row, records)
    ]
    _print_table(
        ["id", "name", "created", "status", "dataset", "model", "noise", "epochs", "test_accuracy", "epsilon", "sweep"],
        rows,
    )
    if sweep is not None:
        print(f"selection: {chosen.text()}")
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
        **{
            key: row[key]
            for key in ("test_accuracy", "validation_accuracy", "epsilon", "examples_per_second", "seconds")
        },
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
