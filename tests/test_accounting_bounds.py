"""The accountant's bounds: every query's cost is estimated first; a coarser PLD grid (flagged) or a refusal."""

from __future__ import annotations

import pytest

from dpcore.config import DPConfig
from dpcore.privacy import accounting, calibration, events, limits, pld_grid
from dpcore.privacy.limits import AccountingError

DIGITS = dict(n=1437, batch_size=64, delta=1e-5)


@pytest.fixture
def small_bounds(monkeypatch):
    """Bounds small enough that an everyday query needs the fallback grid."""

    def apply(**bounds):
        for name, value in bounds.items():
            monkeypatch.setattr(accounting, name, value)
        pld_grid._fitting_interval.cache_clear()

    yield apply
    pld_grid._fitting_interval.cache_clear()


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
