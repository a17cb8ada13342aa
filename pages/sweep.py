"""Sweep: one or two knobs of the current config, seeds and a baseline, the projected ε of every point, the
compute and whether it fits this server's limits before it starts; queued as one sweep, followed while it
runs and cancelled as a whole; each sweep's result (mean ± sd over seeds, ε) and its ε of choosing."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import app_state
from dpcore.errors import UserInputError
from dpcore.privacy.explain import format_epsilon
from dpcore.privacy.selection import SELECTION_DISTRIBUTIONS, SelectionSettings
from dpcore.results import ACTIVE_STATUSES
from dpcore.runs import sweeps
from dpcore.runs.capacity import CapacityError
from dpcore.runs.comparison import config_summary
from dpcore.runs.records import MAX_NAME_CHARS, RunRecord, SweepRecord
from dpcore.views import charts

ss = st.session_state
MODES = {"grid": "Grid: train every point", "private_selection": "Private selection: a random number of trials"}
DISTRIBUTIONS = {"poisson": "Poisson", "truncated_negative_binomial": "Truncated negative binomial"}
NO_SECOND_KNOB = ""
# While a sweep of yours is queued or training, its status and result refresh this often.
POLL_SECONDS = 2.0

st.title("Sweep")
st.caption(
    "Train several settings of the current config as one sweep. Choosing the best of several runs on "
    "the same data spends more privacy than one run: the ε of that choice is shown before you start."
)
cfg = app_state.config()
st.markdown(f"**Base config:** {config_summary(cfg)}")


def _values_text(knob: str) -> str:
    value = getattr(cfg, knob)
    return (
        ", ".join(f"{v:g}" for v in (value / 2, value, value * 2))
        if isinstance(value, float)
        else (", ".join(str(v) for v in sorted({max(1, value // 2), value, value * 2})))
    )


def chosen_knobs() -> list[str]:
    """The knobs the two boxes name: the first, and the second unless it is "nothing else"."""
    first = ss.get("sweep_knob", sweeps.SWEEP_KNOBS[0])
    second = ss.get("sweep_knob_2", NO_SECOND_KNOB)
    return [first] + ([second] if second not in (NO_SECOND_KNOB, first) else [])


def build_spec() -> sweeps.SweepSpec:
    """The sweep the widgets describe; a UserInputError names the field."""
    knobs = []
    for knob in chosen_knobs():
        knobs.append((knob, sweeps.parse_values(knob, ss.get(f"sweep_values_{knob}", ""))))
    mode = ss.get("sweep_mode", "grid")
    selection = None
    if mode == "private_selection":
        distribution = ss.get("sweep_distribution", SELECTION_DISTRIBUTIONS[0])
        selection = SelectionSettings(
            distribution=distribution,
            mean=float(ss.get("sweep_expected_trials", 5.0)),
            shape=float(ss.get("sweep_shape", 1.0)) if distribution != "poisson" else None,
        )
    return sweeps.SweepSpec(
        base=cfg,
        knobs=tuple(knobs),
        seeds=int(ss.get("sweep_seeds", 1)),
        baseline=bool(ss.get("sweep_baseline", False)),
        mode=mode,
        selection=selection,
        name=ss.get("sweep_name", "").strip(),
    )


def start() -> None:
    try:
        started = app_state.start_sweep(build_spec())
    except UserInputError as exc:
        ss["sweep_error"] = str(exc)
        return
    drawn = (
        ""
        if started.trial_count is None
        else f"; K = {started.trial_count} trials were drawn at random and recorded: starting this sweep again "
        "on the same data never draws a new K"
    )
    app_state.post_notice(
        f"Sweep {started.sweep_id} queued: {len(started.run_ids)} run(s){drawn}. Follow it below, under Your sweeps."
    )


def cancel(sweep_id: int) -> None:
    try:
        app_state.post_notice(f"Sweep {sweep_id}: {app_state.cancel_sweep(sweep_id)} run(s) cancelled.")
    except UserInputError as exc:
        ss["sweep_error"] = str(exc)


first_box, second_box = st.columns(2)
first_box.selectbox("Sweep over", sweeps.SWEEP_KNOBS, format_func=sweeps.knob_label, key="sweep_knob")
others = [NO_SECOND_KNOB] + [k for k in sweeps.SWEEP_KNOBS if k != ss.get("sweep_knob", sweeps.SWEEP_KNOBS[0])]
if ss.get("sweep_knob_2") not in others:
    ss["sweep_knob_2"] = NO_SECOND_KNOB  # the first box now holds it
second_box.selectbox(
    "And over (optional)",
    others,
    format_func=lambda k: "nothing else" if k == NO_SECOND_KNOB else sweeps.knob_label(k),
    key="sweep_knob_2",
    help="A second knob makes a grid of every pair of values.",
)
for knob in chosen_knobs():
    app_state.seed_widget(f"sweep_values_{knob}", _values_text(knob))
    st.text_input(
        f"Values of {sweeps.knob_label(knob)} (comma-separated)",
        key=f"sweep_values_{knob}",
        max_chars=app_state.max_chars(sweeps.MAX_VALUES_TEXT_CHARS),
    )
left, middle, right = st.columns(3)
left.number_input("Seeds per setting", min_value=1, max_value=sweeps.MAX_SEEDS, value=1, step=1, key="sweep_seeds")
middle.checkbox("Add the non-private baseline (ε = ∞)", key="sweep_baseline")
right.text_input("Sweep name (optional)", key="sweep_name", max_chars=app_state.max_chars(MAX_NAME_CHARS))
st.radio("Mode", list(MODES), format_func=MODES.get, key="sweep_mode", horizontal=True)
if ss.get("sweep_mode") == "private_selection":
    a, b, c = st.columns(3)
    a.selectbox(
        "Number of trials K drawn from",
        SELECTION_DISTRIBUTIONS,
        format_func=DISTRIBUTIONS.get,
        key="sweep_distribution",
    )
    b.number_input(
        "Expected number of trials",
        min_value=1.0,
        max_value=1000.0,
        value=5.0,
        key="sweep_expected_trials",
        help="E[K], the mean of the distribution the number of trials K is drawn from.",
    )
    c.number_input(
        "Shape of the distribution",
        min_value=0.0,
        max_value=10.0,
        value=1.0,
        key="sweep_shape",
        disabled=ss.get("sweep_distribution", "poisson") == "poisson",
        help="η of the truncated negative binomial: 1 is the geometric distribution, 0 the logarithmic one. "
        "A smaller shape costs less privacy but draws a large K more often. Poisson has no shape.",
    )
    st.caption(
        "K is drawn from the server's secure random source when you start and recorded before anything "
        "runs, and each trial is a setting drawn at random. Two claims: releasing only the best trial "
        "(not K, not the others) costs the random-trials bound below; showing every trial, as Compare "
        "does, costs their composition. A trial that fails or is cancelled lowers neither; if you stop "
        "trials after looking at their results, rely on the composition."
    )

if "sweep_error" in ss:
    st.error(ss.pop("sweep_error"))
refusal = None
try:
    spec = build_spec()
    preview = app_state.preview_sweep(spec)
except CapacityError as exc:  # refused before its ε are computed: it could not start anyway
    st.warning(f"This sweep does not fit this server's limits, so its ε are not computed and Start is off. {exc}")
    preview = None
except UserInputError as exc:
    st.error(str(exc))
    preview = None


def _point_row(point: sweeps.SweepPoint, epsilon: float, *, seeds: bool) -> dict[str, str]:
    setting = "non-private baseline" if point.role == "baseline" else sweeps.setting_text(point.setting)
    return {"setting": setting, **({"seed": str(point.seed)} if seeds else {}), "projected ε": format_epsilon(epsilon)}


refusal = None
if preview is not None:
    st.markdown("**Before it starts**")
    grid = preview.spec.mode == "grid"
    st.dataframe(
        pd.DataFrame([_point_row(p, e, seeds=grid) for p, e in preview.points]),
        hide_index=True,
        key="sweep_points",
    )
    if cfg.accountant == "pld":
        st.caption(
            "PLD ε here are on the interactive grid, as on Explore: upper bounds within about 1%; "
            "training reports the precise grid."
        )
    st.caption(f"Compute: {preview.compute_text()}.")
    st.info(f"Privacy of choosing: {preview.selection_text()}")
    refusal = app_state.sweep_refusal(preview.spec)
    limits = app_state.runner().limits
    if refusal is not None:
        st.warning(f"This sweep does not fit this server's limits, so Start is off. {refusal}")
    elif limits is not None:
        held = (
            f"holds {preview.spec.size} run(s)"
            if grid
            else f"holds the K trials drawn when it starts; a K above {limits.max_sweep_runs} is refused before "
            "anything runs, and that same K waits for a start after the host raises runs per sweep"
        )
        st.caption(
            f"On this server a sweep counts once among your {limits.max_running} training + "
            f"{limits.max_queued} waiting, and may hold up to {limits.max_sweep_runs} runs; this one {held}. "
            f"Its runs take turns with everyone else's, {limits.max_running} of yours training at a time."
        )
if not app_state.joined():
    st.info("Type your name in the sidebar to start a sweep: its runs belong to it.")
st.button(
    "Start sweep",
    type="primary",
    key="sweep_start",
    on_click=start,
    disabled=preview is None or not app_state.joined() or refusal is not None,
)


def _result_rows(groups: list[sweeps.SeedGroup]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "setting": g.setting,
                "seeds": len(g.run_ids),
                "test accuracy": f"{g.accuracy_mean:.3f} ± {g.accuracy_sd:.3f}",
                "ε": format_epsilon(g.epsilon),
            }
            for g in groups
        ]
    )


def show_sweep(sweep: SweepRecord, *, states: dict[int, str], stored: list[RunRecord], chart: bool) -> bool:
    """One sweep: its runs by state, Cancel, its result so far and its ε of choosing; True while any run is active."""
    counts = pd.Series([states.get(i, "stored") for i in sweep.run_ids]).value_counts().to_dict()
    summary = ", ".join(f"{n} {state}" for state, n in counts.items()) or "no runs"
    active = any(states.get(i) in ACTIVE_STATUSES for i in sweep.run_ids)
    cols = st.columns([4, 1], vertical_alignment="center")
    cols[0].markdown(f"Sweep {sweep.id}{f' ({sweep.name})' if sweep.name else ''}: {MODES[sweep.mode]}; {summary}")
    cols[1].button(
        "Cancel sweep", key=f"sweep_cancel_{sweep.id}", on_click=cancel, args=(sweep.id,), disabled=not active
    )
    groups = sweeps.seed_groups(sweep, stored)
    if groups:
        st.caption(
            "Result so far: final test accuracy, mean ± sd over the seeds completed of each setting."
            if active
            else "Result: final test accuracy, mean ± sd over the seeds of each setting (cancelled and failed runs left out)."
        )
        st.table(_result_rows(groups).set_index("setting"))
        if chart:
            st.plotly_chart(
                charts.sweep_accuracy_vs_epsilon(groups, sweeps.sweep_frontier(groups), title=f"Sweep {sweep.id}"),
                width="stretch",
                key=f"sweep_chart_{sweep.id}",
            )
    if sweep.run_ids:
        try:
            choosing = app_state.sweep_epsilon(sweep, stored)
            if choosing.selection is not None:
                st.markdown(
                    f"**ε of releasing only the best run of this sweep: {format_epsilon(choosing.selection.epsilon)}**"
                )
            st.caption(f"Privacy of this sweep: {choosing.text()}")
        except UserInputError as exc:
            st.caption(f"Privacy of this sweep cannot be computed: {exc}")
    return active


def sweeps_panel(polling: bool) -> None:
    """This participant's sweeps, newest first, refreshed while any of their runs is queued or training."""
    mine = app_state.my_sweeps()
    if not mine:
        return
    st.markdown("**Your sweeps**")
    stored = app_state.store().list_runs(owner=app_state.owner())
    states = {run.id: run.status for run in stored}
    states.update({job.id: job.state for job in app_state.my_runs()})
    active = False
    for i, sweep in enumerate(reversed(mine)):
        with st.container(border=True):
            active = show_sweep(sweep, states=states, stored=stored, chart=i == 0) or active
    if polling and not active:
        st.rerun()  # the last run ended: rerun the page so this panel stops polling


sweep_run_ids = {i for sweep in app_state.my_sweeps() for i in sweep.run_ids}
polling = any(not job.done for job in app_state.my_runs() if job.id in sweep_run_ids)
st.fragment(run_every=POLL_SECONDS if polling else None)(sweeps_panel)(polling)
