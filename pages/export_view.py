"""Exports made on request, on the Export page and Train's run view: the privacy report (Markdown, HTML) of the
current config or a run, and a finished run's model (.keras in a zip).

Each is made when its button is pressed (seconds: TensorFlow Privacy's statement and the Keras file load
TensorFlow the first time), kept for the session by app_state, and offered for download below the button.
"""

from __future__ import annotations

from typing import Optional

import streamlit as st

import app_state

REPORT_LABELS = ("Download report (Markdown)", "Download report (HTML)")
MODEL_LABEL = "Download model (.keras in a zip)"


def report_downloads(run_id: Optional[int], *, key: str) -> None:
    """The privacy report of run ``run_id`` (None: the current config): a button that makes it, then its downloads."""
    subject = "this config" if run_id is None else f"run {run_id}"
    if st.button(
        "Make the privacy report",
        key=f"{key}_make_report",
        help=f"What ε means for {subject}, computed: unit of privacy, sampling, accountant, ε after each "
        "epoch, RDP and PLD side by side with TensorFlow Privacy's own statement, and what ε does not cover.",
    ):
        with st.spinner(f"Computing the privacy report of {subject}…"):
            app_state.make_report(run_id)
    made = app_state.made_export("report", run_id)
    if made is None:
        st.caption(
            f"A privacy report of {subject} as Markdown, and as one HTML page with its charts that opens "
            "without a network."
        )
        return
    if made.error:
        st.error(made.error)
        return
    for column, file, label in zip(st.columns(2), made.files, REPORT_LABELS):
        column.download_button(
            label,
            file.data,
            file_name=file.file_name,
            mime=file.mime,
            key=f"{key}_download_{file.file_name.rsplit('.', 1)[-1]}",
            on_click="ignore",
            width="stretch",
        )
    with st.expander("Read the report here"):
        st.markdown(made.preview)


def model_download(run_id: int, *, finished: bool, key: str) -> None:
    """A finished run's model: a button that makes the zip (model.keras, config, report, README), then its download."""
    if not finished:
        st.caption("A trained model is kept only for a finished run (completed, or stopped by its ε budget).")
        return
    if st.button(
        "Make the model file",
        key=f"{key}_make_model",
        help="The trained model as a Keras file that plain tf.keras.models.load_model reads, zipped with the "
        "run's config, its privacy report and a README on the inputs it takes.",
    ):
        with st.spinner(f"Saving the model of run {run_id}…"):
            app_state.make_model(run_id)
    made = app_state.made_export("model", run_id)
    if made is None:
        return
    if made.error:
        st.error(made.error)
        return
    file = made.files[0]
    st.download_button(
        MODEL_LABEL, file.data, file_name=file.file_name, mime=file.mime, key=f"{key}_download_model", on_click="ignore"
    )
