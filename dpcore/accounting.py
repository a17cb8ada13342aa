"""Privacy accounting for DP-SGD on top of dp_accounting: ε, per-epoch ε curves, noise calibration.

Two sampling schemes are accounted for, and a number is only valid for the scheme the trainer used:

* ``poisson``: every step draws each example independently with probability q = batch_size / n.
  The DP event is ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)), steps)``
  with steps = ceil(epochs * n / batch_size). This is the figure usually quoted for DP-SGD.
* ``shuffle``: fixed-size batches from a shuffled epoch. No amplification by sampling is claimed:
  each example is in exactly one step per epoch, so the event is
  ``SelfComposedDpEvent(GaussianDpEvent(σ), epochs)``, a conservative bound.

A CSV run whose schema is derived privately (``csv_preprocessing_epsilon``) also releases noisy,
thresholded counts (``dpcore.tabular.derive_schema``): one ``GaussianDpEvent`` composed with
training's events, while the thresholds spend ``PREPROCESSING_THRESHOLD_SHARE`` of δ; the run's ε is
that composition's (see ``epsilon_split``).

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

from dpcore.config import ACCOUNTANTS, MAX_NOISE, SAMPLINGS
from dpcore.errors import UserInputError

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

    @property
    def approximate(self) -> bool:
        """True for the coarse interactive PLD grid (still an upper bound, slightly loose)."""
        return self.interactive and self.accountant == "pld"

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
            accountant: str = "rdp", sampling: str = "poisson", interactive: bool = False) -> float:
    """ε after ``epochs`` epochs of DP-SGD; ``interactive`` uses the coarse PLD grid (an upper bound)."""
    return epsilon_report(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs,
                          delta=delta, accountant=accountant, sampling=sampling,
                          interactive=interactive).epsilon


def epsilon_report(*, n: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float,
                   accountant: str = "rdp", sampling: str = "poisson",
                   interactive: bool = False) -> EpsilonReport:
    """ε with the steps, q and the sampling assumption it rests on."""
    _check_query(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs,
                 delta=delta, accountant=accountant, sampling=sampling)
    value = _epsilon_cached(int(n), int(batch_size), float(noise_multiplier), int(epochs), float(delta),
                            accountant, sampling, _grid(accountant, interactive))
    return EpsilonReport(
        epsilon=value, delta=float(delta), accountant=accountant, sampling=sampling,
        steps=dp_steps(n=n, batch_size=batch_size, epochs=epochs, sampling=sampling),
        sampling_probability=_sampling_probability(n, batch_size, sampling),
        interactive=interactive and accountant == "pld",
    )


def epsilon_per_epoch(*, n: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float,
                      accountant: str = "rdp", sampling: str = "poisson",
                      interactive: bool = False) -> Tuple[float, ...]:
    """ε spent after each epoch, computed in one pass over the epochs."""
    _check_query(n=n, batch_size=batch_size, noise_multiplier=noise_multiplier, epochs=epochs,
                 delta=delta, accountant=accountant, sampling=sampling)
    return _curve_cached(int(n), int(batch_size), float(noise_multiplier), int(epochs), float(delta),
                         accountant, sampling, _grid(accountant, interactive))


def epsilon_for_config(config: "DPConfig", *, n: int, interactive: bool = False) -> float:
    """ε of a whole run of ``config`` on ``n`` examples, private CSV preprocessing included; ∞ for a baseline."""
    if not config.private:
        return math.inf
    return _epsilon_cached(*_config_query(config, n=n, interactive=interactive))


def epsilon_curve_for_config(config: "DPConfig", *, n: int, interactive: bool = False) -> Tuple[float, ...]:
    """ε after each epoch of ``config`` on ``n`` examples, private CSV preprocessing included; ∞ for a baseline."""
    if not config.private:
        return (math.inf,) * config.epochs
    return _curve_cached(*_config_query(config, n=n, interactive=interactive))


def _config_query(config: "DPConfig", *, n: int, interactive: bool) -> tuple:
    """The checked arguments of ``_epsilon_cached`` and ``_curve_cached`` for a run of ``config``."""
    _check_query(n=n, batch_size=config.batch_size, noise_multiplier=config.noise_multiplier, epochs=config.epochs,
                 delta=config.delta, accountant=config.accountant, sampling=config.sampling)
    cost = preprocessing_cost_for_config(config)
    # Without preprocessing the arguments are those ``epsilon`` passes, so the two share cache entries.
    return (int(n), config.batch_size, float(config.noise_multiplier), config.epochs, float(config.delta),
            config.accountant, config.sampling, _grid(config.accountant, interactive),
            *((cost.noise_multiplier,) if cost else ()))


def epsilon_split(config: "DPConfig", *, n: int, interactive: bool = False) -> EpsilonSplit:
    """The run's ε with its parts: private CSV preprocessing alone, training alone, both composed."""
    cost = preprocessing_cost_for_config(config)
    training = math.inf
    if config.private:
        training = epsilon(n=n, batch_size=config.batch_size, noise_multiplier=config.noise_multiplier,
                           epochs=config.epochs, delta=config.delta, accountant=config.accountant,
                           sampling=config.sampling, interactive=interactive)
    return EpsilonSplit(preprocessing=cost.epsilon if cost else 0.0, training=training,
                        total=epsilon_for_config(config, n=n, interactive=interactive), delta=config.delta,
                        threshold_delta=cost.threshold_delta if cost else 0.0)


def dp_event_for_config(config: "DPConfig", *, n: int) -> dp_accounting.DpEvent:
    """The DpEvent of a private run: training's steps, composed with the private CSV preprocessing if any.

    Poisson: ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)), steps)``; shuffle:
    ``SelfComposedDpEvent(GaussianDpEvent(σ), epochs)``; the preprocessing is one ``GaussianDpEvent``.
    """
    _check_counts(n=n, batch_size=config.batch_size, epochs=config.epochs)
    units = _counted_units(n, config.batch_size, config.epochs, config.sampling)[-1]
    training = dp_accounting.SelfComposedDpEvent(
        _step_event(n, config.batch_size, config.noise_multiplier, config.sampling), units)
    cost = preprocessing_cost_for_config(config)
    if cost is None:
        return training
    return dp_accounting.ComposedDpEvent([dp_accounting.GaussianDpEvent(cost.noise_multiplier), training])


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


# -- calibration -------------------------------------------------------------------------------


def calibrate_noise(*, target_epsilon: float, n: int, batch_size: int, epochs: int, delta: float,
                    accountant: str = "rdp", sampling: str = "poisson",
                    interactive: bool = False) -> Calibration:
    """Smallest noise multiplier (to 0.1% relative) whose ε is at most ``target_epsilon``; never above it."""
    if isinstance(target_epsilon, bool) or not isinstance(target_epsilon, (int, float)) \
            or not math.isfinite(target_epsilon) or target_epsilon <= 0:
        raise AccountingError("target_epsilon", f"{target_epsilon!r} is not a positive finite number",
                              allowed="a number > 0")
    _check_query(n=n, batch_size=batch_size, noise_multiplier=1.0, epochs=epochs, delta=delta,
                 accountant=accountant, sampling=sampling)

    def eps_at(sigma: float) -> float:
        return epsilon(n=n, batch_size=batch_size, noise_multiplier=sigma, epochs=epochs, delta=delta,
                       accountant=accountant, sampling=sampling, interactive=interactive)

    low, high = _bracket(eps_at, float(target_epsilon), start=_starting_noise(
        target_epsilon=float(target_epsilon), n=n, batch_size=batch_size, epochs=epochs, delta=delta,
        accountant=accountant, sampling=sampling), factor=1.25 if accountant == "pld" else 2.0)
    if low is None:
        return Calibration(noise_multiplier=high, epsilon=eps_at(high), target_epsilon=float(target_epsilon))
    high, high_eps = _refine(eps_at, float(target_epsilon), low=low, high=high)
    return Calibration(noise_multiplier=high, epsilon=high_eps, target_epsilon=float(target_epsilon))


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
                    accountant: str, sampling: str) -> float:
    """A first guess near the answer: the cheap RDP calibration when PLD is asked for (PLD is tighter)."""
    if accountant != "pld":
        return 1.0
    try:
        return calibrate_noise(target_epsilon=target_epsilon, n=n, batch_size=batch_size, epochs=epochs,
                               delta=delta, accountant="rdp", sampling=sampling).noise_multiplier
    except AccountingError:
        return MAX_NOISE


def _bracket(eps_at: Callable[[float], float], target: float, *, start: float,
             factor: float) -> Tuple[Optional[float], float]:
    """(low, high) with eps(low) > target >= eps(high), stepping by ``factor`` from ``start``.

    low is None when the smallest noise multiplier searched already meets the target.
    """
    high = min(max(start, MIN_CALIBRATED_NOISE), MAX_NOISE)
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
        if low <= MIN_CALIBRATED_NOISE:
            return None, MIN_CALIBRATED_NOISE
        candidate = max(low / factor, MIN_CALIBRATED_NOISE)
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


def _counted_units(n: int, batch_size: int, epochs: int, sampling: str) -> Tuple[int, ...]:
    """Cumulative count of step events per epoch: Poisson steps, or (shuffle) one Gaussian per epoch."""
    if sampling == "poisson":
        return epoch_end_steps(n=n, batch_size=batch_size, epochs=epochs, sampling=sampling)
    return tuple(range(1, epochs + 1))


def _threshold_terms(delta: float, preprocessing_noise: float) -> Tuple[float, float]:
    """(δ for the accountant, ε to add): with private preprocessing its thresholds spend δ_t of δ and add
    log(1 / (1 − δ_t)) to ε (see ``preprocessing_cost``); without, (δ, 0)."""
    if preprocessing_noise <= 0:
        return delta, 0.0
    threshold_delta = PREPROCESSING_THRESHOLD_SHARE * delta
    return delta - threshold_delta, -math.log1p(-threshold_delta)


@lru_cache(maxsize=4096)
def _epsilon_cached(n: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float,
                    accountant: str, sampling: str, grid: float, preprocessing_noise: float = 0.0) -> float:
    count = _counted_units(n, batch_size, epochs, sampling)[-1]
    q = _sampling_probability(n, batch_size, sampling)
    delta, extra = _threshold_terms(delta, preprocessing_noise)
    if accountant == "rdp":
        return _rdp_to_epsilon(_rdp_base(preprocessing_noise) + _rdp_per_unit(q, noise_multiplier) * count,
                               delta) + extra
    composed = _pld_per_unit(q, noise_multiplier, grid).self_compose(count)
    if preprocessing_noise > 0:
        composed = composed.compose(_pld_per_unit(1.0, preprocessing_noise, grid))
    return _pld_epsilon(composed, delta) + extra


@lru_cache(maxsize=1024)
def _preprocessing_epsilon(preprocessing_noise: float, delta: float, accountant: str, grid: float) -> float:
    """ε of the private preprocessing alone: one Gaussian release, thresholds included."""
    accountant_delta, extra = _threshold_terms(delta, preprocessing_noise)
    if accountant == "rdp":
        return _rdp_to_epsilon(_rdp_base(preprocessing_noise), accountant_delta) + extra
    return _pld_epsilon(_pld_per_unit(1.0, preprocessing_noise, grid), accountant_delta) + extra


@lru_cache(maxsize=512)
def _curve_cached(n: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float,
                  accountant: str, sampling: str, grid: float, preprocessing_noise: float = 0.0) -> Tuple[float, ...]:
    counts = _counted_units(n, batch_size, epochs, sampling)
    q = _sampling_probability(n, batch_size, sampling)
    delta, extra = _threshold_terms(delta, preprocessing_noise)
    if accountant == "rdp":
        rdp = _rdp_per_unit(q, noise_multiplier)
        base = _rdp_base(preprocessing_noise)
        return tuple(_rdp_to_epsilon(base + rdp * count, delta) + extra for count in counts)
    unit = _pld_per_unit(q, noise_multiplier, grid)
    blocks: dict[int, privacy_loss_distribution.PrivacyLossDistribution] = {}
    curve = []
    composed = _pld_per_unit(1.0, preprocessing_noise, grid) if preprocessing_noise > 0 else None
    previous = 0
    for count in counts:
        block_size = count - previous
        previous = count
        if block_size not in blocks:
            blocks[block_size] = unit.self_compose(block_size)
        composed = blocks[block_size] if composed is None else composed.compose(blocks[block_size])
        curve.append(_pld_epsilon(composed, delta) + extra)
    return tuple(curve)


def _rdp_base(preprocessing_noise: float) -> "np.ndarray | float":
    """RDP of the preprocessing's Gaussian release (0 without one); RDP adds up over composition."""
    return _rdp_per_unit(1.0, preprocessing_noise) if preprocessing_noise > 0 else 0.0


@lru_cache(maxsize=1024)
def _rdp_per_unit(q: float, noise_multiplier: float) -> np.ndarray:
    """RDP of one step event at RDP_ORDERS, from dp_accounting's own accountant."""
    accountant = rdp_privacy_accountant.RdpAccountant(orders=RDP_ORDERS)
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    accountant.compose(gaussian if q >= 1.0 else dp_accounting.PoissonSampledDpEvent(q, gaussian))
    rdp = np.array(accountant._rdp, dtype=np.float64)  # RDP composes additively over steps.
    rdp.setflags(write=False)
    return rdp


def _rdp_to_epsilon(rdp: np.ndarray, delta: float) -> float:
    value, _ = rdp_privacy_accountant.compute_epsilon(RDP_ORDERS, rdp, delta)
    return float(value)


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
                 accountant: str, sampling: str) -> None:
    _check_counts(n=n, batch_size=batch_size, epochs=epochs)
    _check_choice("accountant", accountant, ACCOUNTANTS)
    _check_choice("sampling", sampling, SAMPLINGS)
    if isinstance(noise_multiplier, bool) or not isinstance(noise_multiplier, (int, float)) \
            or not math.isfinite(noise_multiplier) or not 0 < noise_multiplier <= MAX_NOISE:
        raise AccountingError("noise_multiplier", f"{noise_multiplier!r} is out of range",
                              allowed=f"a number in (0, {MAX_NOISE:g}]")
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not math.isfinite(delta) \
            or not 0 < delta < 1:
        raise AccountingError("delta", f"{delta!r} is out of range", allowed="a number in (0, 1)")
