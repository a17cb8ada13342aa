"""Compute estimates, measured speeds and queue projections (no training: speeds are recorded by hand)."""

from __future__ import annotations

import pytest

from dpcore.config import DPConfig
from dpcore.room.server_settings import RunLimits
from dpcore.runs.capacity import (
    CapacityError,
    ComputeEstimate,
    QueueEstimate,
    ThroughputTable,
    check_compute,
    check_participant_limits,
    check_sweep_size,
    format_duration,
    project_queue,
)

CNN = DPConfig(dataset="fashion_mnist", model="cnn", batch_size=1, epochs=1000)


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.01, "0.01 s"),
        (5.5, "5.5 s"),
        (45, "45 s"),
        (720, "12 min"),
        (3.5 * 3600, "3.5 h"),
        (1.2 * 86400, "1.2 days"),
    ],
)
def test_durations_read_naturally(seconds, text):
    assert format_duration(seconds) == text


def test_speeds_come_from_runs_of_the_same_kind_at_the_nearest_batch_size():
    table = ThroughputTable()
    assert table.rate(CNN) is None
    table.add(CNN.replace(batch_size=256), examples=60_000, seconds=30.0)  # 2000/s
    table.add(CNN.replace(batch_size=2), examples=6_000, seconds=10.0)  # 600/s
    table.add(CNN.replace(batch_size=2), examples=5_000, seconds=10.0)  # 500/s
    table.add(CNN.replace(private=False, noise_multiplier=0.0), examples=60_000, seconds=6.0)
    table.add(CNN, examples=0, seconds=1.0)  # nothing processed: not a measurement
    assert table.rate(CNN) == 550.0  # batch 1 is nearest to 2: the median of those two runs
    assert table.rate(CNN.replace(batch_size=512)) == 2000.0
    assert table.rate(CNN.replace(private=False, noise_multiplier=0.0)) == 10_000.0
    assert table.rate(CNN.replace(model="lenet5")) is None


def test_the_compute_cap_names_the_estimate_and_the_cap():
    slow = ComputeEstimate(n_train=60_000, epochs=1000, examples_per_second=570.0)
    assert slow.example_passes == 60_000_000 and slow.seconds == pytest.approx(60_000_000 / 570)
    with pytest.raises(CapacityError) as info:
        check_compute(slow, RunLimits(max_example_passes=6_000_000))
    text = str(info.value)
    assert info.value.field == "compute"
    assert "60,000 examples × 1,000 epochs = 60,000,000 example passes, about 1.2 days" in text
    assert "570 examples/s (an estimate)" in text and "at most 6,000,000 example passes per run" in text
    assert "at most 100 epochs of these 60,000 examples" in text
    assert (
        "raises example passes per run to 60,000,000 in the Host panel, or with DPEXPLORER_MAX_EXAMPLE_PASSES" in text
    )
    check_compute(slow, RunLimits(max_example_passes=None))
    check_compute(ComputeEstimate(n_train=1437, epochs=10, examples_per_second=None), RunLimits())


def test_participant_limits_count_entries_and_name_what_the_host_would_raise():
    limits = RunLimits(max_running=1, max_queued=3)
    for active in range(4):
        check_participant_limits(active=active, limits=limits)
    with pytest.raises(CapacityError) as info:
        check_participant_limits(active=4, limits=limits)
    text = str(info.value)
    assert info.value.field == "runs" and "already have 4 runs or sweeps queued or training" in text
    assert "1 training and 3 waiting per participant, a sweep counting once" in text
    assert (
        "raises runs waiting per participant to 4 in the Host panel, or with DPEXPLORER_MAX_QUEUED at start-up" in text
    )
    with pytest.raises(CapacityError, match="these 3 runs and your 2 runs or sweeps") as info:
        check_participant_limits(active=2, limits=limits, adding=3)
    assert "runs waiting per participant to 4 " in str(info.value)


def test_a_sweep_may_hold_at_most_the_servers_runs_per_sweep():
    check_sweep_size(24, RunLimits())
    with pytest.raises(CapacityError) as info:
        check_sweep_size(30, RunLimits(max_sweep_runs=24))
    text = str(info.value)
    assert info.value.field == "sweep_runs" and "this sweep has 30 runs" in text and "at most 24 runs per sweep" in text
    assert "raises runs per sweep to 30 in the Host panel, or with DPEXPLORER_MAX_SWEEP_RUNS at start-up" in text


def test_the_queue_projection_follows_workers_and_per_owner_limits():
    # Two workers, both busy (10 s and 30 s left); three waiting runs of 20 s each.
    order = [(1, "ada", 20.0), (2, "bob", 20.0), (3, "ada", 20.0)]
    times = project_queue(order, running=[("cyd", 10.0), ("ada", 30.0)], workers=2, max_running=None)
    assert times == {1: (10.0, 30.0), 2: (30.0, 50.0), 3: (30.0, 50.0)}
    # One run at a time per owner: Ada's first waits for her running one to end.
    times = project_queue(order, running=[("cyd", 10.0), ("ada", 30.0)], workers=2, max_running=1)
    assert times[1] == (30.0, 50.0) and times[3][0] >= 50.0
    # An unknown duration makes every later time unknown, never guessed.
    times = project_queue([(1, "ada", None), (2, "bob", 5.0)], running=[], workers=1, max_running=None)
    assert times == {1: (0.0, None), 2: (None, None)}
    assert (
        "no time estimate yet"
        in QueueEstimate(position=2, waiting=2, start_in_seconds=None, finish_in_seconds=None).text()
    )
