"""Export: the current or a stored run's config as JSON, YAML, a script or a notebook, its privacy report, a
finished run's model; import a file; a share link."""

from __future__ import annotations

import streamlit as st

import app_state
from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.export import share
from dpcore.export.files import file_name_only
from dpcore.export.notebook import NOTEBOOK_MIME, render_notebook
from dpcore.export.script import render_script
from dpcore.results import FINISHED_STATUSES
from pages import export_view

st.title("Export")
st.caption(
    "Take a config with you: as a file, as a runnable script or notebook, or as a link that restores it; "
    "with its privacy report, and a finished run's trained model."
)


def use_config(cfg: DPConfig, origin: str) -> None:
    """Make ``cfg`` the current config (its CSV path checked for this caller) and say where it came from."""
    try:
        restored, wanted = app_state.restore_paths(cfg)
        app_state.set_config(restored)
    except UserInputError as exc:
        app_state.post_error(f"The config from {origin} was not loaded: {exc}")
        return
    if wanted:
        app_state.post_notice(f"Settings loaded from {origin}; upload {wanted} on Explore to train on it.")
    else:
        app_state.post_notice(f"Config loaded from {origin}; the Explore page shows it.")


# Another participant's upload stays unnamed, so runs trained on one are not offered here.
runs = [r for r in app_state.store().list_runs() if app_state.may_see_file(r.config.csv_path)]
choices = ["current"] + [str(r.id) for r in runs]
labels = {"current": "The current config (Explore)"}
labels.update({str(r.id): f"Run {r.id}: {r.label} ({r.status})" for r in runs})
source = st.selectbox("Config to export", choices, format_func=labels.get, key="export_source")
cfg = app_state.config() if source == "current" else next(r.config for r in runs if str(r.id) == source)
stem = "dp-config" if source == "current" else f"dp-run-{source}"

if not cfg.private:
    st.info("This is a non-private baseline (no clipping, no noise, ε = ∞).")

# What leaves the app names a CSV file by its own name, never by its path on this server.
shown = file_name_only(cfg)
json_text, yaml_text = shown.to_json(), shown.to_yaml()
try:
    script_text, script_problem = render_script(shown), ""
except UserInputError as exc:  # a model the script cannot reproduce
    script_text, script_problem = "", str(exc)

c1, c2, c3 = st.columns(3)
c1.download_button(
    "Download JSON",
    json_text,
    file_name=f"{stem}.json",
    mime="application/json",
    key="download_json",
    width="stretch",
    on_click="ignore",
)
c2.download_button(
    "Download YAML",
    yaml_text,
    file_name=f"{stem}.yaml",
    mime="application/x-yaml",
    key="download_yaml",
    width="stretch",
    on_click="ignore",
)
c3.download_button(
    "Download Python script",
    script_text,
    file_name=f"{stem}.py",
    mime="text/x-python",
    key="download_script",
    width="stretch",
    on_click="ignore",
    disabled=bool(script_problem),
)

st.subheader("Notebook, privacy report and model")
try:
    notebook_text, notebook_problem = render_notebook(cfg), ""
except UserInputError as exc:  # what the script cannot reproduce, the notebook cannot either
    notebook_text, notebook_problem = "", str(exc)
st.download_button(
    "Download notebook (.ipynb)",
    notebook_text,
    file_name=f"{stem}.ipynb",
    mime=NOTEBOOK_MIME,
    key="download_notebook",
    on_click="ignore",
    disabled=bool(notebook_problem),
)
st.caption(
    notebook_problem
    or "The Python script in cells, with a short explanation above each (settings, data, model, the DP step, "
    "ε, training), for Jupyter or Colab: run top to bottom, it takes exactly the steps it accounts for and "
    "prints the same ε."
)
run = None if source == "current" else next(r for r in runs if str(r.id) == source)
if run is not None and not app_state.may_manage(run.owner):
    st.info(
        f"The privacy report and the model of run {run.id} are for the participant who trained it (and the "
        "host); its config files, script and notebook are above."
    )
else:
    export_view.report_downloads(None if run is None else run.id, key="export")
    if run is not None:
        export_view.model_download(run.id, finished=run.status in FINISHED_STATUSES, key="export")

st.subheader("Share link")
link = share.share_url(share.base_of(st.context.url, app_state.PAGE_PATHS), cfg)
st.caption("Opening this link starts DP Explorer with this config on the Explore page.")
st.code(link, language=None, wrap_lines=True)
st.link_button("Open share link", link)
if source != "current":
    st.button(
        "Load this run's config into Explore", key="export_use_run", on_click=use_config, args=(cfg, f"run {source}")
    )

st.subheader("Import a config file")
st.file_uploader("Upload a config file (.json, .yaml or .yml)", type=["json", "yaml", "yml"], key="export_upload")
try:
    upload = app_state.uploaded_file("export_upload", field="config")
except UserInputError as exc:
    st.error(str(exc))
    upload = None
if upload is not None:
    try:
        text = upload.raw.decode("utf-8")
        uploaded = DPConfig.from_text(text, filename=upload.name)
    except UnicodeDecodeError:
        st.error(f"config: {upload.name!r} is not UTF-8 text (allowed: a JSON or YAML file)")
    except UserInputError as exc:
        st.error(f"{upload.name}: {exc}")
    else:
        st.success(f"{upload.name} holds a valid config.")
        st.code(uploaded.to_yaml(), language="yaml")
        st.button(
            "Use the uploaded config",
            key="export_use_upload",
            type="primary",
            on_click=use_config,
            args=(uploaded, upload.name),
        )

st.subheader("Preview")
tab_json, tab_yaml, tab_script = st.tabs(["JSON", "YAML", "Python script"])
tab_json.code(json_text, language="json")
tab_yaml.code(yaml_text, language="yaml")
if script_problem:
    tab_script.info(script_problem)
else:
    tab_script.caption(f"A standalone script using TensorFlow Privacy's public API; run it with `python {stem}.py`.")
    tab_script.code(script_text, language="python")
