"""The privacy cost of choosing: ε of releasing the best of several runs trained on the same data.

A run's ε covers that run only. Training k runs on the same private data and keeping the best one
spends more, and two accountings of that are offered, both on dp_accounting:

* **Plain composition** (``composition_epsilon``): the runs' DpEvents composed, with the runs'
  accountant (RDP or PLD) at the runs' δ. Valid for any fixed set of runs, even if all are released.
* **A random number of trials** (``random_trials_epsilon``), from Papernot & Steinke,
  "Hyperparameter tuning with Rényi differential privacy" (ICLR 2022, arXiv:2110.03620v2):
  the number of trials K is drawn at random, each trial is one run of a configuration drawn at
  random from a fixed candidate list, and only the best trial is released. With K ~ Poisson(μ)
  (their Theorem 6) or K ~ truncated negative binomial D(η, γ) (their Theorem 2; η = 1 is the
  geometric and η = 0 the logarithmic distribution) the cost barely grows with E[K]. The bound is
  dp_accounting's ``RepeatAndSelectDpEvent`` accounting, which implements those two theorems,
  including the minimum over the second order λ̂ (taken over the same RDP orders), applied to
  the RDP curve of one trial. It is an RDP bound, converted to (ε, δ) by dp_accounting.

Both compose the runs' events from their steps as a single run's ε does (``dpcore.privacy.composition``:
cached step RDPs and PLDs, with the same answers where dp_accounting's own accountants fail), and a
plain PLD composition is planned like a query (``composition_work``): on the precise grid, or a coarser
one when the composed grid or its time would exceed the bounds, or refused naming the runs.

The random-trials ε is only the ε of what ran when K really was drawn at random (``draw_trial_count``),
every drawn trial was run to the end (no cap, no redraw; K = 0 under Poisson releases nothing), the
trials' configurations were drawn independently of the data, and only the best run is released.
Like the single-run ε, both bounds cover the training examples: picking the best by test accuracy
treats the held-out test split as public.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import dp_accounting
import numpy as np

# dp_accounting 0.4.3 (pinned) keeps these helpers private. The bound is its own RepeatAndSelectDpEvent
# accounting, called on a curve because a trial may draw among several runs; the two distribution
# helpers keep the distribution drawn from and the one bounded one and the same.
from dp_accounting.rdp.rdp_privacy_accountant import (
    _compute_rdp_repeat_and_select,
    _gamma_truncated_negative_binomial,
    _truncated_negative_binomial_mean,
)

from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.privacy import accounting, composition, events, limits
from dpcore.privacy.work import QueryWork

SELECTION_DISTRIBUTIONS = ("poisson", "truncated_negative_binomial")
MAX_EXPECTED_TRIALS = 1000.0  # a typo guard, like the config's MAX_EPOCHS
MAX_SHAPE = 10.0


class SelectionError(UserInputError):
    """Selection settings or a set of runs that the selection accounting cannot answer for."""


@dataclass(frozen=True)
class SelectionSettings:
    """How a "private selection" sweep draws its number of trials K.

    ``distribution`` "poisson": K ~ Poisson(mean) (K may be 0: nothing is released).
    ``distribution`` "truncated_negative_binomial": K ~ D(η = ``shape``, γ), K >= 1, with γ chosen so
    that E[K] is ``mean`` (rounded towards a smaller γ, the conservative side; ``expected_trials``
    is the exact E[K] drawn and accounted). ``shape`` 1 is the geometric distribution, 0 the
    logarithmic one; smaller shapes cost less privacy but have heavier tails.
    """

    distribution: str
    mean: float
    shape: Optional[float] = None

    def __post_init__(self) -> None:
        if self.distribution not in SELECTION_DISTRIBUTIONS:
            raise SelectionError(
                "distribution", f"{self.distribution!r} is not known", allowed=", ".join(SELECTION_DISTRIBUTIONS)
            )
        if (
            isinstance(self.mean, bool)
            or not isinstance(self.mean, (int, float))
            or not math.isfinite(self.mean)
            or not 1 <= self.mean <= MAX_EXPECTED_TRIALS
        ):
            raise SelectionError(
                "mean",
                f"{self.mean!r} is out of range",
                allowed=f"an expected number of trials in [1, {MAX_EXPECTED_TRIALS:g}]",
            )
        if self.distribution == "poisson":
            if self.shape is not None:
                raise SelectionError(
                    "shape", "the Poisson distribution has no shape", allowed="no shape with distribution poisson"
                )
            return
        if (
            isinstance(self.shape, bool)
            or not isinstance(self.shape, (int, float))
            or not math.isfinite(self.shape)
            or not 0 <= self.shape <= MAX_SHAPE
        ):
            raise SelectionError(
                "shape",
                f"{self.shape!r} is out of range",
                allowed=f"a number in [0, {MAX_SHAPE:g}] (0 logarithmic, 1 geometric)",
            )

    @cached_property
    def gamma(self) -> Optional[float]:
        """γ of the truncated negative binomial drawn from; None for Poisson."""
        if self.distribution == "poisson":
            return None
        return float(_gamma_truncated_negative_binomial(float(self.shape), float(self.mean)))

    @cached_property
    def expected_trials(self) -> float:
        """E[K] of the distribution really drawn from (for the negative binomial, at least ``mean``)."""
        if self.distribution == "poisson":
            return float(self.mean)
        return float(_truncated_negative_binomial_mean(self.gamma, float(self.shape)))

    @property
    def accounting_shape(self) -> float:
        """dp_accounting's shape parameter: ∞ stands for Poisson."""
        return math.inf if self.distribution == "poisson" else float(self.shape)


@dataclass(frozen=True)
class SelectionEpsilon:
    """The ε of releasing the best of ``runs`` runs, next to the single run's ε, all at ``delta``.

    ``single_run_epsilon`` is the largest ε of one run; ``composition_epsilon`` composes all runs
    (``accountant``); ``random_trials_epsilon`` (RDP, None without ``selection``) is the bound for a
    number of trials drawn with ``selection``.
    """

    runs: int
    delta: float
    accountant: str
    single_run_epsilon: float
    composition_epsilon: float
    random_trials_epsilon: Optional[float]
    selection: Optional[SelectionSettings]
    approximate: bool = False  # a coarser PLD grid or the RDP rounding allowance: still upper bounds

    @property
    def epsilon(self) -> float:
        """The ε of the release: the random-trials bound when K was drawn at random, else composition.

        Not the smaller of the two: with a random K, composition of the k that happened to be drawn
        is not a guarantee for the mechanism that drew it.
        """
        return self.composition_epsilon if self.random_trials_epsilon is None else self.random_trials_epsilon


def composition_epsilon(runs: Sequence[DPConfig], *, n: int, interactive: bool = False) -> float:
    """ε of releasing (the best of, or all of) ``runs`` on ``n`` examples: their events composed.

    Uses the runs' accountant at the runs' δ (both must be shared); ∞ if any run is a baseline.
    ``interactive`` starts PLD from the interactive grid (an upper bound, as for one run).
    """
    return _composition(runs, n=n, interactive=interactive)[0]


def _composition(runs: Sequence[DPConfig], *, n: int, interactive: bool = False) -> tuple[float, bool]:
    """(ε of the runs composed, whether it is approximate)."""
    delta, accountant_name = _shared_settings(runs, "runs")
    counts = Counter(accounting.dp_event_for_config(config, n=n) for config in runs)
    composed = dp_accounting.ComposedDpEvent(
        [event if count == 1 else dp_accounting.SelfComposedDpEvent(event, count) for event, count in counts.items()]
    )
    if accountant_name == "rdp":
        rdp = composition.event_rdp_bound(composed)
        return events.epsilon_from_rdp(rdp.rdp, delta=delta), rdp.rounded_up
    work = composition_work(runs, n=n, interactive=interactive)
    value = composition.event_pld_epsilon(composed, delta=delta, grid=work.grid)
    return value, work.grid > limits.PRECISE_PLD_INTERVAL


def composition_work(runs: Sequence[DPConfig], *, n: int, interactive: bool = False) -> QueryWork:
    """The grid and estimated work of composing ``runs`` under PLD: each distinct run planned as its own
    ε is, on the coarsest grid any of them needs (or coarser), its composed grid grown by each run's.

    A SelectionError naming the runs when no grid of ``PLD_INTERVALS`` holds them within the bounds.
    """
    counts = Counter(config for config in runs if config.private)
    works = {config: accounting.query_work_for_config(config, n=n, interactive=interactive) for config in counts}
    if not works:
        return QueryWork("pld", 0, 0, limits.PRECISE_PLD_INTERVAL, 0.0)
    start = max(work.grid for work in works.values())
    for grid in (g for g in limits.PLD_INTERVALS if g >= start):
        running = total = seconds = 0.0
        for config, work in works.items():
            scale = work.grid / grid  # a grid g times coarser holds 1/g the points, and costs about as much less
            running += counts[config] * work.composed_points * scale
            total += running
            seconds += work.seconds * scale
        seconds += total * limits.PLD_COMPOSED_POINT_SECONDS
        if running <= limits.MAX_PLD_POINTS and seconds <= limits.query_seconds():
            levels = sum(work.levels for work in works.values())
            compositions = sum(work.compositions for work in works.values()) + len(works)
            return QueryWork("pld", levels, compositions, grid, seconds, running)
    raise SelectionError(
        "runs",
        f"composing these {len(runs):,} runs under PLD would need a grid of {running:.2g} points and about "
        f"{seconds:.0f} s even at discretisation {grid:g} (the bounds are {limits.MAX_PLD_POINTS:,} points and "
        f"{limits.query_seconds():g} s)",
        allowed="fewer runs or epochs, or accountant 'rdp'",
    )


def random_trials_rdp(trial_events: Sequence[dp_accounting.DpEvent], *, selection: SelectionSettings) -> np.ndarray:
    """RDP at events.RDP_ORDERS of repeating a trial K ~ ``selection`` times and releasing the best.

    A trial runs one of ``trial_events``, chosen independently of the data. Its RDP at each order is at
    most the largest of theirs (Rényi divergence is jointly quasi-convex), and that curve goes into
    dp_accounting's repeat-and-select bound (the accounting behind its RepeatAndSelectDpEvent).
    """
    if not isinstance(selection, SelectionSettings):
        raise SelectionError("selection", f"{selection!r} is not selection settings", allowed="a SelectionSettings")
    if not trial_events:
        raise SelectionError("candidates", "no configurations to draw trials from", allowed="one or more")
    distinct = [event for index, event in enumerate(trial_events) if event not in trial_events[:index]]
    trial_rdp = np.max([composition.event_rdp_bound(event).rdp for event in distinct], axis=0)
    if not np.all(np.isfinite(trial_rdp)):
        return np.full_like(trial_rdp, math.inf)
    return np.asarray(
        _compute_rdp_repeat_and_select(
            events.RDP_ORDERS, trial_rdp, selection.expected_trials, selection.accounting_shape
        ),
        dtype=np.float64,
    )


def random_trials_epsilon(candidates: Sequence[DPConfig], *, n: int, selection: SelectionSettings) -> float:
    """ε at the candidates' δ of the best of K ~ ``selection`` trials, each a run of a random candidate."""
    delta, _ = _shared_settings(candidates, "candidates")
    trial_events = [accounting.dp_event_for_config(config, n=n) for config in candidates]
    return events.epsilon_from_rdp(random_trials_rdp(trial_events, selection=selection), delta=delta)


def selection_epsilon(
    *,
    runs: Sequence[DPConfig],
    n: int,
    selection: Optional[SelectionSettings] = None,
    candidates: Optional[Sequence[DPConfig]] = None,
    interactive: bool = False,
) -> SelectionEpsilon:
    """The single-run, plain-composition and (with ``selection``) random-trials ε of a set of runs.

    ``runs`` are the runs trained (or to be trained); ``candidates`` the configurations each random
    trial draws from, required with ``selection`` because a trial may draw one that did not happen
    to run. All share the training set of ``n`` examples, one δ and one accountant. ``interactive``
    answers PLD on the interactive grid (upper bounds, flagged approximate).
    """
    delta, accountant_name = _shared_settings(runs, "runs")
    random_trials = None
    rounded = False
    if selection is not None:
        if not candidates:
            raise SelectionError(
                "candidates",
                "a random number of trials needs the configurations each trial draws from",
                allowed="one or more configs with selection",
            )
        random_trials = random_trials_epsilon(candidates, n=n, selection=selection)
        _shared_settings([*runs, *candidates], "candidates")
        rounded = any(
            composition.event_rdp_bound(accounting.dp_event_for_config(config, n=n)).rounded_up for config in candidates
        )
    singles = [
        accounting.epsilon_report_for_config(config, n=n, interactive=interactive)
        for config in set(runs)
        if config.private
    ]
    composed, approximate = _composition(runs, n=n, interactive=interactive)
    return SelectionEpsilon(
        runs=len(runs),
        delta=delta,
        accountant=accountant_name,
        single_run_epsilon=max((r.epsilon for r in singles), default=math.inf)
        if len(singles) == len(set(runs))
        else math.inf,
        composition_epsilon=composed,
        random_trials_epsilon=random_trials,
        selection=selection,
        approximate=approximate or rounded or any(r.approximate for r in singles),
    )


def draw_trial_count(
    selection: SelectionSettings, *, rng: Optional[np.random.Generator] = None, secure: bool = False
) -> int:
    """Draw the number of trials K of a private-selection sweep from ``selection``'s distribution.

    ``rng`` makes the draw reproducible (teaching, tests). Without it, or with ``secure``, the
    generator is seeded from the operating system's secure source, so nobody can recompute K; a
    released result must use a K nobody chose.
    """
    if not isinstance(selection, SelectionSettings):
        raise SelectionError("selection", f"{selection!r} is not selection settings", allowed="a SelectionSettings")
    if secure and rng is not None:
        raise SelectionError(
            "rng",
            "secure mode draws from the operating system's secure source",
            allowed="no generator when secure is on",
        )
    generator = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
    if selection.distribution == "poisson":
        return int(generator.poisson(selection.mean))
    return _draw_truncated_negative_binomial(generator, shape=float(selection.shape), gamma=selection.gamma)


def _draw_truncated_negative_binomial(generator: np.random.Generator, *, shape: float, gamma: float) -> int:
    """K ~ D(η, γ) by inverting its distribution function, walking P[K = k] from k = 1.

    P[K = k] is proportional to (1 - γ)^k (η)(η + 1)...(η + k - 1) / k!, so each term is the previous one
    times (1 - γ)(k - 1 + η) / k; P[K = 1] = η (1 - γ) / (γ^-η - 1), or (1 - γ) / log(1/γ) for η = 0.
    Inversion stays exact where rejecting zeros of a negative binomial would almost never stop (γ near 1).
    """
    if gamma >= 1.0:
        return 1  # E[K] = 1: the distribution is K = 1.
    log_inverse_gamma = -math.log(gamma)
    probability = (1.0 - gamma) / (log_inverse_gamma if shape == 0 else math.expm1(shape * log_inverse_gamma) / shape)
    target = generator.random()
    trials, cumulative = 1, probability
    while cumulative < target and probability > 0.0:
        trials += 1
        probability *= (1.0 - gamma) * (trials - 1 + shape) / trials
        cumulative += probability
    return trials


def _shared_settings(configs: Sequence[DPConfig], field: str) -> tuple[float, str]:
    """(δ, accountant) shared by ``configs``, which must all train on the same data."""
    if isinstance(configs, DPConfig) or not configs or not all(isinstance(c, DPConfig) for c in configs):
        raise SelectionError(field, "expected a list of run configurations", allowed="one or more DPConfigs")
    for name, label in (("delta", "δ"), ("accountant", "accountant")):
        values = sorted({str(getattr(config, name)) for config in configs})
        if len(values) > 1:
            raise SelectionError(
                field, f"the runs mix {label} values {', '.join(values)}", allowed=f"runs that share one {label}"
            )
    data = {(c.dataset, c.csv_path, c.csv_label, c.max_train_examples, c.validation_fraction) for c in configs}
    if len(data) > 1:
        raise SelectionError(
            field,
            "the runs train on different data (dataset, CSV file, subset size or validation split)",
            allowed="runs on one training set",
        )
    return float(configs[0].delta), configs[0].accountant
