"""Privacy accounting for DP-SGD on top of dp_accounting: ε, per-epoch ε curves, noise calibration.

Two sampling schemes are accounted for, and a number is only valid for the scheme the trainer used:

* ``poisson``: every step draws each example independently with probability q = batch_size / n.
  The DP event is ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)), steps)``
  with steps = ceil(epochs * n / batch_size). This is the figure usually quoted for DP-SGD.
* ``shuffle``: fixed-size batches from a shuffled epoch. No amplification by sampling is claimed:
  each example is in exactly one step per epoch, so the event is
  ``SelfComposedDpEvent(GaussianDpEvent(σ), epochs)``, a conservative bound.

A noise schedule (dpcore.noise) gives every step its own σ_t; the run's event then composes, in
order, one ``SelfComposedDpEvent`` per run of steps with equal σ (``ComposedDpEvent``). Under
shuffle sampling an epoch counts as one Gaussian release at the smallest σ of its steps, since an
example's one step may be any of them. Adaptive clipping changes nothing here: its noise split
(dpcore.noise) makes gradient sum and count together one Gaussian release of the stated σ_t.
An ``epsilon_budget`` ends a run before the first epoch whose ε would exceed it, so the ε of a
config (``epsilon_for_config``, ``dp_event_for_config``) counts only the epochs within the budget.

Results are cached because sliders ask the same questions again and again. PLD answers come in
two precisions: the precise grid (value discretisation 1e-4, the reference setting) and a coarser
interactive grid (1e-3). Both use pessimistic discretisation, so both are valid upper bounds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Optional, Tuple

import dp_accounting
import numpy as np
from dp_accounting.pld import privacy_loss_distribution
from dp_accounting.rdp import rdp_privacy_accountant

from dpcore.config import ACCOUNTANTS, MAX_NOISE, NOISE_SCHEDULES, SAMPLINGS
from dpcore.errors import UserInputError
from dpcore.noise import CONSTANT_NOISE, NoiseSchedule, schedule_of

if TYPE_CHECKING:
    from dpcore.config import DPConfig

PRECISE_PLD_INTERVAL = 1e-4
INTERACTIVE_PLD_INTERVAL = 1e-3
RDP_ORDERS = tuple(float(order) for order in rdp_privacy_accountant.DEFAULT_RDP_ORDERS)

MIN_CALIBRATED_NOISE = 0.05
CALIBRATION_RELATIVE_TOLERANCE = 1e-3

SAMPLING_NOTES = {
    "poisson": "Poisson sampling (amplified): valid only when every batch is drawn by independent "
               "Poisson sampling of each example with probability q = batch size / n.",
    "shuffle": "Shuffled fixed-size batches (no amplification): each example is used once per epoch, "
               "so only the noise of those steps is counted; a conservative bound.",
}


class AccountingError(UserInputError):
    """An accounting query with a value outside what the accountant can answer."""


@dataclass(frozen=True)
class EpsilonReport:
    """An ε together with what it was computed for, so no number travels without its assumptions."""

    epsilon: float
    delta: float
    accountant: str
    sampling: str
    steps: int
    sampling_probability: float
    interactive: bool
    epochs: int

    @property
    def approximate(self) -> bool:
        """True for the coarse interactive PLD grid (still an upper bound, slightly loose)."""
        return self.interactive and self.accountant == "pld"

    @property
    def note(self) -> str:
        return SAMPLING_NOTES[self.sampling]


@dataclass(frozen=True)
class Calibration:
    """The smallest noise multiplier found whose ε does not exceed the target."""

    noise_multiplier: float
    epsilon: float
    target_epsilon: float


# -- steps ---------------------------------------------------------------------------------


def dp_steps(*, n: int, batch_size: int, epochs: int, sampling: str) -> int:
    """Number of noisy steps the trainer takes; the accountant composes exactly this many."""
    return epoch_end_steps(n=n, batch_size=batch_size, epochs=epochs, sampling=sampling)[-1]


def epoch_end_steps(*, n: int, batch_size: int, epochs: int, sampling: str) -> Tuple[int, ...]:
    """Cumulative step count at the end of each epoch (Poisson: ceil(e * n / batch_size))."""
    _check_counts(n=n, batch_size=batch_size, epochs=epochs)
    _check_choice("sampling", sampling, SAMPLINGS)
    if sampling == "poisson":
        return tuple(-(-e * n // batch_size) for e in range(1, epochs + 1))
    per_epoch = -(-n // batch_size)
    return tuple(e * per_epoch for e in range(1, epochs + 1))


# -- ε ---------------------------------------------------------------------------------------


def epsilon(*, n: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float,
            accountant: str = "rdp", sampling: str = "poisson", interactive: bool = False,
            schedule: NoiseSchedule = CONSTANT_NOISE) -> float:
    """ε after ``epochs`` epochs of DP-SGD; ``interactive`` uses the coarse PLD grid (an upper bound).

    ``noise_multiplier`` is σ_0, the first step's; ``schedule`` says how it decays from there.
    """
    return epsilon_report(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs,
                          delta=delta, accountant=accountant, sampling=sampling,
                          interactive=interactive, schedule=schedule).epsilon


def epsilon_report(*, n: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float,
                   accountant: str = "rdp", sampling: str = "poisson", interactive: bool = False,
                   schedule: NoiseSchedule = CONSTANT_NOISE) -> EpsilonReport:
    """ε with the steps, q and the sampling assumption it rests on."""
    _check_query(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs,
                 delta=delta, accountant=accountant, sampling=sampling, schedule=schedule)
    blocks = _run_blocks(_epoch_blocks(int(n), int(batch_size), int(epochs), sampling,
                                       float(noise_multiplier), schedule))
    value = _epsilon_cached(_sampling_probability(n, batch_size, sampling), blocks, float(delta),
                            accountant, _grid(accountant, interactive))
    return EpsilonReport(
        epsilon=value, delta=float(delta), accountant=accountant, sampling=sampling,
        steps=dp_steps(n=n, batch_size=batch_size, epochs=epochs, sampling=sampling),
        sampling_probability=_sampling_probability(n, batch_size, sampling),
        interactive=interactive and accountant == "pld", epochs=int(epochs),
    )


def epsilon_per_epoch(*, n: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float,
                      accountant: str = "rdp", sampling: str = "poisson", interactive: bool = False,
                      schedule: NoiseSchedule = CONSTANT_NOISE) -> Tuple[float, ...]:
    """ε spent after each epoch, computed in one pass over the epochs."""
    _check_query(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs,
                 delta=delta, accountant=accountant, sampling=sampling, schedule=schedule)
    blocks = _epoch_blocks(int(n), int(batch_size), int(epochs), sampling, float(noise_multiplier), schedule)
    return _curve_cached(_sampling_probability(n, batch_size, sampling), blocks, float(delta),
                         accountant, _grid(accountant, interactive))


def epsilon_for_config(config: "DPConfig", *, n: int, interactive: bool = False) -> float:
    """ε of a whole run of ``config`` on ``n`` training examples; ∞ for a non-private baseline.

    With an ``epsilon_budget``, the ε of the epochs the run will train (0 if the budget allows none).
    """
    return epsilon_report_for_config(config, n=n, interactive=interactive).epsilon


def epsilon_report_for_config(config: "DPConfig", *, n: int, interactive: bool = False) -> EpsilonReport:
    """``epsilon_for_config`` with the steps, epochs and sampling assumption it rests on."""
    epochs = epochs_within_budget(config, n=n)
    if not config.private or epochs == 0:
        return EpsilonReport(
            epsilon=math.inf if not config.private else 0.0, delta=config.delta,
            accountant=config.accountant, sampling=config.sampling, steps=0,
            sampling_probability=_sampling_probability(n, config.batch_size, config.sampling),
            interactive=False, epochs=epochs,
        )
    return epsilon_report(n=n, batch_size=config.batch_size, noise_multiplier=config.noise_multiplier,
                          epochs=epochs, delta=config.delta, accountant=config.accountant,
                          sampling=config.sampling, interactive=interactive, schedule=schedule_of(config))


def epsilon_curve_for_config(config: "DPConfig", *, n: int, interactive: bool = False) -> Tuple[float, ...]:
    """ε after each of the config's ``epochs`` (the budget not applied); all ∞ for a non-private baseline."""
    if not config.private:
        return (math.inf,) * config.epochs
    return epsilon_per_epoch(n=n, batch_size=config.batch_size, noise_multiplier=config.noise_multiplier,
                             epochs=config.epochs, delta=config.delta, accountant=config.accountant,
                             sampling=config.sampling, interactive=interactive, schedule=schedule_of(config))


def noise_schedule_values(config: "DPConfig", *, n: int) -> Tuple[float, ...]:
    """σ of each noisy step of ``config`` on ``n`` examples, in order; () for a non-private baseline.

    The trainer adds exactly these (gradient and, with adaptive clipping, count noise together) and
    the accountant composes exactly these; a run stopped by its budget uses a prefix.
    """
    if not config.private:
        return ()
    steps = dp_steps(n=n, batch_size=config.batch_size, epochs=config.epochs, sampling=config.sampling)
    return schedule_of(config).values(config.noise_multiplier, steps)


# -- budget ------------------------------------------------------------------------------------


def epochs_within_budget(config: "DPConfig", *, n: int) -> int:
    """How many of the config's epochs keep ε (precise accountant) within ``epsilon_budget``.

    All of them without a budget or for a non-private baseline (which ignores the budget).
    """
    if not config.private or config.epsilon_budget is None:
        return config.epochs
    curve = epsilon_curve_for_config(config, n=n)
    return sum(1 for value in curve if value <= config.epsilon_budget)


def budget_allows(config: "DPConfig", *, n: int, epochs: int) -> bool:
    """Whether training ``epochs`` epochs in all keeps ε within the config's budget (asked before each epoch)."""
    return epochs <= epochs_within_budget(config, n=n)


# -- DP events ---------------------------------------------------------------------------------


def dp_event(*, n: int, batch_size: int, noise_multiplier: float, epochs: int,
             sampling: str = "poisson", schedule: NoiseSchedule = CONSTANT_NOISE) -> dp_accounting.DpEvent:
    """The dp_accounting event of one whole run: the step event composed as often as ε counts it.

    With a decaying ``schedule``, a ``ComposedDpEvent`` of one such ``SelfComposedDpEvent`` per run
    of equal σ, in step order. Other accountings (composing several runs, repeating a run to pick
    the best) start from this event, so they rest on the same steps, noise and sampling as the ε.
    """
    _check_run(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs, sampling=sampling,
               schedule=schedule)
    blocks = _run_blocks(_epoch_blocks(int(n), int(batch_size), int(epochs), sampling, float(noise_multiplier),
                                       schedule))
    events = [dp_accounting.SelfComposedDpEvent(_step_event(n, batch_size, sigma, sampling), count)
              for sigma, count in blocks]
    return events[0] if len(events) == 1 else dp_accounting.ComposedDpEvent(events)


def dp_event_for_config(config: "DPConfig", *, n: int) -> dp_accounting.DpEvent:
    """The event of a run of ``config`` on ``n`` examples (the epochs within its budget).

    NonPrivateDpEvent for a baseline; NoOpDpEvent when the budget allows no epoch at all.
    """
    if not config.private:
        return dp_accounting.NonPrivateDpEvent()
    epochs = epochs_within_budget(config, n=n)
    if epochs == 0:
        return dp_accounting.NoOpDpEvent()
    return dp_event(n=n, batch_size=config.batch_size, noise_multiplier=config.noise_multiplier,
                    epochs=epochs, sampling=config.sampling, schedule=schedule_of(config))


def event_rdp(event: dp_accounting.DpEvent) -> np.ndarray:
    """RDP of ``event`` at RDP_ORDERS, from dp_accounting's own accountant (∞ for a non-private event)."""
    accountant = rdp_privacy_accountant.RdpAccountant(orders=RDP_ORDERS)
    accountant.compose(event)
    return accountant.rdp


def epsilon_from_rdp(rdp: np.ndarray, *, delta: float) -> float:
    """ε at ``delta`` of an RDP curve at RDP_ORDERS, by dp_accounting's RDP-to-(ε, δ) conversion."""
    _check_delta(delta)
    value, _ = rdp_privacy_accountant.compute_epsilon(RDP_ORDERS, rdp, delta)
    return float(value)


# -- calibration -------------------------------------------------------------------------------


def calibrate_noise(*, target_epsilon: float, n: int, batch_size: int, epochs: int, delta: float,
                    accountant: str = "rdp", sampling: str = "poisson", interactive: bool = False,
                    schedule: NoiseSchedule = CONSTANT_NOISE) -> Calibration:
    """Smallest noise multiplier (to 0.1% relative) whose ε is at most ``target_epsilon``; never above it.

    With a decaying ``schedule`` this is σ_0, searched no lower than the schedule's floor.
    """
    if isinstance(target_epsilon, bool) or not isinstance(target_epsilon, (int, float)) \
            or not math.isfinite(target_epsilon) or target_epsilon <= 0:
        raise AccountingError("target_epsilon", f"{target_epsilon!r} is not a positive finite number",
                              allowed="a number > 0")
    lowest = max(MIN_CALIBRATED_NOISE, schedule.floor) if schedule.decays else MIN_CALIBRATED_NOISE
    _check_query(n=n, batch_size=batch_size, noise_multiplier=max(1.0, lowest), epochs=epochs, delta=delta,
                 accountant=accountant, sampling=sampling, schedule=schedule)

    def eps_at(sigma: float) -> float:
        return epsilon(n=n, batch_size=batch_size, noise_multiplier=sigma, epochs=epochs, delta=delta,
                       accountant=accountant, sampling=sampling, interactive=interactive, schedule=schedule)

    low, high = _bracket(eps_at, float(target_epsilon), start=_starting_noise(
        target_epsilon=float(target_epsilon), n=n, batch_size=batch_size, epochs=epochs, delta=delta,
        accountant=accountant, sampling=sampling, schedule=schedule),
        factor=1.25 if accountant == "pld" else 2.0, lowest=lowest)
    if low is None:
        return Calibration(noise_multiplier=high, epsilon=eps_at(high), target_epsilon=float(target_epsilon))
    high, high_eps = _refine(eps_at, float(target_epsilon), low=low, high=high)
    return Calibration(noise_multiplier=high, epsilon=high_eps, target_epsilon=float(target_epsilon))


def calibrate_noise_for_config(config: "DPConfig", *, n: int, target_epsilon: float,
                               interactive: bool = False) -> Calibration:
    """``calibrate_noise`` for the config's steps, sampling, accountant, δ and noise schedule (σ_0).

    Targets the ε of all the config's epochs (its budget is not applied).
    """
    return calibrate_noise(target_epsilon=target_epsilon, n=n, batch_size=config.batch_size, epochs=config.epochs,
                           delta=config.delta, accountant=config.accountant, sampling=config.sampling,
                           interactive=interactive, schedule=schedule_of(config))


def _refine(eps_at: Callable[[float], float], target: float, *, low: float, high: float) -> Tuple[float, float]:
    """Shrink [low, high] to 0.1% keeping eps(low) > target >= eps(high); returns (high, eps(high)).

    Steps by the Illinois variant of regula falsi on log ε against log σ (nearly straight there), so a
    few accountant calls suffice; every step keeps the bracket, so the result never exceeds the target.
    """
    log_target = math.log(target)
    f_low = math.log(eps_at(low)) - log_target
    high_eps = eps_at(high)
    f_high = math.log(high_eps) - log_target if high_eps > 0 else -math.inf
    last_side = 0
    margin = math.log1p(CALIBRATION_RELATIVE_TOLERANCE) / 2.0
    while high / low > 1.0 + CALIBRATION_RELATIVE_TOLERANCE:
        log_low, log_high = math.log(low), math.log(high)
        if math.isfinite(f_high):
            guess = (log_low * f_high - log_high * f_low) / (f_high - f_low)
        else:
            guess = (log_low + log_high) / 2.0
        middle = math.exp(min(max(guess, log_low + margin), log_high - margin))
        middle_eps = eps_at(middle)
        f_middle = math.log(middle_eps) - log_target if middle_eps > 0 else -math.inf
        if f_middle <= 0:
            high, high_eps, f_high = middle, middle_eps, f_middle
            if last_side == -1:
                f_low /= 2.0
            last_side = -1
        else:
            low, f_low = middle, f_middle
            if last_side == 1 and math.isfinite(f_high):
                f_high /= 2.0
            last_side = 1
    return high, high_eps


def _starting_noise(*, target_epsilon: float, n: int, batch_size: int, epochs: int, delta: float,
                    accountant: str, sampling: str, schedule: NoiseSchedule) -> float:
    """A first guess near the answer: the cheap RDP calibration when PLD is asked for (PLD is tighter)."""
    if accountant != "pld":
        return 1.0
    try:
        return calibrate_noise(target_epsilon=target_epsilon, n=n, batch_size=batch_size, epochs=epochs,
                               delta=delta, accountant="rdp", sampling=sampling,
                               schedule=schedule).noise_multiplier
    except AccountingError:
        return MAX_NOISE


def _bracket(eps_at: Callable[[float], float], target: float, *, start: float,
             factor: float, lowest: float = MIN_CALIBRATED_NOISE) -> Tuple[Optional[float], float]:
    """(low, high) with eps(low) > target >= eps(high), stepping by ``factor`` from ``start``.

    low is None when the smallest noise multiplier searched (``lowest``) already meets the target.
    """
    high = min(max(start, lowest), MAX_NOISE)
    if eps_at(high) > target:
        low = high
        while True:
            if low >= MAX_NOISE:
                raise AccountingError(
                    "target_epsilon",
                    f"ε = {target:g} cannot be reached with a noise multiplier up to {MAX_NOISE:g} "
                    f"(it gives ε = {eps_at(MAX_NOISE):.4g})",
                    allowed="a larger target ε, fewer epochs or a smaller batch size",
                )
            high = min(low * factor, MAX_NOISE)
            if eps_at(high) <= target:
                return low, high
            low = high
    low = high
    while True:
        if low <= lowest:
            return None, lowest
        candidate = max(low / factor, lowest)
        if eps_at(candidate) > target:
            return candidate, low
        low = candidate


# -- internals ---------------------------------------------------------------------------------


def _grid(accountant: str, interactive: bool) -> float:
    if accountant != "pld":
        return 0.0
    return INTERACTIVE_PLD_INTERVAL if interactive else PRECISE_PLD_INTERVAL


def _sampling_probability(n: int, batch_size: int, sampling: str) -> float:
    return batch_size / n if sampling == "poisson" else 1.0


def _step_event(n: int, batch_size: int, noise_multiplier: float, sampling: str) -> dp_accounting.DpEvent:
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sampling == "poisson":
        return dp_accounting.PoissonSampledDpEvent(batch_size / n, gaussian)
    return gaussian


# A run's noise as the accountant counts it: per epoch, runs (σ, count) of equal σ among the events
# of that epoch, in order: Poisson steps, or (shuffle) one Gaussian per epoch.
Blocks = Tuple[Tuple[float, int], ...]


@lru_cache(maxsize=1024)
def _epoch_blocks(n: int, batch_size: int, epochs: int, sampling: str, noise_multiplier: float,
                  schedule: NoiseSchedule) -> Tuple[Blocks, ...]:
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


def _runs(values: Tuple[float, ...]) -> Blocks:
    """Consecutive equal values as (value, count) pairs."""
    runs: list[list] = []
    for value in values:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return tuple((value, count) for value, count in runs)


def _run_blocks(epoch_blocks: Tuple[Blocks, ...]) -> Blocks:
    """The blocks of the whole run, equal neighbours across epoch boundaries merged."""
    merged: list[list] = []
    for sigma, count in (block for blocks in epoch_blocks for block in blocks):
        if merged and merged[-1][0] == sigma:
            merged[-1][1] += count
        else:
            merged.append([sigma, count])
    return tuple((sigma, count) for sigma, count in merged)


@lru_cache(maxsize=4096)
def _epsilon_cached(q: float, blocks: Blocks, delta: float, accountant: str, grid: float) -> float:
    if accountant == "rdp":
        return epsilon_from_rdp(sum(_rdp_per_unit(q, sigma) * count for sigma, count in blocks), delta=delta)
    composed = None
    for sigma, count in blocks:
        part = _pld_per_unit(q, sigma, grid).self_compose(count)
        composed = part if composed is None else composed.compose(part)
    return _pld_epsilon(composed, delta)


@lru_cache(maxsize=512)
def _curve_cached(q: float, epoch_blocks: Tuple[Blocks, ...], delta: float, accountant: str,
                  grid: float) -> Tuple[float, ...]:
    curve = []
    if accountant == "rdp":
        # Counts per σ so far, summed as in _epsilon_cached: the last epoch's ε is bit for bit the run's.
        counts: dict[float, int] = {}
        for blocks in epoch_blocks:
            for sigma, count in blocks:
                counts[sigma] = counts.get(sigma, 0) + count
            rdp = sum(_rdp_per_unit(q, sigma) * count for sigma, count in counts.items())
            curve.append(epsilon_from_rdp(rdp, delta=delta))
        return tuple(curve)
    parts: dict[Tuple[float, int], privacy_loss_distribution.PrivacyLossDistribution] = {}
    composed = None
    for blocks in epoch_blocks:
        for block in blocks:
            if block not in parts:
                parts[block] = _pld_per_unit(q, block[0], grid).self_compose(block[1])
            composed = parts[block] if composed is None else composed.compose(parts[block])
        curve.append(_pld_epsilon(composed, delta))
    return tuple(curve)


@lru_cache(maxsize=1024)
def _rdp_per_unit(q: float, noise_multiplier: float) -> np.ndarray:
    """RDP of one step event at RDP_ORDERS (RDP composes additively over steps)."""
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    rdp = event_rdp(gaussian if q >= 1.0 else dp_accounting.PoissonSampledDpEvent(q, gaussian))
    rdp.setflags(write=False)
    return rdp


@lru_cache(maxsize=256)
def _pld_per_unit(q: float, noise_multiplier: float, grid: float) -> privacy_loss_distribution.PrivacyLossDistribution:
    return privacy_loss_distribution.from_gaussian_mechanism(
        noise_multiplier, sampling_prob=q, value_discretization_interval=grid, pessimistic_estimate=True)


def _pld_epsilon(pld: privacy_loss_distribution.PrivacyLossDistribution, delta: float) -> float:
    return float(pld.get_epsilon_for_delta(delta))


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise AccountingError(name, f"{value!r} is not known", allowed=", ".join(allowed))


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise AccountingError(name, f"{value!r} is not a whole number >= {low}", allowed=f"whole numbers >= {low}")


def _check_counts(*, n: int, batch_size: int, epochs: int) -> None:
    _check_int("n", n, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("epochs", epochs, 1)
    if batch_size > n:
        raise AccountingError("batch_size", f"{batch_size} is larger than n = {n}", allowed=f"1 to {n}")


def _check_query(*, n: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float,
                 accountant: str, sampling: str, schedule: NoiseSchedule) -> None:
    _check_run(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs, sampling=sampling,
               schedule=schedule)
    _check_choice("accountant", accountant, ACCOUNTANTS)
    _check_delta(delta)


def _check_run(*, n: int, batch_size: int, noise_multiplier: float, epochs: int, sampling: str,
               schedule: NoiseSchedule) -> None:
    _check_counts(n=n, batch_size=batch_size, epochs=epochs)
    _check_choice("sampling", sampling, SAMPLINGS)
    if isinstance(noise_multiplier, bool) or not isinstance(noise_multiplier, (int, float)) \
            or not math.isfinite(noise_multiplier) or not 0 < noise_multiplier <= MAX_NOISE:
        raise AccountingError("noise_multiplier", f"{noise_multiplier!r} is out of range",
                              allowed=f"a number in (0, {MAX_NOISE:g}]")
    _check_schedule(schedule, noise_multiplier)


def _check_schedule(schedule: NoiseSchedule, noise_multiplier: float) -> None:
    if not isinstance(schedule, NoiseSchedule):
        raise AccountingError("noise_schedule", f"{schedule!r} is not a NoiseSchedule")
    _check_choice("noise_schedule", schedule.kind, NOISE_SCHEDULES)
    for name, value, allowed, ok in (
        ("noise_decay_rate", schedule.decay_rate, "a number in [0, 1)", lambda v: 0 <= v < 1),
        ("noise_floor", schedule.floor, f"a number in (0, {noise_multiplier:g}]",
         lambda v: not schedule.decays or 0 < v <= noise_multiplier),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not ok(value):
            raise AccountingError(name, f"{value!r} is out of range", allowed=allowed)


def _check_delta(delta: object) -> None:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not math.isfinite(delta) \
            or not 0 < delta < 1:
        raise AccountingError("delta", f"{delta!r} is out of range", allowed="a number in (0, 1)")
