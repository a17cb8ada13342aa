"""A run's empirical privacy audit, on Train's run view and on Compare for one chosen run.

The attacks' ROC curves drawn inside the region (ε, δ)-DP allows, their numbers, the ε lower bound
set against the accounted ε; for a completed run never audited, a button to audit it. Numbers and figures come from
dpcore.audit.attacks and dpcore.views.charts.
"""

from __future__ import annotations

import math
from typing import Optional

import streamlit as st

import app_state
from dpcore.audit.report import AuditReport, attack_rows, verdict
from dpcore.errors import UserInputError, describe_exception
from dpcore.privacy import explain
from dpcore.views import charts

BOUND_NOTE = (
    "For a correctly accounted run this lower bound can never exceed its ε (up to the 5% chance "
    "that a 95% bound fails); a bound far below ε means these attacks are weaker than the worst "
    "case ε allows, not that the run is more private."
)


def audit_button(run_id: int, *, label: str, key: str) -> None:
    """A button that audits the run now (seconds on digits), keeps the report with it and redraws the page."""
    if not st.button(
        label,
        key=key,
        help="Membership-inference attacks on this run's model: a loss threshold "
        "and a learned attack, on its training rows against held-out rows. Runs whose weights "
        "were not kept are retrained from their config and seed first.",
    ):
        return
    try:
        with st.spinner(f"Auditing run {run_id}…"):
            app_state.runner().audit(run_id)
    except UserInputError as exc:
        st.error(str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - an audit that breaks is a message, never a traceback
        st.error(f"The audit of run {run_id} failed: {describe_exception(exc)}")
        return
    st.rerun()


def render(run_id: int, *, completed: bool, report: Optional[AuditReport], key: str) -> None:
    """The audit section of one run: its stored report, else (for a completed run) a button to make one."""
    st.markdown("**Empirical privacy: what an attack can do to this model**")
    if report is None:
        if completed:
            st.caption(
                "Not audited yet. An audit attacks the trained model and turns what the attacks "
                "reach into an empirical lower bound on ε, to set against the ε the accountant promised."
            )
            audit_button(run_id, label="Audit this run", key=f"{key}_run")
        else:
            st.caption("An audit needs the model of a completed run.")
        return
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
            help="The largest ε the attacks prove, with Clopper–Pearson intervals.",
        )
        m2.metric(
            "accounted ε",
            explain.format_epsilon(report.epsilon),
            help="What the accountant promised for this run (∞: non-private baseline).",
        )
        st.markdown(verdict(report))
        st.caption(BOUND_NOTE)
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
            + "."
        )
