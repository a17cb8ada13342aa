"""bench/workshop_lesson.py played with three participants, as its command line runs it: one JSON line in
which every accepted run and sweep completed and nobody saw an error."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_the_lesson_bench_plays_a_room_of_three_and_prints_one_json_line() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "bench/workshop_lesson.py",
            *("--participants", "3", "--interval", "0.5", "--moves", "2", "--reference-moves", "2"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    result = json.loads(lines[0])
    assert result["participants"] == 3
    assert result["errors"] == 0, result["error_messages"]
    assert result["refused_by_limits"] == 0, result["refusal_messages"]
    # Participant 0 sweeps (two σ, two seeds): 3 runs and 4 sweep runs.
    assert (result["sweeps_submitted"], result["sweeps_accepted"], result["sweeps_completed"]) == (1, 1, 1)
    assert result["runs_submitted"] == result["runs_accepted"] == result["runs_completed"] == 7
    assert result["run_statuses"] == {"completed": 7}
    assert result["slider_changes"] == 6
    assert 0 < result["slider_to_eps_p50_s"] <= result["slider_to_eps_p95_s"]
    assert result["page_load_p50_s"] > 0
    assert set(result["page_load_p50_by_page_s"]) == {"Explore", "Train", "Sweep", "Compare", "Export"}
    assert result["lone_slider_to_eps_p50_s"] > 0
    expected_keys = {"sweeps_submitted", "wall_s", "room_to_lone_p50_ratio", "target_met", "load_average_1min"}
    assert expected_keys <= set(result)
