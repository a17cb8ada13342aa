"""Warming a server: done in the background, every step tried, and the accountant's answers kept for the pages."""

from __future__ import annotations

import threading

from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.errors import UserInputError
from dpcore.privacy import accounting, composition
from dpcore.runs import warm_start

# A config no other test asks about, so the cache it fills is this test's.
CONFIG = DPConfig(noise_multiplier=1.2345, epochs=7)


def test_warming_returns_at_once_and_runs_in_the_background() -> None:
    release, runner_called = threading.Event(), threading.Event()

    def start_runner() -> None:  # stands for the job runner's start, held until the test lets it go
        runner_called.set()
        release.wait()

    accounting.clear_caches()
    warming = warm_start.begin(start_runner=start_runner, config=CONFIG)
    # begin has returned while the runner's start is still held: nothing waited for it.
    assert runner_called.wait(60) and not warming.done and warming.report(timeout=0) is None
    release.set()
    report = warming.report(timeout=300)
    assert warming.done and report is not None and report.errors == ()
    assert [name for name, _ in report.seconds] == list(warm_start.WARM_STEPS)
    # What Explore asks first is now answered from the cache.
    hits = composition.unit_rdp.cache_info().hits + composition.composed_epsilon.cache_info().hits
    accounting.epsilon_report_for_config(CONFIG, n=datasets.train_size(CONFIG), interactive=True)
    assert composition.unit_rdp.cache_info().hits + composition.composed_epsilon.cache_info().hits > hits


def test_a_step_that_fails_is_reported_and_the_others_still_run() -> None:
    def refused() -> None:
        raise UserInputError("workers", "0 is out of range", allowed="1 or more")

    report = warm_start.warm(start_runner=refused, config=CONFIG)
    assert report.errors == (("runner", "workers: 0 is out of range (allowed: 1 or more)"),)
    assert [name for name, _ in report.seconds] == list(warm_start.WARM_STEPS)


def test_the_accountant_is_warmed_where_the_pages_ask_it() -> None:
    """A served app's pages ask accountant processes: the warm-up asks the same questions through ``ask``."""
    asked: list[tuple[str, DPConfig, int, bool]] = []

    def ask(function, config, *, n, interactive):
        asked.append((function.__name__, config, n, interactive))
        return function(config, n=n, interactive=interactive)

    report = warm_start.warm(start_runner=lambda: None, config=CONFIG, ask=ask)
    assert report.errors == ()
    n = datasets.train_size(CONFIG)
    assert asked == [
        ("epsilon_report_for_config", CONFIG, n, True),
        ("epsilon_curve_for_config", CONFIG, n, True),
    ]
