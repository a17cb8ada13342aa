"""Export: the current or a stored run's config as JSON, YAML or a script; import a file; a share link."""

from __future__ import annotations

import streamlit as st

import app_state
from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.export import share
from dpcore.export.script import render_script

st.title("Export")
st.caption("Take a config with you: as a file, as a runnable script, or as a link that restores it.")


def use_config(cfg: DPConfig, origin: str) -> None:
    """Make ``cfg`` the current config (its CSV path checked for this caller) and say where it came from."""
    try:
        app_state.set_config(app_state.check_paths(cfg))
    except UserInputError as exc:
        app_state.post_error(f"The config from {origin} was not loaded: {exc}")
        return
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

json_text, yaml_text = cfg.to_json(), cfg.to_yaml()
try:
    script_text, script_problem = render_script(cfg), ""
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
upload = st.file_uploader(
    "Upload a config file (.json, .yaml or .yml)", type=["json", "yaml", "yml"], key="export_upload"
)
if upload is not None:
    try:
        text = upload.getvalue().decode("utf-8")
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
