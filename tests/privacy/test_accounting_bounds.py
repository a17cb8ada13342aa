"""The accountant's bounds: every query's cost is estimated first; a coarser PLD grid (flagged) or a refusal."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting.pld import pld_pmf, pld_privacy_accountant, privacy_loss_distribution
from dp_accounting.rdp import rdp_privacy_accountant

from dpcore.config import DPConfig
from dpcore.privacy import accounting, calibration, composition, events, limits, pld_grid
from dpcore.privacy.limits import AccountingError
from dpcore.privacy.noise import schedule_of

DIGITS = dict(n=1437, batch_size=64, delta=1e-5)


@pytest.fixture
def small_bounds(monkeypatch):
    """Bounds small enough that an everyday query needs the fallback grid."""

    def apply(**bounds):
        for name, value in bounds.items():
            monkeypatch.setattr(pld_grid, name, value)  # the grid planner reads the bounds from its own names
        pld_grid._fitting_plan.cache_clear()

    yield apply
    pld_grid._fitting_plan.cache_clear()


def test_a_billion_epochs_is_answered_by_rdp_from_the_step_count_alone():
    report = accounting.epsilon_report(n=60000, batch_size=256, noise_multiplier=1.1, epochs=10**9, delta=1e-5)
    assert report.steps == -(-(10**9) * 60000 // 256)
    assert 0 < report.epsilon < float("inf") and not report.approximate
    assert events.dp_steps(n=10, batch_size=3, epochs=10**9, sampling="shuffle") == 4 * 10**9


def test_a_billion_epochs_is_refused_by_pld_naming_epochs():
    with pytest.raises(AccountingError, match=r"^epochs: .*too many for the PLD accountant.*rdp"):
        accounting.epsilon(noise_multiplier=1.1, epochs=10**9, accountant="pld", **DIGITS)


def test_steps_beyond_the_cap_are_refused_for_any_accountant():
    with pytest.raises(AccountingError, match=r"^epochs: .*steps"):
        accounting.epsilon(n=10**9, batch_size=1, noise_multiplier=1.0, epochs=10**9, delta=1e-10)


def test_pld_with_a_tiny_noise_multiplier_is_refused_naming_it():
    with pytest.raises(AccountingError, match=r"^noise_multiplier: 0.001 is too small for the PLD accountant"):
        accounting.epsilon(noise_multiplier=0.001, epochs=1, accountant="pld", **DIGITS)
    assert accounting.epsilon(noise_multiplier=0.001, epochs=1, accountant="rdp", **DIGITS) > 1000


def test_pld_with_a_small_noise_multiplier_falls_back_to_a_coarser_grid_and_says_so():
    report = accounting.epsilon_report(noise_multiplier=0.05, epochs=1, accountant="pld", **DIGITS)
    assert report.discretization > limits.PRECISE_PLD_INTERVAL and report.approximate
    assert 0 < report.epsilon < float("inf")


def test_the_fallback_grid_is_an_upper_bound_close_to_the_precise_value(small_bounds):
    precise = accounting.epsilon_report(noise_multiplier=1.1, epochs=3, accountant="pld", **DIGITS)
    assert not precise.approximate and precise.discretization == limits.PRECISE_PLD_INTERVAL
    small_bounds(MAX_PLD_UNIT_POINTS=10_000)
    coarse = accounting.epsilon_report(noise_multiplier=1.1, epochs=3, accountant="pld", **DIGITS)
    assert coarse.approximate and coarse.discretization > precise.discretization
    assert precise.epsilon <= coarse.epsilon <= precise.epsilon * 1.05


def test_a_long_per_epoch_curve_uses_a_coarser_grid_than_one_epsilon(small_bounds):
    precise_curve = accounting.epsilon_per_epoch(noise_multiplier=1.1, epochs=4, accountant="pld", **DIGITS)
    small_bounds(MAX_PLD_CURVE_WORK=1_000_000)
    assert (
        accounting.pld_discretization(noise_multiplier=1.1, epochs=4, n=1437, batch_size=64)
        == limits.PRECISE_PLD_INTERVAL
    )
    grid = accounting.pld_discretization(noise_multiplier=1.1, epochs=4, n=1437, batch_size=64, per_epoch=True)
    assert grid > limits.PRECISE_PLD_INTERVAL
    coarse_curve = accounting.epsilon_per_epoch(noise_multiplier=1.1, epochs=4, accountant="pld", **DIGITS)
    assert all(p <= c <= p * 1.05 for p, c in zip(precise_curve, coarse_curve))
    config = DPConfig(accountant="pld", epochs=4, batch_size=64, noise_multiplier=1.1)
    assert accounting.check_config(config, n=1437) == grid
    assert accounting.check_config(config.replace(accountant="rdp"), n=1437) == 0.0


def test_the_apps_longest_precise_pld_curve_is_planned_within_bounds():
    config = DPConfig(accountant="pld", epochs=1000, batch_size=64, noise_multiplier=1.1)
    grid = accounting.check_config(config, n=1437)
    assert grid > limits.PRECISE_PLD_INTERVAL  # the precise 1000-epoch curve would take minutes
    one = accounting.epsilon_report(noise_multiplier=1.1, epochs=1000, accountant="pld", **DIGITS)
    assert not one.approximate  # one ε at the end is cheap enough on the precise grid


def test_a_curve_longer_than_the_cap_is_refused_before_any_list_is_built():
    with pytest.raises(AccountingError, match=r"^epochs: .*per-epoch curve"):
        events.epoch_end_steps(n=100, batch_size=10, epochs=10**9, sampling="poisson")
    with pytest.raises(AccountingError, match=r"^epochs: "):
        accounting.epsilon_per_epoch(noise_multiplier=1.0, epochs=10**9, **DIGITS)


def test_calibration_on_a_coarse_grid_says_so_and_still_meets_the_target(small_bounds):
    small_bounds(MAX_PLD_UNIT_POINTS=10_000)
    found = calibration.calibrate_noise(target_epsilon=3.0, epochs=3, accountant="pld", **DIGITS)
    assert found.approximate and found.epsilon <= 3.0


# -- what dp_accounting cannot answer as called: the answer stays its upper bound -------------------

FASHION = dict(n=60000, batch_size=1, epochs=1000, delta=1e-5, accountant="pld")


def _never(*_args, **_kwargs):
    raise AssertionError("dp_accounting's sparse self-composition was entered")


def test_sixty_million_steps_of_a_three_point_pld_are_composed_by_fft_not_step_by_step(monkeypatch):
    """A share link's Fashion-MNIST run, batch 1 for 1,000 epochs at σ 1000: dp_accounting's sparse path
    computed 3 ** (6·10^7) before going dense (minutes per σ). The same dense arithmetic, at once."""
    unit = composition.pld_per_unit(1 / 60000, 1000.0, limits.INTERACTIVE_PLD_INTERVAL)
    assert isinstance(unit._pmf_remove, pld_pmf.SparsePLDPmf) and unit._pmf_remove.size == 3
    reference = unit.self_compose(10**5).get_epsilon_for_delta(1e-5)  # dp_accounting's own path, still quick here
    assert composition._self_composed(unit, 10**5).get_epsilon_for_delta(1e-5) == reference
    monkeypatch.setattr(pld_pmf.SparsePLDPmf, "self_compose", _never)
    report = accounting.epsilon_report(noise_multiplier=1000.0, interactive=True, **FASHION)
    assert report.steps == 6 * 10**7
    rdp = accounting.epsilon_report(noise_multiplier=1000.0, **{**FASHION, "accountant": "rdp"})
    assert reference < report.epsilon < math.inf
    assert rdp.rounded_up and 0 < rdp.epsilon < math.inf
    # dp_accounting's own RDP of these steps rounds to 0 at the low orders, and so reports ε = 0:
    direct = rdp_privacy_accountant.RdpAccountant(orders=events.RDP_ORDERS)
    assert (
        direct.compose(events.dp_event(noise_multiplier=1000.0, n=60000, batch_size=1, epochs=1000)).get_epsilon(1e-5)
        == 0
    )


def test_a_billion_examples_one_at_a_time_are_answered_without_the_sparse_path(monkeypatch):
    """n = 10^9, batch 1, 1,000 epochs at σ 1000 (10^12 steps) ran past 300 s."""
    monkeypatch.setattr(pld_pmf.SparsePLDPmf, "self_compose", _never)
    report = accounting.epsilon_report(
        n=10**9, batch_size=1, epochs=1000, noise_multiplier=1000.0, delta=1e-10, accountant="pld", interactive=True
    )
    assert report.steps == 10**12 and 0 < report.epsilon < math.inf


def test_a_one_point_pld_is_not_composed_once_per_step():
    """A PMF of one point would make dp_accounting's sparse loop compose once per step; dense, it is one FFT."""
    identity = privacy_loss_distribution.identity(limits.INTERACTIVE_PLD_INTERVAL)
    assert isinstance(identity._pmf_remove, pld_pmf.SparsePLDPmf) and identity._pmf_remove.size == 1
    assert composition._goes_dense(identity._pmf_remove, 2)
    composed = composition._self_composed(identity, 10**12)
    assert isinstance(composed._pmf_remove, pld_pmf.DensePLDPmf)
    assert composed.get_epsilon_for_delta(1e-9) == identity.self_compose(50).get_epsilon_for_delta(1e-9) == 0


def test_dense_from_the_start_exactly_where_dp_accounting_goes_dense():
    assert composition._SPARSE_LIMIT == pld_pmf._MAX_PMF_SPARSE_SIZE
    three = composition.pld_per_unit(1 / 60000, 1000.0, limits.INTERACTIVE_PLD_INTERVAL)._pmf_remove
    assert not composition._goes_dense(three, 6)  # 3^6 = 729: dp_accounting's sparse loop, five compositions
    assert composition._goes_dense(three, 7)  # 3^7 = 2187: dp_accounting converts to dense itself


# Digits' sampling rate at batch 128; σ from 0.0589 to 0.0663 makes Connect-the-Dots' δ(ε) non-monotone.
DIGITS_Q = 128 / 1437


def test_a_step_pld_that_connect_the_dots_refuses_is_built_by_privacy_buckets():
    with pytest.raises(ValueError, match="deltas are not in non-increasing order"):
        privacy_loss_distribution.from_gaussian_mechanism(
            0.0638, sampling_prob=DIGITS_Q, value_discretization_interval=1e-2, pessimistic_estimate=True
        )
    ours = composition.pld_per_unit(DIGITS_Q, 0.0638, 1e-2).get_epsilon_for_delta(1e-5)
    buckets = privacy_loss_distribution.from_gaussian_mechanism(
        0.0638, sampling_prob=DIGITS_Q, value_discretization_interval=1e-2, use_connect_dots=False
    ).get_epsilon_for_delta(1e-5)
    # Bracketed by Connect-the-Dots at a little more noise (less privacy loss) and a little less noise.
    more_noise, less_noise = (
        privacy_loss_distribution.from_gaussian_mechanism(
            sigma, sampling_prob=DIGITS_Q, value_discretization_interval=1e-2, pessimistic_estimate=True
        ).get_epsilon_for_delta(1e-5)
        for sigma in (0.07, 0.05)
    )
    assert ours == buckets and more_noise < ours < less_noise


def test_a_schedule_through_levels_connect_the_dots_refuses_is_answered_between_its_neighbours():
    """The Explore and Train crash ("deltas are not in non-increasing order"), on a schedule small enough
    to run: every level from 0.08 down to the floor 0.05, those of 0.0589 to 0.0663 among them."""
    config = DPConfig(
        noise_multiplier=0.08,
        noise_schedule="step",
        noise_decay_rate=0.05,
        noise_floor=0.05,
        epochs=1,
        accountant="pld",
    )
    levels = set(accounting.noise_schedule_values(config, n=1437))
    assert any(0.0589 <= sigma <= 0.0663 for sigma in levels)
    report = accounting.epsilon_report_for_config(config, n=1437, interactive=True)
    assert report.approximate and report.discretization == 1e-2
    # Independent dp_accounting compositions: every level by Privacy Buckets (above), and every level
    # moved up to 0.07 where Connect-the-Dots works (more noise, so below).
    blocks = events.whole_run_blocks(1437, 128, 1, "poisson", 0.08, schedule_of(config))
    for connect_dots, floor, relation in ((False, 0.0, "above"), (True, 0.07, "below")):
        accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-2)
        for sigma, count in blocks:
            accountant._pld = accountant._pld.compose(
                privacy_loss_distribution.from_gaussian_mechanism(
                    max(sigma, floor),
                    sampling_prob=DIGITS_Q,
                    value_discretization_interval=1e-2,
                    use_connect_dots=connect_dots,
                ).self_compose(count)
            )
        reference = accountant.get_epsilon(1e-5)
        assert (report.epsilon <= reference) if relation == "above" else (report.epsilon > reference), relation


TINY_Q = dict(n=10_400_000, batch_size=2, epochs=1, delta=1e-8)


def test_rdp_below_dp_accountings_resolution_is_answered_with_the_rounding_allowance():
    """n = 10.4 M, batch 2, σ >= 15: dp_accounting computes one step's Rényi divergence as slightly negative."""
    event = events.dp_event(
        noise_multiplier=20.0, sampling="poisson", **{k: TINY_Q[k] for k in ("n", "batch_size", "epochs")}
    )
    with pytest.raises(ValueError, match="Renyi divergence cannot be negative"):
        rdp_privacy_accountant.RdpAccountant().compose(event).get_epsilon(1e-8)
    report = accounting.epsilon_report(noise_multiplier=20.0, **TINY_Q)
    assert report.rounded_up and report.approximate and 0 < report.epsilon < math.inf
    resolved = accounting.epsilon_report(noise_multiplier=10.0, **TINY_Q)  # dp_accounting still resolves σ = 10
    assert not resolved.rounded_up and report.epsilon <= resolved.epsilon  # more noise, no more ε
    reference = rdp_privacy_accountant.RdpAccountant(orders=events.RDP_ORDERS)
    reference.compose(events.dp_event(noise_multiplier=10.0, sampling="poisson", n=TINY_Q["n"], batch_size=2, epochs=1))
    assert resolved.epsilon == pytest.approx(reference.get_epsilon(1e-8), rel=1e-12)


def test_the_rounding_allowance_only_raises_epsilon_and_by_a_negligible_amount():
    """Checked against dp_accounting where it resolves: the same steps with the allowance give a larger ε, within 1e-6."""
    q, steps = 2 / 10_400_000, 5_200_000
    step = events.event_rdp(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(10.0)))
    assert np.all(step >= 0)
    plain = events.epsilon_from_rdp(step * steps, delta=1e-8)
    allowed = events.epsilon_from_rdp((step + composition.RDP_ROUNDING_ALLOWANCE) * steps, delta=1e-8)
    assert plain < allowed < plain + 1e-6


def test_the_rounding_allowance_covers_the_true_renyi_divergence():
    """Against 40-digit mpmath sums at integer orders (A_α is a binomial sum there): the raised values are above."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    q, sigma = 2 / 10_400_000, 20.0
    rounded = composition.unit_rdp(q, sigma)
    assert rounded.rounded_up
    for index, order in enumerate(events.RDP_ORDERS):
        if order != int(order) or order > 64:
            continue
        alpha = int(order)
        a_alpha = mpmath.fsum(
            mpmath.binomial(alpha, k)
            * (1 - mpmath.mpf(q)) ** (alpha - k)
            * mpmath.mpf(q) ** k
            * mpmath.exp(mpmath.mpf(k * k - k) / (2 * mpmath.mpf(sigma) ** 2))
            for k in range(alpha + 1)
        )
        assert rounded.rdp[index] >= float(mpmath.log(a_alpha) / (alpha - 1)), order


# -- the time a query may take ------------------------------------------------------------------------

STEP_1000_TO_005 = DPConfig(
    noise_multiplier=1000.0, noise_schedule="step", noise_decay_rate=0.05, noise_floor=0.05, accountant="pld"
)


def _not_composed(*_args, **_kwargs):
    raise AssertionError("composed although the estimate was over the bound")


def test_a_pld_schedule_through_195_levels_is_refused_before_any_level_is_composed(monkeypatch):
    monkeypatch.setattr(accounting, "composed_epsilon", _not_composed)
    monkeypatch.setattr(accounting, "curve_epsilons", _not_composed)
    for query in (
        lambda: accounting.epsilon_report_for_config(STEP_1000_TO_005, n=1437, interactive=True),
        lambda: accounting.epsilon_curve_for_config(STEP_1000_TO_005, n=1437, interactive=True),
        lambda: accounting.check_config(STEP_1000_TO_005, n=1437),
    ):
        with pytest.raises(
            AccountingError,
            match=r"^noise_schedule: the PLD accountant would need about \d+ s .*195 noise level.*higher noise floor",
        ):
            query()


def test_calibrating_that_schedule_is_refused_before_the_search(monkeypatch):
    monkeypatch.setattr(calibration, "epsilon", _not_composed)
    with pytest.raises(AccountingError, match=r"^noise_schedule: .*a calibration"):
        calibration.calibrate_noise_for_config(
            STEP_1000_TO_005.replace(noise_multiplier=1.0), target_epsilon=3.0, n=1437, interactive=True
        )


def test_an_rdp_schedule_through_hundreds_of_levels_is_refused_before_any_level_is_computed(monkeypatch):
    monkeypatch.setattr(composition, "_step_rdp", _not_composed)
    accounting.clear_caches()
    with pytest.raises(
        AccountingError, match=r"^noise_schedule: the RDP accountant would need about \d+ s .*195 noise levels"
    ):
        accounting.epsilon_for_config(STEP_1000_TO_005.replace(accountant="rdp"), n=1437)
    fewer = STEP_1000_TO_005.replace(accountant="rdp", noise_multiplier=1.0, noise_floor=0.2)
    work = accounting.query_work_for_config(fewer, n=1437)
    assert work.levels == len(set(accounting.noise_schedule_values(fewer, n=1437))) < 195
    assert work.seconds <= limits.MAX_QUERY_SECONDS


def test_each_estimate_names_its_levels_and_compositions():
    constant = accounting.query_work_for_config(DPConfig(accountant="pld"), n=1437, interactive=True)
    assert (constant.levels, constant.compositions) == (1, 1) and 0 < constant.seconds < 1
    curve = accounting.query_work_for_config(DPConfig(accountant="pld"), n=1437, interactive=True, per_epoch=True)
    assert curve.compositions == DPConfig().epochs and curve.seconds > constant.seconds
    rdp = accounting.query_work_for_config(DPConfig(), n=1437)
    assert (rdp.levels, rdp.grid, rdp.seconds) == (1, 0.0, limits.RDP_LEVEL_SECONDS)
    assert accounting.query_work_for_config(DPConfig().as_baseline(), n=1437).seconds == 0
    assert "1 noise level" in rdp.describe()
