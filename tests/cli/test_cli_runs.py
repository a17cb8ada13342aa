"""``python -m dpcore sweep|runs``: a real grid through the runner into the store, listings, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from dpcore.cli import main
from dpcore.cli.runs_commands import parse_grid
from dpcore.config import DPConfig
from dpcore.csv_schema import load_schema_file
from dpcore.privacy.selection import SelectionSettings, composition_epsilon, random_trials_epsilon
from dpcore.results import TRAIN_ACCURACY_KEY, TRAIN_LOSS_KEY, EpochMetrics, TrainResult
from dpcore.room import participants
from dpcore.runs.store import RunStore
from tests.conftest import REPO_ROOT

BASE = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=1, max_train_examples=128)
BASE_N = 128


@pytest.fixture
def base_file(tmp_path):
    path = tmp_path / "base.json"
    path.write_text(BASE.to_json(), encoding="utf-8")
    return path


def test_runs_label_training_figures_as_not_covered_by_epsilon(tmp_path, capsys):
    store = RunStore(tmp_path / "runs.sqlite3")
    ada, _ = participants.register(store, "Ada")
    run_id = store.create_run(BASE, name="labelled", owner=ada.owner)
    metrics = EpochMetrics(
        epoch=1,
        train_loss=0.25,
        train_accuracy=0.875,
        test_loss=0.5,
        test_accuracy=0.75,
        epsilon=2.0,
        seconds=1.0,
        examples=128,
    )
    store.record_epoch(run_id, metrics)
    store.finish_run(
        run_id,
        TrainResult(
            status="completed",
            error=None,
            config=BASE,
            epochs=(metrics,),
            examples_per_second=100.0,
            seconds=1.0,
            n_train=128,
        ),
    )

    assert main(["runs", "--store", str(store.path), "--json"]) == 0
    (epoch,) = json.loads(capsys.readouterr().out)[0]["epochs"]
    assert (epoch[TRAIN_LOSS_KEY], epoch[TRAIN_ACCURACY_KEY]) == (0.25, 0.875)
    assert "not_covered_by_epsilon" in TRAIN_LOSS_KEY and "not_covered_by_epsilon" in TRAIN_ACCURACY_KEY
    assert "train_loss" not in epoch and "train_accuracy" not in epoch
    assert (epoch["test_accuracy"], epoch["epsilon"]) == (0.75, 2.0)

    assert main(["runs", "--store", str(store.path)]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[-2:] == ["test_accuracy", "epsilon"]

    assert main(["runs", "--store", str(store.path), "--csv"]) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert (row[TRAIN_LOSS_KEY], row[TRAIN_ACCURACY_KEY], row["test_accuracy"]) == ("0.25", "0.875", "0.75")
    assert row["owner_name"] == "Ada"  # who ran it, by the name they joined with
    assert "train_loss" not in row and "train_accuracy" not in row


@pytest.mark.timeout(150)
def test_sweep_trains_the_grid_stores_it_and_runs_lists_it(base_file, tmp_path, capsys):
    store_path = tmp_path / "runs.sqlite3"
    status = main(
        [
            "sweep",
            "--config",
            str(base_file),
            "--grid",
            "noise_multiplier=0.8,4",
            "--grid",
            "epochs=1,2",
            "--store",
            str(store_path),
            "--workers",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out

    runs = RunStore(store_path).list_runs()
    settings = [(r.config.noise_multiplier, r.config.epochs) for r in runs]
    assert settings == [(0.8, 1), (0.8, 2), (4.0, 1), (4.0, 2)]
    assert all(r.status == "completed" and len(r.epochs) == r.config.epochs for r in runs)
    assert all(
        r.owner == "cli" and r.config.replace(noise_multiplier=BASE.noise_multiplier, epochs=BASE.epochs) == BASE
        for r in runs
    )
    assert runs[2].epsilon < runs[0].epsilon  # more noise, less ε
    lines = out.strip().splitlines()
    assert lines[1].split()[:5] == ["id", "config", "status", "test_accuracy", "epsilon"]
    assert "σ 4 · epochs 2" in lines[-2] and "completed" in lines[-2]
    assert f"{runs[3].epsilon:.3f}" in lines[-2]
    assert lines[0].startswith("sweep 1: 4 run(s)")
    composed = composition_epsilon([r.config for r in runs], n=BASE_N)
    assert lines[-1].startswith("selection: ") and f"composition ε = {composed:.3f}" in lines[-1]

    assert main(["runs", "--store", str(store_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [item["sweep_id"] for item in listed] == [1, 1, 1, 1]
    assert [item["id"] for item in listed] == [r.id for r in runs]
    assert [item["epsilon"] for item in listed] == [r.epsilon for r in runs]
    assert listed[1]["config"]["epochs"] == 2 and len(listed[1]["epochs"]) == 2

    assert main(["runs", "--store", str(store_path)]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].split()[:4] == ["id", "name", "created", "status"]
    assert [line.split()[0] for line in table[1:]] == [str(r.id) for r in runs]

    assert main(["runs", "--store", str(store_path), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["noise_multiplier"] for row in rows] == ["0.8", "0.8", "4.0", "4.0"]


@pytest.mark.timeout(120)
def test_sweep_with_a_failing_run_exits_1_and_reports_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DPEXPLORER_STORE", str(tmp_path / "env.sqlite3"))
    base = tmp_path / "csv.yaml"
    # A table cannot feed a CNN: the run starts and fails (the model needs images).
    base.write_text(
        DPConfig(
            dataset="csv",
            csv_path=str(REPO_ROOT / "assets" / "sample.csv"),
            csv_label="decision",
            model="cnn",
            csv_schema=load_schema_file(str(REPO_ROOT / "assets" / "sample.schema.yaml")),
        ).to_yaml(),
        encoding="utf-8",
    )
    assert main(["sweep", "--config", str(base), "--grid", "private=true"]) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "cnn" in out
    record = RunStore(tmp_path / "env.sqlite3").list_runs()
    assert [(r.status, r.config.private) for r in record] == [("failed", True)]
    assert "cnn" in record[0].error


def test_sweep_with_a_missing_csv_file_is_refused_before_anything_trains(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DPEXPLORER_STORE", str(tmp_path / "env.sqlite3"))
    base = tmp_path / "csv.yaml"
    base.write_text(
        DPConfig(dataset="csv", csv_path=str(tmp_path / "gone.csv"), csv_label="y", model="logreg").to_yaml(),
        encoding="utf-8",
    )
    assert main(["sweep", "--config", str(base), "--grid", "private=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gone.csv" in err and "does not exist" in err
    assert not (tmp_path / "env.sqlite3").exists()


def test_runs_on_an_empty_store_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DPEXPLORER_STORE", str(tmp_path / "empty.sqlite3"))
    assert main(["runs"]) == 0
    assert "no runs" in capsys.readouterr().out
    assert main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--grid", "epochs"], ["--grid", "FIELD=V1,V2"]),
        (["--grid", "=1,2"], ["--grid", "FIELD=V1,V2"]),
        (["--grid", "noise=1,2"], ["--grid", "unknown config field 'noise'"]),
        (["--grid", "epochs=two"], ["--grid epochs", "not a whole number"]),
        (["--grid", "private=maybe"], ["--grid private", "true or false"]),
        (["--grid", "epochs=1,,2"], ["--grid", "empty value"]),
        (["--grid", "epochs=0,1"], ["--grid epochs=0", "out of range"]),
        (["--grid", "noise_multiplier=1", "--grid", "noise_multiplier=2"], ["given twice"]),
        (["--grid", "dataset=csv"], ["--grid dataset=csv", "csv_path"]),
        (["--config", "MISSING.json"], ["config", "does not exist"]),
        (["--workers", "0"], ["--workers"]),
    ],
)
def test_sweep_mistakes_exit_2_with_one_line_and_train_nothing(argv, words, tmp_path, capsys):
    store_path = tmp_path / "runs.sqlite3"
    argv = [str(tmp_path / a) if a == "MISSING.json" else a for a in argv]
    assert main(["sweep", *argv, "--store", str(store_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err
    assert not store_path.exists() or RunStore(store_path).list_runs() == []


def test_grid_values_take_the_type_of_their_field():
    grid = parse_grid(
        [
            "private=false,TRUE",
            "max_train_examples=none,100",
            "learning_rate=1,0.5",
            "batch_size=16",
            "model=mlp,logreg",
        ]
    )
    assert grid == {
        "private": [False, True],
        "max_train_examples": [None, 100],
        "learning_rate": [1.0, 0.5],
        "batch_size": [16],
        "model": ["mlp", "logreg"],
    }
    assert type(grid["learning_rate"][0]) is float and type(grid["batch_size"][0]) is int


def test_the_recipe_keys_are_grid_fields_like_in_json_and_yaml():
    import itertools

    grid = parse_grid(
        [
            "noise_schedule=constant,time",
            "noise_decay_rate=0.01",
            "noise_floor=0.6",
            "adaptive_clipping=true",
            "clip_update=linear,geometric",
            "target_unclipped_quantile=0.9",
            "clip_learning_rate=0.001",
            "count_noise_multiplier=2.56",
            "epsilon_budget=none,2.5",
            "validation_fraction=0.2",
        ]
    )
    assert grid["epsilon_budget"] == [None, 2.5] and grid["adaptive_clipping"] == [True]
    configs = [DPConfig().replace(**dict(zip(grid, values))) for values in itertools.product(*grid.values())]
    assert len(configs) == 8
    assert all(DPConfig.from_json(c.to_json()) == c == DPConfig.from_yaml(c.to_yaml()) for c in configs)
    assert {(c.noise_schedule, c.clip_update, c.epsilon_budget) for c in configs} == {
        (s, u, b) for s in ("constant", "time") for u in ("linear", "geometric") for b in (None, 2.5)
    }


def test_module_entry_point_lists_runs_without_traceback(tmp_path):
    store_path = tmp_path / "runs.sqlite3"
    RunStore(store_path).create_run(BASE, name="queued one")
    done = subprocess.run(
        [sys.executable, "-m", "dpcore", "runs", "--store", str(store_path), "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(done.stdout)
    assert (run["name"], run["status"], run["test_accuracy"]) == ("queued one", "queued", None)
    bad = subprocess.run(
        [sys.executable, "-m", "dpcore", "sweep", "--grid", "nope"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: --grid")


@pytest.mark.timeout(200)
def test_sweep_with_seeds_and_a_baseline_and_runs_sweep_lists_that_sweep(base_file, tmp_path, capsys):
    store_path = tmp_path / "runs.sqlite3"
    assert (
        main(
            [
                "sweep",
                "--config",
                str(base_file),
                "--grid",
                "noise_multiplier=0.8",
                "--store",
                str(store_path),
                "--workers",
                "2",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "sweep",
                "--config",
                str(base_file),
                "--grid",
                "noise_multiplier=1.5",
                "--seeds",
                "2",
                "--baseline",
                "--name",
                "seeded",
                "--store",
                str(store_path),
                "--workers",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("sweep 2: 4 run(s)")
    runs = RunStore(store_path).list_runs()[1:]
    assert [(r.config.private, r.config.seed) for r in runs] == [(True, 0), (True, 1), (False, 0), (False, 1)]
    assert runs[0].name == "seeded: σ 1.5, seed 0"

    assert main(["runs", "--store", str(store_path), "--sweep", "2", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed["runs"]] == [r.id for r in runs]
    assert all(r["sweep_id"] == 2 for r in listed["runs"])
    sweep = listed["sweep"]
    assert (sweep["mode"], sweep["seeds"], sweep["baseline"], sweep["trial_count"]) == ("grid", 2, True, None)
    private = [r.config for r in runs if r.config.private]
    assert sweep["composition_epsilon"] == pytest.approx(composition_epsilon(private, n=BASE_N))
    assert sweep["single_run_epsilon"] == pytest.approx(runs[0].epsilon, rel=1e-6)
    assert sweep["random_trials_epsilon"] is None and sweep["selection_epsilon"] == sweep["composition_epsilon"]

    assert main(["runs", "--store", str(store_path), "--sweep", "2"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in table[1:-1]] == [str(r.id) for r in runs]
    assert table[-1].startswith("selection: single run ε")
    assert main(["runs", "--store", str(store_path), "--sweep", "2", "--csv"]) == 0
    assert len(list(csv.DictReader(io.StringIO(capsys.readouterr().out)))) == 4


@pytest.mark.timeout(200)
def test_a_private_selection_sweep_draws_its_trials_and_prints_the_random_trials_bound(base_file, tmp_path, capsys):
    store_path = tmp_path / "runs.sqlite3"
    argv = [
        "sweep",
        "--config",
        str(base_file),
        "--grid",
        "noise_multiplier=0.8,1.5",
        "--selection",
        "private-selection",
        "--selection-distribution",
        "truncated_negative_binomial",
        "--expected-trials",
        "1.5",
        "--selection-shape",
        "1",
        "--store",
        str(store_path),
    ]
    status = main(argv)
    out = capsys.readouterr().out
    assert status == 0, out
    store = RunStore(store_path)
    (sweep,) = store.list_sweeps()
    runs = store.list_runs()
    assert sweep.mode == "private_selection" and sweep.trial_count == len(runs) >= 1
    assert {r.config.noise_multiplier for r in runs} <= {0.8, 1.5} and [r.config.seed for r in runs] == list(
        range(len(runs))
    )
    selection = SelectionSettings("truncated_negative_binomial", 1.5, 1.0)
    bound = random_trials_epsilon([BASE.replace(noise_multiplier=s) for s in (0.8, 1.5)], n=BASE_N, selection=selection)
    assert f"K = {len(runs)} trials drawn at random and recorded" in out.splitlines()[0]
    last = out.splitlines()[-1]
    assert f"random-trials bound ε = {bound:.3f}" in last and "only the best trial released" in last
    assert "every trial shown" in last and f"composition of the K = {len(runs)} drawn trials" in last
    assert main(["runs", "--store", str(store_path), "--sweep", str(sweep.id), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["sweep"]
    assert listed["random_trials_epsilon"] == listed["selection_epsilon"] == pytest.approx(bound)
    assert listed["composition_epsilon"] == pytest.approx(composition_epsilon([r.config for r in runs], n=BASE_N))
    assert "only the best" in listed["selection_epsilon_covers"]
    assert "every run" in listed["composition_epsilon_covers"]
    assert listed["trial_cap"] == 1000 and listed["selection_delta"] == listed["delta"] + listed["cap_delta"]

    # The same sweep on the same data again draws no new K: refused in one line, nothing trained.
    assert main(argv) == 2
    projected, error = capsys.readouterr().err.strip().splitlines()
    assert projected.startswith("projected: ") and error.startswith("error: --selection selection: ")
    assert "a draw is used once" in error and len(RunStore(store_path).list_runs()) == len(runs)
    assert len(RunStore(store_path).list_selection_draws()) == 1


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--seeds", "0"], ["--seeds", "from 1 to 20"]),
        (["--seeds", "x"], ["--seeds", "not a whole number"]),
        (["--grid", "seed=1,2", "--seeds", "2"], ["--seeds", "seed is also a knob"]),
        (["--selection", "worst"], ["--selection", "invalid choice"]),
        (["--selection", "private-selection"], ["--expected-trials", "required"]),
        (["--selection", "private-selection", "--expected-trials", "0.5"], ["--expected-trials", "[1, 1000]"]),
        (["--selection", "private-selection", "--expected-trials", "nan"], ["--expected-trials", "not a finite"]),
        (
            ["--selection", "private-selection", "--expected-trials", "3", "--selection-shape", "1"],
            ["--selection-shape", "Poisson distribution has no shape"],
        ),
        (
            [
                "--selection",
                "private-selection",
                "--expected-trials",
                "3",
                "--selection-distribution",
                "truncated_negative_binomial",
                "--selection-shape",
                "-1",
            ],
            ["--selection-shape", "out of range"],
        ),
        (
            ["--selection", "private-selection", "--expected-trials", "3", "--seeds", "2"],
            ["--seeds", "private selection"],
        ),
        (
            ["--selection", "private-selection", "--expected-trials", "3", "--grid", "private=true,false"],
            ["private runs only"],
        ),
        (["--expected-trials", "3"], ["only with --selection private-selection"]),
        (
            ["--selection", "private-selection", "--expected-trials", "900", "--grid", "noise_multiplier=0.8,1.5"],
            ["--expected-trials mean: ", "more than 1,000 trials", "a smaller mean"],
        ),
        (["--ray-address", "auto"], ["--ray-address", "only with --backend ray"]),
        (["--backend", "spark"], ["--backend", "invalid choice"]),
    ],
)
def test_bad_sweep_flags_are_refused_in_one_line(flags, expected, base_file, tmp_path, capsys):
    store_path = tmp_path / "runs.sqlite3"
    assert main(["sweep", "--config", str(base_file), "--store", str(store_path), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    for fragment in expected:
        assert fragment in err
    assert not store_path.exists()


def test_runs_sweep_with_an_unknown_id_is_refused_in_one_line(tmp_path, capsys):
    store = RunStore(tmp_path / "runs.sqlite3")
    assert main(["runs", "--store", str(store.path), "--sweep", "7"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --sweep sweep: there is no sweep 7 in this store (allowed: the id of a stored sweep)"
    )
    assert main(["runs", "--store", str(store.path), "--sweep", "-1"]) == 2
    assert "--sweep" in capsys.readouterr().err
