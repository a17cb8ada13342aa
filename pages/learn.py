"""Learn: a short workshop page on what ε and δ promise, why clipping, noise and sampling, and the cost."""

from __future__ import annotations

import streamlit as st

import app_state
from dpcore.audit import bounds
from dpcore.config import ACCOUNTANT_TITLES, SAMPLINGS
from dpcore.errors import UserInputError
from dpcore.privacy import explain
from dpcore.runs import comparison
from dpcore.views import charts, teaching

# The page's sections in order; the caption counts them and each header numbers itself from here.
SECTIONS = (
    "What ε and δ promise",
    "Why DP-SGD clips and adds noise",
    "Why sampling matters: Poisson vs shuffle",
    "What accuracy costs as ε falls",
    "Reading an ε",
    "What an attacker can actually do",
)


def section(title: str) -> None:
    """The numbered header of one of SECTIONS."""
    st.header(f"{SECTIONS.index(title) + 1}. {title}")


st.title("Learn")
st.caption(f"Differential privacy for DP-SGD in {len(SECTIONS)} short steps. Every chart below is live.")

# -- 1 ----------------------------------------------------------------------------------------
section("What ε and δ promise")
st.markdown(
    "Differential privacy is a promise to **each person** in the data: whatever comes out of "
    "training would have been almost as likely **without their record**. ε measures *almost*: "
    "the chance of any outcome changes by at most a factor e^ε. δ is a tiny chance that the "
    "promise fails outright, so it must be far smaller than one over the number of people.\n\n"
    "The simplest private algorithm releases a **count** (say, how many people in a dataset "
    "have a condition) plus Gaussian noise. Below, the blue curve is what the released count "
    "looks like if you are *not* in the data, the red curve if you *are*. When the curves "
    "overlap, nobody can tell from the output whether you took part."
)
left, right = st.columns([1, 2], gap="large")
with left:
    sigma = st.slider("Noise σ on the count", min_value=0.2, max_value=8.0, value=2.0, step=0.1, key="learn_sigma")
    count = st.number_input(
        "True count without you", min_value=0, max_value=10_000, value=40, step=1, key="learn_count"
    )
    delta = st.select_slider(
        "δ", options=(1e-3, 1e-4, 1e-5, 1e-6, 1e-7), value=1e-5, format_func=lambda d: f"{d:.0e}", key="learn_delta"
    )
example = teaching.count_example(count=int(count), sigma=float(sigma), delta=float(delta))
with left:
    st.metric("ε of this noisy count", explain.format_epsilon(example.epsilon))
    st.caption(explain.epsilon_reading(example.epsilon, float(delta), outcome="released count"))
right.plotly_chart(charts.count_mechanism(example), width="stretch", key="learn_count_chart")
st.info(
    "Less noise: the curves move apart and ε grows. More noise: they overlap and ε shrinks, "
    "but the count you publish gets less accurate. That is the whole trade-off in one picture."
)

# -- 2 ----------------------------------------------------------------------------------------
section("Why DP-SGD clips and adds noise")
st.markdown(
    "Training looks at gradients, one per example. A single unusual person can have a huge "
    "gradient and pull the model towards them, which is exactly what an attacker can detect. "
    "DP-SGD therefore **clips** every example's gradient to at most a norm C, so nobody can "
    "move the sum by more than C, and then adds Gaussian **noise** with standard deviation σ·C "
    "to the sum, just like the count above (σ is the noise multiplier). Clipping bounds one "
    "person's influence; the noise hides what is left."
)
left, right = st.columns([1, 2], gap="large")
clip = left.slider("Clip norm C", min_value=0.25, max_value=6.0, value=1.5, step=0.25, key="learn_clip")
clipped = teaching.clipping_example(clip=float(clip))
outlier = clipped.outlier_index
left.caption(
    f"The outlier (example {outlier + 1}) had norm {clipped.before[outlier]:.1f}; after clipping "
    f"it counts no more than anyone else: {clipped.after[outlier]:.2f}. "
    "A small C bounds influence tightly but also shrinks honest gradients, so the same "
    "noise drowns more signal."
)
right.plotly_chart(charts.clipping(clipped), width="stretch", key="learn_clip_chart")

# -- 3 ----------------------------------------------------------------------------------------
section("Why sampling matters: Poisson vs shuffle")
st.markdown(
    "With **Poisson sampling** every step includes each example independently with a small "
    "probability q = batch size / n. Most steps do not see you at all, and that uncertainty "
    "*amplifies* privacy: the ε is much smaller. The figure is only honest when batches really "
    "are drawn that way, which DP Explorer's trainer does when you choose Poisson. The common "
    "shortcut of **shuffling** the data into fixed batches does not come with that guarantee, so "
    "DP Explorer counts it conservatively: each epoch as one full-noise release of everyone."
)
cfg = app_state.config()
n = app_state.train_size(cfg)
if n is not None and cfg.private and cfg.batch_size <= n:
    try:
        series = {
            f"{s}, {ACCOUNTANT_TITLES[cfg.accountant]}": app_state.epsilon_curve(cfg.replace(sampling=s), n=n)
            for s in SAMPLINGS
        }
    except UserInputError as exc:  # beyond the accountant's bounds or its time: said, not charted
        st.error(str(exc))
        series = {}
    st.caption(
        f"Your current Explore settings: {cfg.dataset}, n = {n:,}, batch {cfg.batch_size}, "
        f"σ {cfg.noise_multiplier:g}, {cfg.epochs} epochs."
    )
    if series:
        st.plotly_chart(
            charts.epsilon_vs_epochs(series, current_epochs=cfg.epochs, delta=cfg.delta),
            width="stretch",
            key="learn_sampling_chart",
        )
else:
    st.info(
        "Pick a private config with a batch size no larger than the dataset on the Explore page "
        "to see this comparison for your own settings."
    )

# -- 4 ----------------------------------------------------------------------------------------
section("What accuracy costs as ε falls")
st.markdown(
    "Privacy is paid for in accuracy. In the simplest case, a private average of n values "
    "between 0 and 1, the error grows like 1 / (n·ε): halve ε and the error doubles; ten times "
    "more people and it shrinks tenfold. Training behaves the same way in spirit: larger "
    "datasets buy privacy more cheaply."
)


@st.cache_data(show_spinner=False)
def mean_errors(epsilons: tuple[float, ...], sizes: tuple[int, ...]) -> dict[str, tuple[float, ...]]:
    """The private-average error curve for each dataset size (pure, so cached)."""
    return {
        f"n = {size:,}": tuple(teaching.private_mean_error(epsilon=e, delta=1e-5, n=size) for e in epsilons)
        for size in sizes
    }


epsilons = tuple(round(0.05 * (20 / 0.05) ** (i / 39), 4) for i in range(40))
errors = mean_errors(epsilons, (100, 1_000, 10_000))
st.plotly_chart(charts.error_vs_epsilon(epsilons, errors), width="stretch", key="learn_error_chart")

stored = app_state.store().list_runs()
choices = comparison.dataset_choices(stored)
view = comparison.build_view(())
if choices:  # one dataset's runs: accuracies on different test sets do not compare
    shown = comparison.default_dataset(choices, preferred=comparison.dataset_key(app_state.config()))
    view = comparison.build_view(comparison.filter_runs(stored, dataset=shown), names=app_state.store().display_names())
if view.curves:
    title = app_state.dataset_title(next(c for c in choices if c.key == shown))
    st.markdown(f"And here are the runs trained on {title} in this app so far: accuracy against ε.")
    st.plotly_chart(charts.accuracy_vs_epsilon(view), width="stretch", key="learn_runs_chart")
else:
    st.caption(
        "Train a few runs with different noise multipliers on the Train page and their "
        "accuracy-vs-ε curve appears here and on the Compare page."
    )

# -- 5 ----------------------------------------------------------------------------------------
section("Reading an ε")
st.markdown(
    "- **ε ≤ 1**: strong; an attacker learns very little about any one person.\n"
    "- **1 < ε ≤ 3**: moderate; the usual target for DP-SGD on real tasks.\n"
    "- **3 < ε ≤ 10**: weak but still bounded; say so when you report it.\n"
    "- **ε > 10**: very little protection in practice.\n\n"
    "Always report ε together with δ, the accountant, and how batches were sampled."
)
st.caption(
    f"For example, at ε = 1 an attacker who starts 50/50 on whether your record was used "
    f"can end at most {explain.attacker_confidence(1.0):.0%} sure."
)

# -- 6 ----------------------------------------------------------------------------------------
section("What an attacker can actually do")
st.markdown(
    "ε is a limit on every **membership-inference attack**: any test that looks at the trained "
    "model and says *member* or *not a member* for a record. Plot the share of members it catches "
    "(true-positive rate, TPR) against the share of non-members it wrongly flags (false-positive "
    "rate, FPR). An (ε, δ)-DP training run confines every attack to the shaded region:\n\n"
    "- **TPR ≤ e^ε · FPR + δ**: few false alarms mean few catches;\n"
    "- **1 − FPR ≤ e^ε · (1 − TPR) + δ**, the mirror: catching nearly everyone costs many false alarms.\n\n"
    "An **audit** runs real attacks on a trained model and reads the (TPR, FPR) they reach, with "
    "confidence intervals so that a small sample cannot overclaim. Solving the two inequalities for ε "
    "gives an **empirical lower bound** on ε. For a correctly accounted run that bound can never "
    "exceed the ε the accountant promised; a bound far below it means the attacks are weaker than "
    "the worst case ε allows, not that the run is more private."
)
left, right = st.columns([1, 2], gap="large")
with left:
    audit_epsilon = st.slider("ε", min_value=0.1, max_value=10.0, value=1.0, step=0.1, key="learn_audit_epsilon")
    audit_delta = 1e-5
    caught = float(bounds.max_tpr(0.01, epsilon=audit_epsilon, delta=audit_delta))
    st.metric("Members caught at 1% false alarms, at most", f"{caught:.1%}")
    st.caption(
        f"At ε = {audit_epsilon:g} (δ = {audit_delta:.0e}) an attacker who wrongly accuses 1% of "
        f"non-members can catch at most {caught:.1%} of the members. The purple curve is the best "
        "possible attack on a Gaussian mechanism with exactly this (ε, δ): it touches the "
        "boundary but never crosses it."
    )
best_attack = teaching.gaussian_attack_roc(epsilon=audit_epsilon, delta=audit_delta)
right.plotly_chart(
    charts.privacy_region(
        epsilon=audit_epsilon, delta=audit_delta, curves={"best attack on a Gaussian mechanism": best_attack}
    ),
    width="stretch",
    key="learn_audit_chart",
)
