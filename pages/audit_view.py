"""A run's empirical privacy audit, on Train's run view and on Compare for one chosen run.

The attacks' ROC curves drawn inside the region (ε, δ)-DP allows, their numbers, the ε lower bound
set against the accounted ε; for a completed run never audited, a button that queues its audit (for its
owner and the host) and the state of that audit until it ends. Numbers and figures come from
dpcore.audit.attacks and dpcore.views.charts.
"""

from __future__ import annotations

import math
from typing import Optional

import streamlit as st

import app_state
from dpcore.audit.report import AUDIT_LABEL, CANARY_NOTE, AuditReport, attack_rows, coverage_note, verdict
from dpcore.errors import UserInputError
from dpcore.privacy import explain
from dpcore.runs.run_table import accuracy_text
from dpcore.views import charts, teaching

# How often the view checks an audit that waits or runs.
POLL_SECONDS = 1.0
BOUND_NOTE = (
    "For a correctly accounted run this lower bound can never exceed its ε (up to the 5% chance "
    "that a 95% bound fails); a bound far below ε means these attacks are weaker than the worst "
    "case ε allows, not that the run is more private."
)


def _ask(run_id: int) -> None:
    try:
        app_state.request_audit(run_id)
    except UserInputError as exc:
        app_state.post_error(f"The audit of run {run_id} was not queued: {exc}")
        return
    app_state.post_notice(f"Audit of run {run_id} queued; it runs beside the training runs, in turn.")


def audit_button(run_id: int, *, label: str, key: str) -> None:
    """A button that queues an audit of the run (``app_state.request_audit``); the view follows it until it ends."""
    st.button(
        label,
        key=key,
        on_click=_ask,
        args=(run_id,),
        help="Membership-inference attacks on this run's model: a loss threshold "
        "and a learned attack, on its training rows against held-out rows. It waits in your "
        "queue like a run. Runs whose weights were not kept are retrained from their config and seed first.",
    )


def _follow(run_id: int) -> None:
    """While the run's audit waits or runs: say so, and redraw the page once it has ended."""
    pending = app_state.audit_request(run_id)
    if pending is None or pending.done:
        st.rerun()
    st.caption(f"Audit of run {run_id}: {'waiting for a worker' if pending.state == 'queued' else 'auditing'}…")


def render(
    run_id: int,
    *,
    owner: str,
    completed: bool,
    report: Optional[AuditReport],
    key: str,
    test_accuracy: Optional[float] = None,
    n_test: Optional[int] = None,
) -> None:
    """The audit section of one run (owned by ``owner``): its stored report with plain readings of its
    numbers and the model's test accuracy (on ``n_test`` rows), else (for a completed run) the state of
    an audit asked for, or a button to ask for one (its owner and the host only)."""
    st.markdown("**Empirical privacy: what an attack can do to this model**")
    pending = app_state.audit_request(run_id)
    if report is None and pending is not None and pending.state == "completed":
        report = pending.audit
    if report is None:
        if not completed:
            st.caption("An audit needs the model of a completed run.")
            return
        if pending is not None and not pending.done:
            st.fragment(run_every=POLL_SECONDS)(_follow)(run_id)
            return
        if pending is not None and pending.state in ("failed", "cancelled"):
            st.error(f"The audit of run {run_id} {pending.state}: {pending.audit_error or pending.error}")
        st.caption(
            "Not audited yet. An audit attacks the trained model and turns what the attacks "
            "reach into an empirical lower bound on ε, to set against the ε the accountant promised."
        )
        if app_state.may_manage(owner):
            audit_button(run_id, label="Audit this run", key=f"{key}_run")
        else:
            st.caption("Only the run's owner (or the host) can ask for its audit.")
        return
    st.caption(coverage_note(report))
    left, right = st.columns([3, 2], gap="large")
    curves = {attack.attack: attack.roc for attack in report.attacks}
    left.plotly_chart(
        charts.privacy_region(epsilon=report.epsilon, delta=report.delta, curves=curves),
        width="stretch",
        key=f"{key}_roc",
    )
    with right:
        m1, m2 = st.columns(2)
        m1.metric(
            f"ε lower bound ({report.confidence:.0%})",
            f"{report.epsilon_lower_bound:.2f}",
            help=f"The largest ε the attacks prove, with Clopper–Pearson intervals; {AUDIT_LABEL}.",
        )
        m2.metric(
            "accounted ε",
            explain.format_epsilon(report.epsilon),
            help="What the accountant promised for this run (∞: non-private baseline).",
        )
        st.markdown(verdict(report))
        if test_accuracy is not None:
            st.caption(f"The audited run's test accuracy: {accuracy_text(test_accuracy, n_test)}.")
        st.caption(BOUND_NOTE)
    readings = teaching.audit_readings(report)
    if readings:
        st.markdown("**Reading these numbers**\n\n" + "\n".join(f"- {reading}" for reading in readings))
    st.dataframe(
        attack_rows(report),
        hide_index=True,
        width="stretch",
        key=f"{key}_table",
        column_config={
            "AUC": st.column_config.NumberColumn(format="%.3f", help="0.5 is guessing, 1 is certainty"),
            "advantage": st.column_config.NumberColumn(format="%.3f", help="max(TPR − FPR)"),
            "TPR at 1% FPR": st.column_config.NumberColumn(format="%.3f"),
            "TPR at 0.1% FPR": st.column_config.NumberColumn(format="%.3f"),
            "ε lower bound": st.column_config.NumberColumn(
                format="%.2f",
                help=f"each attack's bound at {1 - (1 - report.confidence) / 2:.1%}, so that "
                f"the larger holds at {report.confidence:.0%}",
            ),
        },
    )
    details = [f"Model: {report.model_source}.", f"Audit took {report.seconds:.1f} s."]
    if min(a.eval_nonmembers for a in report.attacks) < 1000:
        details.append(
            "With fewer than 1,000 non-members judged, the smallest FPR above zero exceeds 0.1%, "
            "so TPR at 0.1% FPR is the TPR at FPR 0."
        )
    st.caption(" ".join(details + list(report.notes)))
    if report.canary is not None:
        canary = report.canary
        st.caption(
            f"Canary audit ({canary.canaries} {canary.kind}, one more training run of ε = "
            f"{explain.format_epsilon(canary.epsilon)}): {canary.correct} of {canary.guesses} guesses "
            f"right, ε ≥ {canary.epsilon_lower_bound:.2f}"
            + ("" if math.isfinite(canary.epsilon) else " (non-private)")
            + f". {CANARY_NOTE}"
        )
