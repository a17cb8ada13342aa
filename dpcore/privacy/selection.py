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

The random-trials ε is only the ε of what ran when K really was drawn at random (``draw_trial_count``)
and used as drawn (never redrawn; K = 0 under Poisson releases nothing), the trials' configurations
were drawn independently of the data, and only the best run is released: not K, not the other trials.
Showing every trial (and K) is covered by their composition instead, for the K that was drawn.

A cap on K (a sweep refuses a drawn K above it, releasing nothing) changes the mechanism: its output
differs from the uncapped one only when K > cap, so it is (ε, δ + e^ε · P[K > cap])-DP where the
uncapped one is (ε, δ). ``trial_count_tail`` bounds P[K > cap]; ``SelectionEpsilon.cap_delta`` is
that added δ, and ``check_trial_cap`` refuses a distribution whose tail would add more than
``MAX_CAP_DELTA_SHARE`` of δ. Like the single-run ε, both bounds cover the training examples: picking
the best by test accuracy treats the held-out test split as public.

A CSV run whose schema is derived privately (``csv_preprocessing_epsilon``) is refused here: its
thresholds are an (ε, δ) release outside the DpEvents composed, which neither bound takes into account.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Optional, cast

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
# The most that refusing draws above a cap on K may add to δ, as a share of δ: beyond it the
# distribution is refused before anything is drawn.
MAX_CAP_DELTA_SHARE = 0.01
# A tail bound at least this large is computed as 1 - P[K <= cap] instead.
DIRECT_TAIL_ABOVE = 1e-6
# Added for rounding: to 1 - P[K <= cap] (absolute) and to the geometric bound (relative).
ROUNDING_MARGIN = 1e-12
RELATIVE_ROUNDING_MARGIN = 1e-9


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
        assert self.shape is not None  # __post_init__ requires a shape for the negative binomial
        return float(_gamma_truncated_negative_binomial(float(self.shape), float(self.mean)))

    @cached_property
    def expected_trials(self) -> float:
        """E[K] of the distribution really drawn from (for the negative binomial, at least ``mean``)."""
        if self.distribution == "poisson":
            return float(self.mean)
        assert self.shape is not None  # __post_init__ requires a shape for the negative binomial
        return float(_truncated_negative_binomial_mean(self.gamma, float(self.shape)))

    @property
    def accounting_shape(self) -> float:
        """dp_accounting's shape parameter: ∞ stands for Poisson."""
        if self.distribution == "poisson":
            return math.inf
        assert self.shape is not None  # __post_init__ requires a shape for the negative binomial
        return float(self.shape)


@dataclass(frozen=True)
class SelectionEpsilon:
    """The ε of releasing the best of ``runs`` runs, next to the single run's ε, all at ``delta``.

    ``single_run_epsilon`` is the largest ε of one run (of a candidate when no run was drawn);
    ``composition_epsilon`` composes all runs (``accountant``; 0 for none), the ε of showing every one
    of them; ``random_trials_epsilon`` (RDP, None without ``selection``) is the bound for releasing
    only the best of a number of trials drawn with ``selection``, at δ + ``cap_delta`` when draws
    above ``trial_cap`` are refused.
    """

    runs: int
    delta: float
    accountant: str
    single_run_epsilon: float
    composition_epsilon: float
    random_trials_epsilon: Optional[float]
    selection: Optional[SelectionSettings]
    trial_cap: Optional[int] = None
    cap_tail: float = 0.0  # an upper bound on P[K > trial_cap]
    cap_delta: float = 0.0  # e^ε · cap_tail: what refusing those draws adds to δ
    approximate: bool = False  # a coarser PLD grid or the RDP rounding allowance: still upper bounds

    @property
    def epsilon(self) -> float:
        """The ε of releasing only the best: the random-trials bound when K was drawn at random, else composition.

        Not the smaller of the two: with a random K, composition of the k that happened to be drawn
        is not a guarantee for the mechanism that drew it, and a trial that did not finish changes
        neither: the claim is that of the mechanism started.
        """
        return self.composition_epsilon if self.random_trials_epsilon is None else self.random_trials_epsilon

    @property
    def selection_delta(self) -> float:
        """δ of ``epsilon``: the runs' δ, plus ``cap_delta`` for a random number of trials under a cap."""
        return self.delta + (self.cap_delta if self.random_trials_epsilon is not None else 0.0)


def composition_epsilon(runs: Sequence[DPConfig], *, n: int, interactive: bool = False) -> float:
    """ε of releasing (the best of, or all of) ``runs`` on ``n`` examples: their events composed.

    Uses the runs' accountant at the runs' δ (both must be shared); ∞ if any run is a baseline.
    ``interactive`` starts PLD from the interactive grid (an upper bound, as for one run).
    """
    return _composition(runs, n=n, interactive=interactive)[0]


def _composition(runs: Sequence[DPConfig], *, n: int, interactive: bool = False) -> tuple[float, bool]:
    """(ε of the runs composed, whether it is approximate)."""
    delta, accountant_name = _shared_settings(runs, "runs")
    grid = limits.PRECISE_PLD_INTERVAL
    if accountant_name == "pld":
        grid = composition_work(runs, n=n, interactive=interactive).grid
    # Counted by config without its seed (the seed changes no event); events holding lists cannot be hashed.
    counts = Counter(config.replace(seed=0) for config in runs)
    return _composed_epsilon(tuple(counts.items()), n, delta, accountant_name, grid)


@lru_cache(maxsize=256)
def _composed_epsilon(
    counts: tuple[tuple[DPConfig, int], ...], n: int, delta: float, accountant_name: str, grid: float
) -> tuple[float, bool]:
    """(ε, approximate) of each config's event composed as many times as counted; cached, as pages ask again
    on every rerun."""
    events_counted = [(accounting.dp_event_for_config(config, n=n), count) for config, count in counts]
    composed = dp_accounting.ComposedDpEvent(
        [event if count == 1 else dp_accounting.SelfComposedDpEvent(event, count) for event, count in events_counted]
    )
    if accountant_name == "rdp":
        rdp = composition.event_rdp_bound(composed)
        return events.epsilon_from_rdp(rdp.rdp, delta=delta), rdp.rounded_up
    value = composition.event_pld_epsilon(composed, delta=delta, grid=grid)
    return value, grid > limits.PRECISE_PLD_INTERVAL


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
    trial_cap: Optional[int] = None,
    interactive: bool = False,
) -> SelectionEpsilon:
    """The single-run, plain-composition and (with ``selection``) random-trials ε of a set of runs.

    ``runs`` are the runs trained (or to be trained; with ``selection`` they may be none, K = 0);
    ``candidates`` the configurations each random trial draws from, required with ``selection``
    because a trial may draw one that did not happen to run. All share the training set of ``n``
    examples, one δ and one accountant. ``trial_cap``: draws of K above it are refused, and the
    random-trials bound pays for that in δ (``cap_delta``). ``interactive`` answers PLD on the
    interactive grid (upper bounds, flagged approximate).
    """
    random_trials, tail, cap_delta = None, 0.0, 0.0
    rounded = False
    if selection is None or isinstance(runs, DPConfig) or len(runs):
        delta, accountant_name = _shared_settings(runs, "runs")
    if selection is not None:
        if not candidates:
            raise SelectionError(
                "candidates",
                "a random number of trials needs the configurations each trial draws from",
                allowed="one or more configs with selection",
            )
        random_trials = random_trials_epsilon(candidates, n=n, selection=selection)
        delta, accountant_name = _shared_settings([*runs, *candidates], "candidates")
        rounded = any(
            composition.event_rdp_bound(accounting.dp_event_for_config(config, n=n)).rounded_up for config in candidates
        )
        if trial_cap is not None:
            tail = trial_count_tail(selection, cap=trial_cap)
            cap_delta = _cap_delta(random_trials, tail)
    single_configs = set(runs) if runs else set(candidates or ())
    singles = [
        accounting.epsilon_report_for_config(config, n=n, interactive=interactive)
        for config in single_configs
        if config.private
    ]
    composed, approximate = _composition(runs, n=n, interactive=interactive) if runs else (0.0, False)
    return SelectionEpsilon(
        runs=len(runs),
        delta=delta,
        accountant=accountant_name,
        single_run_epsilon=max((r.epsilon for r in singles), default=math.inf)
        if len(singles) == len(single_configs)
        else math.inf,
        composition_epsilon=composed,
        random_trials_epsilon=random_trials,
        selection=selection,
        trial_cap=trial_cap if selection is not None else None,
        cap_tail=tail,
        cap_delta=cap_delta,
        approximate=approximate or rounded or any(r.approximate for r in singles),
    )


def _cap_delta(epsilon: float, tail: float) -> float:
    """e^ε · tail, the δ that refusing draws above a cap adds (∞ where it overflows; 0 for no tail)."""
    if tail <= 0.0:
        return 0.0
    exponent = epsilon + math.log(tail)
    return math.inf if exponent > 700 else math.exp(exponent)


def check_trial_cap(result: SelectionEpsilon) -> None:
    """Refuse a random number of trials whose draws above the cap would add more than MAX_CAP_DELTA_SHARE of δ.

    Checked before K is drawn, so a refused distribution draws nothing.
    """
    if result.selection is None or result.trial_cap is None:
        return
    if result.cap_delta <= MAX_CAP_DELTA_SHARE * result.delta:
        return
    settings = result.selection
    shape = " or a larger shape" if settings.distribution != "poisson" else ""
    raise SelectionError(
        "mean",
        f"with E[K] = {settings.expected_trials:.4g} the chance of drawing more than {result.trial_cap:,} trials "
        f"is up to {result.cap_tail:.1e}, and refusing such a draw would add {result.cap_delta:.1e} to "
        f"δ = {result.delta:.0e}",
        allowed=f"a distribution whose draws above {result.trial_cap:,} cost at most {MAX_CAP_DELTA_SHARE:.0%} "
        f"of δ: a smaller mean{shape}",
    )


def trial_count_tail(selection: SelectionSettings, *, cap: int) -> float:
    """An upper bound on P[K > ``cap``] for K drawn with ``selection``, computed in log space.

    Beyond ``cap`` the terms P[K = k] fall at least geometrically (Poisson: ratio μ/(k + 1); the
    truncated negative binomial: (1 - γ)(k + η)/(k + 1)), so the tail is at most its first term over
    one minus the largest ratio (times 1 + ``RELATIVE_ROUNDING_MARGIN``). Where that bound is not
    small (``DIRECT_TAIL_ABOVE``) the tail is 1 - P[K <= cap], plus ``ROUNDING_MARGIN``.
    """
    if not isinstance(selection, SelectionSettings):
        raise SelectionError("selection", f"{selection!r} is not selection settings", allowed="a SelectionSettings")
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
        raise SelectionError("cap", f"{cap!r} is not a number of trials", allowed="a whole number >= 0")
    first = cap + 1
    if selection.distribution == "poisson":
        mean = float(selection.mean)
        ratio = mean / (first + 1)

        def log_term(k: int) -> float:
            return -mean + k * math.log(mean) - math.lgamma(k + 1)

        smallest = 0
    else:
        gamma, shape = float(cast(float, selection.gamma)), selection.accounting_shape
        if gamma >= 1.0:
            return 0.0  # K = 1 always
        log_inverse_gamma = -math.log(gamma)
        log_norm = math.log(log_inverse_gamma) if shape == 0 else math.log(math.expm1(shape * log_inverse_gamma))
        ratio = (1.0 - gamma) * max(1.0, (first + shape) / (first + 1))

        def log_term(k: int) -> float:
            coefficient = (
                -math.log(k) if shape == 0 else math.lgamma(k + shape) - math.lgamma(shape) - math.lgamma(k + 1)
            )
            return k * math.log1p(-gamma) + coefficient - log_norm

        smallest = 1
    if ratio < 1.0:
        bound = math.exp(log_term(first)) / (1.0 - ratio) * (1.0 + RELATIVE_ROUNDING_MARGIN)
        if bound < DIRECT_TAIL_ABOVE:
            return bound
    below = math.fsum(math.exp(log_term(k)) for k in range(smallest, first))
    return min(1.0, max(0.0, 1.0 - below) + ROUNDING_MARGIN)


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
    assert selection.shape is not None  # __post_init__ requires a shape for the negative binomial
    assert selection.gamma is not None  # and gives it a γ (None only for Poisson)
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
    if any(c.private and c.csv_preprocessing_epsilon is not None for c in configs):
        raise SelectionError(
            "csv_preprocessing_epsilon",
            "each run derives its CSV schema privately, and the thresholds of that derivation are an "
            "(ε, δ) release that the ε of choosing among runs does not compose",
            allowed="a declared schema (csv_schema) for runs to choose among",
        )
    return float(configs[0].delta), configs[0].accountant
