"""The privacy report written out: its sections in order, its charts, and the Markdown and HTML renderings.

Every number comes from a ``PrivacyReport`` (``dpcore.export.report``); this module only words it. The
HTML page is self-contained: Plotly's JavaScript is inlined once, so it opens without a network.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

import dpcore
from dpcore.audit.report import attack_rows, verdict
from dpcore.config import (
    ACCOUNTANT_FULL_NAMES,
    ACCOUNTANT_TITLES,
    DATASET_TITLES,
    NOISE_SCHEDULE_TITLES,
    OPTIMIZER_TITLES,
    DPConfig,
)
from dpcore.errors import UserInputError
from dpcore.export.files import REPORT_FORMATS
from dpcore.export.report import PrivacyReport, TfPrivacyStatement
from dpcore.model_specs import model_description
from dpcore.privacy import events, explain, noise
from dpcore.privacy.events import RDP_ORDERS
from dpcore.privacy.limits import PRECISE_PLD_INTERVAL
from dpcore.results import ACTIVE_STATUSES, FINISHED_STATUSES, TRAIN_METRICS_NOTE

# Models without hidden layers, whose activation setting changes nothing.
LINEAR_MODELS = ("logreg", "scatternet_linear")

# -- the text ------------------------------------------------------------------------------------
#
# A report is a title and sections of blocks. Paragraph and list text is the report's own, with
# `code` spans; table cells and the title may hold what a person typed (a run name, a file name) and
# are escaped in full by each renderer.


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Preformatted:
    text: str


@dataclass(frozen=True)
class Chart:
    """A chart of the HTML report (the Markdown report has its numbers in a table)."""

    figure: go.Figure


Block = Union[str, Table, Bullets, Preformatted, Chart]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


def _eps(value: Optional[float]) -> str:
    return explain.format_epsilon(value)


def _accuracy(value: Optional[float]) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.4f}"


def _dataset_text(config: DPConfig) -> str:
    if config.dataset == "csv":
        return f"CSV file {config.csv_path} (label column {config.csv_label})"
    return DATASET_TITLES[config.dataset]


def sections(report: PrivacyReport) -> tuple[Section, ...]:
    """The report's sections, in order; both renderers write exactly these."""
    parts = [_guarantee(report), _unit(report)]
    if report.private:
        parts += [_sampling(report), _accountant(report), _noise(report)]
    parts.append(_per_epoch(report))
    if report.private:
        parts.append(_side_by_side(report))
    parts.append(_preprocessing_section(report))
    if report.run_id is not None:
        parts += [_selection_section(report), _audit_section(report), _baseline_section(report)]
        parts.append(_seed_section(report))
    parts += [_not_covered(report), _software(report)]
    return tuple(parts)


def _guarantee(r: PrivacyReport) -> Section:
    c = r.config
    blocks: list[Block] = []
    made = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(r.created))
    blocks.append(
        f"Made by DP Explorer {dpcore.__version__} on {made}. Every figure is computed: ε and steps by "
        "composing `dp_accounting` events"
        + (", a run's figures from the run store where its trainer recorded them" if r.run_id is not None else "")
        + ", and TensorFlow Privacy's statement by TensorFlow Privacy itself."
    )
    if r.private:
        blocks.append(
            f"(ε, δ) = ({_eps(r.epsilon)}, {r.delta:g}) after {r.steps:,} noisy steps over {r.epochs} "
            f"epoch(s), {ACCOUNTANT_TITLES[r.accountant]} accountant, {r.sampling} sampling, "
            f"n = {r.n:,} training rows."
        )
        blocks.append(explain.epsilon_reading(r.epsilon, r.delta))
    else:
        blocks.append(
            "Non-private baseline: no clipping, no noise, ε = ∞. Nothing limits what the model reveals "
            "about any training row."
        )
    if r.run_id is not None and r.status in ACTIVE_STATUSES:
        blocks.append(
            f"The run is still {r.status}: every figure here is that of the {r.epochs} of its {c.epochs} epochs "
            "finished so far; its ε grows with each epoch it finishes."
        )
    elif r.run_id is not None and r.status not in FINISHED_STATUSES:
        blocks.append(
            f"The run ended {r.status} after {r.epochs} of its {c.epochs} epochs; every figure here is "
            f"that of the {r.epochs} finished epoch(s)."
        )
    elif r.run_id is not None and r.status == "budget_reached":
        blocks.append(
            f"The run stopped at its ε budget of {c.epsilon_budget:g} after {r.epochs} of {c.epochs} "
            "epochs; every figure here is that of the epochs it trained."
        )
    elif r.run_id is None and r.private and r.epochs < c.epochs:
        blocks.append(
            f"The ε budget of {c.epsilon_budget:g} allows {r.epochs} of the config's {c.epochs} epochs; "
            "a run stops there, and every figure here is that of those epochs."
        )
    rows = [
        ("Dataset", _dataset_text(c)),
        ("Training rows n", f"{r.n:,}"),
        ("Model", model_description(c.model) + ("" if c.model in LINEAR_MODELS else f", {c.activation} activations")),
        ("Optimizer", f"{OPTIMIZER_TITLES[c.optimizer]}, learning rate {c.learning_rate:g}"),
        ("Batch size", f"{c.batch_size:,}" + (" (expected, Poisson)" if c.sampling == "poisson" else "")),
        ("Epochs", f"{r.epochs}" + ("" if r.epochs == c.epochs else f" of {c.epochs} configured")),
    ]
    if r.private:
        rows += [
            ("Noisy steps", f"{r.steps:,}"),
            ("Noise multiplier σ", _sigma_text(r)),
            ("Clip norm C", _clip_text(c)),
            ("δ", f"{r.delta:g}"),
            ("Accountant", f"{ACCOUNTANT_TITLES[r.accountant]} ({ACCOUNTANT_FULL_NAMES[r.accountant]})"),
            ("Sampling", f"{r.sampling}, q = {events.sampling_probability(r.n, c.batch_size, r.sampling):.6g}"),
            ("ε", _eps(r.epsilon)),
        ]
    rows += [
        ("Randomness", "secure mode (secret seeds)" if c.secure_mode else f"reproducible, seed {c.seed}"),
        (
            "Weights released",
            "the last step's"
            if c.weight_averaging_decay is None
            else f"a moving average over the steps (decay {c.weight_averaging_decay:g}; post-processing, no ε)",
        ),
    ]
    if c.validation_fraction:
        rows.append(
            ("Validation rows", f"{c.validation_fraction:.0%} of the training rows, held out, never trained on")
        )
    if r.run_id is not None:
        rows.append(("Run status", f"{r.status}"))
        rows.append(("Test accuracy", _accuracy(r.test_accuracies[-1] if r.test_accuracies else None)))
    blocks.append(Table(("Setting", "Value"), tuple(rows)))
    return Section("The guarantee", tuple(blocks))


def _sigma_text(r: PrivacyReport) -> str:
    c = r.config
    schedule = noise.schedule_of(c)
    text = f"{c.noise_multiplier:g}"
    if schedule.decays and r.noise_multipliers:
        text += (
            f" at the first step, by {NOISE_SCHEDULE_TITLES[c.noise_schedule]} (rate {c.noise_decay_rate:g}, "
            f"floor {c.noise_floor:g}) to {r.noise_multipliers[-1]:.4g} at the last"
        )
    split = noise.noise_split_for_config(c)
    if split is not None:
        text += (
            f"; adaptive clipping splits it into gradient noise {split.gradient_noise_multiplier:.4g} and "
            f"count noise {split.count_noise_multiplier:g}"
        )
    return text


def _clip_text(c: DPConfig) -> str:
    if not c.adaptive_clipping:
        return f"{c.l2_norm_clip:g}"
    return (
        f"{c.l2_norm_clip:g} at the start, moved adaptively towards the {c.target_unclipped_quantile:g} quantile "
        f"of the per-example gradient norms ({c.clip_update}, rate {c.clip_learning_rate:g})"
    )


def _unit(r: PrivacyReport) -> Section:
    blocks: list[Block] = [
        "Unit of privacy: one training row (example). Adjacency: add or remove one row. ε bounds how much "
        "adding or removing any one row can change the probability of anything the training releases: "
        "every step's noisy update, hence every checkpoint and the final model. A person with several rows "
        "is protected less (by group privacy); no bound on rows per person is claimed here.",
        f"The number of training rows, n = {r.n:,}, is treated as public: the accountant uses it (q = batch "
        "size / n, and the steps per epoch), and this report states it.",
    ]
    return Section("Unit of privacy and adjacency", tuple(blocks))


def _sampling(r: PrivacyReport) -> Section:
    c = r.config
    blocks: list[Block] = [explain.SAMPLING_NOTES[r.sampling]]
    if r.sampling == "poisson":
        did = (
            "DP Explorer's trainer (and the exported script) does this: each step draws a fresh batch in "
            "which every row is included independently with probability q, so a batch may be larger or "
            "smaller than the expected size, or empty (a noise-only step); the noisy sum is divided by the "
            f"expected batch size {c.batch_size}, never by the drawn size; and it takes exactly "
            "⌈epochs · n / batch size⌉ steps."
        )
    else:
        did = (
            "DP Explorer's trainer draws a fresh permutation each epoch and cuts it into batches of "
            f"{c.batch_size}; no amplification by sampling is claimed, so each epoch counts as one "
            "Gaussian release of the least noise of its steps."
        )
    blocks.append(did)
    if r.run_id is not None:
        if r.recorded_steps is None:
            blocks.append(
                "This run's stored epochs do not list the σ of each step (it was trained by an older "
                "version), so the steps it took are not checked here."
            )
        else:
            agree = "the number the accountant composed" if r.recorded_steps == r.steps else "NOT the accounted number"
            blocks.append(f"This run's trainer recorded σ for {r.recorded_steps:,} noisy steps: {agree} ({r.steps:,}).")
    return Section("Sampling", tuple(blocks))


def _accountant(r: PrivacyReport) -> Section:
    if r.accountant == "rdp":
        text = (
            f"RDP: `dp_accounting`'s RdpAccountant adds up each step's Rényi divergence at {len(RDP_ORDERS)} "
            f"orders from {RDP_ORDERS[0]:g} to {RDP_ORDERS[-1]:g} and converts the total to (ε, δ) with "
            "`dp_accounting`'s RDP-to-(ε, δ) conversion, the best over those orders. An upper bound on ε."
        )
    else:
        figure = r.figure("pld")
        grid = figure.discretization if figure is not None and figure.discretization else PRECISE_PLD_INTERVAL
        text = (
            "PLD: `dp_accounting`'s PLDAccountant composes the privacy loss distribution of the steps "
            f"numerically, on a grid of value discretisation {grid:g} with pessimistic rounding, and reads ε "
            "off at δ directly. An upper bound on ε."
        )
        if figure is not None and figure.approximate:
            text += (
                f" The precise grid ({PRECISE_PLD_INTERVAL:g}) would exceed the accountant's bounds for this "
                "run, so this coarser one was used: still an upper bound, slightly loose."
            )
    return Section("Accountant and conversion", (text,))


def _noise(r: PrivacyReport) -> Section:
    c = r.config
    blocks: list[Block] = [
        f"Every example's gradient is clipped to L2 norm C = {c.l2_norm_clip:g}"
        + (" (adaptively moved, see below)" if c.adaptive_clipping else "")
        + "; Gaussian noise of standard deviation σ · C is added to the sum of the clipped gradients."
    ]
    schedule = noise.schedule_of(c)
    if schedule.decays and r.noise_multipliers:
        levels = len(set(r.noise_multipliers))
        blocks.append(
            f"σ decays by {NOISE_SCHEDULE_TITLES[c.noise_schedule]} from {r.noise_multipliers[0]:.4g} to "
            f"{r.noise_multipliers[-1]:.4g} over {len(r.noise_multipliers):,} steps, rounded up to {levels} "
            "levels; the accountant composes exactly these values, in order."
        )
        blocks.append(Chart(_sigma_figure(r.noise_multipliers)))
    else:
        blocks.append(f"σ = {c.noise_multiplier:g} at every step.")
    split = noise.noise_split_for_config(c)
    if split is not None:
        blocks.append(
            "Adaptive clipping also releases a noisy count of the examples under the clip norm. The noise "
            f"is split so that the gradient sum (noise {split.gradient_noise_multiplier:.4g} · C) and the "
            f"count (noise {split.count_noise_multiplier:g}) together are one Gaussian release of σ = "
            f"{split.noise_multiplier:g}: the ε is that of σ."
        )
    return Section("Noise and clipping", tuple(blocks))


def _per_epoch(r: PrivacyReport) -> Section:
    c = r.config
    ends = (
        events.epoch_end_steps(n=r.n, batch_size=c.batch_size, epochs=c.epochs, sampling=c.sampling)[: r.epochs]
        if r.epochs
        else ()
    )
    run = r.run_id is not None
    header = ("Epoch", "Steps so far", "ε" + ("" if run else " (projected)")) + (("Test accuracy",) if run else ())
    rows = []
    for i, epsilon in enumerate(r.epoch_epsilons):
        row = (str(i + 1), f"{ends[i]:,}", _eps(epsilon))
        rows.append(row + ((_accuracy(r.test_accuracies[i]),) if run else ()))
    blocks: list[Block] = []
    if run:
        blocks.append(
            "ε after each epoch as the trainer recorded it, with the test accuracy of the weights it "
            "released (the test split is not covered by ε)."
        )
    else:
        blocks.append("ε the accountant projects after each epoch of a run of this config.")
    blocks.append(Table(header, tuple(rows)))
    if r.epochs:
        blocks.append(Chart(_epoch_figure(r)))
    return Section("ε after each epoch", tuple(blocks))


def _side_by_side(r: PrivacyReport) -> Section:
    blocks: list[Block] = []
    rows = []
    for figure in r.accountants:
        value = _eps(figure.epsilon) if figure.problem is None else f"not computed: {figure.problem}"
        note = "the stated ε" if figure.accountant == r.accountant else "for comparison"
        if figure.approximate:
            note += f", grid {figure.discretization:g} (approximate)"
        rows.append(
            (f"{ACCOUNTANT_TITLES[figure.accountant]} ({ACCOUNTANT_FULL_NAMES[figure.accountant]})", value, note)
        )
    blocks.append(f"The same {r.steps:,} noisy steps under both accountants of `dp_accounting`, at δ = {r.delta:g}:")
    blocks.append(Table(("Accountant", "ε", ""), tuple(rows)))
    blocks.append(
        "Why they differ: both are valid upper bounds on the ε of the same mechanism. RDP bounds each "
        "step by Rényi divergences at a fixed set of orders, adds them up and converts to (ε, δ) once at the "
        "end; that conversion is lossy. PLD composes the privacy loss distribution itself, so it is "
        "tighter (usually smaller), up to its grid. The ε this report states is the configured "
        f"accountant's ({ACCOUNTANT_TITLES[r.accountant]}), the one shown everywhere for this "
        + ("run." if r.run_id is not None else "config.")
    )
    tf = r.tf_privacy
    if tf is not None:
        blocks.append("TensorFlow Privacy's own statement for the same n, batch size, epochs, σ and δ:")
        blocks.append(Preformatted(tf.text.rstrip("\n")))
        blocks.append(_tf_privacy_note(r, tf))
    return Section("The accountants side by side", tuple(blocks))


def _tf_privacy_note(r: PrivacyReport, tf: TfPrivacyStatement) -> str:
    c = r.config
    if r.sampling == "poisson":
        text = (
            'Its line "assuming Poisson sampling" is the one for this '
            + ("run" if r.run_id is not None else "config")
            + ": its footnote says Poisson sampling is not usually done, but DP Explorer's trainer does it, "
            'so here that line is the guarantee, not a belief. Its "once per epoch" line is the '
            "conservative bound for shuffled batches, which this training did not use."
        )
        if tf.poisson_steps != r.steps:
            text += (
                f" It counts ⌈epochs / q⌉ = {tf.poisson_steps:,} steps in floating point where the trainer took "
                f"{r.steps:,}, so its figure is slightly larger."
            )
    else:
        text = (
            'Its line "with each example occurring once per epoch" is the one for shuffled batches, as '
            'this training used them. Its line "assuming Poisson sampling" does not cover shuffled '
            "batches, whatever its footnote believes: no amplification by sampling is claimed here."
        )
    text += f" It was computed with the {ACCOUNTANT_TITLES[c.accountant]} accountant, as this ε is."
    if noise.schedule_of(c).decays:
        text += (
            f" It assumes one σ for every step; this training decays σ, so it was given the smallest σ of "
            f"any step ({tf.noise_multiplier:.4g}): an upper bound, larger than this ε."
        )
    if c.adaptive_clipping:
        text += " Its σ is the stated σ, which the adaptive-clipping split keeps as one Gaussian release."
    if r.preprocessing is not None:
        text += " It covers training only: the CSV preprocessing's release (below) is not in it."
    return text


def _preprocessing_section(r: PrivacyReport) -> Section:
    c = r.config
    split = r.preprocessing
    if split is not None:
        blocks: list[Block] = [
            "The CSV file's schema (value ranges, categories, classes) was derived from the training rows "
            "with noisy, thresholded counts (one Gaussian release), so that release is composed with "
            "training's steps into the ε above:",
            Table(
                ("Part", "ε"),
                (
                    ("CSV preprocessing alone", _eps(split.preprocessing)),
                    ("Training alone", _eps(split.training)),
                    ("Both, composed (the stated ε)", _eps(split.total)),
                ),
            ),
            f"The thresholds spend δ_t = {split.threshold_delta:g} of δ = {split.delta:g}. Composing the two "
            "DpEvents costs less than adding their ε.",
        ]
    elif c.dataset == "csv":
        blocks = ["The CSV file's schema was declared, not learned from the rows: applying it costs no ε."]
    else:
        blocks = [
            f"{DATASET_TITLES[c.dataset]} is a built-in dataset; nothing is learned from its rows before training."
        ]
    return Section("Preprocessing", tuple(blocks))


def _selection_section(r: PrivacyReport) -> Section:
    if r.sweep is None:
        return Section(
            "Choosing this run",
            ("This run is not part of a sweep. " + explain.SELECTION_NOTE,),
        )
    s = r.sweep
    mode = "a private selection" if s.mode == "private_selection" else "a grid"
    return Section(
        "Choosing this run",
        (
            f"This run is one of the {s.runs} runs of sweep {s.sweep_id}, {mode}. Releasing the best run of a "
            f"sweep costs more than one run's ε: {s.selection_text}",
        ),
    )


def _audit_section(r: PrivacyReport) -> Section:
    audit = r.audit
    if audit is None:
        return Section("Empirical audit", ("This run has not been audited.",))
    rows = tuple(
        (
            str(row["attack"]),
            f"{row['AUC']:.3f}",
            f"{row['advantage']:.3f}",
            f"{row['TPR at 1% FPR']:.3f}",
            f"{row['ε lower bound']:.3f}",
            str(row["judged on"]),
        )
        for row in attack_rows(audit)
    )
    blocks: list[Block] = [
        f"Membership-inference attacks on the model ({audit.model_source}), {audit.members:,} training rows "
        f"against {audit.nonmembers:,} held-out rows:",
        Table(("Attack", "AUC", "Advantage", "TPR at 1% FPR", "ε lower bound", "Judged on"), rows),
        verdict(audit),
        "These are empirical lower bounds: what these attacks reached, not a guarantee; a stronger attack "
        "may reach more. The audit itself read the model's losses on training rows without noise, so its "
        "figures are not covered by ε.",
    ]
    if audit.canary is not None:
        k = audit.canary
        blocks.append(
            f"Canary audit: {k.canaries} {k.kind}, one more training run of ε = {_eps(k.epsilon)}; {k.correct} of "
            f"{k.guesses} guesses right, ε ≥ {k.epsilon_lower_bound:.2f} ({k.confidence:.0%} confidence)."
        )
    return Section("Empirical audit", tuple(blocks))


def _baseline_section(r: PrivacyReport) -> Section:
    if not r.private:
        return Section("Non-private baseline", ("This run is itself a non-private baseline.",))
    b = r.baseline
    if b is None:
        return Section(
            "Non-private baseline",
            ("No finished non-private baseline of this run is stored (Train offers one beside every run).",),
        )
    where = "the sweep's non-private baseline" if b.from_sweep else "the same training without clipping or noise"
    runs = ", ".join(str(i) for i in b.run_ids)
    spread = f" ± {b.accuracy_sd:.4f} over {len(b.run_ids)} runs" if len(b.run_ids) > 1 else ""
    text = f"Run(s) {runs}, {where} (ε = ∞): test accuracy {b.accuracy_mean:.4f}{spread}."
    if r.test_accuracies and not math.isnan(r.test_accuracies[-1]):
        text += (
            f" This run's is {r.test_accuracies[-1]:.4f}: the baseline's minus this run's, "
            f"{b.accuracy_mean - r.test_accuracies[-1]:+.4f}, is what privacy cost in accuracy here."
        )
    return Section("Non-private baseline", (text,))


def _seed_section(r: PrivacyReport) -> Section:
    s = r.seed_spread
    if s is None:
        return Section(
            "Seeds",
            (
                "This setting was trained with one seed here. Accuracy varies from seed to seed; one run says "
                "nothing of that spread (a sweep with several seeds measures it).",
            ),
        )
    runs = ", ".join(str(i) for i in s.run_ids)
    return Section(
        "Seeds",
        (
            f"The same setting over {len(s.run_ids)} seeds (runs {runs}): test accuracy {s.accuracy_mean:.4f} ± "
            f"{s.accuracy_sd:.4f} (standard deviation). Each run's ε covers that run alone.",
        ),
    )


def _not_covered(r: PrivacyReport) -> Section:
    c = r.config
    items = [
        "Training figures. " + TRAIN_METRICS_NOTE,
        "Test and validation rows. "
        + ("The test split and the validation rows are" if c.validation_fraction else "The test split is")
        + " never trained on, so ε does not protect their rows: figures computed on them (test accuracy"
        + (", validation accuracy" if c.validation_fraction else "")
        + ") are released exactly."
        + (" For a CSV file these are rows of your data too." if c.dataset == "csv" else ""),
        "Floating-point effects. ε assumes ideal Gaussian noise and exact arithmetic; floating-point sampling "
        "and rounding only approximate them.",
        "Seeds. " + explain.randomness_note(c),
        "Choosing among runs. " + explain.SELECTION_NOTE,
        "People with several rows. ε is per row; a person's protection weakens with the rows they contribute.",
        f"The number of training rows (n = {r.n:,}), which is treated as public.",
    ]
    if r.audit is not None:
        items.append("The empirical audit's figures, computed on training rows without noise.")
    if not r.private:
        items = ["Anything: a non-private baseline has no guarantee (ε = ∞)."] + items[:1]
    return Section("What ε does not cover", (Bullets(tuple(items)),))


def _software(r: PrivacyReport) -> Section:
    return Section(
        "Software",
        (
            "Installed when this report was made"
            + (" (the run store does not keep the versions a run trained with)." if r.run_id is not None else "."),
            Table(("Package", "Version"), r.versions),
        ),
    )


# -- charts ------------------------------------------------------------------------------------

_COLORS = {"rdp": "#1f77b4", "pld": "#2ca02c", "run": "#d62728", "accuracy": "#9467bd"}


def _epoch_figure(r: PrivacyReport) -> go.Figure:
    run = r.run_id is not None and bool(r.test_accuracies)
    fig = make_subplots(
        rows=1,
        cols=2 if run else 1,
        subplot_titles=("ε after each epoch", "test accuracy") if run else ("ε after each epoch",),
    )
    epochs = list(range(1, r.epochs + 1))
    for figure in r.accountants:
        if figure.problem is None:
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=list(figure.curve),
                    mode="lines",
                    name=f"{ACCOUNTANT_TITLES[figure.accountant]} accountant",
                    line=dict(
                        color=_COLORS[figure.accountant], dash="solid" if figure.accountant == r.accountant else "dot"
                    ),
                ),
                row=1,
                col=1,
            )
    if r.private:
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=list(r.epoch_epsilons),
                mode="markers",
                name="ε recorded by the trainer" if r.run_id is not None else "ε projected",
                marker=dict(color=_COLORS["run"], size=8),
            ),
            row=1,
            col=1,
        )
    if run:
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=list(r.test_accuracies),
                mode="lines+markers",
                name="test accuracy",
                line=dict(color=_COLORS["accuracy"]),
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(template="plotly_white", height=360, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def _sigma_figure(values: Sequence[float]) -> go.Figure:
    fig = go.Figure(go.Scatter(x=list(range(1, len(values) + 1)), y=list(values), mode="lines", name="σ"))
    fig.update_layout(
        title="σ at each noisy step",
        xaxis_title="step",
        yaxis_title="noise multiplier σ",
        template="plotly_white",
        height=300,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


# -- Markdown ----------------------------------------------------------------------------------

# Characters that make inline markup (or end a table cell) wherever they stand in a line; $ starts
# maths where Markdown is shown by Streamlit (the pages' preview).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~$])")


def _md_plain(text: str) -> str:
    """Text a person may have typed, shown as itself in Markdown (every markup character escaped)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def render_markdown(report: PrivacyReport) -> str:
    """The report as Markdown (GitHub-flavoured tables); charts are left out, their numbers are in tables."""
    out = [f"# {_md_plain(report.title)}", ""]
    for section in sections(report):
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                out += [block, ""]
            elif isinstance(block, Table):
                out.append("| " + " | ".join(_md_plain(h) for h in block.header) + " |")
                out.append("|" + "|".join(" --- " for _ in block.header) + "|")
                out += ["| " + " | ".join(_md_plain(cell) for cell in row) + " |" for row in block.rows]
                out.append("")
            elif isinstance(block, Bullets):
                out += [f"* {item}" for item in block.items] + [""]
            elif isinstance(block, Preformatted):
                out += ["```text", block.text, "```", ""]
    return "\n".join(out).rstrip("\n") + "\n"


# -- HTML --------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.5; color: #1a1a1a; }
h1 { font-size: 1.7rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
pre { background: #f6f6f6; padding: 0.75rem; overflow-x: auto; }
code { background: #f1f1f1; padding: 0 0.2rem; }
"""


def _html_text(text: str) -> str:
    """The report's own text: escaped, with `code` spans kept as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


def render_html(report: PrivacyReport) -> str:
    """The report as one self-contained HTML page: its charts drawn by Plotly's JavaScript, inlined once,
    so it opens without a network."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(report.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
    script_included = False
    for section in sections(report):
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, str):
                parts.append(f"<p>{_html_text(block)}</p>")
            elif isinstance(block, Table):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
                body = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in block.rows
                )
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(block, Bullets):
                parts.append("<ul>" + "".join(f"<li>{_html_text(item)}</li>" for item in block.items) + "</ul>")
            elif isinstance(block, Preformatted):
                parts.append(f"<pre>{html.escape(block.text)}</pre>")
            elif isinstance(block, Chart):
                parts.append(
                    pio.to_html(
                        block.figure,
                        full_html=False,
                        include_plotlyjs=not script_included,
                        include_mathjax=False,
                        config={"displaylogo": False},
                    )
                )
                script_included = True
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def render_report(report: PrivacyReport, *, report_format: str) -> str:
    """``report`` as ``report_format``: "report-md" (Markdown) or "report-html" (a self-contained page)."""
    if report_format == "report-md":
        return render_markdown(report)
    if report_format == "report-html":
        return render_html(report)
    raise UserInputError("format", f"{report_format!r} is not a report format", allowed=", ".join(REPORT_FORMATS))
