"""Explore's results for one DPConfig: the projected ε and what it means, ε curves, and calibration."""

from __future__ import annotations

import json
import math

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import app_state
from dpcore.config import ACCOUNTANT_TITLES, ACCOUNTANTS, DPConfig
from dpcore.data.datasets import dataset_problem
from dpcore.errors import UserInputError
from dpcore.privacy import accounting, calibration, explain
from dpcore.views import charts
from pages import explore_recipe, explore_schema
from pages.explore_controls import NOISE_SLIDER_MIN

ss = st.session_state
# The noise multipliers of the ε-vs-noise curve: round values, about evenly spaced on its log axis, so that
# clicking a point sets a σ a person would type.
NOISE_GRID = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0)
TARGET_KEY = "calibrate_target"
DEFAULT_TARGET_EPSILON = 1.0
CHART_TARGET_KEY = "explore_chart_target"  # the target ε the charts were last drawn with
NOISE_CHART_KEY = "chart_eps_noise"
# The container, at the top of the controls, of the one-line ε that stays in view on a phone (pages/explore.py).
EPSILON_LINE_KEY = "explore_epsilon_line"
# A PLD curve composes one more epoch per point, so its cost grows faster than the epochs (999 epochs
# took 14 s): up to the epochs slider's reach it is drawn on every change, beyond that on request.
PLD_CURVE_AUTO_EPOCHS = 100


def make_private() -> None:
    """Turn a loaded non-private baseline config back into a private one."""
    cfg = app_state.config()
    # A baseline may carry no noise (0, shown clamped to the entry's minimum): start from the default.
    noise = cfg.noise_multiplier if cfg.noise_multiplier >= NOISE_SLIDER_MIN else DPConfig().noise_multiplier
    _update_or_report("The config stays a baseline", private=True, noise_multiplier=noise)


def apply_noise(value: float) -> None:
    """Set the noise multiplier (from Calibrate or a click on a chart), keeping everything else."""
    if _update_or_report("The noise multiplier stays as it was", noise_multiplier=value):
        app_state.post_notice(f"Noise multiplier set to {value:g}.")


def _update_or_report(unchanged: str, **changes: object) -> bool:
    """Apply ``changes`` to the config; a value the other settings refuse (a σ below a schedule's floor or
    too close to the count's noise) is reported after ``unchanged`` instead. Whether they were applied."""
    try:
        app_state.update_config(**changes)
    except UserInputError as exc:
        app_state.post_error(f"{unchanged}: {exc}")
        return False
    return True


def use_clicked_noise() -> None:
    """A click on a point of the ε-vs-noise curve sets the noise multiplier to that point's σ."""
    points = ss[NOISE_CHART_KEY].selection.points
    if points and float(points[0]["x"]) != app_state.config().noise_multiplier:
        apply_noise(float(points[0]["x"]))


def target_epsilon() -> float:
    """The Calibrate target, which the charts draw as a line (its default before the box is first shown)."""
    return float(ss.get(TARGET_KEY, DEFAULT_TARGET_EPSILON))


def render(cfg: DPConfig, *, epsilon_line: DeltaGenerator) -> None:
    """Everything Explore shows about ``cfg``; ends the page early where there is no ε to show.

    ``epsilon_line`` gets the projected ε in one line, for the narrow screens where it stays beside the sliders.
    """
    problem = dataset_problem(cfg.dataset)
    if problem:
        st.warning(problem)
    n = app_state.train_size(cfg)
    if n is None:
        app_state.finish_page()
    try:
        cfg.check_dataset_size(n)
    except UserInputError as exc:
        if exc.field == "delta":  # no ε reading at all: at δ ≥ 1/n any ε would promise nothing
            st.error(str(exc))
            app_state.set_input_problem(str(exc))
            app_state.finish_page()
    if not cfg.private:
        epsilon_line.markdown(f"ε = **{explain.format_epsilon(math.inf)}**: a non-private baseline")
        st.metric("Projected ε", explain.format_epsilon(math.inf))
        st.warning(
            "This config is a non-private baseline (no clipping, no noise), loaded from a run, "
            "a file or a link. " + explain.epsilon_reading(math.inf, cfg.delta)
        )
        st.button("Make it private", key="explore_make_private", on_click=make_private, type="primary")
        app_state.finish_page()
    try:
        report = app_state.epsilon_report(cfg, n=n)
    except UserInputError as exc:
        epsilon_line.markdown(f"ε = **{explain.format_epsilon(None)}** (see the message below)")
        st.metric("Projected ε", explain.format_epsilon(None))
        st.error(str(exc))
        app_state.finish_page()
    # Worded apart from the "Projected ε" metric, which is what tests and readers look that up by.
    epsilon_line.markdown(
        f"ε = **{explain.format_epsilon(report.epsilon)}** (projected) · δ = {cfg.delta:.0e} · "
        f"{report.steps:,} noisy steps"
    )
    projected_epsilon(cfg, n=n, report=report)
    explore_recipe.results(cfg, n=n, report=report)
    curves(cfg, n=n, epsilon=report.epsilon)
    calibrate(cfg, n=n)


def projected_epsilon(cfg: DPConfig, *, n: int, report: accounting.EpsilonReport) -> None:
    """The projected ε with δ and the step count, what it promises, and the risks of these settings."""
    eps = report.epsilon
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "Projected ε",
        explain.format_epsilon(eps),
        help="Privacy budget spent by the whole run, for the accountant and sampling below.",
    )
    m2.metric("δ", f"{cfg.delta:.1e}")
    m3.metric(
        "Noisy steps",
        f"{report.steps:,}",
        help=f"Training set n = {n:,}; sampling rate q = {report.sampling_probability:.4g}.",
    )
    explore_schema.show_split(cfg, n=n)
    st.markdown(explain.epsilon_reading(eps, cfg.delta))
    st.caption(explain.accounting_note(cfg.accountant, cfg.sampling))
    if report.rounded_up:
        st.caption(
            "Approximate: one step's Rényi divergence is below what dp_accounting resolves in double "
            "precision (it rounds to 0), so a rounding allowance was added: this ε is an upper bound, "
            "slightly loose."
        )
    elif report.approximate:
        st.caption(
            "Approximate: the interactive PLD uses a coarse grid (1e-3) with pessimistic "
            "rounding, so this ε is a slightly loose upper bound (within about 1%); training "
            "reports the precise grid."
        )
        if st.button("Compute the precise PLD ε", key="explore_precise"):
            try:
                with st.spinner("Computing the precise PLD ε…", show_time=True):
                    precise = app_state.epsilon_report(cfg, n=n, interactive=False)
                grid = f"{precise.discretization:.0e}".replace("e-0", "e-")
                st.info(
                    f"Precise PLD ε (grid {grid}) = "
                    f"{explain.format_epsilon(precise.epsilon, digits=4)}, against "
                    f"{explain.format_epsilon(eps, digits=4)} on the interactive grid."
                )
            except UserInputError as exc:
                st.error(str(exc))
    for warning in explain.risk_warnings(cfg, n=n, epsilon=eps):
        (st.error if warning.level == "error" else st.warning)(warning.message)


def curves(cfg: DPConfig, *, n: int, epsilon: float) -> None:
    """ε against epochs or against the noise multiplier, for this config's accountant or both."""
    overlay = st.toggle(
        "Overlay RDP and PLD",
        key="explore_overlay",
        help="Both accountants for the current sampling; PLD is the tighter one.",
    )
    configs = {
        f"{ACCOUNTANT_TITLES[a]}, {cfg.sampling}": cfg.replace(accountant=a)
        for a in (ACCOUNTANTS if overlay else (cfg.accountant,))
    }
    target = ss[CHART_TARGET_KEY] = target_epsilon()
    # Only the open tab is computed: the noise sweep costs many accountant queries.
    tab_epochs, tab_noise = st.tabs(["ε vs epochs", "ε vs noise multiplier"], key="explore_tab", on_change="rerun")
    if tab_epochs.open:
        with tab_epochs:
            epochs_curve(cfg, configs, n=n, target=target)
    if tab_noise.open:
        with tab_noise:
            sweep = {label: noise_sweep(c, n=n) for label, c in configs.items()}
            st.plotly_chart(
                charts.epsilon_vs_noise(
                    NOISE_GRID,
                    sweep,
                    current_noise=cfg.noise_multiplier,
                    current_epsilon=epsilon,
                    delta=cfg.delta,
                    target_epsilon=target,
                ),
                width="stretch",
                key=NOISE_CHART_KEY,
                on_select=use_clicked_noise,
                selection_mode="points",
            )
            st.caption(
                "Click a point of a curve to use its noise multiplier. The dashed line is the Calibrate target below."
            )
            if any(math.isnan(v) for values in sweep.values() for v in values):
                st.caption(
                    "σ values the other settings or the accountant refuse (below the noise floor, at or above "
                    "twice the count noise multiplier, or beyond the accountant's bounds) have no point."
                )


def epochs_curve(cfg: DPConfig, configs: dict[str, DPConfig], *, n: int, target: float) -> None:
    """The ε-vs-epochs chart of ``configs``; a long PLD curve only on request, and under a spinner."""
    slow = cfg.epochs > PLD_CURVE_AUTO_EPOCHS and any(c.accountant == "pld" for c in configs.values())
    if slow and not st.button(
        f"Draw ε after each of the {cfg.epochs} epochs",
        key="explore_draw_pld",
        help="Composing the PLD accountant epoch by epoch takes seconds at this many epochs.",
    ):
        st.info(
            f"With PLD, the curve over {cfg.epochs} epochs takes several seconds to compute, so it is drawn "
            f"on request (automatically up to {PLD_CURVE_AUTO_EPOCHS} epochs). The projected ε above is "
            "up to date."
        )
        return
    try:
        with st.spinner(f"Computing ε after each of the {cfg.epochs} epochs…", show_time=True):
            per_epoch = {label: app_state.epsilon_curve(c, n=n) for label, c in configs.items()}
    except UserInputError as exc:
        st.error(str(exc))
        return
    st.plotly_chart(
        charts.epsilon_vs_epochs(per_epoch, current_epochs=cfg.epochs, delta=cfg.delta, target_epsilon=target),
        width="stretch",
        key="chart_eps_epochs",
    )


def noise_sweep(cfg: DPConfig, *, n: int) -> tuple[float, ...]:
    """ε of ``cfg`` at each noise multiplier of NOISE_GRID (each answer kept by the accountant processes);
    NaN (no point) where the other settings or the accountant refuse that σ (below a schedule's floor,
    or too small for the PLD grid, say).

    A status line is updated between points: every Streamlit call is a point where a newer slider
    change can interrupt this run, so a slow sweep (PLD) never holds up the next projected ε.
    """
    status = st.empty()
    values = []
    for i, sigma in enumerate(NOISE_GRID):
        if i % 4 == 0:
            status.caption(f"Computing ε for {len(NOISE_GRID)} noise multipliers… {i}/{len(NOISE_GRID)}")
        try:
            values.append(app_state.epsilon(cfg.replace(noise_multiplier=sigma), n=n))
        except UserInputError:
            values.append(math.nan)
    status.empty()
    return tuple(values)


@st.fragment
def calibrate(cfg: DPConfig, *, n: int) -> None:
    """The smallest noise multiplier for a target ε; a fragment, so its widgets rerun only this part."""
    st.subheader("Calibrate")
    # With a schedule the calibrated noise multiplier is the first step's, σ_0, from which it decays.
    sigma_name = "σ_0" if cfg.noise_schedule != "constant" else "σ"
    st.caption(
        "Type the ε you can afford; get the smallest noise multiplier that meets it "
        "for the other settings."
        + (
            " With a noise schedule that is σ_0, the first step's; the schedule decays from it."
            if sigma_name == "σ_0"
            else ""
        )
    )
    left, mid, right = st.columns([3, 2, 3], vertical_alignment="bottom")
    target = left.number_input(
        "Target ε",
        min_value=0.01,
        max_value=1000.0,
        value=DEFAULT_TARGET_EPSILON,
        step=0.1,
        format="%.3f",
        key=TARGET_KEY,
    )
    if float(target) != ss.get(CHART_TARGET_KEY):
        st.rerun(scope="app")  # a new target: redraw the charts' target line too
    if mid.button("Calibrate", key="calibrate_run", width="stretch"):
        try:
            found = app_state.calibrate(cfg, target_epsilon=float(target), n=n)
            # The σ offered is the found one rounded up, so its ε is at most the found one's.
            sigma = calibration.offered_noise(found.noise_multiplier)
            ss["calibration"] = (float(target), _calibration_basis(cfg), sigma, found.epsilon)
        except UserInputError as exc:
            ss["calibration"] = None
            st.error(str(exc))
    found = ss.get("calibration")
    # A result holds only for the target and the other settings it was found for.
    if found and found[:2] == (float(target), _calibration_basis(cfg)):
        found_target, sigma, spent = found[0], found[2], found[3]
        shown_sigma = f"{sigma_name} = {calibration.noise_text(sigma)}"
        if right.button(f"Apply {shown_sigma}", key="calibrate_apply", type="primary", width="stretch"):
            apply_noise(sigma)
            st.rerun()  # the whole page, so the controls, ε and curves follow the new σ
        st.success(
            f"Noise multiplier {shown_sigma} gives ε at most {explain.format_epsilon(spent, digits=4)} "
            f"≤ {found_target:g} ({ACCOUNTANT_TITLES[cfg.accountant]}, {cfg.sampling})."
        )


def _calibration_basis(cfg: DPConfig) -> str:
    """Every setting but the noise multiplier, as text: what a calibrated σ depends on."""
    settings = cfg.to_dict()
    settings.pop("noise_multiplier")
    return json.dumps(settings, sort_keys=True, default=str)
