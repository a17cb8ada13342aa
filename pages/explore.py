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
explore_controls.preset_buttons()
controls, results = st.columns([5, 6], gap="large")
with controls:
    try:
        cfg = explore_controls.render(app_state.config())
    except UserInputError as exc:
        results.error(str(exc))
        app_state.set_input_problem(str(exc))
        app_state.finish_page()
app_state.set_input_problem(None)
app_state.set_config(cfg, reset_widgets=False)
with results:
    explore_results.render(cfg)
