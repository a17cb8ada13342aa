"""Explore: slide the DP-SGD knobs and see the projected ε at once, with curves and calibration."""
from __future__ import annotations

import math
from typing import Any, Callable

import streamlit as st

import app_state
from dpcore import accounting, charts, explain, presets, uploads
from dpcore.availability import dataset_problem
from dpcore.config import MAX_BATCH_SIZE, MAX_CLIP, MAX_EPOCHS, MAX_NOISE, DPConfig
from dpcore.data import csv_file_columns, dataset_info
from dpcore.errors import UserInputError
from dpcore.dpsgd.models import MODEL_TITLES, supported_models

ss = st.session_state
P = app_state.WIDGET_PREFIX
DATASETS = ("digits", "fashion_mnist", "mnist", "csv")
CSV_TITLE = "Your CSV file (tabular)"
MODEL_LABELS = {"logreg": "Logistic regression", "mlp": "MLP", "cnn": "CNN", "lenet5": "LeNet-5",
                "scatternet_linear": "ScatterNet + linear", "scatternet_cnn": "ScatterNet + CNN"}
NOISE_SLIDER_MIN = 0.1
NOISE_GRID = tuple(round(0.4 * (16.0 / 0.4) ** (i / 15), 4) for i in range(16))  # geometric, 0.4 to 16


# -- widget helpers ------------------------------------------------------------------------


def make_private() -> None:
    """Turn a loaded non-private baseline config back into a private one."""
    cfg = app_state.config()
    # A baseline may carry no noise (0, shown clamped to the entry's minimum): start from the default.
    noise = cfg.noise_multiplier if cfg.noise_multiplier >= NOISE_SLIDER_MIN else DPConfig().noise_multiplier
    app_state.set_config(cfg.replace(private=True, noise_multiplier=noise))


def _seed(key: str, value: Any) -> None:
    """Give a widget its value from the config the first time it renders after a config change."""
    if key not in ss:
        ss[key] = value


def _copy(source: str, target: str) -> Callable[[], None]:
    """A widget callback copying one session-state key to another (slider -> number entry)."""
    def callback() -> None:
        ss[target] = ss[source]
    return callback


def paired(label: str, field: str, value: Any, *, lo: Any, hi: Any, step: Any, exact_lo: Any,
           exact_hi: Any, exact_step: Any, fmt: str, help: str) -> Any:
    """A slider and a precise number entry for one field, kept in sync; returns the exact value."""
    slider_key, number_key = f"{P}{field}_slider", f"{P}{field}_exact"
    _seed(number_key, min(max(value, exact_lo), exact_hi))
    ss[slider_key] = min(max(ss[number_key], lo), hi)
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.slider(label, min_value=lo, max_value=hi, step=step, key=slider_key, help=help,
                on_change=_copy(slider_key, number_key))
    right.number_input(f"{label} (exact)", min_value=exact_lo, max_value=exact_hi, step=exact_step,
                       format=fmt, key=number_key, label_visibility="collapsed")
    return ss[number_key]


def apply_preset(key: str) -> None:
    """Load a recipe preset into every control."""
    preset = presets.get_preset(key)
    app_state.set_config(preset.config)
    ss["dpx_notice"] = f"Preset applied: {preset.title} ({preset.description})"


def apply_noise(value: float) -> None:
    """Set the noise multiplier (from Calibrate), keeping everything else."""
    app_state.set_config(app_state.config().replace(noise_multiplier=value))
    ss["dpx_notice"] = f"Noise multiplier set to {value:.4g}."


def on_dataset_change() -> None:
    """Keep the model valid for the new dataset's input shape."""
    if ss[f"{P}dataset"] == "csv":
        return  # the model list follows once the file is known
    allowed = supported_models(dataset_info(ss[f"{P}dataset"]).input_shape)
    if ss.get(f"{P}model") not in allowed:
        ss[f"{P}model"] = _fallback_model(allowed)


def keep_upload() -> None:
    """Check and keep an uploaded CSV, then point the CSV path at the kept copy."""
    upload = ss.get("explore_csv_upload")
    if upload is None:
        return
    try:
        path = uploads.save_csv(upload.getvalue(), name=upload.name)
    except UserInputError as exc:
        ss["explore_upload_error"] = str(exc)
        return
    ss.pop("explore_upload_error", None)
    ss[f"{P}csv_path"] = str(path)
    ss["dpx_notice"] = f"Uploaded {upload.name}: kept as {path.name}."


def _fallback_model(allowed: tuple[str, ...]) -> str:
    """The default model where the dataset allows it, else the first model that fits."""
    return DPConfig().model if DPConfig().model in allowed else allowed[0]


def noise_sweep(n: int, batch_size: int, epochs: int, delta: float, accountant: str,
                sampling: str) -> tuple[float, ...]:
    """ε at each noise multiplier of NOISE_GRID (cached point by point in dpcore.accounting).

    A status line is updated between points: every Streamlit call is a point where a newer slider
    change can interrupt this run, so a slow sweep (PLD) never holds up the next projected ε.
    """
    status = st.empty()
    values = []
    for i, sigma in enumerate(NOISE_GRID):
        if i % 4 == 0:
            status.caption(f"Computing ε for {len(NOISE_GRID)} noise multipliers… {i}/{len(NOISE_GRID)}")
        values.append(accounting.epsilon(n=n, batch_size=batch_size, noise_multiplier=sigma, epochs=epochs,
                                         delta=delta, accountant=accountant, sampling=sampling,
                                         interactive=True))
    status.empty()
    return tuple(values)


# -- page ----------------------------------------------------------------------------------

st.title("Explore")
st.caption("Move the knobs of DP-SGD and watch the privacy guarantee ε it would spend. "
           "Nothing trains here; the Train page runs the current settings.")

cfg = app_state.config()

preset_cols = st.columns(len(presets.PRESETS) + 1, vertical_alignment="center")
preset_cols[0].markdown("**Presets**")
for col, preset in zip(preset_cols[1:], presets.PRESETS):
    col.button(preset.title, key=f"preset_{preset.key}", on_click=apply_preset, args=(preset.key,),
               help=f"{preset.description} From: {preset.source}.", width="stretch")

controls, results = st.columns([5, 6], gap="large")

with controls:
    noise = paired("Noise multiplier", "noise_multiplier", cfg.noise_multiplier, lo=NOISE_SLIDER_MIN, hi=10.0,
                   step=0.05, exact_lo=0.001, exact_hi=MAX_NOISE, exact_step=0.01, fmt="%.3f",
                   help="σ: the Gaussian noise added to each step's summed gradients, in units of the clip norm.")
    clip = paired("Clip norm", "l2_norm_clip", cfg.l2_norm_clip, lo=0.1, hi=10.0, step=0.1,
                  exact_lo=0.001, exact_hi=MAX_CLIP, exact_step=0.1, fmt="%.3f",
                  help="C: every example's gradient is scaled down to at most this L2 norm. "
                       "It does not change ε, but it sets how much signal survives the noise.")
    batch = paired("Batch size", "batch_size", cfg.batch_size, lo=1, hi=1024, step=1,
                   exact_lo=1, exact_hi=MAX_BATCH_SIZE, exact_step=1, fmt="%d",
                   help="Expected examples per step (with Poisson sampling each example joins with "
                        "probability batch size / n).")
    epochs = paired("Epochs", "epochs", cfg.epochs, lo=1, hi=100, step=1, exact_lo=1, exact_hi=MAX_EPOCHS,
                    exact_step=1, fmt="%d", help="Passes over the training data; each costs privacy.")

    left, right = st.columns(2)
    _seed(f"{P}learning_rate", cfg.learning_rate)
    learning_rate = left.number_input("Learning rate", min_value=1e-6, max_value=100.0, step=0.001,
                                      format="%.4g", key=f"{P}learning_rate")
    _seed(f"{P}delta", cfg.delta)
    delta = right.number_input("δ (delta)", min_value=1e-15, max_value=0.5, step=1e-6, format="%.1e",
                               key=f"{P}delta",
                               help="The small chance the ε promise may fail; keep it well below 1/n.")

    left, right = st.columns(2)
    _seed(f"{P}dataset", cfg.dataset)
    dataset = left.selectbox("Dataset", DATASETS, key=f"{P}dataset", on_change=on_dataset_change,
                             format_func=lambda name: CSV_TITLE if name == "csv" else dataset_info(name).title)
    csv_path = csv_label = None
    if dataset == "csv":
        st.file_uploader("Upload a CSV file", type=["csv", "tsv", "txt"], key="explore_csv_upload",
                         on_change=keep_upload, help="A table with a header row; one column is the label. "
                         "It is kept on this server beside the run history so runs can train on it.")
        if "explore_upload_error" in ss:
            st.error(ss["explore_upload_error"])
        _seed(f"{P}csv_path", cfg.csv_path or "")
        csv_path = st.text_input("CSV file on the server", key=f"{P}csv_path",
                                 help="Filled in by an upload, or type the path of a file on this server."
                                 ).strip() or None
        if not csv_path:
            st.info("Upload a CSV file, or enter the path of one on this server.")
            app_state.finish_page()
        try:
            columns = csv_file_columns(csv_path)
        except UserInputError as exc:
            st.error(str(exc))
            app_state.finish_page()
        _seed(f"{P}csv_label", cfg.csv_label if cfg.csv_label in columns else columns[-1])
        if ss[f"{P}csv_label"] not in columns:
            ss[f"{P}csv_label"] = columns[-1]
        csv_label = st.selectbox("Label column", columns, key=f"{P}csv_label",
                                 help="The column to predict; every other column is a feature.")
    try:
        info = dataset_info(dataset, csv_path=csv_path, csv_label=csv_label)
    except UserInputError as exc:
        st.error(str(exc))
        app_state.finish_page()
    model_options = supported_models(info.input_shape)
    _seed(f"{P}model", cfg.model if cfg.model in model_options else _fallback_model(model_options))
    if ss[f"{P}model"] not in model_options:
        ss[f"{P}model"] = _fallback_model(model_options)
    model = right.selectbox("Model", model_options, key=f"{P}model", format_func=MODEL_LABELS.get,
                            help="Only models that fit this dataset's input shape are offered: "
                                 + "; ".join(MODEL_TITLES[m] for m in model_options) + ".")

    left, right = st.columns(2)
    _seed(f"{P}optimizer", cfg.optimizer)
    optimizer = left.selectbox("Optimizer", ("sgd", "momentum", "adam"), key=f"{P}optimizer",
                               format_func={"sgd": "SGD", "momentum": "SGD with momentum", "adam": "Adam"}.get)
    momentum = cfg.momentum
    if optimizer == "momentum":
        _seed(f"{P}momentum", cfg.momentum)
        momentum = right.number_input("Momentum", min_value=0.0, max_value=0.999, step=0.05, format="%.3f",
                                      key=f"{P}momentum")

    left, right = st.columns(2)
    _seed(f"{P}accountant", cfg.accountant)
    accountant = left.radio("Accountant", ("rdp", "pld"), key=f"{P}accountant", horizontal=True,
                            format_func=str.upper,
                            help="RDP: Rényi DP, the classic DP-SGD accountant. PLD: privacy loss "
                                 "distributions, tighter.")
    _seed(f"{P}sampling", cfg.sampling)
    sampling = right.radio("Sampling", ("poisson", "shuffle"), key=f"{P}sampling", horizontal=True,
                           format_func={"poisson": "Poisson", "shuffle": "shuffle"}.get,
                           help="How batches are drawn; the trainer draws them exactly this way.")

    with st.expander("More settings"):
        left, right = st.columns(2)
        _seed(f"{P}activation", cfg.activation)
        activation = left.selectbox("Activation", ("relu", "tanh"), key=f"{P}activation")
        _seed(f"{P}seed", cfg.seed)
        seed = right.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=f"{P}seed")
        _seed(f"{P}secure_mode", cfg.secure_mode)
        secure_mode = st.checkbox(
            "Secure mode (secret random seeds)", key=f"{P}secure_mode",
            help="Draw batches and noise from the operating system's secure randomness instead of the "
                 "seed. Runs are no longer repeatable, but nobody can recompute the noise from the "
                 "config. Use it for models you will release.")
        _seed(f"{P}max_train", cfg.max_train_examples or 0)
        max_train = st.number_input("Use at most this many training examples (0 = all)", min_value=0,
                                    max_value=10**9, step=100, key=f"{P}max_train",
                                    help="A smaller training set trains faster; ε is computed for it.")

try:
    new_cfg = DPConfig(
        dataset=dataset, model=model, activation=activation, optimizer=optimizer,
        learning_rate=float(learning_rate), momentum=float(momentum), noise_multiplier=float(noise),
        l2_norm_clip=float(clip), batch_size=int(batch), epochs=int(epochs), delta=float(delta),
        accountant=accountant, sampling=sampling, seed=int(seed), secure_mode=bool(secure_mode),
        max_train_examples=int(max_train) if max_train else None,
        csv_path=csv_path, csv_label=csv_label, private=cfg.private,
    )
except UserInputError as exc:
    results.error(str(exc))
    app_state.finish_page()
ss[app_state.CONFIG_KEY] = new_cfg

with results:
    problem = dataset_problem(new_cfg.dataset)
    if problem:
        st.warning(problem)
    n = app_state.train_size(new_cfg)
    if n is None:
        app_state.finish_page()
    if not new_cfg.private:
        st.metric("Projected ε", "∞")
        st.warning("This config is a non-private baseline (no clipping, no noise), loaded from a run, "
                   "a file or a link. " + explain.epsilon_reading(math.inf, new_cfg.delta))
        st.button("Make it private", key="explore_make_private", on_click=make_private, type="primary")
        app_state.finish_page()
    try:
        report = accounting.epsilon_report(
            n=n, batch_size=new_cfg.batch_size, noise_multiplier=new_cfg.noise_multiplier,
            epochs=new_cfg.epochs, delta=new_cfg.delta, accountant=new_cfg.accountant,
            sampling=new_cfg.sampling, interactive=True)
    except UserInputError as exc:
        st.metric("Projected ε", "—")
        st.error(str(exc))
        app_state.finish_page()
    eps = report.epsilon
    steps = accounting.dp_steps(n=n, batch_size=new_cfg.batch_size, epochs=new_cfg.epochs,
                                sampling=new_cfg.sampling)
    m1, m2, m3 = st.columns(3)
    m1.metric("Projected ε", explain.format_epsilon(eps),
              help="Privacy budget spent by the whole run, for the accountant and sampling below.")
    m2.metric("δ", f"{new_cfg.delta:.1e}")
    m3.metric("Noisy steps", f"{steps:,}",
              help=f"Training set n = {n:,}; sampling rate q = {report.sampling_probability:.4g}.")
    st.markdown(explain.epsilon_reading(eps, new_cfg.delta))
    st.caption(explain.accounting_note(new_cfg.accountant, new_cfg.sampling))
    if report.approximate:
        st.caption("Approximate: the interactive PLD uses a coarse grid (1e-3) with pessimistic "
                   "rounding, so this ε is a slightly loose upper bound (within about 1%); training "
                   "reports the precise grid.")
        if st.button("Compute the precise PLD ε", key="explore_precise"):
            precise = accounting.epsilon_for_config(new_cfg, n=n)
            st.info(f"Precise PLD ε (grid 1e-4) = {precise:.4f}, against {eps:.4f} on the interactive grid.")
    for warning in explain.risk_warnings(new_cfg, n=n, epsilon=eps):
        (st.error if warning.level == "error" else st.warning)(warning.message)

with results:
    overlay = st.toggle("Overlay RDP and PLD", key="explore_overlay",
                        help="Both accountants for the current sampling; PLD is the tighter one.")
    accountants = ("rdp", "pld") if overlay else (new_cfg.accountant,)
    label = {"rdp": "RDP", "pld": "PLD"}
    # Only the open tab is computed: the noise sweep costs many accountant queries.
    tab_epochs, tab_noise = st.tabs(["ε vs epochs", "ε vs noise multiplier"], key="explore_tab",
                                    on_change="rerun")
    if tab_epochs.open:
        per_epoch = {
            f"{label[a]}, {new_cfg.sampling}": accounting.epsilon_per_epoch(
                n=n, batch_size=new_cfg.batch_size, noise_multiplier=new_cfg.noise_multiplier,
                epochs=new_cfg.epochs, delta=new_cfg.delta, accountant=a, sampling=new_cfg.sampling,
                interactive=True)
            for a in accountants
        }
        tab_epochs.plotly_chart(charts.epsilon_vs_epochs(per_epoch, current_epochs=new_cfg.epochs,
                                                         delta=new_cfg.delta),
                                width="stretch", key="chart_eps_epochs")
    if tab_noise.open:
        with tab_noise:
            sweep = {f"{label[a]}, {new_cfg.sampling}": noise_sweep(n, new_cfg.batch_size, new_cfg.epochs,
                                                                     new_cfg.delta, a, new_cfg.sampling)
                     for a in accountants}
            st.plotly_chart(charts.epsilon_vs_noise(NOISE_GRID, sweep, current_noise=new_cfg.noise_multiplier,
                                                    current_epsilon=eps, delta=new_cfg.delta),
                            width="stretch", key="chart_eps_noise")

    st.subheader("Calibrate")
    st.caption("Type the ε you can afford; get the smallest noise multiplier that meets it "
               "for the other settings.")
    left, mid, right = st.columns([2, 1, 2], vertical_alignment="bottom")
    target = left.number_input("Target ε", min_value=0.01, max_value=1000.0, value=1.0, step=0.1,
                               format="%.3f", key="calibrate_target")
    if mid.button("Calibrate", key="calibrate_run"):
        try:
            found = accounting.calibrate_noise(
                target_epsilon=float(target), n=n, batch_size=new_cfg.batch_size, epochs=new_cfg.epochs,
                delta=new_cfg.delta, accountant=new_cfg.accountant, sampling=new_cfg.sampling,
                interactive=True)
            ss["calibration"] = (float(target), found.noise_multiplier, found.epsilon)
        except UserInputError as exc:
            ss["calibration"] = None
            st.error(str(exc))
    found = ss.get("calibration")
    if found and found[0] == float(target):
        # Round up, never down: a smaller σ would overshoot the target ε.
        sigma = math.ceil(found[1] * 10_000) / 10_000
        right.button(f"Apply σ = {sigma:.4f}", key="calibrate_apply", type="primary",
                     on_click=apply_noise, args=(sigma,))
        st.success(f"Noise multiplier {found[1]:.4f} gives ε = {found[2]:.4f} ≤ {found[0]:g} "
                   f"({new_cfg.accountant.upper()}, {new_cfg.sampling}).")
