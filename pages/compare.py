"""Compare: accuracy against ε for every stored run, the Pareto frontier, baselines, the audits against ε,
and a run table."""

from __future__ import annotations

import streamlit as st

import app_state
from dpcore.audit.report import AUDIT_NOTE
from dpcore.errors import UserInputError
from dpcore.privacy import explain
from dpcore.results import TEST_METRICS_LABEL, TRAIN_ACCURACY_KEY, TRAIN_LOSS_KEY, TRAIN_METRICS_LABEL
from dpcore.runs.comparison import ALL, audit_points, build_view, busy_runs, filter_runs
from dpcore.runs.records import MAX_NAME_CHARS
from dpcore.views import charts
from pages import audit_view

ss = st.session_state
store = app_state.store()

st.title("Compare")
st.caption(
    "Every stored run as accuracy against ε after each epoch. Up and to the left is better: "
    "more accurate and more private. The dashed line is the Pareto frontier of final points; "
    "dotted horizontal lines are non-private baselines (ε = ∞, no privacy)."
)
st.caption(explain.SELECTION_NOTE)

if "compare_goto_explore" in ss:
    del ss["compare_goto_explore"]
    st.switch_page("pages/explore.py")


def load_into_explore(run_id: int) -> None:
    """Make a stored run's config the current one and go to Explore (its CSV file only if this caller may read it)."""
    try:
        run = store.get_run(run_id)
        app_state.set_config(app_state.check_paths(run.config))
    except UserInputError as exc:
        ss["compare_error"] = str(exc)
        return
    app_state.post_notice(f"Loaded the config of {run.label} into Explore.")
    ss["compare_goto_explore"] = True


def rename(run_id: int) -> None:
    """Rename a run to what the name box holds (only your own; the host any)."""
    try:
        app_state.rename_run(run_id, ss.get("compare_new_name", ""))
        app_state.post_notice(f"Run {run_id} renamed.")
    except UserInputError as exc:
        ss["compare_error"] = str(exc)


def delete(run_ids: list[int]) -> None:
    """Delete the chosen runs once confirmed, refusing (with a message) while any of them still trains."""
    ss["compare_confirm_delete"] = False
    try:
        busy = busy_runs([store.get_run(i) for i in run_ids])
    except UserInputError as exc:  # a run deleted meanwhile, or a store that cannot be read
        ss["compare_error"] = str(exc)
        return
    if busy:
        ss["compare_error"] = (
            f"run: {', '.join(map(str, busy))} still queued or training; cancel "
            "on the Train page first (allowed: finished runs)"
        )
        return
    deleted = []
    for run_id in run_ids:
        try:
            app_state.delete_run(run_id)
            deleted.append(run_id)
        except UserInputError as exc:
            ss["compare_error"] = str(exc)
    ss["compare_selected"] = []
    if deleted:
        app_state.post_notice(f"Deleted {len(deleted)} run(s).")


if "compare_error" in ss:
    st.error(ss.pop("compare_error"))
MINE, EVERYONE = "mine", "everyone's"
whose = st.radio(
    "Runs",
    (MINE, EVERYONE),
    key="compare_whose",
    horizontal=True,
    index=1,
    format_func={MINE: "Mine", EVERYONE: "Everyone's"}.get,
    help="Your own runs, or every participant's (you can rename and delete only your own).",
)
runs = store.list_runs(owner=app_state.owner()) if whose == MINE else store.list_runs()
if whose == MINE and not app_state.joined():
    st.info("Type your name in the sidebar to have runs of your own; everyone's runs are one click away.")
    app_state.finish_page()
if not runs:
    st.info(
        "No runs stored yet. Start a few on the Train page (try two noise multipliers and a "
        "non-private baseline) and they appear here."
    )
    app_state.finish_page()

left, right, _ = st.columns([1, 1, 2])
datasets = [ALL] + sorted({r.config.dataset for r in runs})
dataset = left.selectbox("Dataset", datasets, key="compare_dataset")
models = [ALL] + sorted({r.config.model for r in runs if dataset in (ALL, r.config.dataset)})
model = right.selectbox("Model", models, key="compare_model")
shown = filter_runs(runs, dataset=dataset, model=model)

if "compare_selected" in ss:
    ss["compare_selected"] = [i for i in ss["compare_selected"] if any(r.id == i for r in shown)]
labels = {r.id: f"{r.id}: {r.label} ({'non-private' if not r.config.private else r.config.model})" for r in shown}
selected = st.multiselect(
    "Choose runs (none chosen: chart all shown)", [r.id for r in shown], format_func=labels.get, key="compare_selected"
)
charted = [r for r in shown if r.id in selected] if selected else shown
view = build_view(charted)
if view.curves or view.baselines:
    st.plotly_chart(charts.accuracy_vs_epsilon(view), width="stretch", key="compare_chart")
else:
    st.info("None of these runs has finished an epoch yet.")

audited = audit_points(charted)
if audited:
    st.markdown("**What attacks reach, against the ε promised**")
    st.caption(
        "Each audited run's best membership-inference attack (AUC, left) and the empirical ε lower bound "
        "it proves (right) against the run's accounted ε; non-private baselines stand at ∞. "
        + audit_view.BOUND_NOTE
        + " "
        + AUDIT_NOTE
    )
    st.plotly_chart(charts.audit_vs_epsilon(audited), width="stretch", key="compare_audit_chart")
else:
    st.caption(
        "No audited runs among these. Audit a completed run from its view on Train, or choose one run "
        "below; digits runs are audited when training ends unless that is turned off."
    )


def sweep_section(all_runs: list) -> None:
    """Runs grouped by sweep: mean ± sd over seeds against ε, each training set's Pareto frontier, and the
    ε of releasing the best run and of showing them all (as this chart does), next to one run's."""
    from dpcore.runs import sweeps

    records = [s for s in store.list_sweeps() if s.run_ids]
    if not records:
        return
    st.markdown("**Sweeps**")
    labels = {
        s.id: f"Sweep {s.id}" + (f": {s.name}" if s.name else "") + f" ({s.mode.replace('_', ' ')}, "
        f"{len(s.run_ids)} runs)"
        for s in records
    }
    chosen = app_state.choice(
        st.selectbox("Sweep", list(labels), format_func=labels.get, index=len(labels) - 1, key="compare_sweep"),
        list(labels),
        field="sweep",
    )
    record = next(s for s in records if s.id == chosen)
    groups = sweeps.seed_groups(record, all_runs)
    if groups:
        st.plotly_chart(
            charts.sweep_accuracy_vs_epsilon(groups, sweeps.sweep_frontier(groups), title=labels[chosen]),
            width="stretch",
            key="compare_sweep_chart",
        )
    else:
        st.info("No run of this sweep has completed yet (cancelled and failed runs are left out).")
    try:
        st.caption(f"Privacy of this sweep: {app_state.sweep_epsilon(record, all_runs).text()}")
    except UserInputError as exc:
        st.caption(f"Privacy of this sweep cannot be computed: {exc}")


sweep_section(runs)

st.markdown("**Runs** (click a column header to sort)")
app_state.run_table(
    shown, key="compare_table", train_metrics=app_state.train_metrics_toggle("compare_show_train_metrics")
)

owners = {r.id: r.owner for r in shown}
manageable = [i for i in selected if app_state.may_manage(owners[i])]
actions = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
if len(selected) == 1:
    run_id = selected[0]
    if manageable:
        actions[0].text_input(
            "New name",
            key="compare_new_name",
            placeholder=f"name for run {run_id}",
            max_chars=app_state.max_chars(MAX_NAME_CHARS),
        )
        actions[1].button("Rename", key="compare_rename", on_click=rename, args=(run_id,), width="stretch")
    actions[2].button(
        "Load into Explore",
        key="compare_load",
        on_click=load_into_explore,
        args=(run_id,),
        width="stretch",
        help="Make this run's config the current one.",
    )
if manageable:
    confirmed = actions[3].checkbox(
        f"Yes, delete {len(manageable)} run(s)",
        key="compare_confirm_delete",
        help="Deleting cannot be undone: the runs' epochs and weights go too.",
    )
    actions[3].button(
        f"Delete {len(manageable)} run(s)",
        key="compare_delete",
        on_click=delete,
        args=(manageable,),
        width="stretch",
        disabled=not confirmed,
    )
if len(manageable) < len(selected):
    st.caption(
        f"{len(selected) - len(manageable)} of the chosen runs belong to other participants: "
        "only they (or the host) can rename or delete them."
    )
if not selected:
    st.caption(
        "Select one run to rename it, load its config into Explore or see its audit; select your own to delete them."
    )
if len(selected) == 1:
    chosen = next(r for r in shown if r.id == selected[0])
    audit_view.render(
        chosen.id,
        owner=chosen.owner,
        completed=chosen.status == "completed",
        report=chosen.audit,
        key="compare_run_audit",
    )

st.download_button(
    "Download CSV of all runs",
    store.to_csv(shown_file=app_state.shown_file),
    file_name="dp-explorer-runs.csv",
    mime="text/csv",
    key="compare_csv",
    on_click="ignore",
    help=f"Its columns {TRAIN_LOSS_KEY} and {TRAIN_ACCURACY_KEY} are {TRAIN_METRICS_LABEL}; "
    f"test accuracy is {TEST_METRICS_LABEL}.",
)
