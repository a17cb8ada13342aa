"""The first screen's guidance: what to do first (join, then explore, then train), until the person has trained."""

from __future__ import annotations

import streamlit as st

import app_state

JOIN_STEP = (
    "**1. Join:** type your name in the sidebar (on a phone, open it with » at the top left) and press **Join**."
)
EXPLORE_STEP = "**2. Explore:** move the sliders and watch ε, the privacy a run would spend."
TRAIN_STEP = "**3. Train:** open Train and press **Start training**."


def render() -> None:
    """A box with the three first steps, each ticked once done; gone once this person has a run."""
    joined = app_state.joined()
    if joined and app_state.my_runs():
        return
    join_line = f"✓ Joined as **{app_state.display_name()}**." if joined else JOIN_STEP
    with st.container(border=True, key="first_steps"):
        st.markdown(f"**Start here**  \n{join_line}  \n{EXPLORE_STEP}  \n{TRAIN_STEP}")
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
