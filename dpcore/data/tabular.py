"""CSV preprocessing that one record cannot move: a public schema, or one derived privately and paid for.

A model trained on a CSV file sees features made by a ``CsvSchema``: each numeric column clipped to a
range [low, high] and scaled to [0, 1] (or [-1, 1]), each categorical column one-hot over its list of
categories plus one "other" slot, and the label mapped onto a list of classes. Nothing in a schema is
fitted on the private rows, so adding or removing one record changes no other record's features and
never the model's input width. A schema is declared by a person (typed values, a small JSON/YAML
file, or saved in the config), or derived from the training rows by ``derive_schema``: noisy,
thresholded counts whose cost ``dpcore.privacy.accounting`` composes with training's into the run's ε.
"""

from __future__ import annotations

import math
import secrets
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from dpcore.csv_schema import (
    MAX_CATEGORIES,
    MAX_CLASSES,
    CategoricalColumn,
    CsvSchema,
    NumericColumn,
    canonical,
    number_of,
    parse_number,
)
from dpcore.errors import DatasetError
from dpcore.safe_io import quote

# The public grid of the private range estimate: bins with edges at ±10^(k/4) from 1e-3 to 1e9, a
# bin [-1e-3, 1e-3) around zero and outer bins reaching ±1e12 (numbers beyond are clipped).
GRID_STEPS_PER_DECADE = 4
_MAGNITUDES = 10.0 ** (np.arange(-3 * GRID_STEPS_PER_DECADE, 9 * GRID_STEPS_PER_DECADE + 1) / GRID_STEPS_PER_DECADE)
GRID_EDGES = np.concatenate([[-1e12], -_MAGNITUDES[::-1], _MAGNITUDES, [1e12]])
# Keeps the preprocessing noise apart from the training noise drawn from the same seed.
PREPROCESSING_STREAM = 0x5C4E3A


# -- applying a schema -------------------------------------------------------------------------


def cells(series: Any) -> np.ndarray:
    """The canonical spelling of each cell of a pandas column (None where missing), as an object array."""
    return _per_value(series, canonical, missing=None, dtype=object)


def numbers(series: Any) -> np.ndarray:
    """The number in each cell of a pandas column (true = 1, false = 0), NaN where missing or not a number."""
    return _per_value(series, lambda value: number_of(canonical(value)), missing=math.nan, dtype=np.float64)


def _per_value(series: Any, convert: Any, *, missing: Any, dtype: Any) -> np.ndarray:
    """``convert`` applied to each distinct value of a column once, then spread over its cells."""
    import pandas as pd

    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return np.array([convert(u) for u in uniques] + [missing], dtype=dtype)[codes]


def check_columns(schema: CsvSchema, columns: Sequence[str], *, label: str, name: str) -> None:
    """Every schema column is a column of the file, and none is the label; else a DatasetError naming it."""
    if label in schema.columns:
        raise DatasetError(
            "csv_schema",
            f"the label column {quote(label)} is also listed as a feature",
            allowed="feature columns only; the label's values go under classes",
        )
    missing = [c for c in schema.columns if c not in columns]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:5])
        raise DatasetError(
            "csv_schema",
            f"names column(s) {shown} that {name} does not have",
            allowed=", ".join(repr(c) for c in columns if c != label)[:500],
        )


def encode_features(schema: CsvSchema, frame: Any) -> np.ndarray:
    """The float32 features of ``frame``'s rows under ``schema``; each row's features depend on that row only."""
    parts = []
    for column in schema.numeric:
        values = numbers(frame[column.name])
        scaled = (np.clip(values, column.low, column.high) - column.low) / (column.high - column.low)
        scaled = np.where(np.isnan(scaled), 0.5, scaled)
        parts.append((2.0 * scaled - 1.0 if schema.scale == "symmetric" else scaled)[:, None])
    for column in schema.categorical:
        spelled = cells(frame[column.name])
        hot = np.stack([spelled == c for c in column.categories], axis=1)
        other = np.array([s is not None for s in spelled]) & ~hot.any(axis=1)
        parts.append(np.concatenate([hot, other[:, None]], axis=1).astype(np.float64))
    return np.concatenate(parts, axis=1).astype(np.float32)


def label_indices(schema: CsvSchema, spelled: np.ndarray, *, label: str) -> np.ndarray:
    """Class indices of canonical labels; a label outside the schema's classes is refused, naming it."""
    index = {c: i for i, c in enumerate(schema.classes)}
    unknown = [s for s in spelled if s not in index]
    if unknown:
        values, counts = np.unique(np.array(unknown, dtype=str), return_counts=True)
        shown = ", ".join(f"{quote(v)} ({c})" for v, c in sorted(zip(values, counts), key=lambda p: -p[1])[:5])
        raise DatasetError(
            "csv_label",
            f"{len(unknown)} row(s) have a value in column {quote(label)} that is not one of the "
            f"classes {', '.join(repr(c) for c in schema.classes[:10])}: {shown}",
            allowed="add those classes to the schema's classes, or remove those rows from the file",
        )
    return np.array([index[s] for s in spelled], dtype=np.int32)


def class_sort_key(name: str) -> tuple[int, float, str]:
    """Numbers in numeric order, then text in alphabetical order."""
    number = parse_number(name)
    return (0, number, "") if number is not None and math.isfinite(number) else (1, 0.0, name)


# -- deriving a schema privately -----------------------------------------------------------------


@dataclass(frozen=True)
class PrivateDerivation:
    """The mechanism of ``derive_schema``: the noise of the whole release, the δ its thresholds spend, the seed.

    ``noise_multiplier`` is that of one Gaussian mechanism with L2 sensitivity 1 over all the counts
    (each count's noise is ``noise_multiplier * sqrt(columns)``); ``seed`` None draws from the
    operating system (secure mode).
    """

    noise_multiplier: float
    threshold_delta: float
    seed: Optional[int]
    scale: str = "unit"


@dataclass(frozen=True)
class DerivedSchema:
    """A privately derived schema, with the noise and threshold it was derived with and the columns left out."""

    schema: CsvSchema
    noise_std: float
    threshold: float
    left_out: tuple[str, ...]


def derivation_rng(seed: Optional[int]) -> np.random.Generator:
    """The preprocessing noise's generator: a stream of the run's seed, or 128 bits from the OS (seed None)."""
    return np.random.default_rng(secrets.randbits(128) if seed is None else [seed, PREPROCESSING_STREAM])


def threshold_for(*, noise_std: float, threshold_delta: float, columns: int) -> float:
    """The noisy count a value needs to be kept: a value only one record holds passes with probability
    ``threshold_delta / columns`` in each of the record's columns, so at most ``threshold_delta`` in all."""
    return 1.0 - noise_std * statistics.NormalDist().inv_cdf(threshold_delta / columns)


def derive_schema(frame: Any, *, label: str, derivation: PrivateDerivation) -> DerivedSchema:
    """A schema from the training rows in ``frame`` through noisy, thresholded counts.

    Each record adds 1 to one count per column (its label's class; a grid bin for a number, its
    spelling for text; nothing for a missing cell). Every non-empty count gets Gaussian noise and
    is kept only above the threshold. From the kept counts alone: classes are the kept labels; a
    column is numeric when its kept bins outweigh its kept text values, with the range spanned by
    those bins, else categorical with its kept values (the most frequent ``MAX_CATEGORIES``); a
    column with nothing kept is left out. Its cost in ε: ``accounting.preprocessing_cost``.
    """
    features = [c for c in frame.columns if c != label]
    columns = 1 + len(features)
    noise_std = derivation.noise_multiplier * math.sqrt(columns)
    threshold = threshold_for(noise_std=noise_std, threshold_delta=derivation.threshold_delta, columns=columns)
    rng = derivation_rng(derivation.seed)

    kept_labels = _kept(_counts(cells(frame[label]), numeric=False), rng, noise_std, threshold)
    classes = sorted((v for _, v in kept_labels), key=lambda v: -kept_labels[(1, v)])[:MAX_CLASSES]
    if len(classes) < 2:
        raise DatasetError(
            "csv_preprocessing_epsilon",
            f"only {len(classes)} class(es) of column {quote(label)} have a noisy count "
            f"above the threshold {threshold:.3g} (noise std {noise_std:.3g})",
            allowed="a larger csv_preprocessing_epsilon, or a declared csv_schema",
        )
    numeric, categorical, left_out = [], [], []
    for name in features:
        kept = _kept(_counts(cells(frame[name]), numeric=True), rng, noise_std, threshold)
        bins = sorted(key for kind, key in kept if kind == 0)
        texts = [key for kind, key in kept if kind == 1]
        if not kept:
            left_out.append(name)
        elif bins and sum(kept[(0, b)] for b in bins) >= sum(kept[(1, t)] for t in texts):
            numeric.append(
                NumericColumn(
                    name=name,
                    low=_round(GRID_EDGES[bins[0]], math.floor),
                    high=_round(GRID_EDGES[bins[-1] + 1], math.ceil),
                )
            )
        else:
            top = sorted(texts, key=lambda t: -kept[(1, t)])[:MAX_CATEGORIES]
            categorical.append(CategoricalColumn(name=name, categories=tuple(sorted(top, key=class_sort_key))))
    if not numeric and not categorical:
        raise DatasetError(
            "csv_preprocessing_epsilon",
            f"no feature column has a value with a noisy count above "
            f"the threshold {threshold:.3g} (noise std {noise_std:.3g})",
            allowed="a larger csv_preprocessing_epsilon, or a declared csv_schema",
        )
    schema = CsvSchema(
        classes=tuple(sorted(classes, key=class_sort_key)),
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        scale=derivation.scale,
    )
    return DerivedSchema(schema=schema, noise_std=noise_std, threshold=threshold, left_out=tuple(left_out))


def _counts(spelled: np.ndarray, *, numeric: bool) -> dict[tuple[int, Any], int]:
    """Counts per partition: (0, grid bin) for a number when ``numeric``, (1, spelling) for anything else."""
    present = [s for s in spelled if s is not None]
    numbers = np.array([number_of(s) for s in present], dtype=np.float64) if numeric else np.full(len(present), np.nan)
    counts: dict[tuple[int, Any], int] = {}
    is_number = ~np.isnan(numbers)
    if is_number.any():
        bins = np.searchsorted(GRID_EDGES, np.clip(numbers[is_number], GRID_EDGES[0], GRID_EDGES[-1]), side="right") - 1
        for b, count in zip(*np.unique(np.minimum(bins, len(GRID_EDGES) - 2), return_counts=True)):
            counts[(0, int(b))] = int(count)
    texts, text_counts = np.unique(
        np.array([s for s, n in zip(present, is_number) if not n], dtype=object), return_counts=True
    )
    for text, count in zip(texts, text_counts):
        counts[(1, str(text))] = int(count)
    return counts


def _kept(
    counts: dict[tuple[int, Any], int], rng: np.random.Generator, noise_std: float, threshold: float
) -> dict[tuple[int, Any], float]:
    """The noisy counts above the threshold; noise is drawn in sorted partition order, so a seed repeats."""
    keys = sorted(counts, key=lambda k: (k[0], k[1] if k[0] == 0 else 0, "" if k[0] == 0 else k[1]))
    noisy = np.array([counts[k] for k in keys], dtype=np.float64) + rng.normal(0.0, noise_std, size=len(keys))
    return {k: float(v) for k, v in zip(keys, noisy) if v > threshold}


def _round(value: float, direction: Any) -> float:
    """``value`` to 4 significant digits, rounded outwards so the range only widens."""
    if value == 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(abs(value))) - 3)
    return float(direction(value / step) * step)
