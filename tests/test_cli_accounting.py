"""``python -m dpcore epsilon|calibrate``: values, JSON output, one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dpcore.cli import main
from tests.conftest import REPO_ROOT

TUTORIAL = ["--n", "60000", "--batch-size", "250", "--epochs", "4", "--delta", "1e-5"]


def test_epsilon_json_has_the_promised_keys(capsys):
    assert main(["epsilon", *TUTORIAL, "--noise-multiplier", "1.2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["epsilon"] == pytest.approx(0.7036844344144685, rel=1e-6)
    assert (data["delta"], data["accountant"], data["sampling"], data["steps"]) == (1e-5, "rdp", "poisson", 960)


def test_epsilon_text_names_the_sampling_assumption(capsys):
    assert main(["epsilon", *TUTORIAL, "--noise-multiplier", "1.2", "--sampling", "shuffle"]) == 0
    out = capsys.readouterr().out
    assert "ε = 8.603287 at" in out and "no amplification" in out


def test_calibrate_json_meets_the_target(capsys):
    assert main(["calibrate", *TUTORIAL, "--target-epsilon", "1.0", "--accountant", "pld", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["epsilon"] <= 1.0 and 0.5 < data["noise_multiplier"] < 1.2


@pytest.mark.parametrize(
    "argv, flag",
    [
        (
            ["epsilon", "--n", "x", "--batch-size", "2", "--epochs", "1", "--delta", "1e-5", "--noise-multiplier", "1"],
            "--n",
        ),
        (["epsilon", *TUTORIAL[:-2], "--delta", "2", "--noise-multiplier", "1"], "--delta"),
        (["epsilon", *TUTORIAL, "--noise-multiplier", "-1"], "--noise-multiplier"),
        (["epsilon", *TUTORIAL, "--noise-multiplier", "nan"], "--noise-multiplier"),
        (["epsilon", *TUTORIAL], "--noise-multiplier"),
        (
            [
                "epsilon",
                "--n",
                "10",
                "--batch-size",
                "250",
                "--epochs",
                "1",
                "--delta",
                "1e-5",
                "--noise-multiplier",
                "1",
            ],
            "--batch-size",
        ),
        (["epsilon", *TUTORIAL, "--noise-multiplier", "1", "--accountant", "moments"], "--accountant"),
        (["calibrate", *TUTORIAL, "--target-epsilon", "0"], "--target-epsilon"),
        (
            [
                "calibrate",
                "--n",
                "100",
                "--batch-size",
                "100",
                "--epochs",
                "1000",
                "--delta",
                "1e-5",
                "--target-epsilon",
                "1e-5",
            ],
            "--target-epsilon",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_flag(argv, flag, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and "Traceback" not in err


def test_module_entry_point_runs_without_traceback():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dpcore",
            "epsilon",
            "--n",
            "1437",
            "--batch-size",
            "64",
            "--epochs",
            "5",
            "--delta",
            "1e-5",
            "--noise-multiplier",
            "1.1",
            "--json",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["steps"] == 113
    bad = subprocess.run(
        [sys.executable, "-m", "dpcore", "epsilon", "--n", "-3"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--n" in bad.stderr
