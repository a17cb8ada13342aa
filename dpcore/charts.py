"""Plotly figure builders for every chart in the app; pure functions of their data, no Streamlit."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dpcore.audit import RocCurve, max_tpr
from dpcore.comparison import ComparisonView
from dpcore.explain import format_epsilon
from dpcore.teaching import ClippingExample, CountExample

if TYPE_CHECKING:
    from dpcore.sweeps import SeedGroup

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), height=340, template="plotly_white",
               legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))


def _fig(title: str, x: str, y: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=dict(text=title, x=0.0, y=0.97), xaxis_title=x, yaxis_title=y, **_LAYOUT)
    return fig


def epsilon_vs_epochs(series: Mapping[str, Sequence[float]], *, current_epochs: int,
                      delta: float) -> go.Figure:
    """ε after each epoch, one line per accountant/sampling label, the chosen epoch count marked."""
    fig = _fig(f"ε after each epoch (δ = {delta:.0e})", "epoch", "ε")
    for i, (label, values) in enumerate(series.items()):
        xs = list(range(1, len(values) + 1))
        fig.add_trace(go.Scatter(x=xs, y=list(values), mode="lines+markers", name=label,
                                 line=dict(color=COLORS[i % len(COLORS)]), marker=dict(size=5),
                                 hovertemplate="epoch %{x}<br>ε %{y:.3f}<extra>" + label + "</extra>"))
    fig.add_vline(x=current_epochs, line=dict(color="#888", dash="dot"))
    fig.update_yaxes(rangemode="tozero")
    return fig


def epsilon_vs_noise(noises: Sequence[float], series: Mapping[str, Sequence[float]], *,
                     current_noise: float, current_epsilon: Optional[float], delta: float) -> go.Figure:
    """Final ε against the noise multiplier, one line per label, the current setting as a dot."""
    fig = _fig(f"ε against noise multiplier (δ = {delta:.0e})", "noise multiplier σ", "ε (log scale)")
    for i, (label, values) in enumerate(series.items()):
        fig.add_trace(go.Scatter(x=list(noises), y=list(values), mode="lines", name=label,
                                 line=dict(color=COLORS[i % len(COLORS)]),
                                 hovertemplate="σ %{x:.2f}<br>ε %{y:.3f}<extra>" + label + "</extra>"))
    if current_epsilon is not None and math.isfinite(current_epsilon):
        fig.add_trace(go.Scatter(x=[current_noise], y=[current_epsilon], mode="markers", name="current",
                                 marker=dict(size=11, color="black", symbol="x"),
                                 hovertemplate="σ %{x:.2f}<br>ε %{y:.3f}<extra>current</extra>"))
    fig.update_yaxes(type="log")
    return fig


def training_progress(epochs: Sequence[int], accuracies: Sequence[float], epsilons: Sequence[float], *,
                      epochs_total: int, private: bool) -> go.Figure:
    """Two panels: test accuracy per epoch, and ε spent so far (or a note that a baseline spends ∞)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("test accuracy", "ε spent" if private
                                                        else "ε spent: ∞ (non-private)"))
    fig.add_trace(go.Scatter(x=list(epochs), y=list(accuracies), mode="lines+markers", name="test accuracy",
                             line=dict(color=COLORS[0])), row=1, col=1)
    if private:
        fig.add_trace(go.Scatter(x=list(epochs), y=list(epsilons), mode="lines+markers", name="ε",
                                 line=dict(color=COLORS[1])), row=1, col=2)
    fig.update_xaxes(title_text="epoch", range=[0.5, max(epochs_total, 1) + 0.5], dtick=_dtick(epochs_total))
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(**{**_LAYOUT, "height": 300, "showlegend": False, "margin": dict(l=10, r=10, t=40, b=10)})
    return fig


def _dtick(total: int) -> int:
    return max(1, math.ceil(total / 10))


def accuracy_vs_epsilon(view: ComparisonView) -> go.Figure:
    """Each run's per-epoch (ε, accuracy) as a curve, final points large, frontier and baselines drawn."""
    fig = _fig("test accuracy against ε", "ε (lower is more private)", "test accuracy")
    for i, curve in enumerate(view.curves):
        color = COLORS[i % len(COLORS)]
        hover = (f"<b>{curve.label}</b> ({curve.status})<br>{curve.summary}<br>"
                 "epoch %{customdata}: ε %{x:.3f}, accuracy %{y:.3f}<extra></extra>")
        sizes = [6] * (len(curve.epsilons) - 1) + [14]
        fig.add_trace(go.Scatter(
            x=list(curve.epsilons), y=list(curve.accuracies), mode="lines+markers", name=curve.label,
            customdata=list(range(1, len(curve.epsilons) + 1)), hovertemplate=hover,
            line=dict(color=color, width=1.5), marker=dict(size=sizes, color=color,
                                                          line=dict(width=1, color="white")),
        ))
    if view.frontier:
        fig.add_trace(go.Scatter(
            x=[p.epsilon for p in view.frontier], y=[p.accuracy for p in view.frontier],
            mode="lines", name="Pareto frontier", line=dict(color="black", dash="dash", width=2, shape="hv"),
            hoverinfo="skip",
        ))
    for i, base in enumerate(view.baselines):
        name = base.label if "non-private" in base.label else f"{base.label}, non-private"
        fig.add_hline(y=base.accuracy, line=dict(color="#555", dash="dot"),
                      annotation_text=f"{name} (ε = ∞): accuracy {base.accuracy:.3f}",
                      annotation_position="bottom right" if i % 2 else "top right")
    fig.update_layout(height=440)
    fig.update_xaxes(rangemode="tozero")
    return fig


def count_mechanism(example: CountExample) -> go.Figure:
    """The two output densities of a noisy count on neighbouring datasets."""
    fig = _fig(f"noise σ = {example.sigma:g}: ε = {format_epsilon(example.epsilon, digits=2)} at δ = {example.delta:.0e}",
               "released count", "probability density")
    fig.add_trace(go.Scatter(x=list(example.xs), y=list(example.density_without), mode="lines",
                             name=f"without you (true count {example.count})", fill="tozeroy",
                             line=dict(color=COLORS[0])))
    fig.add_trace(go.Scatter(x=list(example.xs), y=list(example.density_with), mode="lines",
                             name=f"with you (true count {example.count + 1})", fill="tozeroy",
                             line=dict(color=COLORS[1])))
    return fig


def clipping(example: ClippingExample) -> go.Figure:
    """Per-example gradient norms before and after clipping, the clip norm as a line."""
    xs = list(range(1, len(example.before) + 1))
    fig = _fig(f"per-example gradient norms, clipped to C = {example.clip:g}", "example", "gradient norm")
    fig.add_trace(go.Bar(x=xs, y=list(example.before), name="before clipping", marker_color="#c7c7c7"))
    fig.add_trace(go.Bar(x=xs, y=list(example.after), name="after clipping", marker_color=COLORS[0]))
    fig.add_hline(y=example.clip, line=dict(color=COLORS[1], dash="dash"),
                  annotation_text=f"C = {example.clip:g}", annotation_position="top left")
    fig.update_layout(barmode="overlay")
    return fig


def error_vs_epsilon(epsilons: Sequence[float], errors: Mapping[str, Sequence[float]]) -> go.Figure:
    """The error a private average pays at each ε, one line per dataset size."""
    fig = _fig("error of a private average against ε", "ε", "expected absolute error (log scale)")
    for i, (label, values) in enumerate(errors.items()):
        fig.add_trace(go.Scatter(x=list(epsilons), y=list(values), mode="lines", name=label,
                                 line=dict(color=COLORS[i % len(COLORS)])))
    fig.update_yaxes(type="log")
    fig.update_xaxes(type="log")
    return fig



def privacy_region(*, epsilon: float, delta: float, curves: Mapping[str, RocCurve]) -> go.Figure:
    """ROC space with the region (ε, δ)-DP allows shaded and attack curves drawn inside it.

    Every membership test's (FPR, TPR) must satisfy TPR ≤ e^ε·FPR + δ and 1 − FPR ≤ e^ε·(1 − TPR) + δ,
    and so must the reversed test, which bounds TPR from below too.
    """
    title = ("no privacy (ε = ∞): any attack is allowed" if math.isinf(epsilon)
             else f"what (ε = {epsilon:.2g}, δ = {delta:.0e})-DP allows an attacker")
    fig = _fig(title, "false-positive rate (non-members flagged)", "true-positive rate (members caught)")
    fprs = [i / 400 for i in range(401)]
    upper = [float(t) for t in max_tpr(fprs, epsilon=epsilon, delta=delta)]
    lower = [1.0 - float(t) for t in max_tpr([1.0 - f for f in fprs], epsilon=epsilon, delta=delta)]
    fig.add_trace(go.Scatter(x=fprs, y=lower, mode="lines", line=dict(color="#999", width=1),
                             showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=fprs, y=upper, mode="lines", name="allowed region", fill="tonexty",
                             fillcolor="rgba(44, 160, 44, 0.15)", line=dict(color=COLORS[2], width=2),
                             hovertemplate="FPR %{x:.3f}: TPR at most %{y:.3f}<extra>allowed</extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="guessing",
                             line=dict(color="#555", dash="dot", width=1), hoverinfo="skip"))
    for i, (label, curve) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=list(curve.fpr), y=list(curve.tpr), mode="lines", name=label,
                                 line=dict(color=COLORS[(i + 3) % len(COLORS)], width=2),
                                 hovertemplate="FPR %{x:.3f}, TPR %{y:.3f}<extra>" + label + "</extra>"))
    fig.update_xaxes(range=[0, 1], constrain="domain")
    fig.update_yaxes(range=[0, 1.02], scaleanchor="x", scaleratio=1)
    fig.update_layout(height=420)
    return fig


def sweep_accuracy_vs_epsilon(groups: Sequence["SeedGroup"],
                              frontiers: Mapping[tuple, Sequence["SeedGroup"]], *, title: str) -> go.Figure:
    """One sweep's settings as mean final accuracy ± one standard deviation over seeds against ε, and
    the Pareto frontier of each training set (completed runs only; baselines as dotted lines)."""
    fig = _fig(title, "ε (lower is more private)", "test accuracy (mean ± sd over seeds)")
    private = [g for g in groups if g.private]
    if private:
        fig.add_trace(go.Scatter(
            x=[g.epsilon for g in private], y=[g.accuracy_mean for g in private], mode="markers", name="settings",
            error_y=dict(type="data", array=[g.accuracy_sd for g in private], visible=True),
            marker=dict(color=COLORS[0], size=8), text=[f"{g.setting} ({len(g.run_ids)} seed(s))" for g in private],
            hovertemplate="%{text}<br>ε %{x:.3f}<br>accuracy %{y:.3f}<extra></extra>"))
    for i, front in enumerate(frontiers.values()):
        fig.add_trace(go.Scatter(x=[g.epsilon for g in front], y=[g.accuracy_mean for g in front], mode="lines",
                                 name="Pareto frontier" if len(frontiers) == 1 else f"Pareto frontier {i + 1}",
                                 line=dict(color=COLORS[(i + 1) % len(COLORS)], dash="dash"), hoverinfo="skip"))
    for g in groups:
        if not g.private:
            fig.add_hline(y=g.accuracy_mean, line=dict(color="#888", dash="dot"),
                          annotation_text=f"non-private baseline (ε = ∞), {len(g.run_ids)} seed(s)")
    return fig
