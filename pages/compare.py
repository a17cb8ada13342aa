"""Compare: accuracy against ε for the runs of one dataset at a time: the class view (final points by
participant, the frontier, the challenge's leaderboard) or each run's epochs; the audits against ε, and a run table."""

from __future__ import annotations

import streamlit as st

import app_state
from dpcore.audit.report import AUDIT_NOTE
from dpcore.data.datasets import test_size_or_none
from dpcore.errors import UserInputError
from dpcore.privacy import explain
from dpcore.results import TEST_METRICS_LABEL, TRAIN_ACCURACY_KEY, TRAIN_LOSS_KEY, TRAIN_METRICS_LABEL
from dpcore.runs import comparison
from dpcore.runs.comparison import ALL, audit_points, build_view, busy_runs, filter_runs
from dpcore.runs.records import MAX_NAME_CHARS
from dpcore.views import charts
from pages import audit_view

ss = st.session_state
store = app_state.store()

st.title("Compare")
st.caption(
    "Test accuracy against ε for the runs of one dataset at a time: accuracies on different test sets do not "
    "compare. Up and to the left is better: more accurate and more private. The dashed line is the Pareto "
    "frontier of the runs' final points; non-private baselines stand at ε = ∞ (no privacy)."
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

names = store.display_names()
choices = comparison.dataset_choices(runs)
titles = {c.key: f"{app_state.dataset_title(c)} ({c.runs} run{'s' if c.runs != 1 else ''})" for c in choices}
keys = list(titles)
preferred = comparison.default_dataset(choices, preferred=comparison.dataset_key(app_state.config()))
left, right, _ = st.columns([2, 1, 1])
dataset = app_state.choice(
    left.selectbox(
        "Dataset",
        keys,
        index=keys.index(preferred),
        format_func=titles.get,
        key="compare_dataset",
        help="Frontiers, baselines and the challenge are per dataset: accuracies on different test sets do not compare.",
    ),
    keys,
    field="dataset",
)
models = [ALL] + sorted({r.config.model for r in filter_runs(runs, dataset=dataset)})
model = app_state.choice(right.selectbox("Model", models, key="compare_model"), models, field="model")
shown = filter_runs(runs, dataset=dataset, model=model)


def owner_name(run_owner: str) -> str:
    """Who ran a run, as the picker and the leaderboard name them ("you" for this participant)."""
    name = comparison.participant_name(run_owner, names)
    return f"{name} (you)" if app_state.owner() and run_owner == app_state.owner() else name


if "compare_selected" in ss:
    ss["compare_selected"] = [i for i in ss["compare_selected"] if any(r.id == i for r in shown)]
labels = {
    r.id: f"{r.id}: {r.label} by {owner_name(r.owner)} ({'non-private' if not r.config.private else r.config.model})"
    for r in shown
}
selected = st.multiselect(
    "Choose runs (none chosen: chart all shown)", [r.id for r in shown], format_func=labels.get, key="compare_selected"
)
charted = [r for r in shown if r.id in selected] if selected else shown
styles = charts.participant_styles(comparison.participants(runs))

CLASS, EPOCHS = "class", "epochs"
chart_kind = app_state.choice(
    st.radio(
        "Chart",
        (CLASS, EPOCHS),
        key="compare_chart_kind",
        horizontal=True,
        format_func={CLASS: "Class view (final points, by participant)", EPOCHS: "Each run's epochs"}.get,
        help="The class view draws each finished run once, at its final ε and accuracy, for a projector; "
        "each run's epochs draws every run's path.",
    ),
    (CLASS, EPOCHS),
    field="chart",
)


def class_section() -> None:
    """The class view: final points by participant, the frontier, and the challenge's leaderboard."""
    cap_value = st.columns([1, 2])[0].number_input(
        "Challenge: best accuracy at ε ≤",
        value=comparison.CHALLENGE_EPSILON_CAP,
        step=0.1,
        format="%.2f",
        key="compare_cap",
        help="The class challenge's privacy cap: each participant's best run with ε at most this is ranked.",
    )
    try:
        cap = comparison.check_epsilon_cap(cap_value)
    except UserInputError as exc:
        st.error(str(exc))
        cap = None
    view = comparison.class_view(charted, names=names)
    if not view.points and not view.baselines:
        st.info("No run here has finished yet; each appears as one point when it does.")
        return
    st.plotly_chart(
        charts.class_accuracy_vs_epsilon(view, styles=styles, cap=cap), width="stretch", key="compare_class_chart"
    )
    people = len({p.owner for p in (*view.points, *view.baselines)})
    notes = [
        f"{len(view.points)} finished private run(s) and {len(view.baselines)} non-private baseline(s) by "
        f"{people} participant(s)."
    ]
    if view.unfinished:
        notes.append(f"{view.unfinished} run(s) still queued or training appear when they finish.")
    if view.test_rows:
        notes.append(
            f"Every accuracy here is measured on the same {view.test_rows:,} test rows: one row more or less "
            f"moves it by {1 / view.test_rows:.3f}."
        )
    if len(styles) > charts.DISTINCT_PARTICIPANTS:
        notes.append(
            f"More than {charts.DISTINCT_PARTICIPANTS} participants: colours and markers repeat; hovering names each point."
        )
    st.caption(" ".join(notes))
    if cap is None:
        return
    board = comparison.leaderboard(comparison.class_view(shown, names=names), cap=cap)
    st.markdown(f"**Challenge: best accuracy at ε ≤ {charts.plain_number(cap)}**")
    if not board:
        st.info(f"No finished private run here has ε ≤ {charts.plain_number(cap)} yet.")
        return
    st.dataframe(
        [
            {
                "rank": e.rank,
                "participant": owner_name(e.owner),
                "run": e.run,
                "ε": explain.format_epsilon(e.epsilon),
                "test accuracy": f"{e.accuracy:.3f}",
                "test rows": view.test_rows,
            }
            for e in board
        ],
        hide_index=True,
        width="stretch",
        key="compare_leaderboard",
    )
    st.caption(
        "Each participant's best finished run within the cap, among all runs of this dataset and model (whichever "
        "are chosen for the chart); equal accuracy and ε share a rank. Trying many runs and keeping the best costs "
        "privacy too (see above)."
    )


if chart_kind == CLASS:
    class_section()
else:
    view = build_view(charted, names=names)
    if view.curves or view.baselines:
        st.plotly_chart(charts.accuracy_vs_epsilon(view, styles=styles), width="stretch", key="compare_chart")
    else:
        st.info("None of these runs has finished an epoch yet.")

audited = audit_points(charted, names=names)
if audited:
    st.markdown("**What attacks reach, against the ε promised**")
    st.caption(
        "Each audited run's best membership-inference attack (AUC, left) and the empirical ε lower bound "
        "it proves (right) against the run's accounted ε; non-private baselines stand at ∞, past a gap. "
        + audit_view.BOUND_NOTE
        + " "
        + AUDIT_NOTE
    )
    st.plotly_chart(charts.audit_vs_epsilon(audited, styles=styles), width="stretch", key="compare_audit_chart")
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
        test_accuracy=chosen.test_accuracy,
        n_test=test_size_or_none(chosen.config),
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
