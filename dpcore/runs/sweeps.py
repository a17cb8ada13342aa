"""Sweeps as one unit: a grid of knob values (with seeds and an optional non-private baseline) or a
"private selection" of a random number of trials, its projected ε and compute before it starts,
submitted to the job runner and cancelled as a whole, and read back grouped for Compare.

Two modes (``SWEEP_MODES``):

* ``grid``: every combination of the knobs' values, ``seeds`` runs each (seeds base.seed, base.seed + 1,
  ...). Releasing the best of them costs the plain composition of all the private runs
  (``selection.composition_epsilon``).
* ``private_selection``: the candidates are the knobs' combinations; the number of trials K is drawn
  with ``selection.draw_trial_count`` from the operating system's secure source when the sweep is
  started (never at preview), and each trial is a run of a candidate drawn uniformly at random, with
  seed base.seed + its index. Every draw is recorded in the store before anything runs, one per
  owner, training data and spec (``selection_keys``): starting the same spec on the same data again
  reuses a draw that no sweep could queue, and is refused once a sweep has used it or K was above
  the cap (``MAX_DRAWN_TRIALS``), so nobody can redraw K until it suits them. A distribution whose
  draws above the cap would cost more than ``selection.MAX_CAP_DELTA_SHARE`` of δ is refused before
  drawing; the rest of that cost is added to δ. Releasing only the best trial costs Papernot &
  Steinke's random-trials bound; showing every trial (as Compare does) costs their composition. Both
  are those of the sweep as started: a trial that fails or is cancelled lowers neither.

The optional baseline (one non-private run per seed) is a reference, never a candidate: its ε is ∞.
TensorFlow-free: the runner imports the trainer.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import secrets
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Union, cast

import numpy as np

from dpcore.config import FIELD_NAMES, DPConfig, parse_field
from dpcore.data import datasets
from dpcore.errors import UserInputError
from dpcore.privacy import accounting
from dpcore.privacy.explain import format_epsilon
from dpcore.privacy.limits import RDP_LEVEL_SECONDS, query_seconds
from dpcore.privacy.selection import (
    SelectionEpsilon,
    SelectionError,
    SelectionSettings,
    check_trial_cap,
    composition_work,
    draw_trial_count,
    selection_epsilon,
)
from dpcore.results import FINISHED_STATUSES
from dpcore.room.participants import NotAllowedError, check_participant
from dpcore.runs.capacity import CapacityError, check_sweep_size, format_duration
from dpcore.runs.comparison import Point, pareto_frontier
from dpcore.runs.records import MAX_NAME_CHARS, RunRecord, SelectionDraw, SweepRecord
from dpcore.safe_io import quote

if TYPE_CHECKING:
    from dpcore.room.participants import Caller
    from dpcore.runs.capacity import ThroughputTable
    from dpcore.runs.jobs import JobRunner
    from dpcore.runs.store import RunStore

SWEEP_MODES = ("grid", "private_selection")
# The knobs the app offers, at most MAX_APP_KNOBS at once; the library and CLI take any config field.
SWEEP_KNOBS = ("noise_multiplier", "epochs", "batch_size", "l2_norm_clip", "learning_rate")
# What the pages call each knob (the config's field names are for files and the CLI).
KNOB_LABELS = {
    "noise_multiplier": "Noise multiplier σ",
    "epochs": "Epochs",
    "batch_size": "Batch size",
    "l2_norm_clip": "Clipping norm C",
    "learning_rate": "Learning rate",
}
# The short names a chart writes beside its points.
KNOB_SYMBOLS = {
    "noise_multiplier": "σ",
    "epochs": "epochs",
    "batch_size": "batch",
    "l2_norm_clip": "C",
    "learning_rate": "lr",
}
MAX_APP_KNOBS = 2
MAX_SEEDS = 20
# The most runs one sweep may queue: each is a training run and a row in the store.
MAX_SWEEP_RUNS = 1000
# A private-selection sweep whose drawn K is above this runs nothing; the draw is recorded, never
# redrawn, and the chance of it is paid in δ (``SelectionEpsilon.cap_delta``).
MAX_DRAWN_TRIALS = MAX_SWEEP_RUNS
# What the app's values box of one knob may hold: room for hundreds of values, and no more.
MAX_VALUES_TEXT_CHARS = 4000
# The most distinct ε a preview asks the accountant for (runs differing only in what ε does not
# depend on, such as the seed or the learning rate, share one), checked before any is estimated.
MAX_PREVIEW_QUERIES = 100


def knob_label(knob: str) -> str:
    """What a page calls ``knob`` (its config field name when the app does not offer it)."""
    return KNOB_LABELS.get(knob, knob)


def setting_text(setting: Sequence[tuple[str, Any]], *, short: bool = False) -> str:
    """A knob setting in words ("Noise multiplier σ = 0.8, Epochs = 2") or, ``short``, for a chart ("σ 0.8 · epochs 2")."""
    if short:
        return " · ".join(f"{KNOB_SYMBOLS.get(k, k)} {_value_text(v)}" for k, v in setting)
    return ", ".join(f"{knob_label(k)} = {_value_text(v)}" for k, v in setting) or "the base config"


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class SweepError(UserInputError):
    """A sweep spec that cannot be run as asked."""


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep: ``knobs`` ((field, values), ...) over ``base``, ``seeds`` runs per setting, a baseline.

    ``mode`` "private_selection" needs ``selection`` (how K is drawn) and one seed; "grid" takes no selection.
    """

    base: DPConfig
    knobs: tuple[tuple[str, tuple[Any, ...]], ...]
    seeds: int = 1
    baseline: bool = False
    mode: str = "grid"
    selection: Optional[SelectionSettings] = None
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.base, DPConfig):
            raise SweepError("base", "expected a DPConfig", allowed="a run configuration")
        if self.mode not in SWEEP_MODES:
            raise SweepError("mode", f"{quote(self.mode)} is not a sweep mode", allowed=", ".join(SWEEP_MODES))
        if not isinstance(self.name, str) or len(self.name) > MAX_NAME_CHARS:
            shown = f"{len(self.name):,} characters" if isinstance(self.name, str) else type(self.name).__name__
            raise SweepError(
                "sweep_name", f"the name has {shown}", allowed=f"text of at most {MAX_NAME_CHARS} characters"
            )
        names = [name for name, _ in self.knobs]
        for name, values in self.knobs:
            if name not in FIELD_NAMES:
                raise SweepError("knobs", f"{name!r} is not a config field", allowed=", ".join(sorted(FIELD_NAMES)))
            if not values:
                raise SweepError(name, "no values", allowed="one or more values")
        if len(set(names)) != len(names):
            raise SweepError("knobs", "a knob is given twice", allowed="each knob once, with all its values")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or not 1 <= self.seeds <= MAX_SEEDS:
            raise SweepError(
                "seeds", f"{self.seeds!r} is out of range", allowed=f"a whole number from 1 to {MAX_SEEDS}"
            )
        if "seed" in names and self.seeds != 1:
            raise SweepError("seeds", "the seed is also a knob", allowed="1 when seed is swept as a knob")
        if self.mode == "grid":
            if self.selection is not None:
                raise SweepError(
                    "selection",
                    "a grid sweep runs every point; it draws no trials",
                    allowed="selection settings only with mode private_selection",
                )
            if self.size > MAX_SWEEP_RUNS:
                raise SweepError(
                    "knobs",
                    f"{self.shape_text()} make {self.size:,} runs",
                    allowed=f"sweeps of at most {MAX_SWEEP_RUNS} runs; split the sweep",
                )
            return
        if not isinstance(self.selection, SelectionSettings):
            raise SweepError(
                "selection",
                "private selection needs how to draw the number of trials",
                allowed="a SelectionSettings (distribution, mean, shape)",
            )
        if self.seeds != 1:
            raise SweepError(
                "seeds",
                "private selection draws each trial's configuration at random and gives each trial its own seed",
                allowed="1 with private selection",
            )
        if math.prod(len(v) for _, v in self.knobs) > MAX_SWEEP_RUNS:
            raise SweepError(
                "knobs", f"{self.shape_text()} make too many candidates", allowed=f"at most {MAX_SWEEP_RUNS} candidates"
            )

    @property
    def size(self) -> int:
        """Runs a grid sweep queues (settings × seeds, plus the baselines); for private selection, the candidates."""
        settings = math.prod(len(values) for _, values in self.knobs)
        if self.mode == "private_selection":
            return settings
        return settings * self.seeds + (self.seeds if self.baseline else 0)

    def shape_text(self) -> str:
        return " x ".join(f"{len(values)} {name}" for name, values in self.knobs) or "the base config"

    def knobs_json(self) -> str:
        return json.dumps([[name, list(values)] for name, values in self.knobs])


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its knob ``setting``, ``seed``, config, ``role`` ("grid", "trial", "baseline")."""

    setting: tuple[tuple[str, Any], ...]
    seed: int
    config: DPConfig
    role: str

    def label(self) -> str:
        """The point as its run's name and the CLI's table give it: "σ 0.8 · epochs 2, seed 0"."""
        where = setting_text(self.setting, short=True) or "base config"
        return f"non-private baseline, seed {self.seed}" if self.role == "baseline" else f"{where}, seed {self.seed}"


def _settings(spec: SweepSpec) -> list[tuple[tuple[str, Any], ...]]:
    names = [name for name, _ in spec.knobs]
    return [tuple(zip(names, values)) for values in itertools.product(*(v for _, v in spec.knobs))]


def candidates(spec: SweepSpec) -> list[tuple[tuple[tuple[str, Any], ...], DPConfig]]:
    """Each knob setting with its config (validated; a bad one names the setting)."""
    out = []
    for setting in _settings(spec):
        try:
            out.append((setting, spec.base.replace(**dict(setting))))
        except UserInputError as exc:
            raise SweepError(" ".join(f"{k}={v}" for k, v in setting), str(exc)) from None
    if spec.mode == "private_selection" and not all(config.private for _, config in out):
        raise SweepError(
            "knobs",
            "private selection draws among private runs only",
            allowed="private candidates; add the non-private run with the baseline option",
        )
    return out


def grid_points(spec: SweepSpec) -> list[SweepPoint]:
    """Every run of a grid sweep (settings × seeds, then the baselines), in the order they are queued."""
    if spec.mode != "grid":
        raise SweepError("mode", "a private-selection sweep's runs are drawn when it starts", allowed="grid")
    points = [
        SweepPoint(setting, config.seed + i, config.replace(seed=config.seed + i), "grid")
        for setting, config in candidates(spec)
        for i in range(spec.seeds)
    ]
    return points + _baselines(spec)


def _baselines(spec: SweepSpec) -> list[SweepPoint]:
    if not spec.baseline:
        return []
    return [
        SweepPoint((), spec.base.seed + i, spec.base.as_baseline().replace(seed=spec.base.seed + i), "baseline")
        for i in range(spec.seeds)
    ]


@dataclass(frozen=True)
class TrialDraw:
    """A private-selection sweep's draw: K, each trial's candidate by index, and why it may not run."""

    trial_count: int
    picks: tuple[int, ...]  # empty when refused
    refused: Optional[str]  # K above MAX_DRAWN_TRIALS: nothing may run


def draw_trials(spec: SweepSpec, *, rng: Optional[np.random.Generator] = None) -> TrialDraw:
    """Draw a private-selection sweep's K with ``draw_trial_count`` (exactly, never redrawn) and each
    trial's candidate uniformly at random; a K over MAX_DRAWN_TRIALS comes back refused, with no picks.

    ``rng`` (tests, teaching) makes the draws reproducible; without it both K and the choices come
    from the operating system's secure source. ``start`` records what this returns before anything runs.
    """
    if spec.mode != "private_selection":
        raise SweepError("mode", "only a private-selection sweep draws trials", allowed="private_selection")
    pool = candidates(spec)
    assert spec.selection is not None  # SweepSpec requires selection settings for private selection
    count = draw_trial_count(spec.selection, rng=rng)
    if count > MAX_DRAWN_TRIALS:
        return TrialDraw(count, (), f"K = {count:,} is above the cap of {MAX_DRAWN_TRIALS:,} trials")
    generator = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
    picks: Union[np.ndarray, list[int]] = generator.integers(0, len(pool), size=count) if count else []
    return TrialDraw(count, tuple(int(p) for p in picks), None)


def trial_points(spec: SweepSpec, picks: Sequence[int]) -> list[SweepPoint]:
    """The trials a draw's ``picks`` name: trial i runs candidate picks[i] with seed base.seed + i."""
    pool = candidates(spec)
    return [
        SweepPoint(pool[p][0], spec.base.seed + i, pool[p][1].replace(seed=spec.base.seed + i), "trial")
        for i, p in enumerate(picks)
    ]


def selection_keys(spec: SweepSpec) -> tuple[str, str]:
    """(data key, spec key) as JSON texts: what a private-selection draw is recorded under.

    The data key is the candidates' training data: dataset, a CSV file's SHA-256 (its content, so a
    copy under another name is the same data), label column, subset size and validation split. The
    spec key is the selection settings, the knobs and the base config without its CSV path. The
    sweep's name and its non-private baseline do not count: changing them draws nothing new.
    """
    config = candidates(spec)[0][1]
    data = {
        "dataset": config.dataset,
        "csv_sha256": _file_sha256(config.csv_path) if config.dataset == "csv" else None,
        "csv_label": config.csv_label,
        "max_train_examples": config.max_train_examples,
        "validation_fraction": config.validation_fraction,
    }
    settings = spec.selection
    spec_fields = {
        "mode": spec.mode,
        "selection": None
        if settings is None
        else {"distribution": settings.distribution, "mean": settings.mean, "shape": settings.shape},
        "knobs": [[name, list(values)] for name, values in spec.knobs],
        "base": {**spec.base.to_dict(), "csv_path": None},
    }
    return json.dumps(data, sort_keys=True), json.dumps(spec_fields, sort_keys=True, default=str)


def _file_sha256(path: Optional[str]) -> str:
    digest = hashlib.sha256()
    try:
        with open(path or "", "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise SweepError("csv_path", f"cannot read the CSV file: {exc.strerror or exc}") from None
    return digest.hexdigest()


@dataclass(frozen=True)
class PreviewPrivacy:
    """A preview's accounting: each point's projected ε, the selection ε, and the training set sizes."""

    points: tuple[tuple[SweepPoint, float], ...]  # (point, projected ε); private selection: the candidates
    selection: Optional[SelectionEpsilon]  # None when no private point, or the points train on different data
    selection_note: str
    sizes: tuple[tuple[tuple[Any, ...], int], ...]  # (data_key, training examples)


@dataclass(frozen=True)
class SweepPreview:
    """What a sweep would cost before it starts: ε of each point, the selection ε, the compute."""

    spec: SweepSpec
    points: tuple[tuple[SweepPoint, float], ...]  # (point, projected ε); private selection: the candidates
    selection: Optional[SelectionEpsilon]  # None when no private point, or the points train on different data
    selection_note: str
    example_passes: float  # private selection: expected, E[K] × the candidates' mean
    seconds: Optional[float]  # None when no comparable run has finished (no measured speed)

    def compute_text(self) -> str:
        expected = "expected " if self.spec.mode == "private_selection" else ""
        head = f"{expected}{self.example_passes:,.0f} example passes in {self.runs_text()}"
        if self.seconds is None:
            return head + "; no finished run of this dataset and model yet, so no time estimate"
        return f"{head}, about {format_duration(self.seconds)} of training at measured speeds (an estimate)"

    def runs_text(self) -> str:
        if self.spec.mode == "private_selection":
            assert self.spec.selection is not None  # SweepSpec requires selection settings for private selection
            base = f"a random number of trials ({self.spec.selection.expected_trials:.3g} expected)"
            return base + (f" plus {self.spec.seeds} baseline run(s)" if self.spec.baseline else "")
        return f"{self.spec.size} run(s)"

    def selection_text(self) -> str:
        """What releasing the best run and showing every run would cost, next to one run's ε."""
        s = self.selection
        if s is None:
            return self.selection_note
        loose = " (approximate: an upper bound, slightly loose)" if s.approximate else ""
        if s.random_trials_epsilon is not None:
            return (
                f"one trial ε ≤ {format_epsilon(s.single_run_epsilon)}; only the best trial released (not K or "
                f"the other trials): random-trials bound ε = {format_epsilon(s.random_trials_epsilon)} "
                f"({delta_text(s)}){loose}; every trial shown, as Compare and the run lists do: the composition of the "
                f"K trials drawn, given once K is known. {self.selection_note}"
            )
        return (
            f"one run ε ≤ {format_epsilon(s.single_run_epsilon)}; the best of all {s.runs} private runs, or "
            f"all of them shown: composition ε = {format_epsilon(s.composition_epsilon)} (δ = {s.delta:.0e}){loose}. "
            f"{self.selection_note}"
        )


def delta_text(s: SelectionEpsilon) -> str:
    """δ of the random-trials bound: the runs' δ, plus what refusing K above the cap adds when it is not 0."""
    if s.random_trials_epsilon is not None and s.cap_delta > 0:
        return f"δ = {s.delta:.0e} + {s.cap_delta:.1e} for refusing K above {s.trial_cap:,}"
    return f"δ = {s.delta:.0e}"


def epsilon_key(config: DPConfig) -> tuple[Any, ...]:
    """What a run's ε depends on: its training data and the settings of its noise, steps and accountant.

    Two points with one key (other seeds, learning rates, models) ask the accountant one question.
    """
    if not config.private:
        return (data_key(config), False)
    return (
        data_key(config),
        config.validation_fraction,
        config.batch_size,
        config.noise_multiplier,
        config.noise_schedule,
        config.noise_decay_rate,
        config.noise_floor,
        config.epochs,
        config.delta,
        config.epsilon_budget,
        config.accountant,
        config.sampling,
        config.csv_preprocessing_epsilon,
    )


def _preview_configs(spec: SweepSpec) -> list[tuple[tuple[tuple[str, Any], ...], DPConfig]]:
    """Every knob setting's config and the baselines': what a preview checks and accounts for."""
    return candidates(spec) + [((), p.config) for p in _baselines(spec)]


def check_preview_size(spec: SweepSpec) -> int:
    """How many distinct ε the preview of ``spec`` asks for; a SweepError naming the knobs above
    ``MAX_PREVIEW_QUERIES``, before the accountant is asked anything."""
    queries = len({epsilon_key(config) for _, config in _preview_configs(spec) if config.private})
    if queries > MAX_PREVIEW_QUERIES:
        raise SweepError(
            "knobs",
            f"{spec.shape_text()} ask the accountant for {queries:,} different ε before the sweep starts",
            allowed=f"at most {MAX_PREVIEW_QUERIES} different ε per sweep (fewer values of the knobs that change ε)",
        )
    return queries


def preview_privacy(
    spec: SweepSpec, *, max_seconds: Optional[float] = None, interactive: bool = False
) -> PreviewPrivacy:
    """Projected ε of every point (each on its own training set size) and the ε of releasing the best
    (``selection_epsilon``); every point is checked against its n first, and the accountant's estimated
    work for all of it against ``max_seconds`` (the accountant's query bound unless given) before any ε is
    computed (a SweepError naming the knobs).
    ``interactive`` answers PLD on the interactive grid, as Explore does (upper bounds, flagged)."""
    check_preview_size(spec)
    configs = _preview_configs(spec)
    sizes: dict[tuple[Any, ...], int] = {}
    works: dict[tuple[Any, ...], float] = {}
    for setting, config in configs:
        try:
            n = sizes.setdefault(data_key(config), datasets.train_size(config))
            config.check_dataset_size(n)
            accounting.check_config(config, n=n)
            if config.private:
                works[epsilon_key(config)] = accounting.query_work_for_config(
                    config, n=n, interactive=interactive
                ).seconds
        except UserInputError as exc:
            raise SweepError(" ".join(f"{k}={v}" for k, v in setting) or "base config", str(exc)) from None
    one_set = len(sizes) == 1
    n_first = next(iter(sizes.values()))
    private = [config for _, config in configs if config.private]
    seconds = sum(works.values()) + _selection_seconds(
        spec, private, n=n_first, one_set=one_set, interactive=interactive
    )
    max_seconds = query_seconds() if max_seconds is None else max_seconds
    if seconds > max_seconds:
        raise SweepError(
            "knobs",
            f"the preview would ask the accountant for {len(works):,} different ε and the ε of choosing among them: "
            f"about {seconds:.0f} s of its work, more than the {max_seconds:g} s allowed",
            allowed="fewer values of the knobs that change ε (noise, epochs, batch size), fewer epochs, or accountant 'rdp'",
        )
    if spec.mode == "grid":
        points = grid_points(spec)
        private_points = [p.config for p in points if p.config.private]
        chosen, note = None, "No private run: nothing to account."
        if private_points and not one_set:
            note = "The points train on different data, so no selection ε is given (pick within one training set)."
        elif private_points:
            chosen, refusal = _selection_or_none(
                lambda: selection_epsilon(runs=private_points, n=n_first, interactive=interactive)
            )
            note = (
                "Releasing the best of a grid, or showing all its runs, costs the composition of all its private runs."
                if chosen
                else f"No selection ε is given: {refusal}."
            )
    else:
        points = [SweepPoint(s, spec.base.seed, c, "candidate") for s, c in candidates(spec)] + _baselines(spec)
        pool = [c for _, c in candidates(spec)]
        chosen = _selection_bound(spec, pool, n=n_first, interactive=interactive)
        note = (
            f"K is drawn from a secure source when the sweep starts and recorded before anything runs; "
            f"starting this sweep again on the same data never draws a new K. A K above "
            f"{MAX_DRAWN_TRIALS:,} runs nothing. A trial that fails or is cancelled lowers neither figure."
        )
    epsilons = tuple(
        (p, accounting.epsilon_for_config(p.config, n=sizes[data_key(p.config)], interactive=interactive))
        for p in points
    )
    return PreviewPrivacy(points=epsilons, selection=chosen, selection_note=note, sizes=tuple(sizes.items()))


def _selection_seconds(spec: SweepSpec, private: list[DPConfig], *, n: int, one_set: bool, interactive: bool) -> float:
    """The estimated work of the selection ε beyond the points' own: a PLD composition of the runs, and
    (private selection under PLD) each candidate's noise levels under RDP."""
    if not private or not one_set or len({(c.delta, c.accountant) for c in private}) > 1:
        return 0.0
    if private[0].accountant != "pld":
        return 0.0
    if spec.mode == "grid":
        runs = [p.config for p in grid_points(spec) if p.config.private]
        try:
            return composition_work(runs, n=n, interactive=interactive).seconds
        except SelectionError:
            return 0.0  # refused in the preview itself: no selection ε is given
    levels = {
        (config.batch_size, sigma) for config in private for sigma in set(accounting.noise_schedule_values(config, n=n))
    }
    return len(levels) * RDP_LEVEL_SECONDS


def preview(
    spec: SweepSpec,
    *,
    throughput: ThroughputTable,
    privacy: Optional[PreviewPrivacy] = None,
    max_seconds: Optional[float] = None,
) -> SweepPreview:
    """Projected ε of every point, the ε of releasing the best and the total compute at measured speeds.

    ``privacy`` is ``preview_privacy(spec)`` when it was computed elsewhere (a served app's accountant
    process); otherwise it is computed here (precise), its estimated work held to ``max_seconds``.
    """
    if privacy is None:
        privacy = preview_privacy(spec, max_seconds=max_seconds)
    sizes = dict(privacy.sizes)
    n_first = next(iter(sizes.values()))
    if spec.mode == "grid":
        estimates = [throughput.estimate(p.config, n_train=sizes[data_key(p.config)]) for p in grid_points(spec)]
        passes = float(sum(e.example_passes for e in estimates))
        times = [e.seconds for e in estimates]
    else:
        assert spec.selection is not None  # SweepSpec requires selection settings for private selection
        mean_k = spec.selection.expected_trials
        estimates = [throughput.estimate(c, n_train=n_first) for _, c in candidates(spec)]
        base_estimates = [throughput.estimate(p.config, n_train=n_first) for p in _baselines(spec)]
        passes = mean_k * statistics.fmean(e.example_passes for e in estimates) + sum(
            e.example_passes for e in base_estimates
        )
        seconds = [e.seconds for e in estimates]
        times = [None] if None in seconds else [mean_k * statistics.fmean(s for s in seconds if s is not None)]
        times += [e.seconds for e in base_estimates]
    total = None if any(t is None for t in times) else float(sum(t for t in times if t is not None))
    return SweepPreview(
        spec=spec,
        points=privacy.points,
        selection=privacy.selection,
        selection_note=privacy.selection_note,
        example_passes=passes,
        seconds=total,
    )


def _selection_or_none(compute: Any) -> tuple[Optional[SelectionEpsilon], str]:
    """(the selection ε, "") or, where the runs cannot be accounted together, (None, why not)."""
    try:
        return compute(), ""
    except SelectionError as exc:
        return None, str(exc)


def _selection_bound(
    spec: SweepSpec, pool: Sequence[DPConfig], *, n: int, interactive: bool = False
) -> SelectionEpsilon:
    """The random-trials bound of ``spec``'s candidates under the cap on K, refused when the cap costs too much δ."""
    bound = selection_epsilon(
        runs=[], n=n, selection=spec.selection, candidates=pool, trial_cap=MAX_DRAWN_TRIALS, interactive=interactive
    )
    check_trial_cap(bound)
    return bound


@dataclass(frozen=True)
class StartedSweep:
    """A sweep queued as one unit: its stored id, its runs' ids and points, K when it was drawn."""

    sweep_id: int
    run_ids: tuple[int, ...]
    points: tuple[SweepPoint, ...]
    trial_count: Optional[int]


def check_fits(runner: JobRunner, spec: SweepSpec, *, owner: str) -> None:
    """Raise the CapacityError that starting ``spec`` for ``owner`` would meet now, naming the limit and
    what the host would raise; nothing is stored or queued. No limits (the CLI): nothing to check.

    The sweep is one entry of the owner's runs training and waiting; a grid's runs are counted against
    the runs one sweep may hold, and every run against the compute cap. A private selection's K is
    drawn at start, so only its baselines and candidates are checked here; ``start`` checks K.
    """
    limits = runner.limits
    if limits is None:
        return
    if spec.mode == "grid":
        configs = [p.config for p in grid_points(spec)]
        check_sweep_size(len(configs), limits)
    else:
        configs = [c for _, c in candidates(spec)] + [p.config for p in _baselines(spec)]
    runner.check_limits(configs, owner=owner, sweep=True)


def start(runner: JobRunner, spec: SweepSpec, *, owner: str, rng: Optional[np.random.Generator] = None) -> StartedSweep:
    """Record ``spec`` as a sweep and queue its runs as one unit (refused whole by the runner's limits).

    A private-selection sweep takes its draw here (``recorded_draw``): recorded before anything runs,
    reused when no sweep could queue it, refused when a sweep used it or K is above the cap. K = 0
    (possible under Poisson) queues only the baselines and releases nothing private; the sweep is
    still recorded with K = 0. On a shared server (a runner with limits) the sweep needs an ``owner``
    (a participant), and it must fit the limits (``check_fits``) before anything is drawn or stored;
    a refusal after that (another start of the same person's in between, a drawn K over the runs
    one sweep may hold) removes the sweep row again, so no sweep without runs is left behind.
    """
    if runner.limits is not None:
        check_participant(owner, action="sweeps")
    pool = candidates(spec)  # refuse bad settings before anything is drawn or stored
    check_fits(runner, spec, owner=owner)
    draw = None
    if spec.mode == "grid":
        points, trial_count = grid_points(spec), None
    else:
        draw = recorded_draw(runner.store, spec, owner=owner, rng=rng, pool=[c for _, c in pool])
        points, trial_count = trial_points(spec, draw.picks) + _baselines(spec), draw.trial_count
    selection_json = (
        None
        if spec.selection is None
        else json.dumps(
            {"distribution": spec.selection.distribution, "mean": spec.selection.mean, "shape": spec.selection.shape}
        )
    )
    sweep_id = runner.store.create_sweep(
        owner=owner,
        name=spec.name,
        mode=spec.mode,
        knobs_json=spec.knobs_json(),
        seeds=spec.seeds,
        baseline=spec.baseline,
        selection_json=selection_json,
        trial_count=trial_count,
        base_config=spec.base,
        selection_draw_id=None if draw is None else draw.id,
    )
    ids: list[int] = []
    if points:
        names = [_run_name(spec.name or f"sweep {sweep_id}", p) for p in points]
        try:
            ids = runner.submit_many([p.config for p in points], owner=owner, names=names, sweep_id=sweep_id)
        except BaseException as exc:
            # Refused whole (a limit, a backend that cannot start): nothing was queued. A draw refused by a
            # participant's limits is given back (the next start runs this same draw), and the sweep row
            # goes, so no empty sweep is left behind. Any error in doing so must not hide the refusal.
            with contextlib.suppress(UserInputError):
                if draw is not None and isinstance(exc, CapacityError):
                    runner.store.release_selection_draw(draw.id, sweep_id=sweep_id)
                runner.store.delete_empty_sweep(sweep_id)
            raise
    return StartedSweep(sweep_id=sweep_id, run_ids=tuple(ids), points=tuple(points), trial_count=trial_count)


def recorded_draw(
    store: RunStore,
    spec: SweepSpec,
    *,
    owner: str,
    pool: Sequence[DPConfig],
    rng: Optional[np.random.Generator] = None,
) -> SelectionDraw:
    """The draw a start of ``spec`` by ``owner`` runs: the one recorded for this data and spec, else a new
    one (``draw_trials``), recorded before anything runs.

    Before drawing, a distribution whose draws above the cap would cost too much δ is refused
    (``selection.check_trial_cap``). A recorded draw that a sweep has used, or whose K is above the
    cap, is refused with the time it was drawn: it is never drawn again.
    """
    _selection_bound(spec, pool, n=datasets.train_size(pool[0]))
    data_key_text, spec_key_text = selection_keys(spec)
    keys = dict(owner=owner, data_key=data_key_text, spec_key=spec_key_text)
    kept = store.find_selection_draw(**keys)
    if kept is None:
        fresh = draw_trials(spec, rng=rng)
        kept = store.record_selection_draw(
            **keys, trial_count=fresh.trial_count, picks=fresh.picks, refused=fresh.refused
        )
    drawn = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(kept.created))
    if kept.refused is not None:
        raise SweepError(
            "selection",
            f"{kept.refused}, drawn for this sweep on this data at {drawn}: nothing ran, and the draw is kept, "
            "never drawn again",
            allowed="another distribution or other candidates, which draw anew",
        )
    if kept.sweep_id is not None:
        raise SweepError(
            "selection",
            f"this sweep's number of trials was drawn for this data at {drawn} (K = {kept.trial_count:,}) and "
            f"sweep {kept.sweep_id} was started with it; a draw is used once",
            allowed=f"another distribution or other candidates, which draw anew; its ε adds to sweep {kept.sweep_id}'s",
        )
    return kept


def _run_name(sweep_name: str, point: SweepPoint) -> str:
    """A sweep run's name, "<sweep name>: <its point>", cut with … to ``MAX_NAME_CHARS`` (many knobs make long points)."""
    name = f"{sweep_name}: {point.label()}"
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 1] + "…"


def parse_values(knob: str, text: str) -> tuple[Any, ...]:
    """The values a person typed for ``knob`` (comma-separated, as its config field reads them), each once, in
    order; text over ``MAX_VALUES_TEXT_CHARS`` characters or over ``MAX_SWEEP_RUNS`` values is refused unread."""
    if not isinstance(text, str) or len(text) > MAX_VALUES_TEXT_CHARS:
        shown = f"{len(text):,} characters" if isinstance(text, str) else type(text).__name__
        raise SweepError(
            knob, f"the values take {shown}", allowed=f"at most {MAX_VALUES_TEXT_CHARS:,} characters of values"
        )
    texts = [t.strip() for t in text.split(",")]
    if not any(texts):
        raise SweepError(knob, "no values", allowed="comma-separated values, e.g. 0.5, 1, 2")
    if len(texts) > MAX_SWEEP_RUNS:
        raise SweepError(knob, f"{len(texts):,} values", allowed=f"at most {MAX_SWEEP_RUNS} values")
    return tuple(dict.fromkeys(parse_field(knob, t) for t in texts))


def cancel(runner: JobRunner, sweep_id: int, *, by: Optional[Caller]) -> int:
    """Cancel every queued or running run of the sweep; return how many.

    ``by`` must own the sweep or be the host (None: the store's owner, as in the CLI); each run is
    checked against it as well.
    """
    sweep = runner.store.get_sweep(sweep_id)
    if by is not None and not by.may_manage(sweep.owner):
        raise NotAllowedError(
            "sweep",
            f"sweep {sweep_id} belongs to another participant, so you cannot cancel it",
            allowed="your own sweeps; the host can cancel every sweep",
        )
    return sum(runner.cancel(run_id, by=by) for run_id in sweep.run_ids)


def spec_of(record: SweepRecord) -> SweepSpec:
    """The spec a stored sweep was started from."""
    selection = None
    if record.selection_json:
        fields = json.loads(record.selection_json)
        selection = SelectionSettings(distribution=fields["distribution"], mean=fields["mean"], shape=fields["shape"])
    knobs = tuple((name, tuple(values)) for name, values in json.loads(record.knobs_json))
    return SweepSpec(
        base=record.base_config,
        knobs=knobs,
        seeds=record.seeds,
        baseline=record.baseline,
        mode=record.mode,
        selection=selection,
        name=record.name,
    )


# What each figure of a stored sweep covers (``SweepEpsilon.as_json``, the CLI's JSON).
BEST_ONLY_COVERS = "releasing only the best run (for a private selection: not K, not the other trials)"
ALL_SHOWN_COVERS = "showing every run of the sweep, as Compare and the run lists do"


@dataclass(frozen=True)
class SweepEpsilon:
    """The ε of a stored sweep: of releasing only its best run, and of showing all its runs, and why."""

    selection: Optional[SelectionEpsilon]  # None: no private run stored, or runs on different data
    note: str

    def as_json(self) -> dict[str, Any]:
        """The figures by name; ``selection_epsilon`` is the claim for the best run only, with what each covers."""
        s = self.selection
        return {
            "single_run_epsilon": None if s is None else s.single_run_epsilon,
            "composition_epsilon": None if s is None else s.composition_epsilon,
            "random_trials_epsilon": None if s is None else s.random_trials_epsilon,
            "selection_epsilon": None if s is None else s.epsilon,
            "selection_delta": None if s is None else s.selection_delta,
            "trial_cap": None if s is None else s.trial_cap,
            "cap_delta": None if s is None else s.cap_delta,
            "runs": 0 if s is None else s.runs,
            "delta": None if s is None else s.delta,
            "selection_epsilon_covers": BEST_ONLY_COVERS,
            "composition_epsilon_covers": ALL_SHOWN_COVERS,
            "note": self.note,
        }

    def text(self) -> str:
        s = self.selection
        if s is None:
            return self.note
        if s.random_trials_epsilon is None:
            return (
                f"single run ε = {format_epsilon(s.single_run_epsilon)}; the best of {s.runs} runs released, or all "
                f"of them shown: composition ε = {format_epsilon(s.composition_epsilon)} (δ = {s.delta:.0e}). "
                f"{self.note}"
            )
        best = (
            f"only the best trial released (not K or the other trials): random-trials bound "
            f"ε = {format_epsilon(s.random_trials_epsilon)} ({delta_text(s)})"
        )
        if s.runs == 0:
            return f"{best}. {self.note}"
        return (
            f"single trial ε = {format_epsilon(s.single_run_epsilon)}; {best}; every trial shown, as Compare "
            f"and the run lists do: composition of the K = {s.runs} drawn trials ε = {format_epsilon(s.composition_epsilon)} "
            f"(δ = {s.delta:.0e}). {self.note}"
        )


def sweep_epsilon(record: SweepRecord, runs: Sequence[RunRecord]) -> SweepEpsilon:
    """The ε of a stored sweep from its spec, its recorded draw and its runs ``runs`` (the store's records).

    Runs are counted as configured, so a run stopped early is over-counted (a safe upper bound). A
    private selection's figures are those of the mechanism started: the random-trials bound of its
    candidates and the composition of every drawn trial, whatever each trial did.
    """
    spec = spec_of(record)
    mine = [r for r in runs if r.id in set(record.run_ids)]
    if spec.mode == "grid":
        private = [r.config for r in mine if r.config.private]
        if not private:
            return SweepEpsilon(None, "no private run of this sweep is stored.")
        if len({data_key(c) for c in private}) > 1:
            return SweepEpsilon(None, "The sweep's runs train on different data, so no selection ε is given.")
        n = datasets.train_size(private[0])
        chosen, refusal = _selection_or_none(lambda: selection_epsilon(runs=private, n=n))
        return SweepEpsilon(
            chosen,
            "A grid's best run costs the composition of all its private runs, as showing them all does."
            if chosen
            else f"No selection ε is given: {refusal}.",
        )
    pool = [c for _, c in candidates(spec)]
    if record.draw is not None:
        drawn = [point.config for point in trial_points(spec, record.draw.picks)]
        counted = ""
    else:
        drawn = [r.config for r in mine if r.config.private]
        counted = (
            f" This sweep was stored before draws were recorded: the composition counts its {len(drawn)} stored "
            f"trial(s) of the {record.trial_count} drawn."
        )
    n = datasets.train_size(pool[0])
    chosen = selection_epsilon(runs=drawn, n=n, selection=spec.selection, candidates=pool, trial_cap=MAX_DRAWN_TRIALS)
    drawn_count = record.trial_count or 0
    if drawn_count == 0:
        return SweepEpsilon(chosen, "K = 0 trials were drawn: no private run trained and nothing private is released.")
    trials = [r for r in mine if r.config.private]
    unfinished = drawn_count - sum(1 for r in trials if r.status in FINISHED_STATUSES)
    note = f"K = {drawn_count} was drawn at random and recorded before anything ran (Papernot & Steinke 2022)."
    if unfinished:
        note += (
            f" {unfinished} of the {drawn_count} drawn trials did not finish (queued, running, cancelled, "
            "failed or deleted): both figures stay those of the sweep as started; a trial that stops lowers "
            "neither. If trials were stopped after looking at results, rely on the composition."
        )
    return SweepEpsilon(chosen, note + counted)


# -- grouping for Compare --------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedGroup:
    """The completed runs of one setting of one sweep over their seeds: final accuracy mean ± sd, ε."""

    sweep_id: int
    data_key: tuple[Any, ...]
    setting: str
    private: bool
    run_ids: tuple[int, ...]
    epsilon: float
    accuracy_mean: float
    accuracy_sd: float  # 0 for one seed
    label: str = ""  # the setting as a chart writes it beside its point ("σ 0.8")


def data_key(config: DPConfig) -> tuple[Any, ...]:
    """What makes two runs' training data the same: dataset, CSV file and label column, subset size."""
    return (config.dataset, config.csv_path, config.csv_label, config.max_train_examples)


def seed_groups(record: SweepRecord, runs: Sequence[RunRecord]) -> list[SeedGroup]:
    """The sweep's completed runs grouped by setting (everything but the seed), in knob order.

    Cancelled, failed, interrupted and unfinished runs are left out, so they never reach a mean or a frontier.
    """
    ids = set(record.run_ids)
    groups: dict[DPConfig, list[RunRecord]] = {}
    for run in runs:
        if run.id in ids and run.status == "completed" and run.test_accuracy is not None:
            groups.setdefault(run.config.replace(seed=0), []).append(run)
    names = [name for name, _ in spec_of(record).knobs]
    out = []
    for config, members in groups.items():
        # Every member completed an epoch (filtered above), so none of these is None.
        accuracies = [r.test_accuracy for r in members if r.test_accuracy is not None]
        epsilons = [r.epsilon for r in members if r.epsilon is not None]
        values = [(n, getattr(config, n)) for n in names]
        setting = "non-private baseline" if not config.private else setting_text(values)
        out.append(
            SeedGroup(
                sweep_id=record.id,
                data_key=data_key(config),
                setting=setting,
                private=config.private,
                run_ids=tuple(r.id for r in members),
                epsilon=max(epsilons),
                accuracy_mean=statistics.fmean(accuracies),
                accuracy_sd=statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                label="baseline" if not config.private else setting_text(values, short=True) or "base",
            )
        )
    return sorted(out, key=lambda g: (not g.private, g.epsilon, g.setting))


def sweep_frontier(groups: Sequence[SeedGroup]) -> dict[tuple[Any, ...], tuple[SeedGroup, ...]]:
    """Per training set (never mixing datasets or CSV files), the groups on the Pareto frontier of mean accuracy."""
    by_data: dict[tuple[Any, ...], list[SeedGroup]] = {}
    for group in groups:
        by_data.setdefault(group.data_key, []).append(group)
    fronts = {}
    for key, members in by_data.items():
        front = pareto_frontier(
            Point(epsilon=g.epsilon, accuracy=g.accuracy_mean, key=i) for i, g in enumerate(members)
        )
        fronts[key] = tuple(members[cast(int, p.key)] for p in front)  # the keys are indices into members
    return fronts
