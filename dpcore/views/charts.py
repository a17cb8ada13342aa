"""Plotly figure builders for every chart in the app; pure functions of their data, no Streamlit."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Union

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from dpcore.audit.bounds import max_tpr
from dpcore.audit.report import RocCurve
from dpcore.privacy.explain import format_epsilon
from dpcore.results import TRAIN_ACCURACY_TITLE
from dpcore.runs.comparison import MAX_RUN_LEGEND, AuditPoint, Baseline, ClassView, ComparisonView, FinalPoint, RunCurve
from dpcore.views.teaching import ClippingExample, CountExample

if TYPE_CHECKING:
    from dpcore.runs.sweeps import SeedGroup

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
# One colour per run, picked by its id (``run_color``); no grey, which marks guides and baselines' lines.
RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
# Participants' colours and markers: each colour with circles first, then with squares, and so on, so the
# first 12 participants differ by colour alone and up to 48 by colour and marker (``participant_styles``).
PARTICIPANT_COLORS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#393b79",
    "#637939",
    "#7f7f7f",
)
PARTICIPANT_SYMBOLS = ("circle", "square", "diamond", "triangle-up")
DISTINCT_PARTICIPANTS = len(PARTICIPANT_COLORS) * len(PARTICIPANT_SYMBOLS)
# Where ε = ∞ (a non-private run) stands on a log ε axis: a column past a gap, labelled in words.
INFINITY_TICK = "∞ (non-private)"
# Legends sit below the plot, where they can grow without covering the title or narrowing the plot.
_LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0.0)
_TEMPLATE = "plotly_white"
_LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), height=340, template=_TEMPLATE, legend=_LEGEND_BELOW)
# Mantissas of log-axis ticks, from dense to sparse; the first that gives few enough ticks is used, and
# a range too narrow for two of them takes every digit.
_LOG_TICK_MANTISSAS = ((1, 2, 5), (1, 3), (1,))
_NARROW_LOG_TICK_MANTISSAS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
_MAX_LOG_TICKS = 9


def _fig(title: str, x: str, y: str) -> go.Figure:
    # The template is thousands of properties, already validated by plotly.io, and the rest of this
    # layout is fixed here (tests/views/test_charts.py reads it back): validating them again took most of
    # the time an Explore chart cost on every slider move. So the starting layout is set unvalidated,
    # as plotly sets its default template; everything added after is validated.
    layout = {
        **_LAYOUT,
        "template": pio.templates[_TEMPLATE],
        "title": dict(text=title, x=0.0, y=0.97),
        "xaxis": dict(title=dict(text=x)),
        "yaxis": dict(title=dict(text=y)),
    }
    fig = go.Figure(layout=layout, _validate=False)
    fig._validate = fig._layout_obj._validate = True
    return fig


def run_color(run_id: int) -> str:
    """The colour of a run in every chart, for its whole life: taken from its id, so deleting other runs
    never recolours it."""
    return RUN_COLORS[(run_id - 1) % len(RUN_COLORS)]


def plain_number(value: float) -> str:
    """A tick label as a person writes the number: 0.5, 2, 10, 0.00003; scientific (1e-09) only beyond a millionth
    or a million."""
    if value != 0 and not 1e-6 <= abs(value) < 1e7:
        return f"{value:g}"
    return np.format_float_positional(value, precision=6, trim="-")


def log_ticks(low: float, high: float, *, max_ticks: int = _MAX_LOG_TICKS) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """Ticks for a log axis from ``low`` to ``high``: 1-2-5 in each decade (1-3 or decades when the range
    is wide), written as plain numbers, instead of Plotly's "5, 2, 10, 5, 2" minor labels and SI prefixes;
    at most ``max_ticks`` where a sparser set allows."""
    if not (0 < low <= high and math.isfinite(high)):
        raise ValueError(f"a log axis needs 0 < low <= high, got {low!r}, {high!r}")
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))

    def within(mantissas: Sequence[int]) -> list[float]:
        return [
            float(f"{m}e{e}")
            for e in range(first, last + 1)
            for m in mantissas
            if low * (1 - 1e-9) <= float(f"{m}e{e}") <= high * (1 + 1e-9)
        ]

    ticks: list[float] = []
    for mantissas in _LOG_TICK_MANTISSAS:
        ticks = within(mantissas)
        if len(ticks) <= max_ticks:
            break
    if len(ticks) < 3 and len(within(_NARROW_LOG_TICK_MANTISSAS)) <= max_ticks:
        ticks = within(_NARROW_LOG_TICK_MANTISSAS)
    if len(ticks) < 2:  # narrower still: the two ends, rounded inwards to two significant digits
        ticks = [_two_digits(low, math.ceil), _two_digits(high, math.floor)]
    return tuple(ticks), tuple(plain_number(t) for t in ticks)


def _two_digits(value: float, rounding: Callable[[float], int]) -> float:
    scale = 10.0 ** (1 - math.floor(math.log10(value)))
    return round(rounding(value * scale) / scale, 12)


def _log_axis(fig: go.Figure, axis: str, values: Sequence[float], *, pad: float = 1.15, **where: int) -> None:
    """Make ``axis`` ("x" or "y") logarithmic over the positive finite ``values``, with plain-number ticks."""
    usable = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not usable:
        return
    low, high = min(usable) / pad, max(usable) * pad
    ticks, texts = log_ticks(low, high)
    update = fig.update_xaxes if axis == "x" else fig.update_yaxes
    update(
        type="log",
        tickmode="array",
        tickvals=list(ticks),
        ticktext=list(texts),
        range=[math.log10(low), math.log10(high)],
        **where,
    )


def _target_line(fig: go.Figure, target_epsilon: Optional[float], *, log_y: bool = False) -> None:
    """A dashed horizontal line at the target ε (Explore's Calibrate target), named in the legend below the
    plot: a label inside the plot would sit on the curves wherever they cross it."""
    if target_epsilon is None or not math.isfinite(target_epsilon):
        return
    line = dict(color=COLORS[4], dash="dash", width=1.5)
    # A plain shape: what add_hline adds, without its axis-spanning bookkeeping (half an Explore chart's cost).
    fig.add_shape(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=target_epsilon, y1=target_epsilon, line=line)
    # The legend's entry: a trace with no points, so it draws nothing and leaves the axes' ranges alone.
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="lines",
            name=f"target ε = {plain_number(target_epsilon)}",
            line=line,
            hoverinfo="skip",
            showlegend=True,
        )
    )


def epsilon_vs_epochs(
    series: Mapping[str, Sequence[float]], *, current_epochs: int, delta: float, target_epsilon: Optional[float] = None
) -> go.Figure:
    """ε after each epoch, one line per accountant/sampling label, the chosen epoch count marked, and the
    target ε (if any) as a dashed line."""
    fig = _fig(f"ε after each epoch (δ = {delta:.0e})", "epoch", "ε")
    for i, (label, values) in enumerate(series.items()):
        xs = list(range(1, len(values) + 1))
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=list(values),
                mode="lines+markers",
                name=label,
                line=dict(color=COLORS[i % len(COLORS)]),
                marker=dict(size=5),
                hovertemplate="epoch %{x}<br>ε %{y:.3f}<extra>" + label + "</extra>",
            )
        )
    fig.add_shape(
        type="line",
        xref="x",
        x0=current_epochs,
        x1=current_epochs,
        yref="y domain",
        y0=0,
        y1=1,
        line=dict(color="#888", dash="dot"),
    )  # add_vline's shape, added directly (see _target_line)
    _target_line(fig, target_epsilon)
    fig.update_yaxes(rangemode="tozero")
    return fig


def epsilon_vs_noise(
    noises: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    current_noise: float,
    current_epsilon: Optional[float],
    delta: float,
    target_epsilon: Optional[float] = None,
) -> go.Figure:
    """Final ε against the noise multiplier on log axes with plain-number ticks, one line per label, each
    computed σ a point (a click on one picks that σ), the current setting as a cross, the target ε dashed."""
    fig = _fig(f"ε against noise multiplier (δ = {delta:.0e})", "noise multiplier σ (log scale)", "ε (log scale)")
    for i, (label, values) in enumerate(series.items()):
        fig.add_trace(
            go.Scatter(
                x=list(noises),
                y=list(values),
                mode="lines+markers",
                name=label,
                line=dict(color=COLORS[i % len(COLORS)]),
                marker=dict(size=7),
                hovertemplate="σ %{x:.2f}<br>ε %{y:.3f}<br>click to use this σ<extra>" + label + "</extra>",
            )
        )
    if current_epsilon is not None and math.isfinite(current_epsilon):
        fig.add_trace(
            go.Scatter(
                x=[current_noise],
                y=[current_epsilon],
                mode="markers",
                name="current",
                marker=dict(size=12, color="black", symbol="x"),
                hovertemplate="σ %{x:.2f}<br>ε %{y:.3f}<extra>current</extra>",
            )
        )
    _target_line(fig, target_epsilon, log_y=True)
    _log_axis(fig, "x", [*noises, current_noise], pad=1.08)
    _log_axis(
        fig,
        "y",
        [v for values in series.values() for v in values] + [current_epsilon or math.nan, target_epsilon or math.nan],
    )
    return fig


def training_progress(
    epochs: Sequence[int],
    accuracies: Sequence[float],
    epsilons: Sequence[float],
    *,
    epochs_total: int,
    private: bool,
    projected: Optional[Sequence[float]] = None,
    train_accuracies: Optional[Sequence[float]] = None,
) -> go.Figure:
    """Two panels: test accuracy per epoch, and ε spent so far (or a note that a baseline spends ∞), drawn
    over ``projected``, the ε the accountant projects after each of the run's epochs (a grey band that the
    spent ε follows exactly, since the trainer ends its epochs where the accountant counts them).

    ``train_accuracies``, when given, are drawn dotted beside the test accuracy (added last), named as
    not covered by ε (``results.TRAIN_ACCURACY_TITLE``).

    The panels' titles are short and the lines are named in the legend below, so that the two titles
    still fit side by side on a phone's screen (390 px wide).
    """
    eps_title = "ε spent" if private else "ε spent: ∞ (non-private)"
    fig = make_subplots(rows=1, cols=2, subplot_titles=("test accuracy", eps_title))
    fig.update_annotations(font_size=13)  # the subplot titles
    fig.add_trace(
        go.Scatter(
            x=list(epochs), y=list(accuracies), mode="lines+markers", name="test accuracy", line=dict(color=COLORS[0])
        ),
        row=1,
        col=1,
    )
    if private and projected:
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(projected) + 1)),
                y=list(projected),
                mode="lines",
                name="projected ε",
                line=dict(color="rgba(120, 120, 120, 0.35)", width=9),
                hovertemplate="epoch %{x}: projected ε %{y:.3f}<extra></extra>",
            ),
            row=1,
            col=2,
        )
    if private:
        fig.add_trace(
            go.Scatter(
                x=list(epochs),
                y=list(epsilons),
                mode="lines+markers",
                name="ε spent",
                line=dict(color=COLORS[1]),
                hovertemplate="epoch %{x}: ε spent %{y:.3f}<extra></extra>",
            ),
            row=1,
            col=2,
        )
    if train_accuracies:
        fig.add_trace(
            go.Scatter(
                x=list(epochs),
                y=list(train_accuracies),
                mode="lines+markers",
                name=TRAIN_ACCURACY_TITLE,
                line=dict(color=COLORS[0], dash="dot"),
                marker=dict(symbol="circle-open"),
                hovertemplate="epoch %{x}: " + TRAIN_ACCURACY_TITLE + " %{y:.3f}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    fig.update_xaxes(title_text="epoch", range=[0.5, max(epochs_total, 1) + 0.5], dtick=_dtick(epochs_total))
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    # A legend only where there is more than one line to tell apart.
    fig.update_layout(
        **{
            **_LAYOUT,
            "height": 360,
            "showlegend": len(fig.data) > 1,
            "margin": dict(l=10, r=10, t=40, b=10),
            # Below the panels' "epoch" titles, which a legend at the usual -0.2 covers on a phone.
            "legend": {**_LEGEND_BELOW, "y": -0.3},
        }
    )
    return fig


def _dtick(total: int) -> int:
    return max(1, math.ceil(total / 10))


def test_and_validation(
    epochs: Sequence[int],
    *,
    test_accuracy: Sequence[float],
    validation_accuracy: Sequence[float],
    test_loss: Sequence[float],
    validation_loss: Sequence[float],
    epochs_total: int,
) -> go.Figure:
    """Two panels, accuracy and loss per epoch, each with the test split (solid) and the validation rows held
    out of training (dashed), for a run with a validation split."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "loss"))
    for col, (test, validation) in enumerate(
        ((test_accuracy, validation_accuracy), (test_loss, validation_loss)), start=1
    ):
        for name, values, dash, color in (
            ("test", test, "solid", COLORS[0]),
            ("validation", validation, "dash", COLORS[2]),
        ):
            fig.add_trace(
                go.Scatter(
                    x=list(epochs),
                    y=list(values),
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    line=dict(color=color, dash=dash),
                    hovertemplate=f"epoch %{{x}}: {name} %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="epoch", range=[0.5, max(epochs_total, 1) + 0.5], dtick=_dtick(epochs_total))
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(**{**_LAYOUT, "height": 300, "margin": dict(l=10, r=10, t=40, b=10)})
    return fig


def noise_schedule(
    values: Sequence[float], *, floor: Optional[float] = None, stop_step: Optional[int] = None
) -> go.Figure:
    """σ_t of each noisy step (t from 0) as a step line through the steps where it changes (a schedule
    holds each rounded level for many steps), its ``floor`` dotted, and ``stop_step``, the first step an
    ε budget leaves untrained, as a vertical line."""
    fig = _fig("noise multiplier σ_t at each step", "step t", "σ_t")
    changes = [t for t in range(len(values)) if t == 0 or values[t] != values[t - 1]]
    if values and changes[-1] != len(values) - 1:
        changes.append(len(values) - 1)
    fig.add_trace(
        go.Scatter(
            x=changes,
            y=[values[t] for t in changes],
            mode="lines",
            name="σ_t",
            line=dict(color=COLORS[0], shape="hv"),
            hovertemplate="from step %{x}: σ %{y:.3f}<extra></extra>",
        )
    )
    if floor is not None:
        fig.add_hline(
            y=floor,
            line=dict(color="#888", dash="dot"),
            annotation_text=f"floor {plain_number(floor)}",
            annotation_position="bottom right",
        )
    if stop_step is not None and stop_step < len(values):
        fig.add_vline(
            x=stop_step,
            line=dict(color=COLORS[1], dash="dash"),
            annotation_text="ε budget: training stops",
            annotation_position="top right",
            annotation_font_color=COLORS[1],
        )
    # Headroom above σ_0 for the budget's label.
    fig.update_yaxes(range=[0, max(values, default=1.0) * 1.25])
    fig.update_layout(height=260, showlegend=False)
    return fig


# The most points a per-step chart draws; longer runs are drawn at every k-th step (the last one kept).
MAX_STEP_POINTS = 2000


def clip_norm_over_steps(clip_norms: Sequence[float], *, target_quantile: float) -> go.Figure:
    """The clip norm of each training step (t from 0) as adaptive clipping moved it towards the
    ``target_quantile`` of the per-example gradient norms; a long run is drawn at every k-th step."""
    stride = max(1, math.ceil(len(clip_norms) / MAX_STEP_POINTS))
    steps = list(range(0, len(clip_norms), stride))
    if clip_norms and steps[-1] != len(clip_norms) - 1:
        steps.append(len(clip_norms) - 1)
    x_title = "step t" if stride == 1 else f"step t (one step in {stride} drawn)"
    fig = _fig(
        f"clip norm C at each step (adaptive, towards the {plain_number(target_quantile)} quantile of gradient norms)",
        x_title,
        "clip norm C",
    )
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=[clip_norms[t] for t in steps],
            mode="lines",
            name="clip norm",
            line=dict(color=COLORS[3]),
            hovertemplate="step %{x}: C %{y:.4g}<extra></extra>",
        )
    )
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(height=280, showlegend=False)
    return fig


@dataclass(frozen=True)
class ParticipantStyle:
    """A participant's colour and marker in the class's charts."""

    color: str
    symbol: str


def participant_styles(owners: Sequence[str]) -> dict[str, ParticipantStyle]:
    """A style per owner in the order given (``comparison.participants``): 12 colours with circles, then the
    same colours with squares, diamonds and triangles; beyond ``DISTINCT_PARTICIPANTS`` they repeat."""
    return {
        owner: ParticipantStyle(
            PARTICIPANT_COLORS[i % len(PARTICIPANT_COLORS)],
            PARTICIPANT_SYMBOLS[(i // len(PARTICIPANT_COLORS)) % len(PARTICIPANT_SYMBOLS)],
        )
        for i, owner in enumerate(owners)
    }


def _style(styles: Mapping[str, ParticipantStyle], owner: str) -> ParticipantStyle:
    return styles.get(owner) or participant_styles([*styles, owner])[owner]


def _legend_height(entries: int, *, base: int) -> int:
    """A chart's height that keeps its plot area while the legend below it wraps over more rows."""
    return base + 22 * max(0, math.ceil(entries / 4) - 1)


def accuracy_vs_epsilon(
    view: ComparisonView,
    *,
    styles: Optional[Mapping[str, ParticipantStyle]] = None,
    cap: Optional[float] = None,
) -> go.Figure:
    """Each run's per-epoch (ε, accuracy) as a curve, final points large, the frontier dashed, baselines as
    dotted lines, the legend below the plot. Up to ``MAX_RUN_LEGEND`` runs each have their own colour and
    legend entry; more are coloured by participant (``styles``) with one legend entry per participant.
    ``cap``, when given, is the challenge's ε cap, drawn as a vertical line."""
    by_participant = len(view.curves) + len(view.baselines) > MAX_RUN_LEGEND
    if styles is None:  # each participant in the view their own style, in the order they first appear
        owners = [curve.owner for curve in view.curves] + [base.owner for base in view.baselines]
        styles = participant_styles(list(dict.fromkeys(owners)))
    fig = _fig("test accuracy against ε", "ε (lower is more private)", "test accuracy")
    named: set[str] = set()

    def look(item: Union[RunCurve, Baseline]) -> tuple[str, str, str, bool]:
        """(colour, marker, legend name, whether to show it) of a run's trace."""
        if not by_participant:
            return run_color(item.run_id), "circle", item.label, True
        style = _style(styles, item.owner)
        first = item.owner not in named
        named.add(item.owner)
        return style.color, style.symbol, item.participant, first

    for curve in view.curves:
        color, symbol, name, show = look(curve)
        hover = (
            f"<b>{curve.label}</b> by {curve.participant} ({curve.status})<br>{curve.summary}<br>"
            "epoch %{customdata}: ε %{x:.3f}, accuracy %{y:.3f}<extra></extra>"
        )
        sizes = [6] * (len(curve.epsilons) - 1) + [14]
        fig.add_trace(
            go.Scatter(
                x=list(curve.epsilons),
                y=list(curve.accuracies),
                mode="lines+markers",
                name=name,
                legendgroup=curve.owner if by_participant else str(curve.run_id),
                showlegend=show,
                customdata=list(range(1, len(curve.epsilons) + 1)),
                hovertemplate=hover,
                line=dict(color=color, width=1.5),
                marker=dict(size=sizes, color=color, symbol=symbol, line=dict(width=1, color="white")),
            )
        )
    if view.frontier:
        fig.add_trace(
            go.Scatter(
                x=[p.epsilon for p in view.frontier],
                y=[p.accuracy for p in view.frontier],
                mode="lines",
                name="Pareto frontier",
                line=dict(color="black", dash="dash", width=2, shape="hv"),
                hoverinfo="skip",
            )
        )
    # Baselines have no finite ε: a dotted line across the whole ε range.
    x_end = max((e for c in view.curves for e in c.epsilons), default=1.0) * 1.05
    if cap is not None and math.isfinite(cap):
        x_end = max(x_end, cap * 1.05)
    for base in view.baselines:
        color, _, name, show = look(base)
        if not by_participant:
            label = base.label if "non-private" in base.label else f"{base.label}, non-private"
            name = f"{label} (ε = ∞): {base.accuracy:.3f}"
        fig.add_trace(
            go.Scatter(
                x=[0.0, x_end],
                y=[base.accuracy, base.accuracy],
                mode="lines",
                name=name,
                legendgroup=base.owner if by_participant else str(base.run_id),
                showlegend=show,
                line=dict(color=color, dash="dot", width=2),
                hovertemplate=f"<b>{base.label}</b> by {base.participant}<br>{base.summary}<br>"
                "accuracy %{y:.3f}<extra></extra>",
            )
        )
    if by_participant and view.baselines:
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                name="dotted: non-private baseline (ε = ∞)",
                line=dict(color="#555", dash="dot", width=2),
            )
        )
    _cap_line(fig, cap)
    entries = sum(1 for t in fig.data if t.showlegend is not False)
    fig.update_layout(height=_legend_height(entries, base=480), legend=_LEGEND_BELOW)
    fig.update_xaxes(range=[0.0, x_end])
    return fig


def _cap_line(fig: go.Figure, cap: Optional[float], *, log_x: bool = False) -> None:
    """The challenge's ε cap as a dashed vertical line, labelled at its top."""
    if cap is None or not math.isfinite(cap):
        return
    fig.add_shape(
        type="line",
        xref="x",
        x0=cap,
        x1=cap,
        yref="y domain",
        y0=0,
        y1=1,
        line=dict(color=COLORS[4], dash="dash", width=1.5),
    )
    fig.add_annotation(
        x=math.log10(cap) if log_x else cap,
        xref="x",
        xanchor="left",
        y=1.0,
        yref="y domain",
        yanchor="top",
        showarrow=False,
        text=f"challenge: ε ≤ {plain_number(cap)}",
        font=dict(color=COLORS[4]),
    )


def _epsilon_axis_with_infinity(
    fig: go.Figure, finite: Sequence[float], *, extra: Sequence[float] = (), max_ticks: int = _MAX_LOG_TICKS
) -> float:
    """A log ε axis over ``finite`` (and ``extra``, such as a cap) with plain-number ticks and a column past a
    gap where ε = ∞ stands, labelled ``INFINITY_TICK`` level with the other ticks (at most ``max_ticks`` of
    them, so a narrow panel's labels never run together); returns that column's x."""
    values = [v for v in (*finite, *extra) if math.isfinite(v) and v > 0]
    low, high = (min(values) / 1.6, max(values) * 1.6) if values else (0.5, 2.0)
    x_infinite = high * 3.0
    ticks, texts = log_ticks(low, high, max_ticks=max_ticks) if values else ((), ())
    fig.update_xaxes(
        type="log",
        tickmode="array",
        tickvals=[*ticks, x_infinite],
        ticktext=[*texts, INFINITY_TICK],
        tickangle=0,
        range=[math.log10(low), math.log10(x_infinite * 2.2)],
    )
    return x_infinite


def class_accuracy_vs_epsilon(
    view: ClassView, *, styles: Mapping[str, ParticipantStyle], cap: Optional[float] = None
) -> go.Figure:
    """The class on one dataset for a projector: each finished run as one point at its final ε and accuracy,
    coloured and marked by participant (one legend entry each, below the plot), the Pareto frontier dashed,
    non-private runs in a column at "∞" past a gap, and the challenge's ε cap as a vertical line."""
    fig = _fig("the class: final test accuracy against ε", "ε (log scale; lower is more private)", "test accuracy")
    finite = [p.epsilon for p in view.points]
    x_infinite = _epsilon_axis_with_infinity(fig, finite, extra=[cap] if cap is not None else [])
    by_owner: dict[str, list[FinalPoint]] = {}
    for point in (*view.points, *view.baselines):
        by_owner.setdefault(point.owner, []).append(point)
    order = {owner: i for i, owner in enumerate(styles)}  # the legend in the participants' own order
    for owner, points in sorted(by_owner.items(), key=lambda item: order.get(item[0], len(order))):
        style = _style(styles, owner)
        fig.add_trace(
            go.Scatter(
                x=[p.epsilon if math.isfinite(p.epsilon) else x_infinite for p in points],
                y=[p.accuracy for p in points],
                mode="markers",
                name=points[0].participant,
                legendgroup=owner,
                marker=dict(size=13, color=style.color, symbol=style.symbol, line=dict(width=1, color="white")),
                text=[
                    f"<b>{p.label}</b> by {p.participant}<br>{p.summary}<br>ε {format_epsilon(p.epsilon)}, "
                    f"accuracy {p.accuracy:.3f}"
                    for p in points
                ],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    if view.frontier:
        fig.add_trace(
            go.Scatter(
                x=[p.epsilon for p in view.frontier],
                y=[p.accuracy for p in view.frontier],
                mode="lines",
                name="Pareto frontier",
                line=dict(color="black", dash="dash", width=2, shape="hv"),
                hoverinfo="skip",
            )
        )
    gap = math.sqrt(max(finite, default=1.0) * 1.6 * x_infinite)
    fig.add_vline(x=gap, line=dict(color="#bbb", width=1))
    _cap_line(fig, cap, log_x=True)
    accuracies = [p.accuracy for p in (*view.points, *view.baselines)]
    top = max(accuracies, default=1.0)
    # Room above the best point for its marker, and no tick above an accuracy of 1 unless a point needs it.
    fig.update_yaxes(range=[max(0.0, min(accuracies, default=0.0) - 0.05), max(min(top + 0.05, 1.0), top + 0.01)])
    fig.update_layout(height=_legend_height(len(by_owner) + bool(view.frontier), base=520), legend=_LEGEND_BELOW)
    return fig


def count_mechanism(example: CountExample) -> go.Figure:
    """The two output densities of a noisy count on neighbouring datasets."""
    fig = _fig(
        f"noise σ = {example.sigma:g}: ε = {format_epsilon(example.epsilon, digits=2)} at δ = {example.delta:.0e}",
        "released count",
        "probability density",
    )
    fig.add_trace(
        go.Scatter(
            x=list(example.xs),
            y=list(example.density_without),
            mode="lines",
            name=f"without you (true count {example.count})",
            fill="tozeroy",
            line=dict(color=COLORS[0]),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=list(example.xs),
            y=list(example.density_with),
            mode="lines",
            name=f"with you (true count {example.count + 1})",
            fill="tozeroy",
            line=dict(color=COLORS[1]),
        )
    )
    return fig


def clipping(example: ClippingExample) -> go.Figure:
    """Per-example gradient norms before and after clipping, the clip norm as a line."""
    xs = list(range(1, len(example.before) + 1))
    fig = _fig(f"per-example gradient norms, clipped to C = {example.clip:g}", "example", "gradient norm")
    fig.add_trace(go.Bar(x=xs, y=list(example.before), name="before clipping", marker_color="#c7c7c7"))
    fig.add_trace(go.Bar(x=xs, y=list(example.after), name="after clipping", marker_color=COLORS[0]))
    fig.add_hline(
        y=example.clip,
        line=dict(color=COLORS[1], dash="dash"),
        annotation_text=f"C = {example.clip:g}",
        annotation_position="top left",
    )
    fig.update_layout(barmode="overlay")
    return fig


def error_vs_epsilon(epsilons: Sequence[float], errors: Mapping[str, Sequence[float]]) -> go.Figure:
    """The error a private average pays at each ε, one line per dataset size."""
    fig = _fig("error of a private average against ε", "ε", "expected absolute error (log scale)")
    for i, (label, values) in enumerate(errors.items()):
        fig.add_trace(
            go.Scatter(
                x=list(epsilons), y=list(values), mode="lines", name=label, line=dict(color=COLORS[i % len(COLORS)])
            )
        )
    every = [v for values in errors.values() for v in values]
    _log_axis(fig, "y", every, pad=1.0)
    _log_axis(fig, "x", epsilons, pad=1.0)
    return fig


def privacy_region(*, epsilon: float, delta: float, curves: Mapping[str, RocCurve]) -> go.Figure:
    """ROC space with the region (ε, δ)-DP allows shaded and attack curves drawn inside it.

    Every membership test's (FPR, TPR) must satisfy TPR ≤ e^ε·FPR + δ and 1 − FPR ≤ e^ε·(1 − TPR) + δ,
    and so must the reversed test, which bounds TPR from below too.
    """
    title = (
        "no privacy (ε = ∞): any attack is allowed"
        if math.isinf(epsilon)
        else f"what (ε = {format_epsilon(epsilon, digits=2)}, δ = {delta:.0e})-DP allows an attacker"
    )
    fig = _fig(title, "false-positive rate (non-members flagged)", "true-positive rate (members caught)")
    fprs = [i / 400 for i in range(401)]
    upper = [float(t) for t in max_tpr(fprs, epsilon=epsilon, delta=delta)]
    lower = [1.0 - float(t) for t in max_tpr([1.0 - f for f in fprs], epsilon=epsilon, delta=delta)]
    fig.add_trace(
        go.Scatter(x=fprs, y=lower, mode="lines", line=dict(color="#999", width=1), showlegend=False, hoverinfo="skip")
    )
    fig.add_trace(
        go.Scatter(
            x=fprs,
            y=upper,
            mode="lines",
            name="allowed region",
            fill="tonexty",
            fillcolor="rgba(44, 160, 44, 0.15)",
            line=dict(color=COLORS[2], width=2),
            hovertemplate="FPR %{x:.3f}: TPR at most %{y:.3f}<extra>allowed</extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="guessing",
            line=dict(color="#555", dash="dot", width=1),
            hoverinfo="skip",
        )
    )
    for i, (label, curve) in enumerate(curves.items()):
        fig.add_trace(
            go.Scatter(
                x=list(curve.fpr),
                y=list(curve.tpr),
                mode="lines",
                name=label,
                line=dict(color=COLORS[(i + 3) % len(COLORS)], width=2),
                hovertemplate="FPR %{x:.3f}, TPR %{y:.3f}<extra>" + label + "</extra>",
            )
        )
    fig.update_xaxes(range=[0, 1], constrain="domain")
    fig.update_yaxes(range=[0, 1.02], scaleanchor="x", scaleratio=1)
    fig.update_layout(height=420, legend_traceorder="normal")
    return fig


def audit_vs_epsilon(
    points: Sequence[AuditPoint], *, styles: Optional[Mapping[str, ParticipantStyle]] = None
) -> go.Figure:
    """Two panels against the accounted ε (log axis; non-private baselines at ``INFINITY_TICK`` on its right,
    written level): the best attack's AUC, and the empirical ε lower bound below the line bound = ε that a
    correct run never crosses. With ``styles`` each run takes its participant's colour and marker, as in the
    class view; more than ``MAX_RUN_LEGEND`` runs are named by participant in the legend, below the plot."""
    by_participant = styles is not None and len(points) > MAX_RUN_LEGEND
    named: set[str] = set()
    finite = [p.epsilon for p in points if math.isfinite(p.epsilon)]
    low, high = (min(finite) / 1.6, max(finite) * 1.6) if finite else (0.5, 2.0)
    confidence = points[0].confidence if points else 0.95
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        # Two lines each, so the titles of two half-width panels never run into each other on a phone.
        subplot_titles=("attack AUC<br>(0.5 = guessing)", f"ε lower bound<br>({confidence:.0%} confidence)"),
    )
    x_infinite = _epsilon_axis_with_infinity(fig, finite, max_ticks=4)  # where ε = ∞ is drawn, past a gap
    for point in points:
        x = point.epsilon if math.isfinite(point.epsilon) else x_infinite
        if styles is None:
            symbol = "circle" if math.isfinite(point.epsilon) else "diamond"
            color, name, group, show = run_color(point.run_id), point.label, str(point.run_id), True
        else:
            style = _style(styles, point.owner)
            color, symbol = style.color, style.symbol
            if by_participant:
                name, group, show = point.participant, point.owner, point.owner not in named
                named.add(point.owner)
            else:
                name, group, show = f"{point.label} ({point.participant})", str(point.run_id), True
        hover = (
            f"<b>{point.label}</b>{f' by {point.participant}' if point.participant else ''}<br>{point.summary}<br>"
            f"accounted ε = {format_epsilon(point.epsilon)}"
            f"<br>attack AUC {point.auc:.3f}, ε ≥ {point.epsilon_lower_bound:.2f}<extra></extra>"
        )
        for col, y in ((1, point.auc), (2, point.epsilon_lower_bound)):
            fig.add_trace(
                go.Scatter(
                    x=[x],
                    y=[y],
                    mode="markers",
                    name=name,
                    legendgroup=group,
                    showlegend=show and col == 1,
                    marker=dict(size=13, color=color, line=dict(width=1, color="white"), symbol=symbol),
                    hovertemplate=hover,
                ),
                row=1,
                col=col,
            )
    fig.add_hline(
        y=0.5,
        line=dict(color="#555", dash="dot", width=1),
        annotation_text="guessing",
        annotation_position="bottom right",
        row=1,
        col=1,
    )
    if finite:
        xs = [low * (high / low) ** (i / 40) for i in range(41)]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=xs,
                mode="lines",
                name="bound = ε: a correct run stays below",
                line=dict(color="#555", dash="dash", width=1.5),
                hoverinfo="skip",
            ),
            row=1,
            col=2,
        )
    gap = math.sqrt(high * x_infinite)
    for col in (1, 2):
        fig.add_vline(x=gap, line=dict(color="#bbb", width=1), row=1, col=col)
    fig.update_xaxes(title_text="accounted ε")
    aucs = [p.auc for p in points]
    fig.update_yaxes(range=[min([0.45, *[a - 0.03 for a in aucs]]), max([1.0, *aucs])], row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    entries = sum(1 for t in fig.data if t.showlegend is not False)
    fig.update_layout(
        **{
            **_LAYOUT,
            "height": _legend_height(entries, base=440),
            "legend": _LEGEND_BELOW,
            "margin": dict(l=10, r=10, t=60, b=10),
        }
    )
    return fig


def sweep_accuracy_vs_epsilon(
    groups: Sequence[SeedGroup], frontiers: Mapping[tuple, Sequence[SeedGroup]], *, title: str
) -> go.Figure:
    """One sweep's settings as mean final accuracy ± one standard deviation over seeds against ε, each
    point labelled with its setting ("σ 0.8"), and the Pareto frontier of each training set (completed
    runs only; baselines as dotted lines)."""
    fig = _fig(title, "ε (lower is more private)", "test accuracy (mean ± sd over seeds)")
    private = [g for g in groups if g.private]
    if private:
        fig.add_trace(
            go.Scatter(
                x=[g.epsilon for g in private],
                y=[g.accuracy_mean for g in private],
                mode="markers+text",
                name="settings",
                error_y=dict(type="data", array=[g.accuracy_sd for g in private], visible=True),
                marker=dict(color=COLORS[0], size=8),
                text=[g.label for g in private],
                # Off the frontier, which rises to the right: above left of each point, below right of the leftmost.
                textposition=[
                    "bottom right" if g.epsilon == min(p.epsilon for p in private) and len(private) > 1 else "top left"
                    for g in private
                ],
                cliponaxis=False,
                customdata=[f"{g.setting} ({len(g.run_ids)} seed(s))" for g in private],
                hovertemplate="%{customdata}<br>ε %{x:.3f}<br>accuracy %{y:.3f}<extra></extra>",
            )
        )
    for i, front in enumerate(frontiers.values()):
        fig.add_trace(
            go.Scatter(
                x=[g.epsilon for g in front],
                y=[g.accuracy_mean for g in front],
                mode="lines",
                name="Pareto frontier" if len(frontiers) == 1 else f"Pareto frontier {i + 1}",
                line=dict(color=COLORS[(i + 1) % len(COLORS)], dash="dash"),
                hoverinfo="skip",
            )
        )
    for g in groups:
        if not g.private:
            fig.add_hline(
                y=g.accuracy_mean,
                line=dict(color="#888", dash="dot"),
                annotation_text=f"non-private baseline (ε = ∞), {len(g.run_ids)} seed(s)",
            )
    return fig
