"""Explore: slide the DP-SGD knobs and see the projected ε at once, with curves and calibration.

The page is thin: pages/explore_controls.py turns the widgets into a DPConfig, and
pages/explore_results.py shows what that config spends.
"""

from __future__ import annotations

import streamlit as st

import app_state
from app_state import first_steps
from dpcore.errors import UserInputError
from pages import explore_controls, explore_results

st.title("Explore")
st.caption(
    "Move the knobs of DP-SGD and watch the privacy guarantee ε it would spend. "
    "Nothing trains here; the Train page runs the current settings."
)

first_steps.render()
# On a narrow screen the columns stack, so the projected ε would be screens below the sliders: a one-line
# ε at the top of the controls stays in view (sticky) while they scroll. Side by side it is hidden, since
# the ε metric stands beside the sliders. 640 px is where Streamlit's columns stack.
# The sticky box is the container's layout wrapper: a sticky element stays within its parent, and the
# wrapper's parent is the whole controls column. 3.75rem clears the app's header bar.
EPSILON_LINE = f".st-key-{explore_results.EPSILON_LINE_KEY}"
st.html(
    f"""<style>
[data-testid="stLayoutWrapper"]:has(> {EPSILON_LINE}) {{
  position: sticky; top: 3.75rem; z-index: 10; background: white;
  padding: 0.25rem 0; border-bottom: 1px solid rgba(49, 51, 63, 0.2);
}}
@media (min-width: 640px) {{ [data-testid="stLayoutWrapper"]:has(> {EPSILON_LINE}) {{ display: none; }} }}
</style>"""
)
explore_controls.preset_buttons()
controls, results = st.columns([5, 6], gap="large")
with controls:
    epsilon_line = st.container(key=explore_results.EPSILON_LINE_KEY)
    try:
        cfg = explore_controls.render(app_state.config())
    except UserInputError as exc:
        results.error(str(exc))
        app_state.set_input_problem(str(exc))
        app_state.finish_page()
app_state.set_input_problem(None)
app_state.set_config(cfg, reset_widgets=False)
with results:
    explore_results.render(cfg, epsilon_line=epsilon_line)
