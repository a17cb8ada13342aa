"""Selection accounting: plain composition of runs, the Papernot–Steinke random-trials bound, the draw.

The paper is Papernot & Steinke, "Hyperparameter tuning with Rényi differential privacy", ICLR 2022,
arXiv:2110.03620v2. Theorem numbers below are that version's (the ones dp_accounting's implementation
cites: Theorem 2 on p. 5, Theorem 6 on p. 7; Corollaries 3 and 4 as its tests cite them).
"""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from scipy import stats

from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.privacy import accounting, events, limits, selection
from dpcore.privacy.limits import AccountingError
from dpcore.privacy.selection import SelectionError, SelectionSettings

N = 1437  # digits' training set
ORDERS = np.array(events.RDP_ORDERS)
RUN = DPConfig(
    epochs=3, batch_size=64, noise_multiplier=1.1
)  # Poisson-sampled DP-SGD, 68 steps of q = 64/1437, σ = 1.1
SHUFFLED = DPConfig(epochs=3, sampling="shuffle", noise_multiplier=4.0)  # three Gaussian releases
PLD_RUN = DPConfig(epochs=1, noise_multiplier=2.0, accountant="pld")  # small enough for a quick PLD


def _tnb(mean, shape):
    return SelectionSettings("truncated_negative_binomial", mean, shape)


def _envelope(values):
    """RDP is non-decreasing in the order, so a bound at order λ' also holds at every λ <= λ'."""
    return np.minimum.accumulate(np.asarray(values)[::-1])[::-1]


def _gaussian_rdp(sigma):
    return ORDERS / (2 * sigma**2)


# -- the run's event ---------------------------------------------------------------------------


@pytest.mark.parametrize("config", [RUN, SHUFFLED, PLD_RUN])
def test_the_event_of_a_config_gives_its_single_run_epsilon(config):
    event = accounting.dp_event_for_config(config, n=N)
    if config.accountant == "rdp":
        value = events.epsilon_from_rdp(events.event_rdp(event), delta=config.delta)
        assert value == pytest.approx(accounting.epsilon_for_config(config, n=N), rel=1e-12)
    else:
        pld = pld_privacy_accountant.PLDAccountant(value_discretization_interval=limits.PRECISE_PLD_INTERVAL)
        assert pld.compose(event).get_epsilon(config.delta) == pytest.approx(
            accounting.epsilon_for_config(config, n=N), rel=1e-9
        )


def test_a_baseline_is_a_non_private_event():
    assert accounting.dp_event_for_config(RUN.as_baseline(), n=N) == dp_accounting.NonPrivateDpEvent()
    assert math.isinf(selection.composition_epsilon([RUN, RUN.as_baseline()], n=N))


def test_event_and_conversion_inputs_are_checked():
    with pytest.raises(AccountingError, match="sampling"):
        events.dp_event(n=N, batch_size=64, noise_multiplier=1.0, epochs=1, sampling="uniform")
    with pytest.raises(AccountingError, match="batch_size"):
        events.dp_event(n=10, batch_size=64, noise_multiplier=1.0, epochs=1)
    with pytest.raises(AccountingError, match="delta"):
        events.epsilon_from_rdp(_gaussian_rdp(1.0), delta=0)


# -- plain composition ---------------------------------------------------------------------------


def test_k_identical_runs_compose_as_dp_accountings_self_composition():
    event = accounting.dp_event_for_config(RUN, n=N)
    reference = rdp_privacy_accountant.RdpAccountant(orders=events.RDP_ORDERS)
    reference.compose(dp_accounting.SelfComposedDpEvent(event, 5))
    assert selection.composition_epsilon([RUN] * 5, n=N) == pytest.approx(reference.get_epsilon(RUN.delta), rel=1e-12)
    assert selection.composition_epsilon([RUN], n=N) == pytest.approx(
        accounting.epsilon_for_config(RUN, n=N), rel=1e-12
    )


def test_k_identical_runs_under_pld():
    run = PLD_RUN
    reference = pld_privacy_accountant.PLDAccountant(value_discretization_interval=limits.PRECISE_PLD_INTERVAL)
    reference.compose(dp_accounting.SelfComposedDpEvent(accounting.dp_event_for_config(run, n=N), 3))
    composed = selection.composition_epsilon([run] * 3, n=N)
    assert composed == pytest.approx(reference.get_epsilon(run.delta), rel=1e-9)
    assert composed > accounting.epsilon_for_config(run, n=N)


def test_different_runs_compose_each_event_once_per_run():
    louder = RUN.replace(noise_multiplier=2.0, learning_rate=0.5)
    reference = rdp_privacy_accountant.RdpAccountant(orders=events.RDP_ORDERS)
    for config in (RUN, louder, RUN, SHUFFLED.replace(sampling="poisson")):
        reference.compose(accounting.dp_event_for_config(config, n=N))
    runs = [RUN, louder, RUN, SHUFFLED.replace(sampling="poisson")]
    assert selection.composition_epsilon(runs, n=N) == pytest.approx(reference.get_epsilon(RUN.delta), rel=1e-12)


# Fashion-MNIST's 60,000 examples one at a time at σ 1000: steps below dp_accounting's RDP resolution,
# and a PLD of three grid points that its sparse self-composition raises to the power of the steps.
QUIET = DPConfig(dataset="fashion_mnist", batch_size=1, epochs=1, noise_multiplier=1000.0)


def test_runs_below_dp_accountings_rdp_resolution_compose_to_a_positive_upper_bound():
    direct = rdp_privacy_accountant.RdpAccountant(orders=events.RDP_ORDERS)
    direct.compose(dp_accounting.SelfComposedDpEvent(accounting.dp_event_for_config(QUIET, n=60000), 2))
    assert direct.get_epsilon(QUIET.delta) == 0  # dp_accounting's steps round to RDP 0: "no privacy loss"
    result = selection.selection_epsilon(runs=[QUIET, QUIET], n=60000)
    assert result.approximate and 0 < result.single_run_epsilon <= result.composition_epsilon < math.inf


def test_pld_runs_of_few_grid_points_compose_as_dp_accountings_pld_accountant():
    run = QUIET.replace(accountant="pld")
    reference = pld_privacy_accountant.PLDAccountant(value_discretization_interval=limits.PRECISE_PLD_INTERVAL)
    reference.compose(dp_accounting.SelfComposedDpEvent(accounting.dp_event_for_config(run, n=60000), 2))
    assert selection.composition_epsilon([run, run], n=60000) == pytest.approx(
        reference.get_epsilon(run.delta), rel=1e-9
    )
    # 1,000 epochs (6e7 steps each): dp_accounting's accountant took minutes per σ; answered here.
    assert selection.composition_epsilon([run.replace(epochs=1000)] * 2, n=60000) < math.inf


def test_many_pld_runs_are_composed_on_a_coarser_grid_and_flagged():
    runs = [PLD_RUN.replace(epochs=20, noise_multiplier=round(0.5 + 0.05 * i, 3)) for i in range(60)]
    work = selection.composition_work(runs, n=N)
    assert work.grid > limits.PRECISE_PLD_INTERVAL and work.seconds <= limits.query_seconds()
    assert work.composed_points <= limits.MAX_PLD_POINTS


def test_pld_runs_beyond_every_grid_are_refused_naming_the_runs(monkeypatch):
    monkeypatch.setattr(limits, "MAX_PLD_POINTS", 10)  # as read by the composition (each run alone still fits)
    with pytest.raises(SelectionError, match=r"^runs: composing these 2 runs under PLD") as caught:
        selection.composition_work([PLD_RUN, PLD_RUN.replace(noise_multiplier=3.0)], n=N)
    assert "rdp" in caught.value.allowed


@pytest.mark.parametrize(
    "runs, message",
    [
        ([], "list of run configurations"),
        (RUN, "list of run configurations"),
        ([RUN, RUN.replace(delta=1e-6)], "δ values"),
        ([RUN, RUN.replace(accountant="pld")], "accountant values"),
        ([RUN, RUN.replace(max_train_examples=500)], "different data"),
        ([RUN, RUN.replace(dataset="fashion_mnist")], "different data"),
        ([RUN, RUN.replace(validation_fraction=0.2)], "different data"),
    ],
)
def test_runs_that_cannot_be_composed_are_refused(runs, message):
    with pytest.raises(SelectionError, match=message) as caught:
        selection.composition_epsilon(runs, n=N)
    assert caught.value.field == "runs" and caught.value.allowed


# -- the random-trials bound against the paper's statements ---------------------------------------


@pytest.mark.parametrize("shape", [0, 0.5, 1, 2])
def test_truncated_negative_binomial_matches_theorem_2(shape):
    # Theorem 2: if each trial is (λ, ε)-RDP and (λ̂, ε̂)-RDP and K ~ D(η, γ), the best of K trials is
    # (λ, ε + (1+η)(1 - 1/λ̂) ε̂ + (1+η) log(1/γ)/λ̂ + log(E[K])/(λ - 1))-RDP; λ̂ is free, so the bound
    # takes the best λ̂ among the orders. Base: a Gaussian trial (ε(λ) = λ/(2σ²)).
    settings = _tnb(10, shape)
    base = _gaussian_rdp(3.0)
    gamma, mean = settings.gamma, settings.expected_trials
    extra = (1 + shape) * np.min((1 - 1 / ORDERS) * base + math.log(1 / gamma) / ORDERS)
    statement = _envelope(base + extra + math.log(mean) / (ORDERS - 1))
    bound = selection.random_trials_rdp([dp_accounting.GaussianDpEvent(3.0)], selection=settings)
    np.testing.assert_allclose(bound, statement, rtol=1e-6)


@pytest.mark.parametrize("shape", [0, 0.5, 1, 2])
def test_pure_dp_trials_match_corollary_3(shape):
    # Corollary 3: if each trial is ε-DP (pure), the best of K ~ D(η, γ) trials is ((2 + η) ε)-DP
    # (η = 1, the geometric distribution, is Liu & Talwar's 3ε). Pure DP is the order λ → ∞; the
    # largest order here is 1024, so the terms that vanish with 1/λ and 1/λ̂ remain as slack.
    eps0, settings = 0.5, _tnb(50, shape)
    bound = selection.random_trials_rdp([dp_accounting.LaplaceDpEvent(1 / eps0)], selection=settings)
    largest = ORDERS[-1]
    slack = ((1 + shape) * (math.log(1 / settings.gamma) + eps0) + math.log(settings.expected_trials)) / (largest - 1)
    assert abs(bound[-1] - (2 + shape) * eps0) <= slack
    assert slack < 0.05 * eps0


@pytest.mark.parametrize("shape", [0, 0.5, 1, 2])
def test_gaussian_trials_match_corollary_4(shape):
    # Corollary 4: if each trial is ρ-zCDP (ε(λ) = ρλ) with ρ <= log(1/γ), the best of K ~ D(η, γ)
    # trials is (λ, ρ(λ-1) + log(E[K])/(λ-1) + 2(1+η)√(ρ log(1/γ)) - ηρ)-RDP, and for
    # λ <= 1 + √(log(E[K])/ρ) it is (λ, 2√(ρ log E[K]) + 2(1+η)√(ρ log(1/γ)) - ηρ)-RDP.
    # ρ is chosen so that the best λ̂ = √(log(1/γ)/ρ) = 4 is one of the orders: then it is exact.
    settings = _tnb(20, shape)
    gamma, mean = settings.gamma, settings.expected_trials
    rho = math.log(1 / gamma) / 16
    bound = selection.random_trials_rdp([dp_accounting.GaussianDpEvent(math.sqrt(0.5 / rho))], selection=settings)
    selection_term = 2 * (1 + shape) * math.sqrt(rho * math.log(1 / gamma)) - shape * rho
    turning = 1 + math.sqrt(math.log(mean) / rho)
    above = ORDERS >= turning
    np.testing.assert_allclose(
        bound[above], rho * (ORDERS[above] - 1) + math.log(mean) / (ORDERS[above] - 1) + selection_term, rtol=1e-6
    )
    flat = 2 * math.sqrt(rho * math.log(mean)) + selection_term
    assert np.all(bound[~above] >= flat * (1 - 1e-9))
    assert bound[~above].min() <= flat * 1.01  # the next order above the turning point is close


@pytest.mark.parametrize("mean", [1, 3, 30])
def test_poisson_matches_theorem_6(mean):
    # Theorem 6: if each trial is (λ, ε)-RDP and (ε̂, δ̂)-DP with ε̂ = log(1 + 1/(λ-1)), the best of
    # K ~ Poisson(μ) trials is (λ, ε + μ δ̂ + log(μ)/(λ-1))-RDP, order by order. The tightest δ̂ of a
    # Gaussian trial (its exact privacy profile) gives a floor no valid use of the theorem can go
    # under; δ̂ from dp_accounting's RDP conversion gives the bound used.
    sigma, settings = 3.0, SelectionSettings("poisson", mean)
    base = _gaussian_rdp(sigma)
    eps_hat = np.log1p(1 / (ORDERS - 1))
    exact_delta = stats.norm.cdf(-eps_hat * sigma + 0.5 / sigma) - np.exp(eps_hat) * stats.norm.cdf(
        -eps_hat * sigma - 0.5 / sigma
    )
    rdp_delta = np.array([rdp_privacy_accountant.compute_delta(ORDERS, base, e)[0] for e in eps_hat])
    bound = selection.random_trials_rdp([dp_accounting.GaussianDpEvent(sigma)], selection=settings)
    assert np.all(bound >= base + mean * exact_delta + math.log(mean) / (ORDERS - 1) - 1e-12)
    np.testing.assert_allclose(bound, base + mean * rdp_delta + math.log(mean) / (ORDERS - 1), rtol=1e-9)


def test_one_trial_equals_dp_accountings_repeat_and_select_event():
    settings = _tnb(8, 0.5)
    event = accounting.dp_event_for_config(RUN, n=N)
    reference = rdp_privacy_accountant.RdpAccountant(orders=events.RDP_ORDERS)
    reference.compose(dp_event.RepeatAndSelectDpEvent(event, settings.expected_trials, 0.5))
    np.testing.assert_allclose(selection.random_trials_rdp([event], selection=settings), reference.rdp, rtol=1e-12)


def test_several_candidates_are_bounded_by_the_worst_at_each_order():
    quiet, loud = dp_accounting.GaussianDpEvent(1.0), dp_accounting.GaussianDpEvent(4.0)
    settings = SelectionSettings("poisson", 10)
    both = selection.random_trials_rdp([loud, quiet, loud], selection=settings)
    np.testing.assert_array_equal(both, selection.random_trials_rdp([quiet], selection=settings))
    assert np.all(selection.random_trials_rdp([loud], selection=settings) < both)
    with pytest.raises(SelectionError, match="candidates"):
        selection.random_trials_rdp([], selection=settings)


# -- the random-trials bound as a person uses it ---------------------------------------------------


@pytest.mark.parametrize("settings", [SelectionSettings("poisson", 20), _tnb(20, 1), _tnb(20, 0)])
def test_many_random_trials_cost_less_than_composing_as_many_runs(settings):
    random_trials = selection.random_trials_epsilon([RUN], n=N, selection=settings)
    single = accounting.epsilon_for_config(RUN, n=N)
    assert single < random_trials < selection.composition_epsilon([RUN] * 20, n=N)


@pytest.mark.parametrize("make", [lambda m: SelectionSettings("poisson", m), lambda m: _tnb(m, 0.5)])
def test_the_bound_grows_with_the_expected_number_of_trials(make):
    values = [selection.random_trials_epsilon([SHUFFLED], n=N, selection=make(mean)) for mean in (1, 2, 5, 20, 100)]
    assert values == sorted(values) and len(set(values)) == len(values)


@pytest.mark.parametrize("shape", [0, 1])
def test_one_expected_trial_costs_the_single_run_plus_theorem_2s_overhead(shape):
    # With E[K] = 1 the distribution is K = 1 (γ = 1): Theorem 2 adds only (1+η) min (1 - 1/λ̂) ε(λ̂).
    single = accounting.epsilon_for_config(RUN, n=N)
    base = events.event_rdp(accounting.dp_event_for_config(RUN, n=N))
    overhead = (1 + shape) * np.min((1 - 1 / ORDERS) * base)
    value = selection.random_trials_epsilon([RUN], n=N, selection=_tnb(1, shape))
    assert single <= value <= single + overhead + 1e-6
    assert overhead < 0.02 * single


def test_one_expected_poisson_trial_costs_the_single_run_plus_theorem_6s_overhead():
    # μ = 1: log μ = 0, so the overhead is μ δ̂ at each order; at the single run's best order it bounds the gap.
    base = events.event_rdp(accounting.dp_event_for_config(RUN, n=N))
    single, order = rdp_privacy_accountant.compute_epsilon(ORDERS, base, RUN.delta)
    delta_hat, _ = rdp_privacy_accountant.compute_delta(ORDERS, base, math.log1p(1 / (order - 1)))
    value = selection.random_trials_epsilon([RUN], n=N, selection=SelectionSettings("poisson", 1))
    assert single <= value <= single + delta_hat + 1e-9


def test_a_baseline_candidate_makes_the_bound_infinite():
    assert math.isinf(selection.random_trials_epsilon([RUN, RUN.as_baseline()], n=N, selection=_tnb(5, 1)))


def test_selection_epsilon_reports_all_three_numbers():
    louder = RUN.replace(noise_multiplier=2.0)
    settings = _tnb(10, 1)
    result = selection.selection_epsilon(runs=[RUN, RUN, louder], n=N, selection=settings, candidates=[RUN, louder])
    assert (result.runs, result.delta, result.accountant, result.selection) == (3, RUN.delta, "rdp", settings)
    assert result.single_run_epsilon == accounting.epsilon_for_config(RUN, n=N)
    assert result.composition_epsilon == selection.composition_epsilon([RUN, RUN, louder], n=N)
    assert result.random_trials_epsilon == selection.random_trials_epsilon([RUN], n=N, selection=settings)
    assert result.epsilon == result.random_trials_epsilon

    fixed = selection.selection_epsilon(runs=[RUN, louder], n=N)
    assert fixed.random_trials_epsilon is None and fixed.epsilon == fixed.composition_epsilon
    assert fixed.single_run_epsilon < fixed.composition_epsilon


def test_selection_epsilon_needs_the_candidates_and_shared_settings():
    with pytest.raises(SelectionError, match="candidates") as caught:
        selection.selection_epsilon(runs=[RUN], n=N, selection=_tnb(5, 1))
    assert caught.value.field == "candidates"
    with pytest.raises(SelectionError, match="δ values"):
        selection.selection_epsilon(runs=[RUN], n=N, selection=_tnb(5, 1), candidates=[RUN.replace(delta=1e-6)])
    with pytest.raises(SelectionError, match="selection"):
        selection.random_trials_epsilon([RUN], n=N, selection={"distribution": "poisson"})


def test_no_runs_drawn_under_poisson_still_carry_the_random_trials_bound():
    louder = RUN.replace(noise_multiplier=2.0)
    settings = SelectionSettings("poisson", 2)
    result = selection.selection_epsilon(runs=[], n=N, selection=settings, candidates=[RUN, louder])
    assert (result.runs, result.composition_epsilon) == (0, 0.0)
    assert result.epsilon == selection.random_trials_epsilon([RUN, louder], n=N, selection=settings)
    assert result.single_run_epsilon == accounting.epsilon_for_config(RUN, n=N)
    with pytest.raises(SelectionError, match="list of run configurations"):
        selection.selection_epsilon(runs=[], n=N)


def test_runs_that_derive_their_csv_schema_privately_are_refused_not_undercounted():
    # Each such run's thresholds spend part of δ outside the composed events: neither bound may leave them out.
    derived = DPConfig(
        dataset="csv", csv_path="assets/sample.csv", csv_label="decision", csv_preprocessing_epsilon=1.0, epochs=1
    )
    for compute in (
        lambda: selection.composition_epsilon([derived, derived], n=192),
        lambda: selection.selection_epsilon(runs=[derived], n=192, selection=_tnb(3, 1), candidates=[derived]),
    ):
        with pytest.raises(SelectionError) as caught:
            compute()
        assert caught.value.field == "csv_preprocessing_epsilon" and "csv_schema" in caught.value.allowed


# -- the cap on the number of trials ---------------------------------------------------------------


def _exact_tail(settings, cap):
    if settings.distribution == "poisson":
        return stats.poisson(settings.mean).sf(cap)
    gamma, shape = settings.gamma, settings.shape
    if shape == 0:
        return stats.logser(1 - gamma).sf(cap)
    return stats.nbinom(shape, gamma).sf(cap) / (1 - gamma**shape)


@pytest.mark.parametrize(
    "settings, cap",
    [
        (SelectionSettings("poisson", 500), 1000),
        (SelectionSettings("poisson", 800), 1000),
        (SelectionSettings("poisson", 900), 1000),
        (SelectionSettings("poisson", 1000), 1000),
        (SelectionSettings("poisson", 20), 30),
        (_tnb(30, 1), 1000),
        (_tnb(100, 1), 1000),
        (_tnb(20, 0), 1000),
        (_tnb(100, 0), 1000),
        (_tnb(50, 0.5), 1000),
        (_tnb(200, 3), 1000),
        (_tnb(500, 10), 1000),
        (_tnb(5, 2), 40),
    ],
)
def test_the_tail_beyond_the_cap_is_bounded_from_above_and_closely(settings, cap):
    exact = _exact_tail(settings, cap)
    bound = selection.trial_count_tail(settings, cap=cap)
    assert exact <= bound <= 1.6 * exact + 2 * selection.ROUNDING_MARGIN


def test_a_distribution_that_always_draws_one_has_no_tail_and_bad_caps_are_refused():
    assert selection.trial_count_tail(_tnb(1, 1), cap=1) == 0.0
    assert selection.trial_count_tail(SelectionSettings("poisson", 3), cap=1000) == 0.0  # below 1e-308
    for cap in (-1, 2.5, True):
        with pytest.raises(SelectionError) as caught:
            selection.trial_count_tail(SelectionSettings("poisson", 3), cap=cap)
        assert caught.value.field == "cap"


def test_the_cap_is_paid_in_delta_and_a_heavy_tail_is_refused_before_drawing():
    light = SelectionSettings("poisson", 700)  # P[K > 1000] about 7e-27
    result = selection.selection_epsilon(runs=[RUN], n=N, selection=light, candidates=[RUN], trial_cap=1000)
    assert result.cap_tail == selection.trial_count_tail(light, cap=1000)
    assert result.cap_delta == pytest.approx(math.exp(result.random_trials_epsilon) * result.cap_tail, rel=1e-9)
    assert result.selection_delta == RUN.delta + result.cap_delta and result.cap_delta > 0
    selection.check_trial_cap(result)  # a small share of δ: allowed
    uncapped = selection.selection_epsilon(runs=[RUN], n=N, selection=light, candidates=[RUN])
    assert (uncapped.cap_delta, uncapped.selection_delta) == (0.0, RUN.delta)

    for heavy in (SelectionSettings("poisson", 900), _tnb(100, 0)):
        result = selection.selection_epsilon(runs=[RUN], n=N, selection=heavy, candidates=[RUN], trial_cap=1000)
        assert result.cap_delta > selection.MAX_CAP_DELTA_SHARE * RUN.delta
        with pytest.raises(SelectionError) as caught:
            selection.check_trial_cap(result)
        assert caught.value.field == "mean" and "more than 1,000 trials" in str(caught.value)
        assert "a smaller mean" in caught.value.allowed
    fixed = selection.selection_epsilon(runs=[RUN], n=N)
    assert fixed.selection_delta == RUN.delta
    selection.check_trial_cap(fixed)  # nothing drawn, nothing to check


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(distribution="uniform", mean=5), "distribution"),
        (dict(distribution="poisson", mean=0.5), "mean"),
        (dict(distribution="poisson", mean=5000), "mean"),
        (dict(distribution="poisson", mean=float("nan")), "mean"),
        (dict(distribution="poisson", mean=True), "mean"),
        (dict(distribution="poisson", mean="5"), "mean"),
        (dict(distribution="poisson", mean=5, shape=1), "shape"),
        (dict(distribution="truncated_negative_binomial", mean=5), "shape"),
        (dict(distribution="truncated_negative_binomial", mean=5, shape=-0.5), "shape"),
        (dict(distribution="truncated_negative_binomial", mean=5, shape=50), "shape"),
        (dict(distribution="truncated_negative_binomial", mean=5, shape=float("inf")), "shape"),
    ],
)
def test_bad_settings_name_the_field_and_what_is_allowed(kwargs, field):
    with pytest.raises(UserInputError) as caught:
        SelectionSettings(**kwargs)
    assert caught.value.field == field and caught.value.allowed
    assert str(caught.value).startswith(f"{field}: ")


def test_the_drawn_distribution_has_the_accounted_mean():
    assert SelectionSettings("poisson", 7).gamma is None
    assert SelectionSettings("poisson", 7).expected_trials == 7
    geometric = _tnb(4, 1)
    assert geometric.gamma == pytest.approx(0.25) and geometric.expected_trials == pytest.approx(4)
    for shape in (0, 0.5, 3):
        settings = _tnb(12, shape)
        gamma = settings.gamma
        if shape == 0:
            reference_mean = stats.logser(1 - gamma).mean()
        else:
            reference_mean = stats.nbinom(shape, gamma).mean() / (1 - gamma**shape)
        assert settings.expected_trials == pytest.approx(reference_mean, rel=1e-9)
        assert settings.expected_trials >= 12  # γ is rounded to the conservative side


# -- drawing the number of trials ------------------------------------------------------------------


@pytest.mark.parametrize("shape", [0, 0.5, 1, 3])
def test_draws_follow_the_truncated_negative_binomial(shape):
    settings = _tnb(5, shape)
    rng = np.random.default_rng(12345)
    draws = np.array([selection.draw_trial_count(settings, rng=rng) for _ in range(20000)])
    gamma = settings.gamma
    if shape == 0:
        pmf = stats.logser(1 - gamma).pmf
    else:

        def pmf(k):
            return stats.nbinom(shape, gamma).pmf(k) / (1 - gamma**shape)

    assert draws.min() >= 1
    for k in range(1, 8):
        expected = pmf(k)
        assert abs(np.mean(draws == k) - expected) <= 5 * math.sqrt(expected * (1 - expected) / draws.size)
    standard_error = draws.std() / math.sqrt(draws.size)
    assert abs(draws.mean() - settings.expected_trials) <= 5 * standard_error


def test_poisson_draws_include_zero_trials():
    settings = SelectionSettings("poisson", 2)
    rng = np.random.default_rng(7)
    draws = np.array([selection.draw_trial_count(settings, rng=rng) for _ in range(20000)])
    zero = math.exp(-2)
    assert abs(np.mean(draws == 0) - zero) <= 5 * math.sqrt(zero * (1 - zero) / draws.size)
    assert abs(draws.mean() - 2) <= 5 * math.sqrt(2 / draws.size)


def test_draws_near_one_expected_trial_end_quickly_and_are_mostly_one():
    rng, settings = np.random.default_rng(0), _tnb(1.000001, 0.5)
    draws = [selection.draw_trial_count(settings, rng=rng) for _ in range(1000)]
    assert set(draws) <= {1, 2} and draws.count(1) >= 990
    assert selection.draw_trial_count(_tnb(1, 1), rng=rng) == 1


def test_a_seed_repeats_the_draw_and_secure_mode_refuses_one():
    settings = _tnb(10, 0)
    first = [selection.draw_trial_count(settings, rng=np.random.default_rng(3)) for _ in range(5)]
    assert first == [selection.draw_trial_count(settings, rng=np.random.default_rng(3)) for _ in range(5)]
    assert selection.draw_trial_count(settings, secure=True) >= 1
    assert selection.draw_trial_count(SelectionSettings("poisson", 3)) >= 0
    with pytest.raises(SelectionError) as caught:
        selection.draw_trial_count(settings, rng=np.random.default_rng(3), secure=True)
    assert caught.value.field == "rng"
    with pytest.raises(SelectionError, match="selection"):
        selection.draw_trial_count("poisson")


def test_a_single_config_is_not_taken_for_a_list_of_candidates():
    with pytest.raises(SelectionError) as caught:
        selection.selection_epsilon(runs=[RUN], n=N, selection=_tnb(5, 1), candidates=RUN)
    assert caught.value.field == "candidates"
