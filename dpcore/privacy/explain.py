"""Plain-language readings of ε and warnings for risky settings, shared by the app and the CLI."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from dpcore.config import ACCOUNTANT_FULL_NAMES, ACCOUNTANT_TITLES, DPConfig

# Batches smaller than this make every noisy step mostly noise (noise std is σ·C/B per example).
TINY_BATCH = 16
# Beyond this ε a guarantee says little in practice.
HIGH_EPSILON = 10.0


# What an ε assumes about how batches were drawn: the accountant's reports and the pages say this.
SAMPLING_NOTES = {
    "poisson": "Poisson sampling (amplified): this ε is only valid when every batch is really drawn by "
    "Poisson sampling (each example joins each batch independently with probability "
    "q = batch size / n), which is how DP Explorer trains with this setting.",
    "shuffle": "Shuffled fixed-size batches (no amplification): a conservative bound; each example is in "
    "exactly one step per epoch and that step counts as a full Gaussian release, so the "
    "smaller Poisson figure does not cover it.",
}


@dataclass(frozen=True)
class RiskWarning:
    """One risk in the current settings: the field it concerns, how serious, and why."""

    field: str
    level: str  # "error": the guarantee or the run is invalid; "warning": allowed but risky
    message: str


def format_epsilon(
    value: Optional[float], *, digits: Optional[int] = 3, infinity: str = "∞", unknown: str = "—"
) -> str:
    """ε as text, the one format for the pages, the CLI and the run CSV.

    ``infinity`` for a non-private baseline, ``unknown`` while not known, else ``digits`` decimals
    (``digits`` + 1 significant digits from 100 up); ``digits=None`` writes the exact value, for files.
    """
    if value is None:
        return unknown
    if math.isinf(value):
        return infinity
    if digits is None:
        return repr(float(value))
    return f"{value:.{digits}f}" if value < 100 else f"{value:.{digits + 1}g}"


def strength(epsilon: float) -> str:
    """A one-word strength label for ε: strong, moderate, weak, very weak or none."""
    if math.isinf(epsilon):
        return "none"
    if epsilon <= 1.0:
        return "strong"
    if epsilon <= 3.0:
        return "moderate"
    if epsilon <= HIGH_EPSILON:
        return "weak"
    return "very weak"


def attacker_confidence(epsilon: float) -> float:
    """The most an attacker who starts 50/50 on 'was this record used?' can end up believing (δ aside)."""
    if math.isinf(epsilon) or epsilon > 700:
        return 1.0
    return math.exp(epsilon) / (1.0 + math.exp(epsilon))


def epsilon_reading(epsilon: float, delta: float, *, outcome: str = "training outcome") -> str:
    """One sentence that says what (ε, δ) promises to one person whose record is in the data."""
    if math.isinf(epsilon):
        return "ε = ∞: no privacy guarantee at all; the model may reveal whether any record was in the training data."
    confidence = attacker_confidence(epsilon)
    reading = (
        f"{strength(epsilon).capitalize()} privacy: adding or removing any one person's record "
        f"changes the chance of any {outcome} by at most {factor_text(epsilon)} "
        f"(with a {delta:.1e} chance of failing), so an attacker who starts 50/50 on whether a "
        f"record was used can end at most {_percent(confidence)} sure."
    )
    if epsilon > HIGH_EPSILON:
        reading += " A bound this loose is, in practice, effectively no protection."
    return reading


# Words for the large powers of ten in the factor e^ε, largest first; from a trillion on it is astronomical.
_LARGE_NUMBER_WORDS = ((1e9, "billion"), (1e6, "million"))
_ASTRONOMICAL_FACTOR = 1e12


def factor_text(epsilon: float) -> str:
    """e^ε, the most one person can change the chance of an outcome, written as people read numbers.

    Three significant digits: ×2.72, ×54.6, ×11,500, then ×1.2 million or ×72 billion (two digits),
    and from a trillion on "an astronomically large factor"; never ×1.15e+04.
    """
    factor = math.exp(epsilon) if epsilon < 700 else math.inf
    if factor < 100:
        return f"×{factor:.3g}"
    if factor < 1e6:
        return f"×{_rounded(factor, 3)}"
    if factor >= _ASTRONOMICAL_FACTOR:
        return "an astronomically large factor"
    scale, word = next((scale, word) for scale, word in _LARGE_NUMBER_WORDS if factor >= scale)
    return f"×{_rounded(factor / scale, 2)} {word}"


def _rounded(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits, with thousands separators and no exponent."""
    rounded = float(f"{value:.{digits}g}")
    return f"{rounded:,.0f}" if rounded >= 10 ** (digits - 1) else f"{rounded:g}"


def accounting_note(accountant: str, sampling: str) -> str:
    """What the ε shown assumes: which accountant, which sampling, and when it is valid."""
    name = f"{ACCOUNTANT_TITLES[accountant]} ({ACCOUNTANT_FULL_NAMES[accountant]}) accountant"
    return f"{name}. {SAMPLING_NOTES[sampling]}"


def randomness_note(config: DPConfig) -> str:
    """Whether the run's noise can be recomputed by someone who knows its seed, and what ε assumes."""
    if not config.private:
        return "Non-private baseline: no noise is added."
    if config.secure_mode:
        return (
            "Secure mode: batches and noise come from secret random seeds drawn from the operating "
            "system, so the run cannot be repeated exactly. ε assumes ideal Gaussian noise; "
            "floating-point sampling approximates it."
        )
    return (
        f"Reproducible mode: batches and noise follow seed {config.seed}, so anyone who knows the "
        "seed can recompute the noise and undo the privacy. Fine for teaching and tuning; turn on "
        "secure mode (More settings on Explore) for a model you will release."
    )


SELECTION_NOTE = (
    "Each run's ε covers that run alone. Picking the best of several runs trained on the same private "
    "data spends more privacy than any one of them shows; tune on public or held-out data, or budget "
    "for the selection."
)


def risk_warnings(config: DPConfig, *, n: int, epsilon: float) -> tuple[RiskWarning, ...]:
    """Everything risky about ``config`` on a training set of ``n`` examples with this ε."""
    found: list[RiskWarning] = []
    if not config.private:
        found.append(
            RiskWarning("private", "warning", "Non-private baseline: no clipping, no noise, ε = ∞ (no guarantee).")
        )
        return tuple(found)
    if n > 0 and config.delta >= 1.0 / n:
        found.append(
            RiskWarning(
                "delta",
                "error",
                f"δ = {config.delta:.2g} is not below 1/n = {1.0 / n:.2g}: a mechanism that publishes one "
                "random person's record outright meets this δ. Choose δ well below 1/n (e.g. 1/(10n)).",
            )
        )
    if config.batch_size > n:
        found.append(
            RiskWarning(
                "batch_size",
                "error",
                f"Batch size {config.batch_size} is larger than the training set ({n} examples).",
            )
        )
    elif config.batch_size < TINY_BATCH:
        found.append(
            RiskWarning(
                "batch_size",
                "warning",
                f"Batch size {config.batch_size} is tiny: the noise added to each step (σ·C/B per "
                "example) swamps the averaged gradient, so training will be slow and noisy.",
            )
        )
    if math.isfinite(epsilon) and epsilon > HIGH_EPSILON:
        found.append(
            RiskWarning(
                "noise_multiplier",
                "warning",
                f"ε = {format_epsilon(epsilon)} is beyond ~{HIGH_EPSILON:g}: the guarantee says little in practice. "
                "Raise the noise multiplier or train for fewer epochs.",
            )
        )
    return tuple(found)


def duration_text(seconds: Optional[float]) -> str:
    """A remaining time as "42s" or "3m 05s"; "estimating…" while unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "estimating…"
    whole = max(0, int(round(seconds)))
    return f"{whole // 60}m {whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def progress_text(
    *,
    state: str,
    epoch: int,
    epochs_total: int,
    fraction: float,
    eta_seconds: Optional[float],
    finished_epochs: int,
    phase: str = "training",
    epoch_step: int = 0,
    epoch_steps: int = 0,
) -> str:
    """The line above a run's progress bar: its state, its epoch and step within it, the share of the run done
    and the time left (an estimate, so "about"), or that it is still preparing (``phase``, see
    dpcore.results.PROGRESS_PHASES: a first run traces its model before the first step).

    ``epoch_step`` of ``epoch_steps`` is the step within the current epoch, left out where unknown (0 steps):
    a run's first epoch then reads "step 3 of 30", not a bare "2%" of the whole run.
    """
    if state == "queued":
        return "Queued: waiting for a free worker"
    if state == "running" and phase == "preparing":
        return "Preparing (tracing the model)…"
    if state == "running":
        where = f"Epoch {epoch}/{epochs_total}" + (f", step {epoch_step} of {epoch_steps}" if epoch_steps else "")
        left = "estimating the time left…" if eta_seconds is None else f"about {duration_text(eta_seconds)} left"
        return f"{where} · {fraction:.0%} of the run · {left}"
    return f"{state.capitalize()} · {finished_epochs}/{epochs_total} epochs"


def _percent(p: float) -> str:
    if p >= 0.9995:
        return "over 99.9%"
    return f"{p:.1%}" if p > 0.99 else f"{p:.0%}"
