"""Sweep: one or two knobs of the current config, seeds and a baseline, the projected ε of every point and
the compute before it starts, queued as one sweep and cancelled as a whole; each sweep's ε of releasing
its best run and of showing all its runs."""

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
from dpcore.runs.records import MAX_NAME_CHARS

ss = st.session_state
MODES = {"grid": "Grid: train every point", "private_selection": "Private selection: a random number of trials"}

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


def build_spec() -> sweeps.SweepSpec:
    """The sweep the widgets describe; a UserInputError names the field."""
    knobs = []
    for knob in ss.get("sweep_knobs", []):
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
    app_state.post_notice(f"Sweep {started.sweep_id} queued: {len(started.run_ids)} run(s){drawn}.")


def cancel(sweep_id: int) -> None:
    try:
        app_state.post_notice(f"Sweep {sweep_id}: {app_state.cancel_sweep(sweep_id)} run(s) cancelled.")
    except UserInputError as exc:
        ss["sweep_error"] = str(exc)


st.multiselect("Knobs (one or two)", sweeps.SWEEP_KNOBS, max_selections=sweeps.MAX_APP_KNOBS, key="sweep_knobs")
for knob in ss.get("sweep_knobs", []):
    app_state.seed_widget(f"sweep_values_{knob}", _values_text(knob))
    st.text_input(
        f"Values of {knob} (comma-separated)",
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
    a.selectbox("Number of trials K drawn from", SELECTION_DISTRIBUTIONS, key="sweep_distribution")
    b.number_input("Expected trials E[K]", min_value=1.0, max_value=1000.0, value=5.0, key="sweep_expected_trials")
    c.number_input(
        "Shape η (negative binomial)",
        min_value=0.0,
        max_value=10.0,
        value=1.0,
        key="sweep_shape",
        disabled=ss.get("sweep_distribution", "poisson") == "poisson",
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
try:
    preview = app_state.preview_sweep(build_spec())
except CapacityError as exc:  # not a mistake in the sweep: the runs already queued leave no room for it
    st.warning(f"This sweep cannot start now, so its ε are not computed: {exc}")
    preview = None
except UserInputError as exc:
    st.error(str(exc))
    preview = None
if preview is not None:
    st.markdown("**Before it starts**")
    st.dataframe(
        pd.DataFrame([{"run": p.label(), "projected ε": format_epsilon(e)} for p, e in preview.points]),
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
if not app_state.joined():
    st.info("Type your name in the sidebar to start a sweep: its runs belong to it.")
st.button(
    "Start sweep", type="primary", key="sweep_start", on_click=start, disabled=preview is None or not app_state.joined()
)

mine = app_state.my_sweeps()
if mine:
    st.markdown("**Your sweeps**")
    statuses = {job.id: job.state for job in app_state.my_runs()}
    stored = app_state.store().list_runs(owner=app_state.owner())
    for sweep in reversed(mine):
        counts = pd.Series([statuses.get(i, "stored") for i in sweep.run_ids]).value_counts().to_dict()
        summary = ", ".join(f"{n} {state}" for state, n in counts.items()) or "no runs"
        cols = st.columns([4, 1], vertical_alignment="center")
        cols[0].write(f"Sweep {sweep.id}{f' ({sweep.name})' if sweep.name else ''}: {MODES[sweep.mode]}; {summary}")
        active = any(statuses.get(i) in ACTIVE_STATUSES for i in sweep.run_ids)
        cols[1].button(
            "Cancel sweep", key=f"sweep_cancel_{sweep.id}", on_click=cancel, args=(sweep.id,), disabled=not active
        )
        if sweep.run_ids:
            try:
                cols[0].caption(f"Privacy of this sweep: {app_state.sweep_epsilon(sweep, stored).text()}")
            except UserInputError as exc:
                cols[0].caption(f"Privacy of this sweep cannot be computed: {exc}")
