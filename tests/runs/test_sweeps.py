"""dpcore.runs.sweeps: expanding a spec, projected ε and compute, one-unit submission and cancel, the stored
sweep and its selection ε, private selection's real draw, and grouping over seeds with Pareto frontiers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.privacy import accounting
from dpcore.privacy.selection import (
    SelectionError,
    SelectionSettings,
    composition_epsilon,
    draw_trial_count,
    random_trials_epsilon,
    selection_epsilon,
)
from dpcore.room.participants import Caller, NotAllowedError
from dpcore.room.server_settings import RunLimits
from dpcore.runs import sweeps
from dpcore.runs.capacity import CapacityError, ThroughputTable
from dpcore.runs.jobs import JobRunner
from dpcore.runs.store import RunStore, UnknownSweepError
from dpcore.runs.sweeps import SweepError

TINY = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=1, max_train_examples=128)
N = 128
POISSON = SelectionSettings("poisson", 3.0)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.sqlite3")


def grid(**kwargs):
    return sweeps.SweepSpec(base=TINY, knobs=(("noise_multiplier", (0.8, 1.5)),), **kwargs)


def test_a_grid_expands_to_settings_times_seeds_then_baselines():
    spec = sweeps.SweepSpec(
        base=TINY, knobs=(("noise_multiplier", (0.8, 1.5)), ("epochs", (1, 2))), seeds=2, baseline=True
    )
    points = sweeps.grid_points(spec)
    assert spec.size == len(points) == 10
    assert [(p.config.noise_multiplier, p.config.epochs, p.seed) for p in points[:4]] == [
        (0.8, 1, 0),
        (0.8, 1, 1),
        (0.8, 2, 0),
        (0.8, 2, 1),
    ]
    assert [p.role for p in points[-2:]] == ["baseline", "baseline"]
    assert not any(p.config.private for p in points[-2:]) and {p.seed for p in points[-2:]} == {0, 1}


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(knobs=(("seed", (1, 2)),), seeds=2), "seeds"),
        (dict(knobs=(("noise", (1.0,)),)), "knobs"),
        (dict(knobs=(("epochs", ()),)), "epochs"),
        (dict(knobs=(("epochs", (1,)), ("epochs", (2,)))), "knobs"),
        (dict(knobs=(), seeds=0), "seeds"),
        (dict(knobs=(), seeds=21), "seeds"),
        (dict(knobs=(), mode="best"), "mode"),
        (dict(knobs=(), selection=POISSON), "selection"),
        (dict(knobs=(("epochs", (1,)),), mode="private_selection"), "selection"),
        (dict(knobs=(("epochs", (1,)),), mode="private_selection", selection=POISSON, seeds=2), "seeds"),
        (dict(knobs=(("epochs", tuple(range(1, 40))), ("batch_size", tuple(range(2, 40))))), "knobs"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(kwargs, field):
    with pytest.raises(sweeps.SweepError) as info:
        sweeps.SweepSpec(base=TINY, **kwargs)
    assert info.value.field == field


def test_a_bad_setting_names_the_setting():
    with pytest.raises(sweeps.SweepError, match="epochs=0"):
        sweeps.candidates(sweeps.SweepSpec(base=TINY, knobs=(("epochs", (1, 0)),)))
    with pytest.raises(sweeps.SweepError, match="batch_size=500"):
        sweeps.preview(sweeps.SweepSpec(base=TINY, knobs=(("batch_size", (16, 500)),)), throughput=ThroughputTable())


def test_preview_gives_each_points_epsilon_the_composition_and_the_compute():
    spec = grid(seeds=2, baseline=True)
    preview = sweeps.preview(spec, throughput=ThroughputTable())
    assert "composition" in preview.selection_text()
    for point, epsilon in preview.points:
        assert epsilon == (accounting.epsilon_for_config(point.config, n=N) if point.config.private else math.inf)
    private = [p.config for p, _ in preview.points if p.config.private]
    assert preview.selection.composition_epsilon == pytest.approx(composition_epsilon(private, n=N))
    assert preview.selection.single_run_epsilon == pytest.approx(
        accounting.epsilon_for_config(TINY.replace(noise_multiplier=0.8), n=N)
    )
    assert preview.example_passes == 6 * N and preview.seconds is None
    measured = ThroughputTable()
    measured.add(TINY, examples=1000, seconds=1.0)
    measured.add(TINY.as_baseline(), examples=2000, seconds=1.0)
    assert sweeps.preview(spec, throughput=measured).seconds == pytest.approx(4 * N / 1000 + 2 * N / 2000)


def test_private_selection_preview_uses_the_random_trials_bound_and_the_expected_compute():
    spec = sweeps.SweepSpec(
        base=TINY, knobs=(("noise_multiplier", (0.8, 1.5)),), mode="private_selection", selection=POISSON, baseline=True
    )
    preview = sweeps.preview(spec, throughput=ThroughputTable())
    pool = [TINY.replace(noise_multiplier=s) for s in (0.8, 1.5)]
    assert preview.selection.random_trials_epsilon == pytest.approx(random_trials_epsilon(pool, n=N, selection=POISSON))
    assert preview.example_passes == pytest.approx(3.0 * N + N)
    assert "random number of trials" in preview.compute_text()


# -- the preview's work, bounded before the accountant is asked ----------------------------------------


def _not_asked(*_args, **_kwargs):
    raise AssertionError("the accountant was asked")


def test_a_preview_of_a_thousand_noise_values_is_refused_before_anything_is_estimated(monkeypatch):
    """A thousand fresh σ with PLD: refused in one line, before the accountant is asked anything."""
    values = tuple(round(0.5 + 0.001 * i, 4) for i in range(1000))
    spec = sweeps.SweepSpec(base=TINY.replace(accountant="pld"), knobs=(("noise_multiplier", values),))
    monkeypatch.setattr(sweeps.datasets, "train_size", _not_asked)
    monkeypatch.setattr(sweeps.accounting, "query_work_for_config", _not_asked)
    with pytest.raises(sweeps.SweepError) as info:
        sweeps.preview(spec, throughput=ThroughputTable())
    assert info.value.field == "knobs" and "1,000 different ε" in str(info.value)
    assert f"at most {sweeps.MAX_PREVIEW_QUERIES} different ε" in info.value.allowed


def test_runs_that_differ_only_where_epsilon_does_not_share_one_question():
    spec = sweeps.SweepSpec(
        base=TINY, knobs=(("learning_rate", tuple(0.1 * i for i in range(1, 11))),), seeds=5, baseline=True
    )
    assert spec.size == 55 and sweeps.check_preview_size(spec) == 1
    assert sweeps.epsilon_key(TINY.replace(seed=3, model="mlp")) == sweeps.epsilon_key(TINY)
    assert sweeps.epsilon_key(TINY.replace(noise_multiplier=2.0)) != sweeps.epsilon_key(TINY)


def test_a_preview_estimated_beyond_its_bound_is_refused_before_any_epsilon(monkeypatch):
    """60 σ with PLD took 222 s to preview: its estimated work is refused, naming the knobs."""
    values = tuple(round(0.5 + 0.05 * i, 3) for i in range(60))
    spec = sweeps.SweepSpec(base=DPConfig(accountant="pld"), knobs=(("noise_multiplier", values),))
    monkeypatch.setattr(sweeps.accounting, "epsilon_for_config", _not_asked)
    monkeypatch.setattr(sweeps, "selection_epsilon", _not_asked)
    with pytest.raises(
        sweeps.SweepError, match=r"^knobs: the preview would ask the accountant for 60 different ε.*about \d+ s"
    ):
        sweeps.preview(spec, throughput=ThroughputTable())
    with pytest.raises(sweeps.SweepError, match=r"more than the 5 s allowed"):
        sweeps.preview_privacy(
            spec.__class__(base=spec.base, knobs=(("noise_multiplier", values[:10]),)), max_seconds=5.0
        )


def test_an_interactive_preview_answers_on_the_interactive_grid_and_says_the_selection_is_approximate():
    spec = sweeps.SweepSpec(base=TINY.replace(accountant="pld", epochs=3), knobs=(("noise_multiplier", (0.8, 1.5)),))
    privacy = sweeps.preview_privacy(spec, interactive=True)
    for point, epsilon in privacy.points:
        assert epsilon == accounting.epsilon_for_config(point.config, n=N, interactive=True)
        assert epsilon >= accounting.epsilon_for_config(point.config, n=N)  # an upper bound of the precise ε
    preview = sweeps.preview(spec, throughput=ThroughputTable(), privacy=privacy)
    assert preview.selection.approximate and "approximate" in preview.selection_text()


def test_private_selection_draws_k_with_the_selection_distribution_and_random_candidates():
    spec = sweeps.SweepSpec(
        base=TINY,
        knobs=(("noise_multiplier", (0.8, 1.5, 3.0)),),
        mode="private_selection",
        selection=SelectionSettings("poisson", 8.0),
    )
    draw = sweeps.draw_trials(spec, rng=np.random.default_rng(7))
    assert draw.trial_count == len(draw.picks) == draw_trial_count(spec.selection, rng=np.random.default_rng(7))
    assert draw.refused is None
    trials = sweeps.trial_points(spec, draw.picks)
    assert [t.seed for t in trials] == list(range(len(trials)))
    assert [t.config.noise_multiplier for t in trials] == [(0.8, 1.5, 3.0)[p] for p in draw.picks]
    counts = [sweeps.draw_trials(spec, rng=np.random.default_rng(seed)).trial_count for seed in range(40)]
    assert len(set(counts)) > 3 and 5 < np.mean(counts) < 11  # really random, around E[K] = 8


def _accounted_pmf(settings):
    if settings.distribution == "poisson":
        return stats.poisson(settings.mean).pmf
    gamma, shape = settings.gamma, settings.shape
    if shape == 0:
        return stats.logser(1 - gamma).pmf
    return lambda k: stats.nbinom(shape, gamma).pmf(k) / (1 - gamma**shape)


@pytest.mark.parametrize(
    "settings",
    [
        SelectionSettings("poisson", 4.0),
        SelectionSettings("poisson", 700.0),  # draws near the cap of 1,000
        SelectionSettings("truncated_negative_binomial", 6.0, 0.5),
        SelectionSettings("truncated_negative_binomial", 20.0, 1.0),
    ],
)
def test_the_k_drawn_with_the_cap_in_place_follows_the_accounted_distribution(settings):
    # 2,000 draws of the draw a sweep starts with (the cap in place, nothing redrawn) against the
    # distribution the bound is computed for: a chi-square test with bins of at least 5 expected draws.
    spec = sweeps.SweepSpec(
        base=TINY, knobs=(("noise_multiplier", (0.8, 1.5)),), mode="private_selection", selection=settings
    )
    rng = np.random.default_rng(2024)
    draws = [sweeps.draw_trials(spec, rng=rng) for _ in range(2000)]
    counts = np.array([d.trial_count for d in draws])
    assert all(d.refused is None and len(d.picks) == d.trial_count for d in draws)
    pmf = _accounted_pmf(settings)
    edges, expected, mass = [], [], 0.0
    k = 0 if settings.distribution == "poisson" else 1
    start = k
    while 1.0 - sum(expected) - mass > 1e-12 and k <= sweeps.MAX_DRAWN_TRIALS:
        mass += float(pmf(k))
        k += 1
        if mass * counts.size >= 5 and (1.0 - sum(expected) - mass) * counts.size >= 5:
            edges.append((start, k))
            expected.append(mass)
            start, mass = k, 0.0
    edges.append((start, None))  # the rest, the tail beyond the cap included
    expected.append(1.0 - sum(expected))
    observed = [np.sum((counts >= low) & (counts < (high if high is not None else np.inf))) for low, high in edges]
    assert len(edges) >= 5 and sum(observed) == counts.size
    result = stats.chisquare(observed, np.array(expected) * counts.size)
    assert result.pvalue > 0.001, (edges, observed)
    assert abs(counts.mean() - settings.expected_trials) <= 5 * counts.std() / math.sqrt(counts.size)


def test_private_selection_refuses_non_private_candidates():
    spec = sweeps.SweepSpec(base=TINY, knobs=(("private", (True, False)),), mode="private_selection", selection=POISSON)
    with pytest.raises(sweeps.SweepError, match="private runs only"):
        sweeps.draw_trials(spec)


def test_a_grid_sweep_is_stored_queued_as_one_unit_and_cancelled_as_a_whole(store):
    runner = JobRunner(store=store, workers=1)
    try:
        spec = sweeps.SweepSpec(
            base=TINY.replace(epochs=300, max_train_examples=None),
            knobs=(("noise_multiplier", (0.8, 1.5)),),
            seeds=2,
            name="noise",
        )
        started = sweeps.start(runner, spec, owner="me")
        assert len(started.run_ids) == 4 and started.trial_count is None
        record = store.get_sweep(started.sweep_id)
        assert record.run_ids == started.run_ids and record.mode == "grid" and record.seeds == 2
        assert sweeps.spec_of(record) == spec
        assert store.sweep_ids_of_runs() == {i: started.sweep_id for i in started.run_ids}
        assert runner.get(started.run_ids[0]).name == "noise: σ 0.8, seed 0"
        with pytest.raises(NotAllowedError, match=f"sweep {started.sweep_id} belongs to another participant"):
            sweeps.cancel(runner, started.sweep_id, by=Caller(owner="pother"))
        assert {runner.get(i).state for i in started.run_ids} <= {"queued", "running"}
        assert sweeps.cancel(runner, started.sweep_id, by=Caller(owner="me")) == 4
        runner.wait(started.run_ids, timeout=120)
        assert {runner.get(i).state for i in started.run_ids} == {"cancelled"}
        assert [s.id for s in store.list_sweeps(owner="me")] == [started.sweep_id]
        assert store.list_sweeps(owner="other") == []
    finally:
        runner.shutdown()
    with pytest.raises(UnknownSweepError):
        store.get_sweep(999)


def test_a_sweep_of_eight_runs_is_one_entry_under_the_default_limits(store):
    # 1 training + 3 waiting per participant: 2 σ × 4 seeds is one entry, and three more sweeps fit beside it.
    runner = JobRunner(store=store, workers=1, limits=RunLimits(max_example_passes=None, max_run_seconds=None))
    long = sweeps.SweepSpec(base=TINY.replace(epochs=300, max_train_examples=None), knobs=grid().knobs, seeds=4)
    try:
        started = [sweeps.start(runner, long, owner="me") for _ in range(4)]
        assert [len(s.run_ids) for s in started] == [8, 8, 8, 8]
        with pytest.raises(CapacityError) as info:
            sweeps.check_fits(runner, long, owner="me")  # what the preview shows before Start
        assert "already have 4 runs or sweeps" in str(info.value) and "DPEXPLORER_MAX_QUEUED" in str(info.value)
        with pytest.raises(CapacityError, match="already have 4 runs or sweeps"):
            sweeps.start(runner, long, owner="me")  # a client that ignores a disabled Start
        assert [s.id for s in store.list_sweeps()] == [s.sweep_id for s in started]  # no sweep without runs
        sweeps.check_fits(runner, long, owner="someone else")
        assert sum(sweeps.cancel(runner, s.sweep_id, by=None) for s in started) == 32
    finally:
        runner.shutdown()


def test_a_refused_sweep_leaves_no_sweep_row(store):
    runner = JobRunner(store=store, workers=1, limits=RunLimits(max_sweep_runs=3))
    try:
        with pytest.raises(CapacityError) as info:
            sweeps.start(runner, grid(seeds=2), owner="me")
        assert info.value.field == "sweep_runs" and "runs per sweep to 4" in str(info.value)
        assert store.list_runs() == [] and store.list_sweeps() == []
        # A private selection's K is drawn after the checks, with the sweep's row: K = 4 trials over the
        # 3 runs a sweep may hold is refused at submit, and the row goes again; the draw waits, unused.
        selection = sweeps.SweepSpec(base=TINY, knobs=grid().knobs, mode="private_selection", selection=POISSON)
        sweeps.check_fits(runner, selection, owner="me")
        with pytest.raises(CapacityError, match="this sweep has 4 runs"):
            sweeps.start(runner, selection, owner="me", rng=np.random.default_rng(1))
        (draw,) = [
            store.find_selection_draw(owner="me", data_key=d, spec_key=k) for d, k in [sweeps.selection_keys(selection)]
        ]
        assert draw.trial_count == 4 and draw.sweep_id is None
        assert store.list_sweeps() == []
    finally:
        runner.shutdown()


def test_a_sweep_on_a_shared_server_needs_a_participant_and_stores_nothing_without_one(store):
    runner = JobRunner(store=store, workers=1, limits=RunLimits())
    try:
        with pytest.raises(UserInputError) as info:
            sweeps.start(runner, grid(), owner="")
        assert info.value.field == "display_name" and "sweeps need a name" in str(info.value)
        with pytest.raises(UserInputError, match="runs need a name"):
            runner.submit(TINY, owner="")
        assert store.list_runs() == [] and store.list_sweeps() == []
    finally:
        runner.shutdown()


def test_the_host_may_cancel_anyones_sweep(store):
    runner = JobRunner(store=store, workers=1, limits=RunLimits(max_example_passes=None, max_run_seconds=None))
    try:
        long = sweeps.SweepSpec(base=TINY.replace(epochs=300, max_train_examples=None), knobs=grid().knobs)
        started = sweeps.start(runner, long, owner="pada")
        assert sweeps.cancel(runner, started.sweep_id, by=Caller(owner="phost", is_host=True)) == len(started.run_ids)
    finally:
        runner.shutdown()


def test_a_finished_private_selection_sweep_claims_the_random_trials_bound(store):
    runner = JobRunner(store=store, workers=1)
    spec = sweeps.SweepSpec(
        base=TINY,
        knobs=(("noise_multiplier", (0.8, 1.5)),),
        mode="private_selection",
        selection=SelectionSettings("poisson", 2.0),
        baseline=True,
    )
    rng = np.random.default_rng(0)  # K = 2
    try:
        started = sweeps.start(runner, spec, owner="me", rng=rng)
        runner.wait(started.run_ids, timeout=300)
    finally:
        runner.shutdown()
    k = started.trial_count
    assert k == draw_trial_count(spec.selection, rng=np.random.default_rng(0)) == 2
    assert len(started.run_ids) == k + 1 and store.get_sweep(started.sweep_id).trial_count == k
    result = sweeps.sweep_epsilon(store.get_sweep(started.sweep_id), store.list_runs())
    pool = [TINY.replace(noise_multiplier=s) for s in (0.8, 1.5)]
    assert result.selection.random_trials_epsilon == pytest.approx(
        random_trials_epsilon(pool, n=N, selection=spec.selection)
    )
    assert result.selection.runs == k and "drawn at random" in result.note
    assert result.as_json()["selection_epsilon"] == result.selection.random_trials_epsilon


def test_a_private_selection_that_draws_no_trials_runs_nothing_private_and_says_so(store):
    runner = JobRunner(store=store, workers=1)
    spec = sweeps.SweepSpec(
        base=TINY,
        knobs=(("noise_multiplier", (0.8,)),),
        mode="private_selection",
        selection=SelectionSettings("poisson", 2.0),
    )
    try:
        started = sweeps.start(runner, spec, owner="me", rng=np.random.default_rng(3))  # K = 0
    finally:
        runner.shutdown()
    assert started.trial_count == 0 and started.run_ids == () and store.list_runs() == []
    result = sweeps.sweep_epsilon(store.get_sweep(started.sweep_id), [])
    # Nothing private ran, and the claim is still that of the mechanism started.
    assert (result.selection.runs, result.selection.composition_epsilon) == (0, 0.0)
    assert result.selection.epsilon == pytest.approx(
        random_trials_epsilon([TINY.replace(noise_multiplier=0.8)], n=N, selection=spec.selection)
    )
    assert "K = 0" in result.text() and "nothing private is released" in result.text()


LONG = TINY.replace(epochs=300)  # trains long enough to be cancelled while queued or training


def _selection_spec(mean, *, base=LONG, **kwargs):
    return sweeps.SweepSpec(
        base=base,
        knobs=(("noise_multiplier", (0.8, 1.5)),),
        mode="private_selection",
        selection=SelectionSettings("poisson", mean),
        **kwargs,
    )


def test_a_cancelled_trial_never_lowers_the_sweeps_epsilon(store):
    # K = 1: the claim is the random-trials bound of the sweep started (the 2.676), not the
    # composition of its one trial (2.087 there), before, during and after the trial is cancelled.
    spec = _selection_spec(1.0)
    pool = [LONG.replace(noise_multiplier=s) for s in (0.8, 1.5)]
    bound = selection_epsilon(runs=[], n=N, selection=spec.selection, candidates=pool, trial_cap=1000)
    runner = JobRunner(store=store, workers=1)
    try:
        started = sweeps.start(runner, spec, owner="me", rng=np.random.default_rng(0))  # K = 1
        assert started.trial_count == 1
        before = sweeps.sweep_epsilon(store.get_sweep(started.sweep_id), store.list_runs())
        assert sweeps.cancel(runner, started.sweep_id, by=None) == 1
        runner.wait(started.run_ids, timeout=120)
    finally:
        runner.shutdown()
    assert store.get_run(started.run_ids[0]).status == "cancelled"
    after = sweeps.sweep_epsilon(store.get_sweep(started.sweep_id), store.list_runs())
    (trial,) = [p.config for p in started.points]
    for result in (before, after):
        assert result.selection.epsilon == pytest.approx(bound.random_trials_epsilon, rel=1e-12)
        assert result.selection.composition_epsilon == pytest.approx(composition_epsilon([trial], n=N), rel=1e-12)
        assert result.selection.selection_delta == bound.selection_delta
        assert result.as_json()["selection_epsilon"] == result.selection.random_trials_epsilon
    assert after.selection.epsilon > after.selection.composition_epsilon  # the lower figure is not the claim
    assert "1 of the 1 drawn trials did not finish" in after.note and "lowers neither" in after.note
    # A failed trial, or one deleted from the store, changes nothing either.
    store.set_status(started.run_ids[0], "failed", error="boom")
    failed = sweeps.sweep_epsilon(store.get_sweep(started.sweep_id), store.list_runs())
    store.delete_run(started.run_ids[0])
    deleted = sweeps.sweep_epsilon(store.get_sweep(started.sweep_id), store.list_runs())
    for result in (failed, deleted):
        assert result.as_json() | {"note": ""} == after.as_json() | {"note": ""}


def test_every_draw_is_recorded_before_anything_runs_and_is_never_drawn_again(store):
    spec = _selection_spec(3.0)
    limited = JobRunner(store=store, workers=1, limits=RunLimits(max_running=1, max_queued=0, max_sweep_runs=1))
    try:
        with pytest.raises(
            CapacityError, match="this sweep has 2 runs"
        ):  # K = 2 trials, 1 run per sweep: refused whole
            sweeps.start(limited, spec, owner="me", rng=np.random.default_rng(0))
    finally:
        limited.shutdown()
    (draw,) = store.list_selection_draws()
    assert (draw.owner, draw.trial_count, draw.sweep_id, draw.refused) == ("me", 2, None, None)
    assert draw.created > 0 and store.list_runs() == []
    assert (draw.data_key, draw.spec_key) == sweeps.selection_keys(spec)

    # Starting again reuses that draw (another generator would have drawn K = 4), whatever the sweep's
    # name or baseline; the draw is kept once and marked as used by the sweep started with it.
    renamed = sweeps.SweepSpec(**{**spec.__dict__, "name": "again", "baseline": True})
    runner = JobRunner(store=store, workers=1)
    try:
        started = sweeps.start(runner, renamed, owner="me", rng=np.random.default_rng(1))
        assert started.trial_count == 2 and [p.config for p in started.points[:2]] == [
            p.config for p in sweeps.trial_points(spec, draw.picks)
        ]
        assert len(started.run_ids) == 3  # two trials and the baseline
        sweeps.cancel(runner, started.sweep_id, by=None)
        runner.wait(started.run_ids, timeout=120)
        (used,) = store.list_selection_draws()
        assert used.sweep_id == started.sweep_id and store.get_sweep(started.sweep_id).draw == used
        # Abandoned after it started: a third start is refused, naming the sweep that ran the draw.
        with pytest.raises(SweepError) as caught:
            sweeps.start(runner, spec, owner="me")
        assert caught.value.field == "selection" and f"sweep {started.sweep_id} was started with it" in str(
            caught.value
        )
        assert len(store.list_runs()) == 3 and len(store.list_selection_draws()) == 1
        # Another participant, or other candidates, draw their own.
        other = sweeps.start(runner, spec, owner="you", rng=np.random.default_rng(3))
        assert other.trial_count == 1
        sweeps.cancel(runner, other.sweep_id, by=None)
        runner.wait(other.run_ids, timeout=120)
    finally:
        runner.shutdown()
    assert [d.owner for d in store.list_selection_draws()] == ["me", "you"]


def test_a_draw_above_the_cap_runs_nothing_is_recorded_and_is_not_drawn_again(store, monkeypatch):
    # δ = 0.005 and a cap of 7 trials: P[K > 7] ≈ 1e-5 under Poisson(1), which costs 1.4e-5 of δ
    # (under 1%), so the distribution is allowed; seed 21575 draws K = 8, above the cap.
    monkeypatch.setattr(sweeps, "MAX_DRAWN_TRIALS", 7)
    base = TINY.replace(noise_multiplier=4.0, delta=0.005)
    spec = sweeps.SweepSpec(base=base, knobs=(), mode="private_selection", selection=SelectionSettings("poisson", 1.0))
    runner = JobRunner(store=store, workers=1)
    try:
        for rng in (np.random.default_rng(21575), np.random.default_rng(0), None):
            with pytest.raises(SweepError) as caught:
                sweeps.start(runner, spec, owner="me", rng=rng)
            assert "K = 8 is above the cap of 7 trials" in str(caught.value) and "never drawn again" in str(
                caught.value
            )
    finally:
        runner.shutdown()
    (draw,) = store.list_selection_draws()
    assert (draw.trial_count, draw.picks, draw.sweep_id) == (8, (), None) and draw.refused
    assert store.list_runs() == [] and store.list_sweeps() == []
    # The cap's cost is in the claim's δ.
    bound = sweeps.preview(spec, throughput=ThroughputTable()).selection
    assert bound.cap_delta > 0 and bound.selection_delta == base.delta + bound.cap_delta
    assert (
        f"+ {bound.cap_delta:.1e} for refusing K above 7"
        in sweeps.preview(spec, throughput=ThroughputTable()).selection_text()
    )


def test_a_distribution_whose_tail_beyond_the_cap_is_not_negligible_is_refused_before_drawing(store):
    spec = _selection_spec(900.0)  # P[K > 1,000] ≈ 5e-4
    with pytest.raises(SelectionError) as caught:
        sweeps.preview(spec, throughput=ThroughputTable())
    assert caught.value.field == "mean" and "more than 1,000 trials" in str(caught.value)
    runner = JobRunner(store=store, workers=1)
    try:
        with pytest.raises(SelectionError):
            sweeps.start(runner, spec, owner="me")
    finally:
        runner.shutdown()
    assert store.list_selection_draws() == [] and store.list_sweeps() == []


def test_the_keys_of_a_draw_name_the_data_by_content_and_the_spec_without_name_or_baseline(tmp_path):
    csv_base = DPConfig(
        dataset="csv",
        csv_path=str(tmp_path / "a.csv"),
        csv_label="decision",
        csv_schema=None,
        model="logreg",
        batch_size=16,
        epochs=1,
        delta=1e-3,
    )
    (tmp_path / "a.csv").write_text("x,decision\n1,yes\n2,no\n")
    (tmp_path / "copy.csv").write_text("x,decision\n1,yes\n2,no\n")
    (tmp_path / "b.csv").write_text("x,decision\n1,yes\n3,no\n")

    def keys(path="a.csv", **kwargs):
        base = csv_base.replace(csv_path=str(tmp_path / path))
        return sweeps.selection_keys(_selection_spec(2.0, base=base, **kwargs))

    assert keys() == keys("copy.csv") == keys(name="other", baseline=True)
    assert keys("b.csv")[0] != keys()[0] and keys("b.csv")[1] == keys()[1]
    assert (
        keys()[1]
        != sweeps.selection_keys(
            sweeps.SweepSpec(
                **{**_selection_spec(2.0, base=csv_base).__dict__, "knobs": (("noise_multiplier", (0.8,)),)}
            )
        )[1]
    )
    with pytest.raises(SweepError) as caught:
        keys("missing.csv")
    assert caught.value.field == "csv_path"


def _record(run_id, config, status, accuracy):
    from dpcore.results import EpochMetrics
    from dpcore.runs.records import RunRecord

    epsilon = accounting.epsilon_for_config(config, n=N)
    epochs = (
        ()
        if accuracy is None
        else (
            EpochMetrics(
                epoch=1,
                train_loss=1.0,
                train_accuracy=0.5,
                test_loss=1.0,
                test_accuracy=accuracy,
                epsilon=epsilon,
                seconds=1.0,
                examples=N,
            ),
        )
    )
    return RunRecord(
        id=run_id,
        name="",
        owner="me",
        created=0.0,
        config=config,
        status=status,
        error=None,
        epochs=epochs,
        examples_per_second=None,
        seconds=None,
    )


def test_seed_groups_average_completed_runs_and_frontiers_leave_out_the_rest(store):
    spec = grid(seeds=2, baseline=True)
    sweep_id = store.create_sweep(
        owner="me",
        name="",
        mode="grid",
        knobs_json=spec.knobs_json(),
        seeds=2,
        baseline=True,
        selection_json=None,
        trial_count=None,
        base_config=TINY,
    )
    points = sweeps.grid_points(spec)
    statuses = ["completed", "completed", "completed", "cancelled", "completed", "failed"]
    accuracies = [0.6, 0.8, 0.5, 0.99, 0.9, 0.95]
    runs = [_record(i + 1, p.config, s, a) for i, (p, s, a) in enumerate(zip(points, statuses, accuracies))]
    record = store.get_sweep(sweep_id)
    record = type(record)(**{**record.__dict__, "run_ids": tuple(r.id for r in runs)})
    groups = sweeps.seed_groups(record, runs)
    by_setting = {g.setting: g for g in groups}
    low = by_setting["Noise multiplier σ = 0.8"]
    assert low.run_ids == (1, 2) and low.accuracy_mean == pytest.approx(0.7)
    assert low.accuracy_sd == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert (
        by_setting["Noise multiplier σ = 1.5"].run_ids == (3,)
        and by_setting["Noise multiplier σ = 1.5"].accuracy_sd == 0
    )
    assert by_setting["non-private baseline"].run_ids == (5,)
    front = sweeps.sweep_frontier(groups)[sweeps.data_key(TINY)]
    # σ 1.5 (ε lower, mean 0.5) and σ 0.8 (mean 0.7) are both on it; the cancelled 0.99 is not, nor the baseline.
    assert [g.setting for g in front] == ["Noise multiplier σ = 1.5", "Noise multiplier σ = 0.8"]
    assert [g.label for g in groups] == ["σ 1.5", "σ 0.8", "baseline"]  # beside each point of a chart


def test_frontiers_never_mix_training_sets():
    a = sweeps.SeedGroup(1, ("digits", None, None, None), "a", True, (1,), 1.0, 0.5, 0.0)
    b = sweeps.SeedGroup(1, ("digits", None, None, 64), "b", True, (2,), 2.0, 0.4, 0.0)
    fronts = sweeps.sweep_frontier([a, b])
    assert fronts == {a.data_key: (a,), b.data_key: (b,)}


def test_points_on_different_training_sets_get_their_own_n_and_no_selection_epsilon():
    spec = sweeps.SweepSpec(base=TINY, knobs=(("max_train_examples", (64, 128)),))
    preview = sweeps.preview(spec, throughput=ThroughputTable())
    assert [e for _, e in preview.points] == [
        accounting.epsilon_for_config(TINY.replace(max_train_examples=m), n=m) for m in (64, 128)
    ]
    assert preview.selection is None and "different data" in preview.selection_text()
    assert preview.example_passes == 64 + 128
