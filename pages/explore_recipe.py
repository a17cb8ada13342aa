"""Explore's recipe settings (noise schedule, adaptive clipping, ε budget, validation split): their
controls, read back as config fields, and what they change in the projected run."""

from __future__ import annotations

from typing import Any

import streamlit as st

import app_state
from dpcore.config import CLIP_UPDATE_TITLES, CLIP_UPDATES, NOISE_SCHEDULE_TITLES, NOISE_SCHEDULES, DPConfig
from dpcore.privacy import accounting, explain
from dpcore.privacy.noise import NOISE_LEVEL_RATIO, noise_split_for_config
from dpcore.views import charts

ss = st.session_state
P = app_state.WIDGET_PREFIX
EXPANDER_TITLE = "Recipe settings: noise schedule, adaptive clipping, budget, validation, averaging"
# The budget a person starts from when they tick the box (then type their own).
DEFAULT_EPSILON_BUDGET = 1.0
# The weight-averaging decay a person starts from when they tick the box (the shipped CNN recipe's).
DEFAULT_WEIGHT_AVERAGING_DECAY = 0.97


def render(cfg: DPConfig) -> dict[str, Any]:
    """The recipe controls in one expander, seeded from ``cfg``; returns the config fields they hold.

    A setting that is switched off keeps its values from ``cfg`` (they travel in exports and links but
    change nothing), so switching it back on finds them again.
    """
    with st.expander(EXPANDER_TITLE):
        st.markdown("**Noise schedule**")
        app_state.seed_widget(f"{P}noise_schedule", cfg.noise_schedule)
        schedule = st.radio(
            "Noise schedule",
            NOISE_SCHEDULES,
            key=f"{P}noise_schedule",
            horizontal=True,
            format_func=NOISE_SCHEDULE_TITLES.get,
            label_visibility="collapsed",
            help="Constant: every step adds σ. Time decay: σ_t = max(floor, σ_0 / (1 + r·t)). Step decay: "
            "σ_t = max(floor, σ_0 · (1 − r)^t); t counts steps from 0, and σ_0 is the noise multiplier above.",
        )
        decay_rate, floor = cfg.noise_decay_rate, cfg.noise_floor
        if schedule != "constant":
            left, right = st.columns(2)
            app_state.seed_widget(f"{P}noise_decay_rate", cfg.noise_decay_rate)
            decay_rate = left.number_input(
                "Decay rate r",
                step=0.0005,
                format="%.4g",
                key=f"{P}noise_decay_rate",
                help="How fast σ_t falls per step (0 ≤ r < 1).",
            )
            app_state.seed_widget(f"{P}noise_floor", cfg.noise_floor)
            floor = right.number_input(
                "Noise floor",
                step=0.05,
                format="%.3f",
                key=f"{P}noise_floor",
                help="σ_t never falls below this; at most σ_0.",
            )
            st.caption("The noise multiplier above is σ_0, the first step's; ε composes every step's σ_t.")

        st.markdown("**Adaptive clipping**")
        app_state.seed_widget(f"{P}adaptive_clipping", cfg.adaptive_clipping)
        adaptive = st.checkbox(
            "Adapt the clip norm to a quantile of the gradient norms",
            key=f"{P}adaptive_clipping",
            help="Andrew et al. (NeurIPS 2021): each step moves the clip norm towards the target quantile of "
            "the per-example gradient norms, from a noisy count of the examples under it. The clip norm "
            "above is where it starts.",
        )
        quantile, clip_rate = cfg.target_unclipped_quantile, cfg.clip_learning_rate
        clip_update, count_noise = cfg.clip_update, cfg.count_noise_multiplier
        if adaptive:
            left, right = st.columns(2)
            app_state.seed_widget(f"{P}target_unclipped_quantile", cfg.target_unclipped_quantile)
            quantile = left.number_input(
                "Target quantile",
                step=0.05,
                format="%.3f",
                key=f"{P}target_unclipped_quantile",
                help="The target unclipped quantile: the share of examples whose "
                "gradient should be left unclipped (between 0 and 1).",
            )
            app_state.seed_widget(f"{P}clip_learning_rate", cfg.clip_learning_rate)
            clip_rate = right.number_input(
                "Clip learning rate",
                step=0.01,
                format="%.4g",
                key=f"{P}clip_learning_rate",
                help="How far each step moves the clip norm.",
            )
            left, right = st.columns(2)
            app_state.seed_widget(f"{P}clip_update", cfg.clip_update)
            clip_update = left.radio(
                "Clip update",
                CLIP_UPDATES,
                key=f"{P}clip_update",
                horizontal=True,
                format_func=CLIP_UPDATE_TITLES.get,
                help="Linear: C − η·(share unclipped − target). Geometric: C · exp(−η·(share unclipped − target)).",
            )
            app_state.seed_widget(f"{P}count_noise_multiplier", cfg.count_noise_multiplier)
            count_noise = right.number_input(
                "Count noise σ_b",
                step=0.5,
                format="%.3f",
                key=f"{P}count_noise_multiplier",
                help="The count noise multiplier: noise on the count of unclipped "
                "examples; above σ/2 (the paper suggests about batch size / 20).",
            )

        st.markdown("**Privacy budget**")
        app_state.seed_widget(f"{P}budget_on", cfg.epsilon_budget is not None)
        budget_on = st.checkbox(
            "Stop training before an epoch would exceed an ε budget",
            key=f"{P}budget_on",
            help="Before each epoch the trainer asks the accountant whether it would "
            'exceed the budget; if so the run ends there, as "budget reached".',
        )
        budget = None
        if budget_on:
            app_state.seed_widget(
                f"{P}epsilon_budget", cfg.epsilon_budget if cfg.epsilon_budget is not None else DEFAULT_EPSILON_BUDGET
            )
            budget = st.number_input("ε budget", step=0.1, format="%.3f", key=f"{P}epsilon_budget")

        st.markdown("**Validation split**")
        app_state.seed_widget(f"{P}validation_fraction", cfg.validation_fraction)
        validation = st.number_input(
            "Validation fraction",
            step=0.05,
            format="%.2f",
            key=f"{P}validation_fraction",
            help="The share of the training rows held out to report validation "
            "metrics each epoch (0: none). They are not trained on, so n, and ε, "
            "count only the rest.",
        )
        st.markdown("**Weight averaging**")
        app_state.seed_widget(f"{P}averaging_on", cfg.weight_averaging_decay is not None)
        averaging_on = st.checkbox(
            "Evaluate and keep a moving average of the weights",
            key=f"{P}averaging_on",
            help="An exponential moving average of every step's weights, used for each epoch's test and "
            "validation figures and kept as the model. It only post-processes the noisy weights the "
            "steps released, so it costs no ε.",
        )
        averaging = None
        if averaging_on:
            app_state.seed_widget(
                f"{P}weight_averaging_decay",
                cfg.weight_averaging_decay
                if cfg.weight_averaging_decay is not None
                else DEFAULT_WEIGHT_AVERAGING_DECAY,
            )
            averaging = st.number_input(
                "Averaging decay",
                step=0.01,
                format="%.4g",
                key=f"{P}weight_averaging_decay",
                help="Each step's weights enter the average with weight 1 − decay "
                "(between 0 and 1; 0.97 averages over about the last 33 steps).",
            )
    return dict(
        noise_schedule=schedule,
        noise_decay_rate=float(decay_rate),
        noise_floor=float(floor),
        adaptive_clipping=bool(adaptive),
        target_unclipped_quantile=float(quantile),
        clip_learning_rate=float(clip_rate),
        clip_update=clip_update,
        count_noise_multiplier=float(count_noise),
        epsilon_budget=float(budget) if budget is not None else None,
        validation_fraction=float(validation),
        weight_averaging_decay=float(averaging) if averaging is not None else None,
    )


def results(cfg: DPConfig, *, n: int, report: accounting.EpsilonReport) -> None:
    """What the recipe settings do to the projected run: the budget's epochs, the schedule's σ_t, the
    adaptive-clipping noise split and the validation hold-out (nothing for settings left off)."""
    if cfg.epsilon_budget is not None:
        budget_effect(cfg, n=n, report=report)
    if cfg.noise_schedule != "constant":
        values = accounting.noise_schedule_values(cfg, n=n)
        stop = report.steps if report.epochs < cfg.epochs else None
        st.plotly_chart(
            charts.noise_schedule(values, floor=cfg.noise_floor, stop_step=stop),
            width="stretch",
            key="chart_noise_schedule",
        )
        st.caption(
            f"σ_t falls from σ_0 = {values[0]:.3f} to {values[-1]:.3f} over {len(values):,} steps "
            f"({len(set(values))} levels, each rounded up by at most {NOISE_LEVEL_RATIO - 1:.0%}); the projected ε composes exactly "
            "these, and the trainer adds exactly these."
        )
    split = noise_split_for_config(cfg)
    if split is not None:
        m1, m2, m3 = st.columns(3)
        m1.metric("Stated σ", f"{split.noise_multiplier:.3f}", help="The noise multiplier ε is computed for.")
        m2.metric(
            "Gradient σ",
            f"{split.gradient_noise_multiplier:.3f}",
            help="The noise on the clipped gradient sum, in units of the clip norm.",
        )
        m3.metric(
            "Count σ_b", f"{split.count_noise_multiplier:.3f}", help="The noise on the count of unclipped examples."
        )
        st.caption(
            "Adaptive clipping also releases a noisy count of the unclipped examples, so the gradient "
            "noise is raised from σ to σ_grad so that the two together are one Gaussian release of the "
            "stated σ: the ε shown is that of both"
            + (", at the first step (each σ_t is split the same way)." if cfg.noise_schedule != "constant" else ".")
        )
    if cfg.validation_fraction > 0:
        available = app_state.train_size(cfg.replace(validation_fraction=0.0))
        if available is not None:
            st.caption(
                f"Validation: {available - n:,} of the {available:,} training rows are held out and "
                f"never trained on; n = {n:,} counts the rest, and so does ε."
            )


def budget_effect(cfg: DPConfig, *, n: int, report: accounting.EpsilonReport) -> None:
    """How many of the config's epochs fit within its ε budget, and where training would stop."""
    budget = cfg.epsilon_budget
    if report.epochs == cfg.epochs:
        st.info(f"All {cfg.epochs} epochs fit within the ε budget of {budget:g}.")
    elif report.epochs == 0:
        first = app_state.epsilon_curve(cfg, n=n, interactive=False)[0]
        st.warning(
            f"The ε budget of {budget:g} allows no epoch: the first alone spends ε = "
            f"{explain.format_epsilon(first)}, so the run would stop before training."
        )
    else:
        st.info(
            f"The ε budget of {budget:g} allows {report.epochs} of the {cfg.epochs} epochs: training "
            f"stops after epoch {report.epochs}, and the projected ε is that of those epochs."
        )
