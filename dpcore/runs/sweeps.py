"""Sweeps as one unit: a grid of knob values (with seeds and an optional non-private baseline) or a
"private selection" of a random number of trials, its projected ε and compute before it starts,
submitted to the job runner and cancelled as a whole, and read back grouped for Compare.

Two modes (``SWEEP_MODES``):

* ``grid``: every combination of the knobs' values, ``seeds`` runs each (seeds base.seed, base.seed + 1,
  ...). Releasing the best of them costs the plain composition of all the private runs
  (``selection.composition_epsilon``).
* ``private_selection``: the candidates are the knobs' combinations; the number of trials K is drawn
  with ``selection.draw_trial_count`` from the operating system's secure source when the sweep is
  started (never at preview, so nobody can redraw until K suits them), and each trial is a run of a
  candidate drawn uniformly at random, with seed base.seed + its index. The best trial's ε is
  Papernot & Steinke's random-trials bound, valid only if every drawn trial ran to the end; when
  one did not, only the composition of the trials is claimed.

The optional baseline (one non-private run per seed) is a reference, never a candidate: its ε is ∞.
TensorFlow-free: the runner imports the trainer.
"""

from __future__ import annotations

import itertools
import json
import math
import secrets
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from dpcore.config import FIELD_NAMES, DPConfig
from dpcore.data import datasets
from dpcore.errors import UserInputError
from dpcore.privacy import accounting
from dpcore.privacy.explain import format_epsilon
from dpcore.privacy.limits import RDP_LEVEL_SECONDS, query_seconds
from dpcore.privacy.selection import (
    SelectionEpsilon,
    SelectionError,
    SelectionSettings,
    composition_work,
    draw_trial_count,
    selection_epsilon,
)
from dpcore.runs.capacity import format_duration
from dpcore.runs.comparison import Point, pareto_frontier
from dpcore.runs.records import RunRecord, SweepRecord

if TYPE_CHECKING:
    from dpcore.room.participants import Caller
    from dpcore.runs.capacity import ThroughputTable
    from dpcore.runs.jobs import JobRunner

SWEEP_MODES = ("grid", "private_selection")
# The knobs the app offers, at most MAX_APP_KNOBS at once; the library and CLI take any config field.
SWEEP_KNOBS = ("noise_multiplier", "epochs", "batch_size", "l2_norm_clip", "learning_rate")
MAX_APP_KNOBS = 2
MAX_SEEDS = 20
# The most runs one sweep may queue: each is a training run and a row in the store.
MAX_SWEEP_RUNS = 1000
# A private-selection sweep whose drawn K is above this is refused before anything runs (and K is
# not redrawn: the sweep is simply not run, which releases nothing).
MAX_DRAWN_TRIALS = MAX_SWEEP_RUNS
# The most distinct ε a preview asks the accountant for (runs differing only in what ε does not
# depend on, such as the seed or the learning rate, share one), checked before any is estimated.
MAX_PREVIEW_QUERIES = 100


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
            raise SweepError("mode", f"{self.mode!r} is not a sweep mode", allowed=", ".join(SWEEP_MODES))
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
        where = " ".join(f"{k}={v}" for k, v in self.setting) or "base config"
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


def draw_trials(spec: SweepSpec, *, rng: Optional[np.random.Generator] = None) -> list[SweepPoint]:
    """A private-selection sweep's trials: K drawn with ``draw_trial_count``, each a random candidate.

    ``rng`` (tests, teaching) makes the draws reproducible; without it both K and the choices come
    from the operating system's secure source. A K over MAX_DRAWN_TRIALS refuses the sweep.
    """
    if spec.mode != "private_selection":
        raise SweepError("mode", "only a private-selection sweep draws trials", allowed="private_selection")
    pool = candidates(spec)
    count = draw_trial_count(spec.selection, rng=rng)
    if count > MAX_DRAWN_TRIALS:
        raise SweepError(
            "selection",
            f"the drawn number of trials is {count:,}; nothing was run",
            allowed=f"a distribution whose draws stay under {MAX_DRAWN_TRIALS} (a smaller mean or shape)",
        )
    generator = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
    picks = generator.integers(0, len(pool), size=count) if count else []
    return [
        SweepPoint(pool[int(p)][0], spec.base.seed + i, pool[int(p)][1].replace(seed=spec.base.seed + i), "trial")
        for i, p in enumerate(picks)
    ]


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
            base = f"a random number of trials (E[K] = {self.spec.selection.expected_trials:.3g})"
            return base + (f" plus {self.spec.seeds} baseline run(s)" if self.spec.baseline else "")
        return f"{self.spec.size} run(s)"

    def selection_text(self) -> str:
        """The ε of releasing the best run, next to one run's, as the sweep will be accounted."""
        s = self.selection
        if s is None:
            return self.selection_note
        single = f"one run ε ≤ {format_epsilon(s.single_run_epsilon)}"
        loose = " (approximate: an upper bound, slightly loose)" if s.approximate else ""
        if s.random_trials_epsilon is not None:
            return (
                f"{single}; best of a random number of trials ε = {format_epsilon(s.random_trials_epsilon)} "
                f"(δ = {s.delta:.0e}){loose}. {self.selection_note}"
            )
        return (
            f"{single}; best of all {s.runs} private runs ε = {format_epsilon(s.composition_epsilon)} "
            f"(δ = {s.delta:.0e}){loose}. {self.selection_note}"
        )


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
                "Releasing the best of a grid costs the composition of all its private runs."
                if chosen
                else f"No selection ε is given: {refusal}"
            )
    else:
        points = [SweepPoint(s, spec.base.seed, c, "candidate") for s, c in candidates(spec)] + _baselines(spec)
        pool = [c for _, c in candidates(spec)]
        chosen = selection_epsilon(
            runs=pool, n=n_first, selection=spec.selection, candidates=pool, interactive=interactive
        )
        note = (
            "K is drawn when the sweep starts; this bound holds if every drawn trial runs to the end "
            "and only the best is released."
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
    seconds = 0.0
    if private[0].accountant == "pld":
        runs = [p.config for p in grid_points(spec) if p.config.private] if spec.mode == "grid" else private
        try:
            seconds += composition_work(runs, n=n, interactive=interactive).seconds
        except SelectionError:
            return 0.0  # refused in the preview itself: no selection ε is given
        if spec.mode == "private_selection":
            levels = {
                (config.batch_size, sigma)
                for config in private
                for sigma in set(accounting.noise_schedule_values(config, n=n))
            }
            seconds += len(levels) * RDP_LEVEL_SECONDS
    return seconds


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
        mean_k = spec.selection.expected_trials
        estimates = [throughput.estimate(c, n_train=n_first) for _, c in candidates(spec)]
        base_estimates = [throughput.estimate(p.config, n_train=n_first) for p in _baselines(spec)]
        passes = mean_k * statistics.fmean(e.example_passes for e in estimates) + sum(
            e.example_passes for e in base_estimates
        )
        seconds = [e.seconds for e in estimates]
        times = [None] if None in seconds else [mean_k * statistics.fmean(seconds)]
        times += [e.seconds for e in base_estimates]
    total = None if any(t is None for t in times) else float(sum(times))
    return SweepPreview(
        spec=spec,
        points=privacy.points,
        selection=privacy.selection,
        selection_note=privacy.selection_note,
        example_passes=passes,
        seconds=total,
    )


def _selection_or_none(compute: Any) -> tuple[Optional[SelectionEpsilon], str]:
    """(the selection ε, "") or (None, why the selection accounting refused)."""
    try:
        return compute(), ""
    except SelectionError as exc:
        return None, str(exc)


@dataclass(frozen=True)
class StartedSweep:
    """A sweep queued as one unit: its stored id, its runs' ids and points, K when it was drawn."""

    sweep_id: int
    run_ids: tuple[int, ...]
    points: tuple[SweepPoint, ...]
    trial_count: Optional[int]


def start(runner: JobRunner, spec: SweepSpec, *, owner: str, rng: Optional[np.random.Generator] = None) -> StartedSweep:
    """Record ``spec`` as a sweep and queue its runs as one unit (refused whole by the runner's limits).

    A private-selection sweep draws K and its trials here. K = 0 (possible under Poisson) queues only
    the baselines and releases nothing private; the sweep is still recorded with K = 0.
    """
    candidates(spec)  # refuse bad settings before anything is drawn or stored
    if spec.mode == "grid":
        points, trial_count = grid_points(spec), None
    else:
        trials = draw_trials(spec, rng=rng)
        points, trial_count = trials + _baselines(spec), len(trials)
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
    )
    ids: list[int] = []
    if points:
        names = [f"{spec.name or f'sweep {sweep_id}'}: {p.label()}" for p in points]
        ids = runner.submit_many([p.config for p in points], owner=owner, names=names, sweep_id=sweep_id)
    return StartedSweep(sweep_id=sweep_id, run_ids=tuple(ids), points=tuple(points), trial_count=trial_count)


def cancel(runner: JobRunner, sweep_id: int, *, by: Optional[Caller] = None) -> int:
    """Cancel every queued or running run of the sweep (each checked against ``by``); return how many."""
    sweep = runner.store.get_sweep(sweep_id)
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


@dataclass(frozen=True)
class SweepEpsilon:
    """The ε of releasing the best run of a stored sweep, and why a bound is or is not claimed."""

    selection: Optional[SelectionEpsilon]  # None: no private run ran (or K = 0)
    note: str

    def as_json(self) -> dict[str, Any]:
        s = self.selection
        return {
            "single_run_epsilon": None if s is None else s.single_run_epsilon,
            "composition_epsilon": None if s is None else s.composition_epsilon,
            "random_trials_epsilon": None if s is None else s.random_trials_epsilon,
            "selection_epsilon": None if s is None else s.epsilon,
            "runs": 0 if s is None else s.runs,
            "delta": None if s is None else s.delta,
            "note": self.note,
        }

    def text(self) -> str:
        s = self.selection
        if s is None:
            return self.note
        parts = [
            f"single run ε = {format_epsilon(s.single_run_epsilon)}",
            f"best of {s.runs} by composition ε = {format_epsilon(s.composition_epsilon)}",
        ]
        if s.random_trials_epsilon is not None:
            parts.append(f"random-trials bound ε = {format_epsilon(s.random_trials_epsilon)}")
        return f"{'; '.join(parts)} (δ = {s.delta:.0e}). {self.note}"


def sweep_epsilon(record: SweepRecord, runs: Sequence[RunRecord]) -> SweepEpsilon:
    """The selection ε of a stored sweep from the configs of its runs ``runs`` (the store's records).

    Runs are counted as configured, so a run stopped early is over-counted (a safe upper bound).
    The random-trials bound is claimed only if every drawn trial completed.
    """
    spec = spec_of(record)
    mine = [r for r in runs if r.id in set(record.run_ids)]
    private = [r.config for r in mine if r.config.private]
    if spec.mode == "private_selection" and record.trial_count == 0:
        return SweepEpsilon(None, "K = 0 trials were drawn: no private run trained and nothing private is released.")
    if not private:
        return SweepEpsilon(None, "no private run of this sweep is stored.")
    if len({data_key(c) for c in private}) > 1:
        return SweepEpsilon(None, "The sweep's runs train on different data, so no selection ε is given.")
    n = datasets.train_size(private[0])
    if spec.mode == "grid":
        chosen, refusal = _selection_or_none(lambda: selection_epsilon(runs=private, n=n))
        return SweepEpsilon(
            chosen,
            "Releasing the best of a grid costs the composition of all its private runs."
            if chosen
            else f"No selection ε is given: {refusal}",
        )
    pool = [c for _, c in candidates(spec)]
    complete = len(private) == record.trial_count and all(r.status == "completed" for r in mine if r.config.private)
    if not complete:
        return SweepEpsilon(
            selection_epsilon(runs=private, n=n),
            (
                f"Not all {record.trial_count} drawn trials ran to the end, so the random-trials bound does not "
                "apply; only the composition of the trials is claimed."
            ),
        )
    return SweepEpsilon(
        selection_epsilon(runs=private, n=n, selection=spec.selection, candidates=pool),
        (
            f"K = {record.trial_count} trials were drawn at random; the random-trials bound is the ε of releasing "
            "the best one (Papernot & Steinke 2022)."
        ),
    )


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
        accuracies = [r.test_accuracy for r in members]
        setting = (
            "non-private baseline"
            if not config.private
            else " ".join(f"{n}={getattr(config, n)}" for n in names) or "base config"
        )
        out.append(
            SeedGroup(
                sweep_id=record.id,
                data_key=data_key(config),
                setting=setting,
                private=config.private,
                run_ids=tuple(r.id for r in members),
                epsilon=max(r.epsilon for r in members),
                accuracy_mean=statistics.fmean(accuracies),
                accuracy_sd=statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
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
        fronts[key] = tuple(members[p.key] for p in front)
    return fronts
