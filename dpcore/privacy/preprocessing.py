"""The price of a privately derived CSV schema: the least Gaussian noise whose release fits its ε share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Optional

from dpcore.privacy.composition import PREPROCESSING_THRESHOLD_SHARE, preprocessing_epsilon
from dpcore.privacy.limits import AccountingError, check_query
from dpcore.privacy.pld_grid import requested_grid
from dpcore.privacy.search import bracket_noise, refine_noise

if TYPE_CHECKING:
    from dpcore.config import DPConfig


@dataclass(frozen=True)
class PreprocessingCost:
    """The mechanism a private CSV preprocessing share buys: its Gaussian noise, its thresholds' δ, its ε.

    ``noise_multiplier`` is that of one Gaussian release of L2 sensitivity 1 (``tabular.derive_schema``
    scales it to its counts); ``epsilon`` is the release's own ε at the run's δ, never above the share.
    """

    noise_multiplier: float
    threshold_delta: float
    epsilon: float


# -- private CSV preprocessing ------------------------------------------------------------------


def preprocessing_cost_for_config(config: DPConfig) -> Optional[PreprocessingCost]:
    """The private CSV preprocessing ``config`` pays for, or None (a declared schema, or not a CSV)."""
    if config.dataset != "csv" or config.csv_preprocessing_epsilon is None:
        return None
    try:
        return preprocessing_cost(
            epsilon=config.csv_preprocessing_epsilon, delta=config.delta, accountant=config.accountant
        )
    except AccountingError as exc:
        raise AccountingError("csv_preprocessing_epsilon", str(exc).split(": ", 1)[-1]) from None


@lru_cache(maxsize=256)
def preprocessing_cost(*, epsilon: float, delta: float, accountant: str = "rdp") -> PreprocessingCost:
    """The least Gaussian noise whose release costs at most ``epsilon`` at ``delta`` (thresholds included).

    The release is (ε_G(δ − δ_t) + log(1 / (1 − δ_t)), δ)-DP, with ε_G that of ``GaussianDpEvent`` on
    the precise grid and δ_t = ``PREPROCESSING_THRESHOLD_SHARE`` · δ the thresholds' part.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon) or epsilon <= 0:
        raise AccountingError("epsilon", f"{epsilon!r} is not a positive finite number", allowed="a number > 0")
    check_query(
        n=1, batch_size=1, noise_multiplier=1.0, epochs=1, delta=delta, accountant=accountant, sampling="shuffle"
    )
    threshold_delta = PREPROCESSING_THRESHOLD_SHARE * delta

    def eps_at(sigma: float) -> float:
        return preprocessing_epsilon(sigma, float(delta), accountant, requested_grid(accountant, False))

    low, high = bracket_noise(eps_at, float(epsilon), start=1.0, factor=2.0)
    if low is not None:
        high, _ = refine_noise(eps_at, float(epsilon), low=low, high=high)
    return PreprocessingCost(noise_multiplier=high, threshold_delta=threshold_delta, epsilon=eps_at(high))
