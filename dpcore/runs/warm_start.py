"""Warming a server as it starts, in the background: the first visitor's ε and the first run should be as
fast as later ones.

A fresh server is cold in three places: the job runner (its training processes import TensorFlow and
trace the default config's step), the accountant (dp_accounting's first RDP, in an accountant process
that has to start) and the default dataset. ``begin`` does each once, in that order, in a daemon
thread, so whatever asks first (a page, a run) finds it done or in progress instead of starting it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.errors import describe_exception
from dpcore.privacy import accounting

WARM_STEPS = ("runner", "accountant", "dataset")
# How the accountant is asked: here, or (a served app) in the accountant processes its pages ask.
Ask = Callable[..., object]


def ask_here(function: Callable[..., object], *args: object, **kwargs: object) -> object:
    """Ask the accountant in this process (the default ``ask``)."""
    return function(*args, **kwargs)


@dataclass(frozen=True)
class WarmStartReport:
    """What warming did: the seconds of each step that ran, and why a step failed (the server serves regardless)."""

    seconds: tuple[tuple[str, float], ...]
    errors: tuple[tuple[str, str], ...]


def warm(
    *, start_runner: Callable[[], object], config: Optional[DPConfig] = None, ask: Ask = ask_here
) -> WarmStartReport:
    """Start the job runner and its backend (``start_runner``, e.g. ``JobRunner.prepare``: the training
    processes then warm up on their own), then compute ``config``'s projected ε and ε-per-epoch curve as
    Explore does (through ``ask``, where Explore's questions are answered), then load its dataset; a
    failed step is kept in the report and the next still runs."""
    config = config if config is not None else DPConfig()
    seconds: list[tuple[str, float]] = []
    errors: list[tuple[str, str]] = []

    def accountant() -> None:
        n = datasets.train_size(config)
        ask(accounting.epsilon_report_for_config, config, n=n, interactive=True)
        ask(accounting.epsilon_curve_for_config, config, n=n, interactive=True)

    steps: dict[str, Callable[[], object]] = {
        "runner": start_runner,
        "accountant": accountant,
        "dataset": lambda: datasets.load(config),
    }
    for name in WARM_STEPS:
        started = time.perf_counter()
        try:
            steps[name]()
        except Exception as exc:  # noqa: BLE001 - a cold part only costs its first user the time it saves
            errors.append((name, describe_exception(exc)))
        seconds.append((name, time.perf_counter() - started))
    return WarmStartReport(seconds=tuple(seconds), errors=tuple(errors))


class WarmStart:
    """One warming running in its own daemon thread; ``report`` waits for it."""

    def __init__(
        self, *, start_runner: Callable[[], object], config: Optional[DPConfig] = None, ask: Ask = ask_here
    ) -> None:
        self._report: Optional[WarmStartReport] = None
        self._thread = threading.Thread(
            target=self._run, args=(start_runner, config, ask), name="dpcore-warm-start", daemon=True
        )
        self._thread.start()

    def _run(self, start_runner: Callable[[], object], config: Optional[DPConfig], ask: Ask) -> None:
        self._report = warm(start_runner=start_runner, config=config, ask=ask)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def report(self, *, timeout: Optional[float] = None) -> Optional[WarmStartReport]:
        """The report once warming has ended (waiting up to ``timeout`` seconds; None: for as long as it takes),
        else None."""
        self._thread.join(timeout)
        return self._report


def begin(*, start_runner: Callable[[], object], config: Optional[DPConfig] = None, ask: Ask = ask_here) -> WarmStart:
    """Warm the server in the background (``warm`` in a daemon thread) and return at once."""
    return WarmStart(start_runner=start_runner, config=config, ask=ask)
