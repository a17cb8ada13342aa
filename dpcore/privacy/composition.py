"""Composing a run's noise into ε: RDP added over steps, PLDs composed, each answer cached.

One step's RDP may be computed in accountant processes (``compute_rdp_in_processes``: a served app
keeps its GIL for its pages); a private CSV preprocessing's Gaussian release and its thresholds'
share of δ are composed here with training's events.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Optional

import dp_accounting
import numpy as np
from dp_accounting.pld import privacy_loss_distribution

from dpcore.child_process import ChildProcess
from dpcore.errors import UserInputError
from dpcore.privacy.events import Blocks, epsilon_from_rdp, event_rdp

if TYPE_CHECKING:
    from multiprocessing.connection import Connection


# The part of δ that the thresholds of a private CSV preprocessing spend: a value only one record
# holds is released with probability at most this, over all of that record's columns.
PREPROCESSING_THRESHOLD_SHARE = 0.1


def _threshold_terms(delta: float, preprocessing_noise: float) -> tuple[float, float]:
    """(δ for the accountant, ε to add): with private preprocessing its thresholds spend δ_t of δ and add
    log(1 / (1 − δ_t)) to ε (see ``preprocessing_cost``); without, (δ, 0)."""
    if preprocessing_noise <= 0:
        return delta, 0.0
    threshold_delta = PREPROCESSING_THRESHOLD_SHARE * delta
    return delta - threshold_delta, -math.log1p(-threshold_delta)


@lru_cache(maxsize=4096)
def composed_epsilon(
    q: float, blocks: Blocks, delta: float, accountant: str, grid: float, preprocessing_noise: float = 0.0
) -> float:
    delta, extra = _threshold_terms(delta, preprocessing_noise)
    if accountant == "rdp":
        rdp = _rdp_base(preprocessing_noise) + sum(rdp_per_unit(q, sigma) * count for sigma, count in blocks)
        return epsilon_from_rdp(rdp, delta=delta) + extra
    composed = pld_per_unit(1.0, preprocessing_noise, grid) if preprocessing_noise > 0 else None
    for sigma, count in blocks:
        part = pld_per_unit(q, sigma, grid).self_compose(count)
        composed = part if composed is None else composed.compose(part)
    return _pld_epsilon(composed, delta) + extra


@lru_cache(maxsize=1024)
def preprocessing_epsilon(preprocessing_noise: float, delta: float, accountant: str, grid: float) -> float:
    """ε of the private preprocessing alone: one Gaussian release, thresholds included."""
    accountant_delta, extra = _threshold_terms(delta, preprocessing_noise)
    if accountant == "rdp":
        return epsilon_from_rdp(_rdp_base(preprocessing_noise), delta=accountant_delta) + extra
    return _pld_epsilon(pld_per_unit(1.0, preprocessing_noise, grid), accountant_delta) + extra


@lru_cache(maxsize=512)
def curve_epsilons(
    q: float,
    epoch_blocks: tuple[Blocks, ...],
    delta: float,
    accountant: str,
    grid: float,
    preprocessing_noise: float = 0.0,
) -> tuple[float, ...]:
    delta, extra = _threshold_terms(delta, preprocessing_noise)
    curve = []
    if accountant == "rdp":
        # Counts per σ so far, summed as in composed_epsilon: the last epoch's ε is bit for bit the run's.
        counts: dict[float, int] = {}
        base = _rdp_base(preprocessing_noise)
        for blocks in epoch_blocks:
            for sigma, count in blocks:
                counts[sigma] = counts.get(sigma, 0) + count
            rdp = base + sum(rdp_per_unit(q, sigma) * count for sigma, count in counts.items())
            curve.append(epsilon_from_rdp(rdp, delta=delta) + extra)
        return tuple(curve)
    parts: dict[tuple[float, int], privacy_loss_distribution.PrivacyLossDistribution] = {}
    composed = pld_per_unit(1.0, preprocessing_noise, grid) if preprocessing_noise > 0 else None
    for blocks in epoch_blocks:
        for block in blocks:
            if block not in parts:
                parts[block] = pld_per_unit(q, block[0], grid).self_compose(block[1])
            composed = parts[block] if composed is None else composed.compose(parts[block])
        curve.append(_pld_epsilon(composed, delta) + extra)
    return tuple(curve)


def _rdp_base(preprocessing_noise: float) -> np.ndarray | float:
    """RDP of the preprocessing's Gaussian release (0 without one); RDP adds up over composition."""
    return rdp_per_unit(1.0, preprocessing_noise) if preprocessing_noise > 0 else 0.0


@lru_cache(maxsize=1024)
def rdp_per_unit(q: float, noise_multiplier: float) -> np.ndarray:
    """RDP of one step event at RDP_ORDERS (RDP composes additively over steps), computed in the
    accountant processes when ``compute_rdp_in_processes`` asked for them; cached here either way."""
    rdp = _RDP_PROCESSES.ask(q, noise_multiplier)
    if rdp is None:
        rdp = _step_rdp(q, noise_multiplier)
    rdp.setflags(write=False)
    return rdp


def _step_rdp(q: float, noise_multiplier: float) -> np.ndarray:
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    return event_rdp(gaussian if q >= 1.0 else dp_accounting.PoissonSampledDpEvent(q, gaussian))


# -- RDP in other processes (a served app) -------------------------------------------------------


def serve_rdp(conn: Connection) -> None:
    """An accountant process's life (``child_process`` calls it): answer (q, σ) with one step's RDP until the pipe closes."""
    while True:
        try:
            q, noise_multiplier = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_step_rdp(q, noise_multiplier))


class _RdpProcesses:
    """Up to ``size`` accountant processes; each query takes an idle one (starting one if fewer run)."""

    def __init__(self) -> None:
        self.size = 0
        self._cond = threading.Condition()
        self._idle: list[ChildProcess] = []
        self._running = 0

    def resize(self, size: int) -> None:
        with self._cond:
            self.size = size
            idle, self._idle = self._idle, []
            self._running -= len(idle)
            self._cond.notify_all()
        for child in idle:
            child.end()

    def ask(self, q: float, noise_multiplier: float) -> Optional[np.ndarray]:
        """One step's RDP from an accountant process; None when there are none (or the one asked died)."""
        with self._cond:
            while self.size and not self._idle and self._running >= self.size:
                self._cond.wait()
            if not self.size:
                return None
            if self._idle:
                child = self._idle.pop()
            else:
                child = ChildProcess("dpcore.privacy.composition:serve_rdp")
                self._running += 1
        answer = None
        try:
            child.conn.send((q, noise_multiplier))
            answer = child.conn.recv()
        except (EOFError, OSError):  # it died: answered here, and a new one starts on the next query
            pass
        with self._cond:
            if answer is not None and self.size and self._running <= self.size:
                self._idle.append(child)
                child = None
            else:
                self._running -= 1
            self._cond.notify_all()
        if child is not None:
            child.end()
        return answer


_RDP_PROCESSES = _RdpProcesses()


def compute_rdp_in_processes(count: int) -> None:
    """Compute each new step's RDP in up to ``count`` accountant processes instead of the caller's (0: here again).

    dp_accounting's RDP of a subsampled Gaussian is a pure-Python series at its fractional orders
    (about 0.1 s for σ below 1); in a served app it held the GIL that every other participant's page
    run and the server's network loop need. The answers are cached in this process as before, so
    only a σ (and sampling rate) not asked before leaves it. A process that dies is replaced.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise UserInputError(
            "accountant_processes",
            f"{count!r} is not a whole number of at least 0",
            allowed="a whole number, 0 (in this process) or more",
        )
    _RDP_PROCESSES.resize(count)


def rdp_process_count() -> int:
    """How many accountant processes may compute RDP now (0: the caller's own process)."""
    return _RDP_PROCESSES.size


@lru_cache(maxsize=256)
def pld_per_unit(q: float, noise_multiplier: float, grid: float) -> privacy_loss_distribution.PrivacyLossDistribution:
    return privacy_loss_distribution.from_gaussian_mechanism(
        noise_multiplier, sampling_prob=q, value_discretization_interval=grid, pessimistic_estimate=True
    )


def _pld_epsilon(pld: privacy_loss_distribution.PrivacyLossDistribution, delta: float) -> float:
    return float(pld.get_epsilon_for_delta(delta))
