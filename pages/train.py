"""Train: launch the current config (or its non-private baseline) in the background and watch it."""

from __future__ import annotations

import math

import streamlit as st

import app_state
from app_state import csv_drafts
from dpcore.audit.report import audit_by_default
from dpcore.config import ACCOUNTANT_TITLES, DPConfig
from dpcore.data.datasets import dataset_problem, test_size_or_none
from dpcore.errors import UserInputError
from dpcore.model_specs import check_pair
from dpcore.privacy import explain
from dpcore.results import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    TEST_METRICS_LABEL,
    TRAIN_ACCURACY_TITLE,
    TRAIN_LOSS_TITLE,
    TRAIN_METRICS_NOTE,
)
from dpcore.runs.comparison import config_summary
from dpcore.runs.job_state import JobSnapshot
from dpcore.runs.records import MAX_NAME_CHARS
from dpcore.runs.run_table import ACCURACY_SPREAD_NOTE, accuracy_spread_text
from dpcore.views import charts
from pages import audit_view, export_view

ss = st.session_state
POLL_SECONDS = 1.0
# The run just started, whose progress the page brings into view once (it is below the Start button).
SCROLL_TO_PROGRESS_KEY = "train_scroll_to_progress"

st.title("Train")
st.caption(
    "Runs train in the background on this server; you can keep exploring while they run. "
    "Every finished epoch is saved, with its test accuracy and the ε spent so far."
)

cfg = app_state.config()
runner = app_state.runner()
n = app_state.train_size(cfg)

st.markdown(f"**Current config:** {config_summary(cfg)}")
if cfg.dataset == "csv":
    st.markdown(f"**CSV file:** {app_state.shown_file(cfg.csv_path)} (label column {cfg.csv_label})")
    placeholders = csv_drafts.placeholder_columns(app_state.owner(), cfg)
    if placeholders:
        st.warning(csv_drafts.placeholder_warning(placeholders))
if n is not None and cfg.private:
    try:
        projected = app_state.epsilon(cfg, n=n)
        st.caption(
            f"Projected ε = {explain.format_epsilon(projected)} on n = {n:,} examples "
            f"({explain.accounting_note(cfg.accountant, cfg.sampling)})"
        )
    except UserInputError as exc:
        st.error(str(exc))
    st.caption(explain.randomness_note(cfg))
problem = dataset_problem(cfg.dataset)
if problem:
    st.warning(problem)
input_problem = app_state.input_problem()
if input_problem:
    st.error(f"The settings on Explore need fixing before a run can start: {input_problem}")
if n is not None:
    try:
        estimate = runner.estimate(cfg)
        limits = runner.limits
        cap = limits.max_example_passes if limits is not None else None
        st.caption(
            f"Compute: {estimate.text()}."
            + (f" This server allows at most {cap:,} example passes per run." if cap is not None else "")
        )
    except UserInputError as exc:
        st.error(str(exc))
# One checkbox per dataset, so that its default follows the dataset the current config names.
AUDIT_KEY = f"train_audit_{cfg.dataset}"


def submit(private: bool) -> None:
    """Queue the current config (or its baseline); mistakes are shown, naming the field."""
    try:
        if n is None:
            return
        run_cfg = app_state.check_paths(cfg if private else cfg.as_baseline())
        run_cfg.check_dataset_size(n)
        info = app_state.dataset_info(run_cfg)
        check_pair(run_cfg.model, info.input_shape)
        name = ss.get("train_name", "").strip()
        if not private:
            name = f"{name} (non-private)" if name else "non-private baseline"
        job_id = app_state.submit_run(run_cfg, name=name, audit=bool(ss.get(AUDIT_KEY, audit_by_default(cfg))))
    except UserInputError as exc:
        ss["train_error"] = str(exc)
        return
    ss["train_selected"] = job_id
    ss[SCROLL_TO_PROGRESS_KEY] = job_id
    ss["train_name"] = ""  # the name went with this run; the next one starts unnamed
    app_state.post_notice(f"Run {job_id} queued" + ("" if private else " (non-private baseline, ε = ∞)") + ".")


if app_state.joined():
    # One name box at a time: the run's name once the person has one, theirs before.
    st.text_input(
        "Run name (optional)",
        key="train_name",
        placeholder="e.g. sigma 1.1, batch 64",
        max_chars=app_state.max_chars(MAX_NAME_CHARS),
    )
else:
    st.info("Type your name to start runs: your runs belong to it and come back after a reload.")
    app_state.identity_form("train")
blocked = n is None or bool(input_problem) or not app_state.joined()
st.checkbox(
    "Audit the model when training ends",
    value=audit_by_default(cfg),
    key=AUDIT_KEY,
    help="Membership-inference attacks on the trained model, set against its ε (Learn, section 6). "
    "Seconds on digits, where it is on by default; longer on larger data. Any completed run "
    "can also be audited later from its view.",
)
left, right, _ = st.columns([1, 1, 2])
left.button(
    "Start training",
    type="primary",
    key="train_start",
    on_click=submit,
    args=(True,),
    disabled=blocked,
    width="stretch",
)
right.button(
    "Train non-private baseline",
    key="train_baseline",
    on_click=submit,
    args=(False,),
    disabled=blocked,
    width="stretch",
    help="The same config without clipping or noise: no privacy (ε = ∞), for comparison.",
)
if "train_error" in ss:
    st.error(ss.pop("train_error"))


def _progress_text(job: JobSnapshot) -> str:
    if job.auditing:
        return f"Training completed · {job.epoch}/{job.epochs_total} epochs · auditing the model…"
    return explain.progress_text(
        state=job.state,
        epoch=job.epoch,
        epochs_total=job.epochs_total,
        fraction=job.progress,
        eta_seconds=job.eta_seconds,
        finished_epochs=len(job.metrics),
        phase=job.phase,
        epoch_step=job.epoch_step,
        epoch_steps=job.epoch_steps,
    )


def _job_label(job: JobSnapshot) -> str:
    # No state here: a select box keeps the label it first showed, so a state would go stale.
    return f"Run {job.id}" + (f": {job.name}" if job.name else "")


def show_job(job: JobSnapshot) -> None:
    """One run: progress, live per-epoch charts (ε over its projection), cancel, its error if it failed, its attacks."""
    progress_key = f"train_progress_{job.id}"
    with st.container(key=progress_key):
        st.progress(job.progress if job.state != "queued" else 0.0, text=_progress_text(job))
    if ss.get(SCROLL_TO_PROGRESS_KEY) == job.id:
        del ss[SCROLL_TO_PROGRESS_KEY]
        # Once, just after Start: the progress is below the button, out of view on a small screen.
        st.html(
            f"""<script>
const target = () => window.parent.document.querySelector(".st-key-{progress_key}") || document.querySelector(".st-key-{progress_key}");
let tries = 0;
const bring = () => {{
  const el = target();
  if (el) {{ el.scrollIntoView({{behavior: "smooth", block: "center"}}); }}
  else if (tries++ < 20) {{ setTimeout(bring, 100); }}
}};
bring();
</script>""",
            unsafe_allow_javascript=True,
        )
    if job.state == "queued":
        waiting = runner.queue_estimate(job.id)
        if waiting is not None:
            st.caption(waiting.text() + ".")
    if job.config.dataset == "csv":
        st.caption(f"CSV file: {app_state.shown_file(job.config.csv_path)}")
    private = job.config.private
    last = job.latest
    c1, c2, c3 = st.columns(3)
    n_test = test_size_or_none(job.config)
    c1.metric(
        "Test accuracy",
        f"{last.test_accuracy:.3f}" if last else "—",
        help=f"The last epoch's, {TEST_METRICS_LABEL}. {ACCURACY_SPREAD_NOTE}",
    )
    if last:
        c1.caption(accuracy_spread_text(last.test_accuracy, n_test))
    c2.metric(
        "ε spent",
        explain.format_epsilon(last.epsilon if last else (None if private else math.inf)),
        help=(
            "Non-private baseline: no guarantee (ε = ∞)."
            if not private
            else f"{ACCOUNTANT_TITLES[job.config.accountant]} accountant, {job.config.sampling} sampling, "
            f"δ = {job.config.delta:.1e}."
        ),
    )
    c3.metric("Epoch", f"{job.epoch}/{job.epochs_total}")
    if private:
        st.caption(
            f"ε for {ACCOUNTANT_TITLES[job.config.accountant]} accounting with {job.config.sampling} sampling "
            f"(what the trainer did), δ = {job.config.delta:.1e}."
        )
    else:
        st.caption("Non-private baseline: no clipping, no noise, no guarantee (ε = ∞).")
    show_train = app_state.train_metrics_toggle("train_show_train_metrics")
    if show_train:
        t1, t2, _ = st.columns(3)
        t1.metric(
            TRAIN_ACCURACY_TITLE.capitalize(), f"{last.train_accuracy:.3f}" if last else "—", help=TRAIN_METRICS_NOTE
        )
        t2.metric(TRAIN_LOSS_TITLE.capitalize(), f"{last.train_loss:.4f}" if last else "—", help=TRAIN_METRICS_NOTE)
        st.caption(TRAIN_METRICS_NOTE)
    if not job.done:
        st.button("Cancel", key=f"cancel_{job.id}", on_click=app_state.cancel_run, args=(job.id,))
    if job.state == "failed":
        st.error(f"Run {job.id} failed: {job.error}")
    elif job.state == "cancelled":
        st.warning(f"Run {job.id} was cancelled; its finished epochs are kept.")
    elif job.state == "budget_reached":
        st.info(
            f"Run {job.id} stopped at its ε budget of {job.config.epsilon_budget:g} after {job.epoch} of "
            f"{job.epochs_total} epochs; the ε shown is that of the epochs it trained."
        )
    elif job.state == "interrupted":
        st.warning(f"Run {job.id} was interrupted (the server stopped); its finished epochs are kept.")
    if job.metrics:
        st.plotly_chart(
            charts.training_progress(
                [m.epoch for m in job.metrics],
                [m.test_accuracy for m in job.metrics],
                [m.epsilon for m in job.metrics],
                epochs_total=job.epochs_total,
                private=private,
                projected=_projected_curve(job.config),
                train_accuracies=[m.train_accuracy for m in job.metrics] if show_train else None,
            ),
            width="stretch",
            key=f"train_chart_{job.id}",
        )
        recipe_charts(job)
    elif job.state in ACTIVE_STATUSES:
        st.caption("The charts appear when the first epoch ends.")
    if job.audit_requested and not job.done and job.audit is None:
        st.caption("This run's model is audited when training ends.")
    if job.audit_error:
        st.error(f"The audit of run {job.id} failed: {job.audit_error}")
    if job.state == "completed":
        audit_view.render(
            job.id,
            owner=job.owner,
            completed=True,
            report=job.audit,
            key=f"train_run_audit_{job.id}",
            test_accuracy=last.test_accuracy if last else None,
            n_test=n_test,
        )
    if job.done and job.metrics:
        st.markdown("**Take this run with you**")
        export_view.report_downloads(job.id, key=f"train_run_{job.id}")
        export_view.model_download(job.id, finished=job.state in FINISHED_STATUSES, key=f"train_run_{job.id}")


def recipe_charts(job: JobSnapshot) -> None:
    """A run's validation metrics beside its test metrics (with a validation split), and its clip norm at
    each step (with adaptive clipping)."""
    metrics, config = job.metrics, job.config
    if config.validation_fraction > 0 and any(not math.isnan(m.validation_accuracy) for m in metrics):
        st.plotly_chart(
            charts.test_and_validation(
                [m.epoch for m in metrics],
                test_accuracy=[m.test_accuracy for m in metrics],
                validation_accuracy=[m.validation_accuracy for m in metrics],
                test_loss=[m.test_loss for m in metrics],
                validation_loss=[m.validation_loss for m in metrics],
                epochs_total=job.epochs_total,
            ),
            width="stretch",
            key=f"train_validation_{job.id}",
        )
        st.caption(
            f"Validation: {config.validation_fraction:.0%} of the training rows, held out and never "
            "trained on; test: the dataset's separate test split."
        )
    clip_norms = [value for m in metrics for value in m.clip_norms]
    if config.private and config.adaptive_clipping and clip_norms:
        st.plotly_chart(
            charts.clip_norm_over_steps(clip_norms, target_quantile=config.target_unclipped_quantile),
            width="stretch",
            key=f"train_clip_norm_{job.id}",
        )


def _projected_curve(config: DPConfig) -> tuple[float, ...] | None:
    """The ε the accountant projects after each epoch of a private run (the dashed line under the live ε)."""
    if not config.private:
        return None
    try:
        return app_state.epsilon_curve(config, n=app_state.rows_trained(config))
    except UserInputError:
        return None  # the data can no longer be read (e.g. a CSV file removed), or the accountant refused


def runs_panel(polling: bool) -> None:
    """This session's runs, refreshed while any of them is queued or training."""
    jobs = app_state.my_runs()
    if not jobs:
        st.info(
            "No runs of yours yet. Start one above; it trains in the background."
            if app_state.joined()
            else "Your runs appear here once you have typed your name and started one."
        )
        return
    by_id = {job.id: job for job in jobs}
    ids = [job.id for job in reversed(jobs)]
    if ss.get("train_selected") not in by_id:
        ss["train_selected"] = ids[0]
    st.selectbox("Run", ids, key="train_selected", format_func=lambda i: _job_label(by_id[i]))
    show_job(by_id[ss["train_selected"]])

    st.markdown(f"**Your runs** ({app_state.display_name()})")
    app_state.run_table(
        [job.as_record() for job in reversed(jobs)],
        key="train_runs_table",
        train_metrics=ss.get("train_show_train_metrics", True),
    )
    active = any(not job.done for job in jobs)
    if polling and not active:
        st.rerun()  # the last run ended: rerun the page so this panel stops polling


st.divider()
polling = any(not job.done for job in app_state.my_runs())
st.fragment(run_every=POLL_SECONDS if polling else None)(runs_panel)(polling)
