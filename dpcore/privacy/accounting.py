"""Privacy accounting for DP-SGD on top of dp_accounting: ε, per-epoch ε curves, noise calibration.

Two sampling schemes are accounted for, and a number is only valid for the scheme the trainer used:

* ``poisson``: every step draws each example independently with probability q = batch_size / n.
  The DP event is ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)), steps)``
  with steps = ceil(epochs * n / batch_size). This is the figure usually quoted for DP-SGD.
* ``shuffle``: fixed-size batches from a shuffled epoch. No amplification by sampling is claimed:
  each example is in exactly one step per epoch, so the event is
  ``SelfComposedDpEvent(GaussianDpEvent(σ), epochs)``, a conservative bound.

A noise schedule (dpcore.privacy.noise) gives every step its own σ_t; the run's event then composes, in
order, one ``SelfComposedDpEvent`` per run of steps with equal σ (``ComposedDpEvent``). Under
shuffle sampling an epoch counts as one Gaussian release at the smallest σ of its steps, since an
example's one step may be any of them. Adaptive clipping changes nothing here: its noise split
(dpcore.privacy.noise) makes gradient sum and count together one Gaussian release of the stated σ_t.
An ``epsilon_budget`` ends a run before the first epoch whose ε would exceed it, so the ε of a
config (``epsilon_for_config``, ``dp_event_for_config``) counts only the epochs within the budget.

A CSV run whose schema is derived privately (``csv_preprocessing_epsilon``) also releases noisy,
thresholded counts (``dpcore.data.tabular.derive_schema``): one ``GaussianDpEvent`` composed with
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
approximate. Every query's time is estimated too (``dpcore.privacy.work``: its noise levels and its
PLD compositions) and held to ``MAX_QUERY_SECONDS``. When nothing fits (a tiny noise multiplier, an
enormous run, a schedule through hundreds of noise levels) the query is refused with an
AccountingError naming the setting; RDP answers most of those.

Where dp_accounting's own calls fail on extreme values (``dpcore.privacy.composition``), the answer is
still dp_accounting's upper bound, computed another way, and flagged approximate where it is looser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dp_accounting

from dpcore.privacy.composition import (
    composed_epsilon,
    curve_epsilons,
    pld_per_unit,
    preprocessing_epsilon,
    rdp_rounded_up,
    unit_rdp,
)
from dpcore.privacy.events import dp_event, dp_steps, epoch_blocks, sampling_probability, whole_run_blocks
from dpcore.privacy.explain import SAMPLING_NOTES
from dpcore.privacy.limits import PRECISE_PLD_INTERVAL, AccountingError, check_curve_length, check_query, check_run
from dpcore.privacy.noise import CONSTANT_NOISE, NoiseSchedule, schedule_of
from dpcore.privacy.preprocessing import preprocessing_cost, preprocessing_cost_for_config
from dpcore.privacy.work import QueryWork, plan_query

if TYPE_CHECKING:
    from dpcore.config import DPConfig


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
    rounded_up: bool = False  # RDP: a step below dp_accounting's resolution carries the rounding allowance

    @property
    def approximate(self) -> bool:
        """True for a PLD grid coarser than the precise one, or an RDP with the rounding allowance
        (either way still an upper bound, slightly loose)."""
        return (self.accountant == "pld" and self.discretization > PRECISE_PLD_INTERVAL) or self.rounded_up

    @property
    def note(self) -> str:
        return SAMPLING_NOTES[self.sampling]


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


# -- ε ---------------------------------------------------------------------------------------


def epsilon(
    *,
    n: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    delta: float,
    accountant: str = "rdp",
    sampling: str = "poisson",
    interactive: bool = False,
    schedule: NoiseSchedule = CONSTANT_NOISE,
) -> float:
    """ε after ``epochs`` epochs of DP-SGD; ``interactive`` uses the coarse PLD grid (an upper bound).

    ``noise_multiplier`` is σ_0, the first step's; ``schedule`` says how it decays from there.
    """
    return epsilon_report(
        n=n,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        delta=delta,
        accountant=accountant,
        sampling=sampling,
        interactive=interactive,
        schedule=schedule,
    ).epsilon


def epsilon_report(
    *,
    n: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    delta: float,
    accountant: str = "rdp",
    sampling: str = "poisson",
    interactive: bool = False,
    schedule: NoiseSchedule = CONSTANT_NOISE,
) -> EpsilonReport:
    """ε with the steps, q and the sampling assumption it rests on."""
    return _report(
        n=n,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        delta=delta,
        accountant=accountant,
        sampling=sampling,
        interactive=interactive,
        schedule=schedule,
    )


def _report(
    *,
    n: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    delta: float,
    accountant: str,
    sampling: str,
    interactive: bool,
    schedule: NoiseSchedule,
    preprocessing_noise: float = 0.0,
) -> EpsilonReport:
    """``epsilon_report``, with a private CSV preprocessing's Gaussian release composed in when
    ``preprocessing_noise`` > 0."""
    check_query(
        n=n,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        delta=delta,
        accountant=accountant,
        sampling=sampling,
        schedule=schedule,
    )
    grid = plan_query(
        n=n,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        accountant=accountant,
        sampling=sampling,
        interactive=interactive,
        per_epoch=False,
        schedule=schedule,
        preprocessing_noise=preprocessing_noise,
    ).grid
    q = sampling_probability(n, batch_size, sampling)
    blocks = whole_run_blocks(int(n), int(batch_size), int(epochs), sampling, float(noise_multiplier), schedule)
    value = composed_epsilon(q, blocks, float(delta), accountant, grid, preprocessing_noise)
    return EpsilonReport(
        epsilon=value,
        delta=float(delta),
        accountant=accountant,
        sampling=sampling,
        steps=dp_steps(n=n, batch_size=batch_size, epochs=epochs, sampling=sampling),
        sampling_probability=sampling_probability(n, batch_size, sampling),
        interactive=interactive and accountant == "pld",
        epochs=int(epochs),
        discretization=grid,
        rounded_up=accountant == "rdp" and _rounded_up(q, blocks, preprocessing_noise),
    )


def _rounded_up(q: float, blocks: tuple[tuple[float, int], ...], preprocessing_noise: float) -> bool:
    """Whether an RDP ε carries the rounding allowance of a step below dp_accounting's resolution."""
    units = [(q, sigma) for sigma, _ in blocks] + ([(1.0, preprocessing_noise)] if preprocessing_noise > 0 else [])
    return any(rdp_rounded_up(*unit) for unit in units)


def epsilon_per_epoch(
    *,
    n: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    delta: float,
    accountant: str = "rdp",
    sampling: str = "poisson",
    interactive: bool = False,
    schedule: NoiseSchedule = CONSTANT_NOISE,
) -> tuple[float, ...]:
    """ε spent after each epoch, computed in one pass over the epochs (PLD: on ``pld_discretization``'s grid)."""
    return _curve(
        n=n,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        delta=delta,
        accountant=accountant,
        sampling=sampling,
        interactive=interactive,
        schedule=schedule,
    )


def _curve(
    *,
    n: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    delta: float,
    accountant: str,
    sampling: str,
    interactive: bool,
    schedule: NoiseSchedule,
    preprocessing_noise: float = 0.0,
) -> tuple[float, ...]:
    """``epsilon_per_epoch``, with a private CSV preprocessing composed in when ``preprocessing_noise`` > 0."""
    check_query(
        n=n,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        delta=delta,
        accountant=accountant,
        sampling=sampling,
        schedule=schedule,
    )
    check_curve_length(epochs)
    grid = plan_query(
        n=n,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        accountant=accountant,
        sampling=sampling,
        interactive=interactive,
        per_epoch=True,
        schedule=schedule,
        preprocessing_noise=preprocessing_noise,
    ).grid
    blocks = epoch_blocks(int(n), int(batch_size), int(epochs), sampling, float(noise_multiplier), schedule)
    return curve_epsilons(
        sampling_probability(n, batch_size, sampling), blocks, float(delta), accountant, grid, preprocessing_noise
    )


def pld_discretization(
    *,
    n: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    sampling: str = "poisson",
    interactive: bool = False,
    per_epoch: bool = False,
    schedule: NoiseSchedule = CONSTANT_NOISE,
) -> float:
    """The PLD grid a query uses: the one asked for (precise or interactive), else the first coarser
    one of ``PLD_INTERVALS`` within the bounds; an AccountingError naming the setting if none is.

    ``per_epoch`` plans a per-epoch curve (what the trainer asks for), which costs more than one ε.
    """
    check_run(
        n=n,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        sampling=sampling,
        schedule=schedule,
    )
    if per_epoch:
        check_curve_length(epochs)
    return plan_query(
        n=n,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        epochs=epochs,
        accountant="pld",
        sampling=sampling,
        interactive=interactive,
        per_epoch=per_epoch,
        schedule=schedule,
    ).grid


def check_config(config: DPConfig, *, n: int) -> float:
    """Check, before training, that the accountant can answer ``config``'s per-epoch ε on ``n`` examples.

    Returns the PLD grid the trainer's curve will use (0 for RDP or a baseline); raises
    AccountingError naming the setting when the query is beyond the bounds.
    """
    return query_work_for_config(config, n=n, per_epoch=True).grid


def query_work_for_config(config: DPConfig, *, n: int, interactive: bool = False, per_epoch: bool = False) -> QueryWork:
    """The estimated work of ``config``'s ε on ``n`` examples (``per_epoch``: of its per-epoch curve, all
    its epochs), checked against the bounds first; no work for a baseline."""
    if not config.private:
        return QueryWork(config.accountant, 0, 0, 0.0, 0.0)
    schedule = schedule_of(config)
    check_query(
        n=n,
        batch_size=config.batch_size,
        noise_multiplier=config.noise_multiplier,
        epochs=config.epochs,
        delta=config.delta,
        accountant=config.accountant,
        sampling=config.sampling,
        schedule=schedule,
    )
    if per_epoch:
        check_curve_length(config.epochs)
    cost = preprocessing_cost_for_config(config)
    return plan_query(
        n=n,
        batch_size=config.batch_size,
        noise_multiplier=config.noise_multiplier,
        epochs=config.epochs,
        accountant=config.accountant,
        sampling=config.sampling,
        interactive=interactive,
        per_epoch=per_epoch,
        schedule=schedule,
        preprocessing_noise=cost.noise_multiplier if cost else 0.0,
    )


def epsilon_for_config(config: DPConfig, *, n: int, interactive: bool = False) -> float:
    """ε of a whole run of ``config`` on ``n`` examples, private CSV preprocessing included; ∞ for a baseline.

    With an ``epsilon_budget``, the ε of the epochs the run will train.
    """
    if not config.private:
        return math.inf
    return epsilon_report_for_config(config, n=n, interactive=interactive).epsilon


def epsilon_report_for_config(config: DPConfig, *, n: int, interactive: bool = False) -> EpsilonReport:
    """``epsilon_report`` for a run of a private ``config`` on ``n`` training examples: the epochs
    within its budget, its noise schedule, and a private CSV preprocessing composed into the ε."""
    if not config.private:
        raise AccountingError(
            "private", "a non-private baseline has no ε to report (ε = ∞)", allowed="a private config"
        )
    cost = preprocessing_cost_for_config(config)
    epochs = epochs_within_budget(config, n=n)
    if epochs == 0:  # the budget allows no epoch: only the preprocessing (if any) was released
        return EpsilonReport(
            epsilon=cost.epsilon if cost else 0.0,
            delta=config.delta,
            accountant=config.accountant,
            sampling=config.sampling,
            steps=0,
            sampling_probability=sampling_probability(n, config.batch_size, config.sampling),
            interactive=False,
            epochs=0,
        )
    return _report(
        n=n,
        batch_size=config.batch_size,
        noise_multiplier=config.noise_multiplier,
        epochs=epochs,
        delta=config.delta,
        accountant=config.accountant,
        sampling=config.sampling,
        interactive=interactive,
        schedule=schedule_of(config),
        preprocessing_noise=cost.noise_multiplier if cost else 0.0,
    )


def epsilon_curve_for_config(config: DPConfig, *, n: int, interactive: bool = False) -> tuple[float, ...]:
    """ε after each of the config's ``epochs`` (the budget not applied), private CSV preprocessing
    included; all ∞ for a non-private baseline."""
    if not config.private:
        return (math.inf,) * config.epochs
    cost = preprocessing_cost_for_config(config)
    return _curve(
        n=n,
        batch_size=config.batch_size,
        noise_multiplier=config.noise_multiplier,
        epochs=config.epochs,
        delta=config.delta,
        accountant=config.accountant,
        sampling=config.sampling,
        interactive=interactive,
        schedule=schedule_of(config),
        preprocessing_noise=cost.noise_multiplier if cost else 0.0,
    )


def epsilon_split(config: DPConfig, *, n: int, interactive: bool = False) -> EpsilonSplit:
    """The run's ε with its parts: private CSV preprocessing alone, training alone, both composed."""
    cost = preprocessing_cost_for_config(config)
    training = math.inf
    if config.private:
        epochs = epochs_within_budget(config, n=n)
        training = (
            0.0
            if epochs == 0
            else epsilon(
                n=n,
                batch_size=config.batch_size,
                noise_multiplier=config.noise_multiplier,
                epochs=epochs,
                delta=config.delta,
                accountant=config.accountant,
                sampling=config.sampling,
                interactive=interactive,
                schedule=schedule_of(config),
            )
        )
    return EpsilonSplit(
        preprocessing=cost.epsilon if cost else 0.0,
        training=training,
        total=epsilon_for_config(config, n=n, interactive=interactive),
        delta=config.delta,
        threshold_delta=cost.threshold_delta if cost else 0.0,
    )


def noise_schedule_values(config: DPConfig, *, n: int) -> tuple[float, ...]:
    """σ of each noisy step of ``config`` on ``n`` examples, in order; () for a non-private baseline.

    The trainer adds exactly these (gradient and, with adaptive clipping, count noise together) and
    the accountant composes exactly these; a run stopped by its budget uses a prefix.
    """
    if not config.private:
        return ()
    steps = dp_steps(n=n, batch_size=config.batch_size, epochs=config.epochs, sampling=config.sampling)
    return schedule_of(config).values(config.noise_multiplier, steps)


# -- budget ------------------------------------------------------------------------------------


def dp_event_for_config(config: DPConfig, *, n: int) -> dp_accounting.DpEvent:
    """The event of a run of ``config`` on ``n`` examples (the epochs within its budget).

    NonPrivateDpEvent for a baseline. Training's steps, after one ``GaussianDpEvent`` for a private
    CSV preprocessing if any (in a ``ComposedDpEvent``); NoOpDpEvent for training when the budget
    allows no epoch at all.
    """
    if not config.private:
        return dp_accounting.NonPrivateDpEvent()
    epochs = epochs_within_budget(config, n=n)
    training = (
        dp_accounting.NoOpDpEvent()
        if epochs == 0
        else dp_event(
            n=n,
            batch_size=config.batch_size,
            noise_multiplier=config.noise_multiplier,
            epochs=epochs,
            sampling=config.sampling,
            schedule=schedule_of(config),
        )
    )
    cost = preprocessing_cost_for_config(config)
    if cost is None:
        return training
    return dp_accounting.ComposedDpEvent([dp_accounting.GaussianDpEvent(cost.noise_multiplier), training])


def epochs_within_budget(config: DPConfig, *, n: int) -> int:
    """How many of the config's epochs keep ε (precise accountant) within ``epsilon_budget``.

    All of them without a budget or for a non-private baseline (which ignores the budget).
    """
    if not config.private or config.epsilon_budget is None:
        return config.epochs
    curve = epsilon_curve_for_config(config, n=n)
    return sum(1 for value in curve if value <= config.epsilon_budget)


def budget_allows(config: DPConfig, *, n: int, epochs: int) -> bool:
    """Whether training ``epochs`` epochs in all keeps ε within the config's budget (asked before each epoch)."""
    return epochs <= epochs_within_budget(config, n=n)


def clear_caches() -> None:
    """Forget every cached answer, so the next query is computed afresh (e.g. to time cold queries)."""
    for cached in (
        composed_epsilon,
        curve_epsilons,
        unit_rdp,
        pld_per_unit,
        preprocessing_epsilon,
        preprocessing_cost,
        epoch_blocks,
    ):
        cached.cache_clear()
