"""The first screen's guidance: what to do first (join, then explore, then train), until the person has trained."""

from __future__ import annotations

import streamlit as st

import app_state

JOIN_STEP = (
    "**1. Join.** Type your name in the sidebar's *Your name* box and press **Join** (on a phone, open the "
    "sidebar with the » button at the top left). Your runs belong to that name."
)
EXPLORE_STEP = (
    "**2. Explore.** Move the sliders below and watch ε, the privacy a run with these settings would "
    "spend, change at once."
)
TRAIN_STEP = "**3. Train.** Open Train and press **Start**: it trains these settings in the background."


def render() -> None:
    """A box with the three first steps, each ticked once done; gone once this person has a run."""
    joined = app_state.joined()
    if joined and app_state.my_runs():
        return
    with st.container(border=True, key="first_steps"):
        st.markdown("**Start here**")
        st.markdown(f"✓ Joined as **{app_state.display_name()}**." if joined else JOIN_STEP)
        st.markdown(EXPLORE_STEP)
        st.markdown(TRAIN_STEP)
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
