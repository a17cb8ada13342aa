"""AppTest: the Sweep page previews ε and compute, queues one sweep and cancels it as a whole; Compare groups
a sweep's runs over seeds with its Pareto frontier and the ε of choosing."""

from __future__ import annotations

import json
import os
import statistics

from app_state import NOTICE_KEY
from dpcore.config import DPConfig
from dpcore.privacy import accounting
from dpcore.privacy.explain import format_epsilon
from dpcore.privacy.selection import SelectionSettings, composition_epsilon, random_trials_epsilon
from dpcore.results import EpochMetrics
from dpcore.runs import sweeps
from dpcore.runs.store import RunStore
from tests.app.conftest import open_page

LONG = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=300, max_train_examples=128)


def _choose(at, values: str):
    at.selectbox(key="sweep_knob").set_value("noise_multiplier").run()
    at.text_input(key="sweep_values_noise_multiplier").set_value(values).run()
    return at


def test_the_sweep_page_previews_queues_and_cancels_a_sweep(app) -> None:
    at = _choose(open_page(app, "sweep", LONG), "0.8, 1.5")
    at.checkbox(key="sweep_baseline").check().run()
    assert not at.exception and not at.error
    points = at.dataframe[0].value
    assert list(points["setting"]) == [
        "Noise multiplier σ = 0.8",
        "Noise multiplier σ = 1.5",
        "non-private baseline",
    ]
    assert list(points["seed"]) == ["0", "0", "0"]
    assert points["projected ε"].iloc[-1] == "∞"
    n = 128
    composed = composition_epsilon([LONG.replace(noise_multiplier=s) for s in (0.8, 1.5)], n=n)
    assert f"ε = {format_epsilon(composed)}" in at.info[0].value and "composition" in at.info[0].value
    assert any("115,200 example passes in 3 run(s)" in c.value for c in at.caption)

    at.button(key="sweep_start").click().run()
    assert not at.exception and not at.error
    # The sweep is one entry of the 1 training + 3 waiting: the same sweep again still fits.
    assert not at.warning and not at.button(key="sweep_start").disabled
    assert any("a sweep counts once among your 1 training + 3 waiting" in c.value for c in at.caption)
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    sweep = store.list_sweeps()[-1]
    assert len(sweep.run_ids) == 3 and sweep.baseline and sweep.mode == "grid"
    row = next(m.value for m in at.markdown if m.value.startswith(f"Sweep {sweep.id}"))
    assert "Grid: train every point" in row and "queued" in row
    assert not at.button(key=f"sweep_cancel_{sweep.id}").disabled

    at.button(key=f"sweep_cancel_{sweep.id}").click().run()
    from app_state import runner

    assert runner().wait(sweep.run_ids, timeout=120)
    assert {store.get_run(i).status for i in sweep.run_ids} == {"cancelled"}
    at.run()
    row = next(m.value for m in at.markdown if m.value.startswith(f"Sweep {sweep.id}"))
    assert "3 cancelled" in row and at.button(key=f"sweep_cancel_{sweep.id}").disabled


def test_a_sweep_larger_than_the_waiting_limit_is_one_entry_and_one_over_the_runs_per_sweep_is_refused_before_start(
    app,
) -> None:
    from app_state import runner

    store = RunStore(os.environ["DPEXPLORER_STORE"])
    at = _choose(open_page(app, "sweep", LONG), "0.5, 0.8, 1.1, 1.5, 2")
    at.number_input(key="sweep_seeds").set_value(2).run()  # 10 runs: more than 1 training + 3 waiting
    assert not at.warning and not at.button(key="sweep_start").disabled
    assert any("a sweep counts once among your 1 training + 3 waiting" in c.value for c in at.caption)
    at.button(key="sweep_start").click().run()
    assert not at.exception and not at.error
    sweep = store.list_sweeps()[-1]
    assert len(sweep.run_ids) == 10
    at.button(key=f"sweep_cancel_{sweep.id}").click().run()
    assert runner().wait(sweep.run_ids, timeout=120)

    before = runner().limits
    runner().set_limits(before.replace(max_sweep_runs=8), by=None)
    try:
        at.run()
        (warning,) = at.warning
        assert "Start is off" in warning.value and "this sweep has 10 runs" in warning.value
        assert (
            "raises runs per sweep to 10 in the Host panel, or with DPEXPLORER_MAX_SWEEP_RUNS at start-up"
            in warning.value
        )
        assert at.button(key="sweep_start").disabled
        sweeps_before = len(store.list_sweeps())
        at.button(key="sweep_start").click().run()  # as a client that ignores "disabled" sends it
        assert any(e.value.startswith("sweep_runs: this sweep has 10 runs") for e in at.error)
        assert len(store.list_sweeps()) == sweeps_before  # no sweep without runs
    finally:
        runner().set_limits(before, by=None)


def test_the_sweeps_status_and_result_follow_its_runs_to_completion(app) -> None:
    from app_state import runner

    store = RunStore(os.environ["DPEXPLORER_STORE"])
    tiny = LONG.replace(epochs=1, max_train_examples=64)
    at = _choose(open_page(app, "sweep", tiny, name="Finisher"), "1, 2")
    at.number_input(key="sweep_seeds").set_value(2).run()
    at.button(key="sweep_start").click().run()
    sweep = store.list_sweeps()[-1]
    assert len(sweep.run_ids) == 4
    assert runner().wait(sweep.run_ids, timeout=240)
    at.run()
    row = next(m.value for m in at.markdown if m.value.startswith(f"Sweep {sweep.id}"))
    assert row.endswith("4 completed") and at.button(key=f"sweep_cancel_{sweep.id}").disabled
    (result,) = [t.value for t in at.table]
    runs = [store.get_run(i) for i in sweep.run_ids]
    for sigma in (1.0, 2.0):
        accuracies = [r.test_accuracy for r in runs if r.config.noise_multiplier == sigma]
        line = result.loc[f"Noise multiplier σ = {sigma:g}"]
        assert line["seeds"] == 2
        assert line["test accuracy"] == (f"{statistics.fmean(accuracies):.3f} ± {statistics.stdev(accuracies):.3f}")
        assert line["ε"] == format_epsilon(max(r.epsilon for r in runs if r.config.noise_multiplier == sigma))
    composed = composition_epsilon([r.config for r in runs], n=64)
    assert any(
        m.value == f"**ε of releasing only the best run of this sweep: {format_epsilon(composed)}**"
        for m in at.markdown
    )
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    settings = next(t for t in chart["data"] if t["name"] == "settings")
    assert settings["text"] == ["σ 2", "σ 1"]  # each point says its σ


def test_private_selection_shows_the_random_trials_bound_and_bad_values_name_the_knob(app) -> None:
    at = _choose(open_page(app, "sweep", LONG), "0.8, 1.5")
    at.radio(key="sweep_mode").set_value("private_selection").run()
    at.number_input(key="sweep_expected_trials").set_value(4.0).run()
    pool = [LONG.replace(noise_multiplier=s) for s in (0.8, 1.5)]
    bound = random_trials_epsilon(pool, n=128, selection=SelectionSettings("poisson", 4.0))
    info = at.info[0].value
    assert f"random-trials bound ε = {format_epsilon(bound)}" in info and "only the best trial released" in info
    assert "every trial shown" in info and "composition" in info
    assert list(at.dataframe[0].value["setting"]) == ["Noise multiplier σ = 0.8", "Noise multiplier σ = 1.5"]
    assert any("a K above 24 is refused before anything runs" in c.value for c in at.caption)
    assert at.number_input(key="sweep_expected_trials").label == "Expected number of trials"
    assert (
        "E[K]" in at.number_input(key="sweep_expected_trials").help and "η" in at.number_input(key="sweep_shape").help
    )
    at.number_input(key="sweep_expected_trials").set_value(900.0).run()  # K > 1,000 too likely
    assert any("mean: " in e.value and "more than 1,000 trials" in e.value for e in at.error)
    assert at.button(key="sweep_start").disabled and not at.exception
    at.number_input(key="sweep_expected_trials").set_value(4.0).run()
    at.text_input(key="sweep_values_noise_multiplier").set_value("0.8, lots").run()
    assert any(e.value.startswith("noise_multiplier: ") for e in at.error) and not at.exception
    assert at.button(key="sweep_start").disabled


def test_a_private_selection_sweep_shows_both_claims_keeps_them_when_cancelled_and_is_not_drawn_again(app) -> None:
    at = _choose(open_page(app, "sweep", LONG), "0.8, 1.5")
    at.radio(key="sweep_mode").set_value("private_selection").run()
    at.selectbox(key="sweep_distribution").set_value("truncated_negative_binomial").run()
    at.number_input(key="sweep_expected_trials").set_value(1.0).run()  # K = 1 always
    at.button(key="sweep_start").click().run()
    assert not at.exception and not at.error
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    sweep = store.list_sweeps()[-1]
    assert sweep.mode == "private_selection" and sweep.trial_count == 1 and sweep.draw.trial_count == 1
    assert "K = 1 trials were drawn at random and recorded" in at.session_state[NOTICE_KEY]
    pool = [LONG.replace(noise_multiplier=s) for s in (0.8, 1.5)]
    selection = SelectionSettings("truncated_negative_binomial", 1.0, 1.0)
    bound = random_trials_epsilon(pool, n=128, selection=selection)
    (trial,) = [store.get_run(i).config for i in sweep.run_ids]
    composed = composition_epsilon([trial], n=128)

    def claims(at) -> str:
        return next(c.value for c in at.caption if c.value.startswith("Privacy of this sweep: "))

    for shown in (claims(at),):
        assert (
            f"only the best trial released (not K or the other trials): random-trials bound ε = {format_epsilon(bound)}"
            in shown
        )
        assert (
            f"every trial shown, as Compare and the run lists do: composition of the K = 1 drawn trials ε = {format_epsilon(composed)}"
            in shown
        )

    at.button(key="sweep_start").click().run()  # the same sweep on the same data: no new K
    assert any("a draw is used once" in e.value for e in at.error) and len(store.list_sweeps()[-1].run_ids) == 1

    at.button(key=f"sweep_cancel_{sweep.id}").click().run()
    from app_state import runner

    assert runner().wait(sweep.run_ids, timeout=120)
    at.run()
    assert store.get_run(sweep.run_ids[0]).status == "cancelled"
    after = claims(at)
    assert f"random-trials bound ε = {format_epsilon(bound)}" in after and "lowers neither" in after
    assert f"drawn trials ε = {format_epsilon(composed)}" in after

    at.switch_page("pages/compare.py").run()
    at.selectbox(key="compare_sweep").set_value(sweep.id).run()
    compared = claims(at)
    assert f"random-trials bound ε = {format_epsilon(bound)}" in compared and "every trial shown" in compared


def test_compare_groups_a_sweep_over_seeds_with_its_frontier_and_the_epsilon_of_choosing(app) -> None:
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    base = LONG.replace(epochs=1)
    spec = sweeps.SweepSpec(base=base, knobs=(("noise_multiplier", (0.8, 1.5)),), seeds=2, name="grouped")
    sweep_id = store.create_sweep(
        owner="someone",
        name="grouped",
        mode="grid",
        knobs_json=spec.knobs_json(),
        seeds=2,
        baseline=False,
        selection_json=None,
        trial_count=None,
        base_config=base,
    )
    accuracy = {(0.8, 0): 0.7, (0.8, 1): 0.8, (1.5, 0): 0.5, (1.5, 1): 0.9}
    for point in sweeps.grid_points(spec):
        run_id = store.create_run(point.config, owner="someone", sweep_id=sweep_id)
        cancelled = point.config.noise_multiplier == 1.5 and point.seed == 1
        store.record_epoch(
            run_id,
            EpochMetrics(
                epoch=1,
                train_loss=1,
                train_accuracy=0.5,
                test_loss=1,
                test_accuracy=accuracy[(point.config.noise_multiplier, point.seed)],
                epsilon=2.0 if point.config.noise_multiplier == 0.8 else 1.0,
                seconds=1,
                examples=128,
            ),
        )
        store.set_status(run_id, "cancelled" if cancelled else "completed")
    at = open_page(app, "compare")
    at.selectbox(key="compare_sweep").set_value(sweep_id).run()
    spec_json = json.loads(at.get("plotly_chart")[-1].proto.spec)
    settings = next(t for t in spec_json["data"] if t["name"] == "settings")
    # σ 1.5 keeps only its completed seed (0.5); σ 0.8 averages 0.7 and 0.8.
    assert sorted(zip(settings["x"], settings["y"])) == [(1.0, 0.5), (2.0, 0.75)]
    assert any(t["name"] == "Pareto frontier" for t in spec_json["data"])
    assert any(
        c.value.startswith("Privacy of this sweep: ") and "or all of them shown: composition ε" in c.value
        for c in at.caption
    )


def test_a_visitor_who_never_joined_cannot_start_a_sweep_whatever_the_browser_sends(app) -> None:
    at = _choose(open_page(app, "sweep", LONG, name=None), "0.8, 1.5")
    assert at.button(key="sweep_start").disabled
    assert any("Type your name" in i.value for i in at.info)
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    before = (len(store.list_runs()), len(store.list_sweeps()))
    at.button(key="sweep_start").click().run()  # as a client that ignores "disabled" sends it
    assert not at.exception
    assert any(e.value.startswith("display_name: sweeps need a name") for e in at.error)
    assert (len(store.list_runs()), len(store.list_sweeps())) == before


def test_a_preview_of_five_hundred_noise_values_is_refused_before_the_accountant_is_asked(app, monkeypatch) -> None:
    """Hundreds of fresh σ with PLD would keep the accountant busy for many minutes, for a sweep that
    would be refused anyway (500 values fit the values box's 4,000 characters)."""
    monkeypatch.setenv("DPEXPLORER_ACCOUNTANT_PROCESSES", "1")
    values = ", ".join(f"{0.5 + 0.001 * i:.3f}" for i in range(500))
    at = _choose(open_page(app, "sweep", LONG.replace(accountant="pld")), values)
    assert not at.exception and not at.error and not at.dataframe
    [warning] = [w.value for w in at.warning]
    assert "does not fit this server's limits, so its ε are not computed" in warning
    assert "this sweep has 500 runs" in warning and "DPEXPLORER_MAX_SWEEP_RUNS" in warning
    assert at.button(key="sweep_start").disabled
    # As private selection (K is drawn at the start, so no run count to refuse): too many ε to preview.
    at.radio(key="sweep_mode").set_value("private_selection").run()
    assert not at.exception and not at.dataframe
    [error] = [e.value for e in at.error]
    assert error.startswith("knobs: 500 noise_multiplier ask the accountant for 500 different ε")
    assert f"at most {sweeps.MAX_PREVIEW_QUERIES} different ε" in error
    assert at.button(key="sweep_start").disabled


def test_a_pld_preview_comes_from_an_accountant_process_on_the_interactive_grid(app, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_ACCOUNTANT_PROCESSES", "1")
    base = LONG.replace(accountant="pld", epochs=3)
    at = _choose(open_page(app, "sweep", base, name="Previewer"), "0.8, 1.5")
    assert not at.exception and not at.error
    shown = list(at.dataframe[0].value["projected ε"])
    expected = [
        format_epsilon(accounting.epsilon_for_config(base.replace(noise_multiplier=s), n=128, interactive=True))
        for s in (0.8, 1.5)
    ]
    assert shown == expected
    assert any("interactive grid" in c.value for c in at.caption) and "approximate" in at.info[0].value
