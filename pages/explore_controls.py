"""Explore's controls: every DP-SGD knob, seeded from the current config, read back as a DPConfig."""

from __future__ import annotations

from typing import Any, Callable, Optional

import streamlit as st

import app_state
from app_state import csv_drafts
from dpcore.config import (
    ACCOUNTANT_TITLES,
    ACCOUNTANTS,
    ACTIVATIONS,
    DATASET_TITLES,
    DATASETS,
    MODEL_TITLES,
    OPTIMIZER_TITLES,
    OPTIMIZERS,
    SAMPLING_TITLES,
    SAMPLINGS,
    DPConfig,
)
from dpcore.csv_schema import CsvSchema
from dpcore.data.csv_files import csv_file_columns
from dpcore.data.datasets import dataset_info
from dpcore.errors import UserInputError
from dpcore.model_specs import model_description, supported_models
from dpcore.room.server_settings import upload_limit_text
from dpcore.safe_io import MAX_PATH_CHARS
from dpcore.views import presets
from pages import explore_recipe, explore_schema

ss = st.session_state
P = app_state.WIDGET_PREFIX
NOISE_SLIDER_MIN = 0.1


def use_nearest_allowed() -> None:
    """Move each out-of-range value of the current config to the nearest one its entry allows, saying which."""
    cfg = app_state.config()
    changes = {}
    for field, (_, lo, hi) in app_state.ENTRY_RANGES.items():
        value = getattr(cfg, field)
        if value is not None and not lo <= value <= hi and (field != "momentum" or cfg.optimizer == "momentum"):
            changes[field] = min(max(value, lo), hi)
    app_state.update_config(**changes)
    app_state.post_notice(
        "Changed: "
        + ", ".join(f"{app_state.ENTRY_RANGES[f][0]} {getattr(cfg, f):g} → {v:g}" for f, v in changes.items())
        + "."
    )


# -- widget helpers ------------------------------------------------------------------------


def _copy(source: str, target: str) -> Callable[[], None]:
    """A widget callback copying one session-state key to another (slider -> number entry)."""

    def callback() -> None:
        ss[target] = ss[source]

    return callback


def paired(
    label: str, field: str, value: Any, *, lo: Any, hi: Any, step: Any, exact_step: Any, fmt: str, help: str
) -> Any:
    """A slider and a precise number entry for one field, kept in sync; returns the exact value.

    ``value`` must lie in the entry's range (``out_of_range`` reports one that does not; a
    baseline's zero noise is the one value shown at the entry's minimum).
    """
    _, exact_lo, exact_hi = app_state.ENTRY_RANGES[field]
    slider_key, number_key = f"{P}{field}_slider", f"{P}{field}_exact"
    app_state.seed_widget(number_key, min(max(value, exact_lo), exact_hi))
    ss[slider_key] = min(max(ss[number_key], lo), hi)
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.slider(
        label, min_value=lo, max_value=hi, step=step, key=slider_key, help=help, on_change=_copy(slider_key, number_key)
    )
    right.number_input(f"{label} (exact)", step=exact_step, format=fmt, key=number_key, label_visibility="collapsed")
    return ss[number_key]


# -- callbacks -------------------------------------------------------------------------------


def apply_preset(key: str) -> None:
    """Load a recipe preset into every control."""
    preset = presets.get_preset(key)
    app_state.set_config(preset.config)
    app_state.post_notice(f"Preset applied: {preset.title} ({preset.description})")


def on_dataset_change() -> None:
    """Keep the model valid for the new dataset's input shape; a failed upload's error goes with the CSV dataset."""
    ss.pop("explore_upload_error", None)
    try:
        dataset = app_state.choice(ss[f"{P}dataset"], DATASETS, field="dataset")
    except UserInputError as exc:
        app_state.post_error(str(exc))
        return
    if dataset == "csv":
        return  # the model list follows once the file is known
    allowed = supported_models(dataset_info(dataset).input_shape)
    if ss.get(f"{P}model") not in allowed:
        ss[f"{P}model"] = _fallback_model(allowed)


def keep_upload() -> None:
    """Check and keep an uploaded CSV as this participant's, then point the CSV path at the kept copy.

    A failed upload clears the path, so nothing trains on the previous file until a good one arrives.
    """
    try:
        upload = app_state.uploaded_file("explore_csv_upload", field="csv_upload")
    except UserInputError as exc:
        ss["explore_upload_error"] = f"The upload failed, so there is no file to train on: {exc}"
        ss[f"{P}csv_path"] = ""
        return
    if upload is None:
        ss.pop("explore_upload_error", None)
        return
    try:
        path = app_state.save_upload(upload.raw, name=upload.name)
    except UserInputError as exc:
        ss["explore_upload_error"] = f"The upload of {upload.name} failed, so there is no file to train on: {exc}"
        ss[f"{P}csv_path"] = ""
        return
    ss.pop("explore_upload_error", None)
    ss[f"{P}csv_path"] = str(path)
    csv_drafts.keep(app_state.owner(), csv_path=str(path), active=True)
    app_state.post_notice(f"Uploaded {app_state.shown_file(str(path))}: it is kept on this server as yours.")


def _forget_upload() -> None:
    """Empty the CSV path, so the "CSV file on the server" box shows instead of the upload's name."""
    ss[f"{P}csv_path"] = ""


def _stop(problem: str) -> None:
    """Show ``problem``, record it so Train refuses to start on stale settings, and end the page."""
    st.error(problem)
    app_state.set_input_problem(problem)
    app_state.finish_page()


def _fallback_model(allowed: tuple[str, ...]) -> str:
    """The default model where the dataset allows it, else the first model that fits."""
    return DPConfig().model if DPConfig().model in allowed else allowed[0]


# -- the controls ----------------------------------------------------------------------------


def preset_buttons() -> None:
    """One button per recipe preset, one row per group of presets."""
    widest = max(len(group) for _, group in presets.preset_groups())
    for title, group in presets.preset_groups():
        preset_cols = st.columns(widest + 1, vertical_alignment="center")
        preset_cols[0].markdown(f"**{title}**")
        for col, preset in zip(preset_cols[1:], group):
            col.button(
                preset.title,
                key=f"preset_{preset.key}",
                on_click=apply_preset,
                args=(preset.key,),
                help=f"{preset.description} From: {preset.source}",
                width="stretch",
            )


def render(cfg: DPConfig) -> DPConfig:
    """Every knob, seeded from ``cfg``; returns the config they show (a UserInputError if it is invalid).

    A CSV dataset whose file or columns cannot be read ends the page with its message, and so does
    a value outside an entry's range (listed value by value, with a button to take the nearest).
    """
    problems = app_state.out_of_range(cfg)
    if problems:
        st.button("Use the nearest allowed values", key="explore_nearest", on_click=use_nearest_allowed)
        _stop(
            "The current config has values the controls cannot show, so nothing was changed: "
            + "; ".join(problems)
            + "."
        )
    noise = paired(
        "Noise multiplier",
        "noise_multiplier",
        cfg.noise_multiplier,
        lo=NOISE_SLIDER_MIN,
        hi=10.0,
        step=0.05,
        exact_step=0.01,
        fmt="%.3f",
        help="σ: the Gaussian noise added to each step's summed gradients, in units of the clip norm.",
    )
    clip = paired(
        "Clip norm",
        "l2_norm_clip",
        cfg.l2_norm_clip,
        lo=0.1,
        hi=10.0,
        step=0.1,
        exact_step=0.1,
        fmt="%.3f",
        help="C: every example's gradient is scaled down to at most this L2 norm. "
        "It does not change ε, but it sets how much signal survives the noise.",
    )
    batch = paired(
        "Batch size",
        "batch_size",
        cfg.batch_size,
        lo=1,
        hi=1024,
        step=1,
        exact_step=1,
        fmt="%d",
        help="Expected examples per step (with Poisson sampling each example joins with probability batch size / n).",
    )
    epochs = paired(
        "Epochs",
        "epochs",
        cfg.epochs,
        lo=1,
        hi=100,
        step=1,
        exact_step=1,
        fmt="%d",
        help="Passes over the training data; each costs privacy.",
    )

    left, right = st.columns(2)
    app_state.seed_widget(f"{P}learning_rate", cfg.learning_rate)
    learning_rate = left.number_input("Learning rate", step=0.001, format="%.4g", key=f"{P}learning_rate")
    app_state.seed_widget(f"{P}delta", cfg.delta)
    delta = right.number_input(
        "δ (delta)",
        step=1e-6,
        format="%.1e",
        key=f"{P}delta",
        help="The small chance the ε promise may fail; keep it well below 1/n.",
    )

    # The dataset on a row of its own: its titles ("Digits (8x8, scikit-learn)") are cut off at half width.
    # A CSV still being set up (no complete schema yet, so not the config) opens again after a reload.
    app_state.seed_widget(f"{P}dataset", "csv" if csv_drafts.kept(app_state.owner()).active else cfg.dataset)
    dataset = app_state.choice(
        st.selectbox(
            "Dataset", DATASETS, key=f"{P}dataset", on_change=on_dataset_change, format_func=DATASET_TITLES.get
        ),
        DATASETS,
        field="dataset",
    )
    csv_path, csv_label, csv_schema, csv_epsilon = _csv_controls(cfg) if dataset == "csv" else (None,) * 4
    try:
        # A CSV is described under its schema (declared, or derived privately and paid for).
        info = app_state.dataset_info(
            cfg.replace(
                dataset=dataset,
                csv_path=csv_path,
                csv_label=csv_label,
                csv_schema=csv_schema,
                csv_preprocessing_epsilon=csv_epsilon,
            )
        )
    except UserInputError as exc:
        _stop(str(exc))
    model_options = supported_models(info.input_shape)
    app_state.seed_widget(f"{P}model", cfg.model if cfg.model in model_options else _fallback_model(model_options))
    if ss[f"{P}model"] not in model_options:
        ss[f"{P}model"] = _fallback_model(model_options)
    left, right = st.columns(2)
    model = left.selectbox(
        "Model",
        model_options,
        key=f"{P}model",
        format_func=MODEL_TITLES.get,
        help="Only models that fit this dataset's input shape are offered: "
        + "; ".join(model_description(m) for m in model_options)
        + ".",
    )

    app_state.seed_widget(f"{P}optimizer", cfg.optimizer)
    optimizer = right.selectbox("Optimizer", OPTIMIZERS, key=f"{P}optimizer", format_func=OPTIMIZER_TITLES.get)
    momentum = cfg.momentum
    if optimizer == "momentum":
        app_state.seed_widget(f"{P}momentum", cfg.momentum)
        momentum = st.columns(2)[1].number_input("Momentum", step=0.05, format="%.3f", key=f"{P}momentum")

    left, right = st.columns(2)
    app_state.seed_widget(f"{P}accountant", cfg.accountant)
    accountant = left.radio(
        "Accountant",
        ACCOUNTANTS,
        key=f"{P}accountant",
        horizontal=True,
        format_func=ACCOUNTANT_TITLES.get,
        help="RDP: Rényi DP, the classic DP-SGD accountant. PLD: privacy loss distributions, tighter.",
    )
    app_state.seed_widget(f"{P}sampling", cfg.sampling)
    sampling = right.radio(
        "Sampling",
        SAMPLINGS,
        key=f"{P}sampling",
        horizontal=True,
        format_func=SAMPLING_TITLES.get,
        help="How batches are drawn; the trainer draws them exactly this way.",
    )

    with st.expander("More settings"):
        left, right = st.columns(2)
        app_state.seed_widget(f"{P}activation", cfg.activation)
        activation = left.selectbox("Activation", ACTIVATIONS, key=f"{P}activation")
        app_state.seed_widget(f"{P}seed", cfg.seed)
        seed = right.number_input("Seed", step=1, key=f"{P}seed")
        app_state.seed_widget(f"{P}secure_mode", cfg.secure_mode)
        secure_mode = st.checkbox(
            "Secure mode (secret random seeds)",
            key=f"{P}secure_mode",
            help="Draw batches and noise from the operating system's secure randomness instead of the "
            "seed. Runs are no longer repeatable, but nobody can recompute the noise from the "
            "config. Use it for models you will release.",
        )
        app_state.seed_widget(f"{P}max_train", cfg.max_train_examples or 0)
        max_train = st.number_input(
            "Use at most this many training examples (0 = all)",
            step=100,
            key=f"{P}max_train",
            help="A smaller training set trains faster; ε is computed for it.",
        )
    recipe = explore_recipe.render(cfg)

    typed = DPConfig(
        dataset=dataset,
        model=model,
        activation=activation,
        optimizer=optimizer,
        learning_rate=float(learning_rate),
        momentum=float(momentum),
        noise_multiplier=float(noise),
        l2_norm_clip=float(clip),
        batch_size=int(batch),
        epochs=int(epochs),
        delta=float(delta),
        accountant=accountant,
        sampling=sampling,
        seed=int(seed),
        secure_mode=bool(secure_mode),
        max_train_examples=int(max_train) if max_train else None,
        csv_path=csv_path,
        csv_label=csv_label,
        private=cfg.private,
        csv_schema=csv_schema,
        csv_preprocessing_epsilon=csv_epsilon,
        **recipe,
    )
    problems = app_state.out_of_range(typed)
    if problems:
        _stop("Refused, so the settings stay as they were: " + "; ".join(problems) + ".")
    return typed


def _csv_controls(cfg: DPConfig) -> tuple[str, str, Optional[CsvSchema], Optional[float]]:
    """The upload, path, label-column and schema controls of a CSV dataset (path, label, declared schema,
    preprocessing ε share); ends the page until a file is readable and its schema declared or paid for.

    The "CSV file on the server" box is there only when the server has a data folder; every path,
    typed, uploaded or restored, passes ``app_state.check_csv_path`` before it is read.
    """
    joined = app_state.joined()
    st.file_uploader(
        "Upload a CSV file",
        type=["csv", "tsv", "txt"],
        key="explore_csv_upload",
        on_change=keep_upload,
        disabled=not joined,
        help="A table with a header row; one column is the label. It is kept on this server "
        "as yours: only you (and the workshop's host) can train on it or see its name.",
    )
    st.caption(
        upload_limit_text()
        + ("" if joined else " Type your name in the sidebar first: an upload belongs to the person who made it.")
    )
    if "explore_upload_error" in ss:
        _stop(ss["explore_upload_error"])
    kept = csv_drafts.kept(app_state.owner())
    app_state.seed_widget(f"{P}csv_path", cfg.csv_path or kept.csv_path)
    if app_state.server_files_enabled() and not app_state.is_upload(ss[f"{P}csv_path"]):
        csv_path = (
            st.text_input(
                "CSV file on the server",
                key=f"{P}csv_path",
                max_chars=app_state.max_chars(MAX_PATH_CHARS),
                help=f"Filled in by an upload, or a file under {app_state.settings().data_dir}.",
            ).strip()
            or None
        )
    else:
        csv_path = ss[f"{P}csv_path"].strip() or None
        if csv_path:
            st.caption(f"File: {app_state.shown_file(csv_path)}")
        if csv_path and app_state.server_files_enabled():
            st.button("Name a file on the server instead", key="explore_csv_server_file", on_click=_forget_upload)
    csv_drafts.keep(app_state.owner(), active=True)
    wanted = app_state.wanted_file(csv_path)
    if wanted:
        st.info(
            f"These settings came without their file: upload {wanted} (your copy of it) to train. "
            "Its label column and schema are kept."
        )
        app_state.set_input_problem(f"no CSV file: upload {wanted}")
        app_state.finish_page()
    if not csv_path:
        st.info(
            "Upload a CSV file"
            + (
                ", or enter the path of one under the server's data folder."
                if app_state.server_files_enabled()
                else "."
            )
        )
        app_state.set_input_problem("no CSV file chosen")
        app_state.finish_page()
    try:
        csv_path = app_state.check_csv_path(csv_path)
        columns = csv_file_columns(csv_path)
    except UserInputError as exc:
        _stop(str(exc))
    csv_drafts.keep(app_state.owner(), csv_path=csv_path)
    label_seed = cfg.csv_label if cfg.csv_label in columns else kept.label if kept.label in columns else columns[-1]
    app_state.seed_widget(f"{P}csv_label", label_seed)
    if ss[f"{P}csv_label"] not in columns:
        ss[f"{P}csv_label"] = columns[-1]
    csv_label = st.selectbox(
        "Label column", columns, key=f"{P}csv_label", help="The column to predict; every other column is a feature."
    )
    csv_drafts.keep(app_state.owner(), label=csv_label)
    return (csv_path, csv_label, *explore_schema.render(cfg, columns=columns, label=csv_label, stop=_stop))
