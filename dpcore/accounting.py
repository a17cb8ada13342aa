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

A CSV run whose schema is derived privately (``csv_preprocessing_epsilon``) also releases noisy,
thresholded counts (``dpcore.tabular.derive_schema``): one ``GaussianDpEvent`` composed with
training's events, while the thresholds spend ``PREPROCESSING_THRESHOLD_SHARE`` of δ; the run's ε is
that composition's (see ``epsilon_split``).

Results are cached because sliders ask the same questions again and again. PLD answers come in
two precisions: the precise grid (value discretisation 1e-4, the reference setting) and a coarser
interactive grid (1e-3). Both use pessimistic discretisation, so both are valid upper bounds.

Every query is bounded before it runs. Step counts are computed, never listed, and capped at
``MAX_STEPS``; a PLD query estimates its grid sizes (one step's grid from the privacy loss's range,
the composed grid from dp_accounting's own truncation bound) and, where the requested grid would
exceed ``MAX_PLD_UNIT_POINTS``, ``MAX_PLD_POINTS`` or (for a per-epoch curve) ``MAX_PLD_CURVE_WORK``,
uses the first coarser grid of ``PLD_INTERVALS`` that fits: still an upper bound, and reported as
approximate. When none fits (a tiny noise multiplier, an enormous run) the query is refused with an
AccountingError naming the setting; RDP answers those.
"""
from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Optional, Tuple

import dp_accounting
import numpy as np
from dp_accounting.pld import common as pld_common
from dp_accounting.pld import privacy_loss_distribution, privacy_loss_mechanism
from dp_accounting.rdp import rdp_privacy_accountant

from dpcore.config import ACCOUNTANTS, MAX_NOISE, NOISE_SCHEDULES, SAMPLINGS
from dpcore.errors import UserInputError
from dpcore.explain import SAMPLING_NOTES
from dpcore.noise import CONSTANT_NOISE, NoiseSchedule, schedule_of
from dpcore.safe_io import quote

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from dpcore.child_process import ChildProcess
    from dpcore.config import DPConfig

PRECISE_PLD_INTERVAL = 1e-4
INTERACTIVE_PLD_INTERVAL = 1e-3
# The grids a PLD query may use, finest first; a query starts at the one asked for.
PLD_INTERVALS = (PRECISE_PLD_INTERVAL, INTERACTIVE_PLD_INTERVAL, 1e-2)
# Bounds on one query (measured on 2 cores: building one step's grid costs about 20 µs a point;
# a per-epoch curve about 0.15 s per million units of work, epochs times composed grid points).
MAX_STEPS = 10**15
MAX_CURVE_EPOCHS = 100_000
# A decaying noise schedule lists every step's σ: runs of at most this many steps.
MAX_SCHEDULE_STEPS = 2_000_000
MAX_PLD_UNIT_POINTS = 250_000
MAX_PLD_POINTS = 4_000_000
MAX_PLD_CURVE_WORK = 100_000_000
# dp_accounting's defaults for the Gaussian PLD and its self-composition, used in the estimates.
_PLD_LOG_MASS_TRUNCATION = -50
_PLD_TAIL_MASS_TRUNCATION = 1e-15
RDP_ORDERS = tuple(float(order) for order in rdp_privacy_accountant.DEFAULT_RDP_ORDERS)

MIN_CALIBRATED_NOISE = 0.05
CALIBRATION_RELATIVE_TOLERANCE = 1e-3


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
    epochs: int  # the epochs counted (with an ε budget, those it allows)
    discretization: float = 0.0  # the PLD grid used (0 for RDP); coarser than asked when bounds required

    @property
    def approximate(self) -> bool:
        """True for a PLD grid coarser than the precise one (still an upper bound, slightly loose)."""
        return self.accountant == "pld" and self.discretization > PRECISE_PLD_INTERVAL

    @property
    def note(self) -> str:
        return SAMPLING_NOTES[self.sampling]


@dataclass(frozen=True)
class PreprocessingCost:
    """The mechanism a private CSV preprocessing share buys: its Gaussian noise, its thresholds' δ, its ε.

    ``noise_multiplier`` is that of one Gaussian release of L2 sensitivity 1 (``tabular.derive_schema``
    scales it to its counts); ``epsilon`` is the release's own ε at the run's δ, never above the share.
    """

    noise_multiplier: float
    threshold_delta: float
    epsilon: float


@dataclass(frozen=True)
class EpsilonSplit:
    """A run's ε and where it goes: CSV preprocessing alone, training alone, and both composed (the run's ε).

    ``total`` comes from composing both mechanisms' DpEvents, so it is below the sum of the parts;
    ``preprocessing`` is 0 when nothing was learned from the rows before training (a declared schema
    or a built-in dataset); ``threshold_delta`` is the part of ``delta`` the thresholds spend.
    """

    preprocessing: float
    training: float
    total: float
    delta: float
    threshold_delta: float


@dataclass(frozen=True)
class Calibration:
    """The smallest noise multiplier found whose ε does not exceed the target."""

    noise_multiplier: float
    epsilon: float
    target_epsilon: float
    approximate: bool = False  # ε came from a PLD grid coarser than the precise one (an upper bound)


# -- steps ---------------------------------------------------------------------------------


def dp_steps(*, n: int, batch_size: int, epochs: int, sampling: str) -> int:
    """Number of noisy steps the trainer takes; the accountant composes exactly this many."""
    _check_counts(n=n, batch_size=batch_size, epochs=epochs)
    _check_choice("sampling", sampling, SAMPLINGS)
    return _steps(n, batch_size, epochs, sampling)


def epoch_end_steps(*, n: int, batch_size: int, epochs: int, sampling: str) -> Tuple[int, ...]:
    """Cumulative step count at the end of each epoch (Poisson: ceil(e * n / batch_size))."""
    _check_counts(n=n, batch_size=batch_size, epochs=epochs)
    _check_choice("sampling", sampling, SAMPLINGS)
    _check_curve_length(epochs)
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
    return _report(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs, delta=delta,
                   accountant=accountant, sampling=sampling, interactive=interactive, schedule=schedule)


def _report(*, n: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float, accountant: str,
            sampling: str, interactive: bool, schedule: NoiseSchedule,
            preprocessing_noise: float = 0.0) -> EpsilonReport:
    """``epsilon_report``, with a private CSV preprocessing's Gaussian release composed in when
    ``preprocessing_noise`` > 0."""
    _check_query(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs,
                 delta=delta, accountant=accountant, sampling=sampling, schedule=schedule)
    grid = _planned_grid(n, batch_size, noise_multiplier, epochs, accountant, sampling, interactive, per_epoch=False,
                         schedule=schedule)
    blocks = _whole_run_blocks(int(n), int(batch_size), int(epochs), sampling, float(noise_multiplier), schedule)
    value = _epsilon_cached(_sampling_probability(n, batch_size, sampling), blocks, float(delta), accountant, grid,
                            preprocessing_noise)
    return EpsilonReport(
        epsilon=value, delta=float(delta), accountant=accountant, sampling=sampling,
        steps=dp_steps(n=n, batch_size=batch_size, epochs=epochs, sampling=sampling),
        sampling_probability=_sampling_probability(n, batch_size, sampling),
        interactive=interactive and accountant == "pld", epochs=int(epochs), discretization=grid,
    )


def epsilon_per_epoch(*, n: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float,
                      accountant: str = "rdp", sampling: str = "poisson", interactive: bool = False,
                      schedule: NoiseSchedule = CONSTANT_NOISE) -> Tuple[float, ...]:
    """ε spent after each epoch, computed in one pass over the epochs (PLD: on ``pld_discretization``'s grid)."""
    return _curve(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs, delta=delta,
                  accountant=accountant, sampling=sampling, interactive=interactive, schedule=schedule)


def _curve(*, n: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float, accountant: str,
           sampling: str, interactive: bool, schedule: NoiseSchedule,
           preprocessing_noise: float = 0.0) -> Tuple[float, ...]:
    """``epsilon_per_epoch``, with a private CSV preprocessing composed in when ``preprocessing_noise`` > 0."""
    _check_query(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs,
                 delta=delta, accountant=accountant, sampling=sampling, schedule=schedule)
    _check_curve_length(epochs)
    grid = _planned_grid(n, batch_size, noise_multiplier, epochs, accountant, sampling, interactive, per_epoch=True,
                         schedule=schedule)
    blocks = _epoch_blocks(int(n), int(batch_size), int(epochs), sampling, float(noise_multiplier), schedule)
    return _curve_cached(_sampling_probability(n, batch_size, sampling), blocks, float(delta), accountant, grid,
                         preprocessing_noise)


def pld_discretization(*, n: int, batch_size: int, noise_multiplier: float, epochs: int,
                       sampling: str = "poisson", interactive: bool = False, per_epoch: bool = False,
                       schedule: NoiseSchedule = CONSTANT_NOISE) -> float:
    """The PLD grid a query uses: the one asked for (precise or interactive), else the first coarser
    one of ``PLD_INTERVALS`` within the bounds; an AccountingError naming the setting if none is.

    ``per_epoch`` plans a per-epoch curve (what the trainer asks for), which costs more than one ε.
    """
    _check_run(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs, sampling=sampling,
               schedule=schedule)
    if per_epoch:
        _check_curve_length(epochs)
    return _planned_grid(n, batch_size, noise_multiplier, epochs, "pld", sampling, interactive, per_epoch=per_epoch,
                         schedule=schedule)


def check_config(config: "DPConfig", *, n: int) -> float:
    """Check, before training, that the accountant can answer ``config``'s per-epoch ε on ``n`` examples.

    Returns the PLD grid the trainer's curve will use (0 for RDP or a baseline); raises
    AccountingError naming the setting when the query is beyond the bounds.
    """
    if not config.private:
        return 0.0
    schedule = schedule_of(config)
    _check_query(n=n, batch_size=config.batch_size, noise_multiplier=config.noise_multiplier,
                 epochs=config.epochs, delta=config.delta, accountant=config.accountant, sampling=config.sampling,
                 schedule=schedule)
    _check_curve_length(config.epochs)
    preprocessing_cost_for_config(config)
    return _planned_grid(n, config.batch_size, config.noise_multiplier, config.epochs, config.accountant,
                         config.sampling, False, per_epoch=True, schedule=schedule)


def epsilon_for_config(config: "DPConfig", *, n: int, interactive: bool = False) -> float:
    """ε of a whole run of ``config`` on ``n`` examples, private CSV preprocessing included; ∞ for a baseline.

    With an ``epsilon_budget``, the ε of the epochs the run will train.
    """
    if not config.private:
        return math.inf
    return epsilon_report_for_config(config, n=n, interactive=interactive).epsilon


def epsilon_report_for_config(config: "DPConfig", *, n: int, interactive: bool = False) -> EpsilonReport:
    """``epsilon_report`` for a run of a private ``config`` on ``n`` training examples: the epochs
    within its budget, its noise schedule, and a private CSV preprocessing composed into the ε."""
    if not config.private:
        raise AccountingError("private", "a non-private baseline has no ε to report (ε = ∞)",
                              allowed="a private config")
    cost = preprocessing_cost_for_config(config)
    epochs = epochs_within_budget(config, n=n)
    if epochs == 0:  # the budget allows no epoch: only the preprocessing (if any) was released
        return EpsilonReport(
            epsilon=cost.epsilon if cost else 0.0, delta=config.delta, accountant=config.accountant,
            sampling=config.sampling, steps=0,
            sampling_probability=_sampling_probability(n, config.batch_size, config.sampling),
            interactive=False, epochs=0,
        )
    return _report(n=n, batch_size=config.batch_size, noise_multiplier=config.noise_multiplier, epochs=epochs,
                   delta=config.delta, accountant=config.accountant, sampling=config.sampling,
                   interactive=interactive, schedule=schedule_of(config),
                   preprocessing_noise=cost.noise_multiplier if cost else 0.0)


def epsilon_curve_for_config(config: "DPConfig", *, n: int, interactive: bool = False) -> Tuple[float, ...]:
    """ε after each of the config's ``epochs`` (the budget not applied), private CSV preprocessing
    included; all ∞ for a non-private baseline."""
    if not config.private:
        return (math.inf,) * config.epochs
    cost = preprocessing_cost_for_config(config)
    return _curve(n=n, batch_size=config.batch_size, noise_multiplier=config.noise_multiplier, epochs=config.epochs,
                  delta=config.delta, accountant=config.accountant, sampling=config.sampling,
                  interactive=interactive, schedule=schedule_of(config),
                  preprocessing_noise=cost.noise_multiplier if cost else 0.0)


def epsilon_split(config: "DPConfig", *, n: int, interactive: bool = False) -> EpsilonSplit:
    """The run's ε with its parts: private CSV preprocessing alone, training alone, both composed."""
    cost = preprocessing_cost_for_config(config)
    training = math.inf
    if config.private:
        epochs = epochs_within_budget(config, n=n)
        training = 0.0 if epochs == 0 else epsilon(
            n=n, batch_size=config.batch_size, noise_multiplier=config.noise_multiplier, epochs=epochs,
            delta=config.delta, accountant=config.accountant, sampling=config.sampling, interactive=interactive,
            schedule=schedule_of(config))
    return EpsilonSplit(preprocessing=cost.epsilon if cost else 0.0, training=training,
                        total=epsilon_for_config(config, n=n, interactive=interactive), delta=config.delta,
                        threshold_delta=cost.threshold_delta if cost else 0.0)


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


# -- private CSV preprocessing ------------------------------------------------------------------

# The part of δ that the thresholds of a private CSV preprocessing spend: a value only one record
# holds is released with probability at most this, over all of that record's columns.
PREPROCESSING_THRESHOLD_SHARE = 0.1


def preprocessing_cost_for_config(config: "DPConfig") -> Optional[PreprocessingCost]:
    """The private CSV preprocessing ``config`` pays for, or None (a declared schema, or not a CSV)."""
    if config.dataset != "csv" or config.csv_preprocessing_epsilon is None:
        return None
    try:
        return preprocessing_cost(epsilon=config.csv_preprocessing_epsilon, delta=config.delta,
                                  accountant=config.accountant)
    except AccountingError as exc:
        raise AccountingError("csv_preprocessing_epsilon", str(exc).split(": ", 1)[-1]) from None


@lru_cache(maxsize=256)
def preprocessing_cost(*, epsilon: float, delta: float, accountant: str = "rdp") -> PreprocessingCost:
    """The least Gaussian noise whose release costs at most ``epsilon`` at ``delta`` (thresholds included).

    The release is (ε_G(δ − δ_t) + log(1 / (1 − δ_t)), δ)-DP, with ε_G that of ``GaussianDpEvent`` on
    the precise grid and δ_t = ``PREPROCESSING_THRESHOLD_SHARE`` · δ the thresholds' part.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon) \
            or epsilon <= 0:
        raise AccountingError("epsilon", f"{epsilon!r} is not a positive finite number", allowed="a number > 0")
    _check_query(n=1, batch_size=1, noise_multiplier=1.0, epochs=1, delta=delta, accountant=accountant,
                 sampling="shuffle")
    threshold_delta = PREPROCESSING_THRESHOLD_SHARE * delta

    def eps_at(sigma: float) -> float:
        return _preprocessing_epsilon(sigma, float(delta), accountant, _grid(accountant, False))

    low, high = _bracket(eps_at, float(epsilon), start=1.0, factor=2.0)
    if low is not None:
        high, _ = _refine(eps_at, float(epsilon), low=low, high=high)
    return PreprocessingCost(noise_multiplier=high, threshold_delta=threshold_delta, epsilon=eps_at(high))


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
    blocks = _whole_run_blocks(int(n), int(batch_size), int(epochs), sampling, float(noise_multiplier), schedule)
    events = [dp_accounting.SelfComposedDpEvent(_step_event(n, batch_size, sigma, sampling), count)
              for sigma, count in blocks]
    return events[0] if len(events) == 1 else dp_accounting.ComposedDpEvent(events)


def dp_event_for_config(config: "DPConfig", *, n: int) -> dp_accounting.DpEvent:
    """The event of a run of ``config`` on ``n`` examples (the epochs within its budget).

    NonPrivateDpEvent for a baseline. Training's steps, after one ``GaussianDpEvent`` for a private
    CSV preprocessing if any (in a ``ComposedDpEvent``); NoOpDpEvent for training when the budget
    allows no epoch at all.
    """
    if not config.private:
        return dp_accounting.NonPrivateDpEvent()
    epochs = epochs_within_budget(config, n=n)
    training = dp_accounting.NoOpDpEvent() if epochs == 0 else dp_event(
        n=n, batch_size=config.batch_size, noise_multiplier=config.noise_multiplier, epochs=epochs,
        sampling=config.sampling, schedule=schedule_of(config))
    cost = preprocessing_cost_for_config(config)
    if cost is None:
        return training
    return dp_accounting.ComposedDpEvent([dp_accounting.GaussianDpEvent(cost.noise_multiplier), training])


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
        raise AccountingError("target_epsilon", f"{quote(target_epsilon)} is not a positive finite number",
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
    if low is not None:
        high, _ = _refine(eps_at, float(target_epsilon), low=low, high=high)
    report = epsilon_report(n=n, batch_size=batch_size, noise_multiplier=high, epochs=epochs, delta=delta,
                            accountant=accountant, sampling=sampling, interactive=interactive, schedule=schedule)
    return Calibration(noise_multiplier=high, epsilon=report.epsilon, target_epsilon=float(target_epsilon),
                       approximate=report.approximate)


def calibrate_noise_for_config(config: "DPConfig", *, target_epsilon: float, n: int,
                               interactive: bool = False) -> Calibration:
    """``calibrate_noise`` for ``config``'s other settings and noise schedule (σ_0) on ``n`` training
    examples; it targets the ε of all the config's epochs (its budget is not applied)."""
    return calibrate_noise(target_epsilon=target_epsilon, n=n, batch_size=config.batch_size,
                           epochs=config.epochs, delta=config.delta, accountant=config.accountant,
                           sampling=config.sampling, interactive=interactive, schedule=schedule_of(config))


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

    low is None when the smallest noise multiplier searched (``lowest``) already meets the target, or when the
    accountant cannot answer for a smaller one (a PLD query beyond its bounds): high is then the
    smallest noise multiplier it could certify.
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
        try:
            if eps_at(candidate) > target:
                return candidate, low
        except AccountingError:
            return None, low
        low = candidate


def clear_caches() -> None:
    """Forget every cached answer, so the next query is computed afresh (e.g. to time cold queries)."""
    for cached in (_epsilon_cached, _curve_cached, _rdp_per_unit, _pld_per_unit, _preprocessing_epsilon,
                   preprocessing_cost, _epoch_blocks):
        cached.cache_clear()


# -- internals ---------------------------------------------------------------------------------


def _grid(accountant: str, interactive: bool) -> float:
    if accountant != "pld":
        return 0.0
    return INTERACTIVE_PLD_INTERVAL if interactive else PRECISE_PLD_INTERVAL


def _steps(n: int, batch_size: int, epochs: int, sampling: str) -> int:
    if sampling == "poisson":
        return -(-epochs * n // batch_size)
    return epochs * -(-n // batch_size)


def _planned_grid(n: int, batch_size: int, noise_multiplier: float, epochs: int, accountant: str,
                  sampling: str, interactive: bool, *, per_epoch: bool,
                  schedule: NoiseSchedule = CONSTANT_NOISE) -> float:
    """0 for RDP; for PLD the first grid, from the one asked for, whose estimated cost is within bounds.

    A decaying schedule is estimated as if every step had its floor's noise, the widest grid it can need.
    """
    if accountant != "pld":
        return 0.0
    sigma = min(float(noise_multiplier), float(schedule.floor)) if schedule.decays else float(noise_multiplier)
    return _fitting_interval(_sampling_probability(n, batch_size, sampling), sigma,
                             _unit_count(n, batch_size, epochs, sampling), int(epochs) if per_epoch else 0,
                             _grid(accountant, interactive))


@lru_cache(maxsize=1024)
def _fitting_interval(q: float, noise_multiplier: float, count: int, curve_epochs: int, start: float) -> float:
    """The first grid from ``start`` within the bounds. Composed sizes are measured once on the coarsest
    grid (cheap to build) and scaled: a grid ten times finer holds ten times the points."""
    coarsest = PLD_INTERVALS[-1]
    refusal: Optional[AccountingError] = None
    coarse_sizes: Tuple[int, ...] = ()
    if _pld_unit_points(q, noise_multiplier, coarsest) <= MAX_PLD_UNIT_POINTS:
        coarse_sizes = _pld_composed_points(q, noise_multiplier, coarsest, count)
    for interval in (i for i in PLD_INTERVALS if i >= start):
        unit_points = _pld_unit_points(q, noise_multiplier, interval)
        if unit_points > MAX_PLD_UNIT_POINTS:
            refusal = AccountingError(
                "noise_multiplier", f"{noise_multiplier:g} is too small for the PLD accountant: one step's "
                f"privacy-loss grid would need {unit_points:.2g} points at discretisation {interval:g} "
                f"(the bound is {MAX_PLD_UNIT_POINTS:,})",
                allowed="a larger noise multiplier, or accountant 'rdp'")
            continue
        sizes = tuple(size * coarsest / interval for size in coarse_sizes)
        if max(sizes) > MAX_PLD_POINTS:
            refusal = AccountingError(
                "epochs", f"{count:,} composed steps at noise multiplier {noise_multiplier:g} are too many for "
                f"the PLD accountant: the composed grid would need {max(sizes):.2g} points at discretisation "
                f"{interval:g} (the bound is {MAX_PLD_POINTS:,})",
                allowed="fewer epochs or more noise, or accountant 'rdp'")
            continue
        if curve_epochs and curve_epochs * sum(sizes) > MAX_PLD_CURVE_WORK:
            refusal = AccountingError(
                "epochs", f"a per-epoch PLD curve over {curve_epochs:,} epochs would take about "
                f"{curve_epochs * sum(sizes):.2g} grid operations at discretisation {interval:g} "
                f"(the bound is {MAX_PLD_CURVE_WORK:.2g})",
                allowed="fewer epochs or more noise, or accountant 'rdp'")
            continue
        return interval
    assert refusal is not None
    raise refusal


@lru_cache(maxsize=1024)
def _pld_unit_points(q: float, noise_multiplier: float, interval: float) -> float:
    """Points of one step's PLD grid, from the privacy loss's range (computed without building the grid)."""
    points = 0.0
    for adjacency in (privacy_loss_mechanism.AdjacencyType.REMOVE, privacy_loss_mechanism.AdjacencyType.ADD):
        loss = privacy_loss_mechanism.GaussianPrivacyLoss(
            noise_multiplier, pessimistic_estimate=True, log_mass_truncation_bound=_PLD_LOG_MASS_TRUNCATION,
            sampling_prob=q, adjacency_type=adjacency)
        bounds = loss.connect_dots_bounds()
        points = max(points, (bounds.epsilon_upper - bounds.epsilon_lower) / interval + 1)
    return points


@lru_cache(maxsize=1024)
def _pld_composed_points(q: float, noise_multiplier: float, interval: float, count: int) -> Tuple[int, ...]:
    """Grid points of each distinct PMF after ``count`` compositions, by dp_accounting's own truncation bound."""
    unit = _pld_per_unit(q, noise_multiplier, interval)
    # dp_accounting has no public accessor for the PMFs; these are the arrays self_compose convolves.
    pmfs = [unit._pmf_remove] if unit._symmetric else [unit._pmf_remove, unit._pmf_add]
    sizes = []
    for pmf in pmfs:
        probs = pmf.to_dense_pmf()._probs
        low, high = pld_common.compute_self_convolve_bounds(probs, count, _PLD_TAIL_MASS_TRUNCATION)
        sizes.append(max(int(high) - int(low) + 1, len(probs)))
    return tuple(sizes)


def _sampling_probability(n: int, batch_size: int, sampling: str) -> float:
    return batch_size / n if sampling == "poisson" else 1.0


def _step_event(n: int, batch_size: int, noise_multiplier: float, sampling: str) -> dp_accounting.DpEvent:
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sampling == "poisson":
        return dp_accounting.PoissonSampledDpEvent(batch_size / n, gaussian)
    return gaussian


def _unit_count(n: int, batch_size: int, epochs: int, sampling: str) -> int:
    """How many step events are composed in all: Poisson steps, or (shuffle) one Gaussian per epoch."""
    return _steps(n, batch_size, epochs, sampling) if sampling == "poisson" else epochs


def _threshold_terms(delta: float, preprocessing_noise: float) -> Tuple[float, float]:
    """(δ for the accountant, ε to add): with private preprocessing its thresholds spend δ_t of δ and add
    log(1 / (1 − δ_t)) to ε (see ``preprocessing_cost``); without, (δ, 0)."""
    if preprocessing_noise <= 0:
        return delta, 0.0
    threshold_delta = PREPROCESSING_THRESHOLD_SHARE * delta
    return delta - threshold_delta, -math.log1p(-threshold_delta)


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


def _whole_run_blocks(n: int, batch_size: int, epochs: int, sampling: str, noise_multiplier: float,
                      schedule: NoiseSchedule) -> Blocks:
    """The blocks of a whole run; a constant schedule's is one block, counted without listing epochs."""
    if not schedule.decays:
        return ((noise_multiplier, _unit_count(n, batch_size, epochs, sampling)),)
    return _run_blocks(_epoch_blocks(n, batch_size, epochs, sampling, noise_multiplier, schedule))


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
def _epsilon_cached(q: float, blocks: Blocks, delta: float, accountant: str, grid: float,
                    preprocessing_noise: float = 0.0) -> float:
    delta, extra = _threshold_terms(delta, preprocessing_noise)
    if accountant == "rdp":
        rdp = _rdp_base(preprocessing_noise) + sum(_rdp_per_unit(q, sigma) * count for sigma, count in blocks)
        return epsilon_from_rdp(rdp, delta=delta) + extra
    composed = _pld_per_unit(1.0, preprocessing_noise, grid) if preprocessing_noise > 0 else None
    for sigma, count in blocks:
        part = _pld_per_unit(q, sigma, grid).self_compose(count)
        composed = part if composed is None else composed.compose(part)
    return _pld_epsilon(composed, delta) + extra


@lru_cache(maxsize=1024)
def _preprocessing_epsilon(preprocessing_noise: float, delta: float, accountant: str, grid: float) -> float:
    """ε of the private preprocessing alone: one Gaussian release, thresholds included."""
    accountant_delta, extra = _threshold_terms(delta, preprocessing_noise)
    if accountant == "rdp":
        return epsilon_from_rdp(_rdp_base(preprocessing_noise), delta=accountant_delta) + extra
    return _pld_epsilon(_pld_per_unit(1.0, preprocessing_noise, grid), accountant_delta) + extra


@lru_cache(maxsize=512)
def _curve_cached(q: float, epoch_blocks: Tuple[Blocks, ...], delta: float, accountant: str, grid: float,
                  preprocessing_noise: float = 0.0) -> Tuple[float, ...]:
    delta, extra = _threshold_terms(delta, preprocessing_noise)
    curve = []
    if accountant == "rdp":
        # Counts per σ so far, summed as in _epsilon_cached: the last epoch's ε is bit for bit the run's.
        counts: dict[float, int] = {}
        base = _rdp_base(preprocessing_noise)
        for blocks in epoch_blocks:
            for sigma, count in blocks:
                counts[sigma] = counts.get(sigma, 0) + count
            rdp = base + sum(_rdp_per_unit(q, sigma) * count for sigma, count in counts.items())
            curve.append(epsilon_from_rdp(rdp, delta=delta) + extra)
        return tuple(curve)
    parts: dict[Tuple[float, int], privacy_loss_distribution.PrivacyLossDistribution] = {}
    composed = _pld_per_unit(1.0, preprocessing_noise, grid) if preprocessing_noise > 0 else None
    for blocks in epoch_blocks:
        for block in blocks:
            if block not in parts:
                parts[block] = _pld_per_unit(q, block[0], grid).self_compose(block[1])
            composed = parts[block] if composed is None else composed.compose(parts[block])
        curve.append(_pld_epsilon(composed, delta) + extra)
    return tuple(curve)


def _rdp_base(preprocessing_noise: float) -> "np.ndarray | float":
    """RDP of the preprocessing's Gaussian release (0 without one); RDP adds up over composition."""
    return _rdp_per_unit(1.0, preprocessing_noise) if preprocessing_noise > 0 else 0.0


@lru_cache(maxsize=1024)
def _rdp_per_unit(q: float, noise_multiplier: float) -> np.ndarray:
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


def serve_rdp(conn: "Connection") -> None:
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
        self._idle: list["ChildProcess"] = []
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
        from dpcore.child_process import ChildProcess

        with self._cond:
            while self.size and not self._idle and self._running >= self.size:
                self._cond.wait()
            if not self.size:
                return None
            if self._idle:
                child = self._idle.pop()
            else:
                child = ChildProcess("dpcore.accounting:serve_rdp")
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
        raise UserInputError("accountant_processes", f"{count!r} is not a whole number of at least 0",
                             allowed="a whole number, 0 (in this process) or more")
    _RDP_PROCESSES.resize(count)


def rdp_process_count() -> int:
    """How many accountant processes may compute RDP now (0: the caller's own process)."""
    return _RDP_PROCESSES.size


@lru_cache(maxsize=256)
def _pld_per_unit(q: float, noise_multiplier: float, grid: float) -> privacy_loss_distribution.PrivacyLossDistribution:
    return privacy_loss_distribution.from_gaussian_mechanism(
        noise_multiplier, sampling_prob=q, value_discretization_interval=grid, pessimistic_estimate=True)


def _pld_epsilon(pld: privacy_loss_distribution.PrivacyLossDistribution, delta: float) -> float:
    return float(pld.get_epsilon_for_delta(delta))


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise AccountingError(name, f"{quote(value)} is not known", allowed=", ".join(allowed))


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise AccountingError(name, f"{quote(value)} is not a whole number >= {low}", allowed=f"whole numbers >= {low}")


def _check_counts(*, n: int, batch_size: int, epochs: int) -> None:
    _check_int("n", n, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("epochs", epochs, 1)
    if batch_size > n:
        raise AccountingError("batch_size", f"{batch_size} is larger than n = {n}", allowed=f"1 to {n}")


def _check_curve_length(epochs: int) -> None:
    if epochs > MAX_CURVE_EPOCHS:
        raise AccountingError("epochs", f"a per-epoch curve has one point per epoch; {epochs:,} is too many",
                              allowed=f"at most {MAX_CURVE_EPOCHS:,} epochs per curve")


def _check_query(*, n: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float,
                 accountant: str, sampling: str, schedule: NoiseSchedule = CONSTANT_NOISE) -> None:
    _check_run(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs, sampling=sampling,
               schedule=schedule)
    _check_choice("accountant", accountant, ACCOUNTANTS)
    _check_delta(delta)


def _check_delta(delta: object) -> None:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not math.isfinite(delta) \
            or not 0 < delta < 1:
        raise AccountingError("delta", f"{quote(delta)} is out of range", allowed="a number in (0, 1)")


def _check_run(*, n: int, batch_size: int, noise_multiplier: float, epochs: int, sampling: str,
               schedule: NoiseSchedule = CONSTANT_NOISE) -> None:
    """The checks every query shares: counts, sampling, noise multiplier and the number of steps."""
    _check_counts(n=n, batch_size=batch_size, epochs=epochs)
    _check_choice("sampling", sampling, SAMPLINGS)
    steps = _steps(n, batch_size, epochs, sampling)
    if steps > MAX_STEPS:
        raise AccountingError("epochs", f"{quote(epochs)} epochs of n = {quote(n)} in batches of {batch_size} "
                              f"make {steps:.3g} steps", allowed=f"runs of at most {MAX_STEPS:.0e} steps")
    if isinstance(noise_multiplier, bool) or not isinstance(noise_multiplier, (int, float)) \
            or not math.isfinite(noise_multiplier) or not 0 < noise_multiplier <= MAX_NOISE:
        raise AccountingError("noise_multiplier", f"{quote(noise_multiplier)} is out of range",
                              allowed=f"a number in (0, {MAX_NOISE:g}]")
    _check_schedule(schedule, noise_multiplier)
    if schedule.decays and steps > MAX_SCHEDULE_STEPS:
        raise AccountingError("noise_schedule", f"a {quote(schedule.kind)} schedule lists each step's noise; "
                              f"this run has {steps:,} steps",
                              allowed=f"runs of at most {MAX_SCHEDULE_STEPS:,} steps, or a constant schedule")


def _check_schedule(schedule: NoiseSchedule, noise_multiplier: float) -> None:
    if not isinstance(schedule, NoiseSchedule):
        raise AccountingError("noise_schedule", f"{quote(schedule)} is not a NoiseSchedule")
    _check_choice("noise_schedule", schedule.kind, NOISE_SCHEDULES)
    for name, value, allowed, ok in (
        ("noise_decay_rate", schedule.decay_rate, "a number in [0, 1)", lambda v: 0 <= v < 1),
        ("noise_floor", schedule.floor, f"a number in (0, {noise_multiplier:g}]",
         lambda v: not schedule.decays or 0 < v <= noise_multiplier),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not ok(value):
            raise AccountingError(name, f"{quote(value)} is out of range", allowed=allowed)

