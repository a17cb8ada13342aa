"""A run as dp_accounting events: its noisy steps, their sampling and noise, composed in step order.

Poisson sampling is ``PoissonSampledDpEvent(q, GaussianDpEvent(σ))`` per step; shuffle sampling one
``GaussianDpEvent`` per epoch at the least noise of its steps. A noise schedule gives runs (σ, count)
of equal σ, composed in order. Other accountings start from ``dp_event``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import dp_accounting
import numpy as np
from dp_accounting.rdp import rdp_privacy_accountant

from dpcore.config import SAMPLINGS
from dpcore.privacy.limits import check_choice, check_counts, check_curve_length, check_delta, check_run, count_steps
from dpcore.privacy.noise import CONSTANT_NOISE, NoiseSchedule

if TYPE_CHECKING:
    pass


RDP_ORDERS = tuple(float(order) for order in rdp_privacy_accountant.DEFAULT_RDP_ORDERS)

# -- steps ---------------------------------------------------------------------------------


# A run's noise as the accountant counts it: per epoch, runs (σ, count) of equal σ among the events
# of that epoch, in order: Poisson steps, or (shuffle) one Gaussian per epoch.
Blocks = tuple[tuple[float, int], ...]


def dp_steps(*, n: int, batch_size: int, epochs: int, sampling: str) -> int:
    """Number of noisy steps the trainer takes; the accountant composes exactly this many."""
    check_counts(n=n, batch_size=batch_size, epochs=epochs)
    check_choice("sampling", sampling, SAMPLINGS)
    return count_steps(n, batch_size, epochs, sampling)


def epoch_end_steps(*, n: int, batch_size: int, epochs: int, sampling: str) -> tuple[int, ...]:
    """Cumulative step count at the end of each epoch (Poisson: ceil(e * n / batch_size))."""
    check_counts(n=n, batch_size=batch_size, epochs=epochs)
    check_choice("sampling", sampling, SAMPLINGS)
    check_curve_length(epochs)
    if sampling == "poisson":
        return tuple(-(-e * n // batch_size) for e in range(1, epochs + 1))
    per_epoch = -(-n // batch_size)
    return tuple(e * per_epoch for e in range(1, epochs + 1))


# -- DP events ---------------------------------------------------------------------------------


def dp_event(
    *,
    n: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    sampling: str = "poisson",
    schedule: NoiseSchedule = CONSTANT_NOISE,
) -> dp_accounting.DpEvent:
    """The dp_accounting event of one whole run: the step event composed as often as ε counts it.

    With a decaying ``schedule``, a ``ComposedDpEvent`` of one such ``SelfComposedDpEvent`` per run
    of equal σ, in step order. Other accountings (composing several runs, repeating a run to pick
    the best) start from this event, so they rest on the same steps, noise and sampling as the ε.
    """
    check_run(
        n=n,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        sampling=sampling,
        schedule=schedule,
    )
    blocks = whole_run_blocks(int(n), int(batch_size), int(epochs), sampling, float(noise_multiplier), schedule)
    events = [
        dp_accounting.SelfComposedDpEvent(_step_event(n, batch_size, sigma, sampling), count) for sigma, count in blocks
    ]
    return events[0] if len(events) == 1 else dp_accounting.ComposedDpEvent(events)


def event_rdp(event: dp_accounting.DpEvent) -> np.ndarray:
    """RDP of ``event`` at RDP_ORDERS, from dp_accounting's own accountant (∞ for a non-private event)."""
    accountant = rdp_privacy_accountant.RdpAccountant(orders=RDP_ORDERS)
    accountant.compose(event)
    return accountant.rdp


def epsilon_from_rdp(rdp: np.ndarray, *, delta: float) -> float:
    """ε at ``delta`` of an RDP curve at RDP_ORDERS, by dp_accounting's RDP-to-(ε, δ) conversion."""
    check_delta(delta)
    value, _ = rdp_privacy_accountant.compute_epsilon(RDP_ORDERS, rdp, delta)
    return float(value)


def sampling_probability(n: int, batch_size: int, sampling: str) -> float:
    return batch_size / n if sampling == "poisson" else 1.0


def _step_event(n: int, batch_size: int, noise_multiplier: float, sampling: str) -> dp_accounting.DpEvent:
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sampling == "poisson":
        return dp_accounting.PoissonSampledDpEvent(batch_size / n, gaussian)
    return gaussian


def unit_count(n: int, batch_size: int, epochs: int, sampling: str) -> int:
    """How many step events are composed in all: Poisson steps, or (shuffle) one Gaussian per epoch."""
    return count_steps(n, batch_size, epochs, sampling) if sampling == "poisson" else epochs


@lru_cache(maxsize=1024)
def epoch_blocks(
    n: int, batch_size: int, epochs: int, sampling: str, noise_multiplier: float, schedule: NoiseSchedule
) -> tuple[Blocks, ...]:
    ends = epoch_end_steps(n=n, batch_size=batch_size, epochs=epochs, sampling=sampling)
    starts = (0,) + ends[:-1]
    if not schedule.decays:
        if sampling == "poisson":
            return tuple(((noise_multiplier, end - start),) for start, end in zip(starts, ends))
        return (((noise_multiplier, 1),),) * epochs
    values = schedule.values(noise_multiplier, ends[-1])
    if sampling == "poisson":
        return tuple(_runs(values[start:end]) for start, end in zip(starts, ends))
    # Shuffle: an example is in one step of the epoch, which may be the one with the least noise.
    return tuple(((min(values[start:end]), 1),) for start, end in zip(starts, ends))


def _runs(values: tuple[float, ...]) -> Blocks:
    """Consecutive equal values as (value, count) pairs."""
    runs: list[list] = []
    for value in values:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return tuple((value, count) for value, count in runs)


def whole_run_blocks(
    n: int, batch_size: int, epochs: int, sampling: str, noise_multiplier: float, schedule: NoiseSchedule
) -> Blocks:
    """The blocks of a whole run; a constant schedule's is one block, counted without listing epochs."""
    if not schedule.decays:
        return ((noise_multiplier, unit_count(n, batch_size, epochs, sampling)),)
    return _run_blocks(epoch_blocks(n, batch_size, epochs, sampling, noise_multiplier, schedule))


def _run_blocks(epoch_blocks: tuple[Blocks, ...]) -> Blocks:
    """The blocks of the whole run, equal neighbours across epoch boundaries merged."""
    merged: list[list] = []
    for sigma, count in (block for blocks in epoch_blocks for block in blocks):
        if merged and merged[-1][0] == sigma:
            merged[-1][1] += count
        else:
            merged.append([sigma, count])
    return tuple((sigma, count) for sigma, count in merged)
