"""The Gaussian-mechanism teaching math against known values and its own definitions."""

from __future__ import annotations

import dataclasses
import math

import pytest
from scipy.stats import norm

from dpcore.audit.report import RocCurve
from dpcore.errors import UserInputError
from dpcore.views import teaching
from tests.audit_samples import hand_made_report


def test_delta_of_epsilon_matches_the_analytic_formula() -> None:
    # Balle & Wang: sigma = 1, sensitivity 1, eps = 1.
    expected = norm.cdf(0.5 - 1.0) - math.e * norm.cdf(-0.5 - 1.0)
    assert teaching.gaussian_delta(1.0, sigma=1.0) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 5.0])
def test_epsilon_inverts_delta(sigma: float) -> None:
    eps = teaching.gaussian_epsilon(1e-5, sigma=sigma)
    assert teaching.gaussian_delta(eps, sigma=sigma) == pytest.approx(1e-5, rel=1e-6)


def test_epsilon_falls_as_noise_grows() -> None:
    values = [teaching.gaussian_epsilon(1e-5, sigma=s) for s in (0.5, 1, 2, 4, 8)]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_epsilon_agrees_with_dp_accounting(sigma: float) -> None:
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant

    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    accountant.compose(dp_accounting.GaussianDpEvent(sigma))
    reference = accountant.get_epsilon(1e-5)
    assert teaching.gaussian_epsilon(1e-5, sigma=sigma) == pytest.approx(reference, rel=1e-2)


def test_sigma_meets_the_target() -> None:
    sigma = teaching.gaussian_sigma(1.0, 1e-5)
    assert teaching.gaussian_epsilon(1e-5, sigma=sigma) <= 1.0 + 1e-9
    assert teaching.gaussian_epsilon(1e-5, sigma=sigma * 0.99) > 1.0


def test_count_example_densities_are_the_two_neighbours() -> None:
    ex = teaching.count_example(count=40, sigma=2.0, delta=1e-5)
    peak_without = ex.xs[max(range(len(ex.xs)), key=ex.density_without.__getitem__)]
    peak_with = ex.xs[max(range(len(ex.xs)), key=ex.density_with.__getitem__)]
    assert peak_without == pytest.approx(40, abs=0.1) and peak_with == pytest.approx(41, abs=0.1)
    assert ex.epsilon == pytest.approx(teaching.gaussian_epsilon(1e-5, sigma=2.0))


def test_clipping_caps_every_norm_and_keeps_small_ones() -> None:
    ex = teaching.clipping_example(clip=1.5)
    assert max(ex.after) <= 1.5
    assert all(a == b for a, b in zip(ex.after, ex.before) if b <= 1.5)
    assert ex.before[ex.outlier_index] > 10 and ex.after[ex.outlier_index] == 1.5


def test_private_mean_error_scales_like_one_over_n_epsilon() -> None:
    base = teaching.private_mean_error(epsilon=1.0, delta=1e-5, n=1000)
    assert teaching.private_mean_error(epsilon=1.0, delta=1e-5, n=10_000) == pytest.approx(base / 10, rel=1e-3)
    assert teaching.private_mean_error(epsilon=0.5, delta=1e-5, n=1000) > 1.8 * base


@pytest.mark.parametrize(
    "call",
    [
        lambda: teaching.gaussian_delta(1.0, sigma=0.0),
        lambda: teaching.gaussian_epsilon(1.5, sigma=1.0),
        lambda: teaching.private_mean_error(epsilon=1.0, delta=1e-5, n=0),
    ],
)
def test_bad_inputs_are_user_errors(call) -> None:
    with pytest.raises(UserInputError):
        call()


@pytest.mark.parametrize("epsilon", [0.5, 2.0, 6.0])
def test_best_gaussian_attack_touches_the_dp_boundary_without_crossing_it(epsilon: float) -> None:
    from dpcore.audit.bounds import max_tpr

    curve = teaching.gaussian_attack_roc(epsilon=epsilon, delta=1e-5)
    assert (curve.fpr[0], curve.tpr[0], curve.fpr[-1], curve.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert list(curve.fpr) == sorted(curve.fpr)
    gaps = [b - t for t, b in zip(curve.tpr, max_tpr(list(curve.fpr), epsilon=epsilon, delta=1e-5))]
    assert min(gaps) > -1e-9  # never outside what (ε, δ)-DP allows
    assert min(gaps[1:-1]) < 0.01  # and tight: σ is calibrated to exactly this (ε, δ)


def _with_attack(report, **changes):
    """``report`` with its one attack changed (the ROC, the sample, the AUC)."""
    return dataclasses.replace(report, attacks=(dataclasses.replace(report.attacks[0], **changes),))


def test_chance_auc_spread_is_the_mann_whitney_deviation() -> None:
    assert teaching.chance_auc_spread(250, 250) == pytest.approx(math.sqrt(501 / (12 * 250 * 250)))
    assert teaching.chance_auc_spread(1000, 1000) < teaching.chance_auc_spread(30, 30)
    with pytest.raises(UserInputError, match="members"):
        teaching.chance_auc_spread(0, 10)


def test_an_auc_below_a_half_and_a_bound_of_zero_are_explained() -> None:
    report = _with_attack(hand_made_report(2.0, auc=0.47, bound=0.0), eval_members=180, eval_nonmembers=180)
    readings = " ".join(teaching.audit_readings(report))
    assert "noise, not a leak in reverse" in readings and "(0.470)" in readings
    assert f"±{teaching.chance_auc_spread(180, 180):.3f}" in readings
    assert "proved nothing above ε = 0 at 95% confidence" in readings
    assert "better than chance" not in readings


def test_a_clear_leak_is_named_and_nothing_else_is_said() -> None:
    report = _with_attack(hand_made_report(math.inf, auc=0.72, bound=2.3), eval_members=250, eval_nonmembers=250)
    readings = teaching.audit_readings(report)
    assert len(readings) == 1 and "better than chance: AUC 0.720" in readings[0]


def test_an_auc_just_above_a_half_on_a_small_sample_is_not_called_a_leak() -> None:
    report = _with_attack(hand_made_report(math.inf, auc=0.55, bound=0.0), eval_members=50, eval_nonmembers=50)
    assert not any("better than chance" in r for r in teaching.audit_readings(report))


def test_a_roc_curve_below_the_diagonal_is_explained() -> None:
    dipping = RocCurve(fpr=(0.0, 0.2, 0.5, 1.0), tpr=(0.0, 0.1, 0.6, 1.0))
    report = _with_attack(hand_made_report(2.0, auc=0.52, bound=0.0), roc=dipping)
    assert any("dips below the diagonal" in r for r in teaching.audit_readings(report))
    assert not any("dips below" in r for r in teaching.audit_readings(hand_made_report(2.0, auc=0.52, bound=0.0)))


def test_a_dip_of_a_clearly_leaking_attack_is_not_called_chance() -> None:
    dipping = RocCurve(fpr=(0.0, 0.05, 0.1, 1.0), tpr=(0.0, 0.04, 0.5, 1.0))
    report = _with_attack(
        hand_made_report(math.inf, auc=0.72, bound=2.3), roc=dipping, eval_members=250, eval_nonmembers=250
    )
    assert not any("dips below" in r for r in teaching.audit_readings(report))
