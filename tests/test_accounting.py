"""Accounting: the reference vectors in tests/data, monotonicity, curves, calibration, clear errors."""

from __future__ import annotations

import json
import math

import dp_accounting
import pytest
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from hypothesis import given, settings
from hypothesis import strategies as st

from dpcore.config import DPConfig
from dpcore.privacy import accounting, calibration, composition, events, limits, preprocessing
from tests.conftest import TEST_DATA_DIR

VECTORS = json.loads((TEST_DATA_DIR / "accounting_vectors.json").read_text(encoding="utf-8"))["vectors"]


def _query(vector):
    return dict(
        n=vector["n"],
        batch_size=vector["batch_size"],
        noise_multiplier=vector["noise_multiplier"],
        epochs=vector["epochs"],
        delta=vector["delta"],
    )


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"][:40] for v in VECTORS])
def test_reference_vectors_reproduce(vector):
    query = _query(vector)
    assert (
        events.dp_steps(n=vector["n"], batch_size=vector["batch_size"], epochs=vector["epochs"], sampling="poisson")
        == vector["steps"]
    )
    assert accounting.epsilon(**query) == pytest.approx(vector["rdp_poisson"], rel=1e-6)
    assert accounting.epsilon(**query, accountant="pld") == pytest.approx(vector["pld_poisson"], rel=1e-3)
    assert accounting.epsilon(**query, sampling="shuffle") == pytest.approx(vector["rdp_once_per_epoch"], rel=1e-6)


def test_interactive_pld_is_an_upper_bound_close_to_the_precise_value():
    query = _query(VECTORS[1])
    precise = accounting.epsilon(**query, accountant="pld")
    coarse = accounting.epsilon(**query, accountant="pld", interactive=True)
    assert precise <= coarse <= precise * 1.02
    report = accounting.epsilon_report(**query, accountant="pld", interactive=True)
    assert report.approximate and report.epsilon == coarse


def test_report_states_its_assumptions():
    report = accounting.epsilon_report(**_query(VECTORS[1]))
    assert (report.accountant, report.sampling, report.steps) == ("rdp", "poisson", 960)
    assert report.sampling_probability == pytest.approx(250 / 60000)
    assert "Poisson" in report.note and not report.approximate
    shuffle = accounting.epsilon_report(**_query(VECTORS[1]), sampling="shuffle")
    assert "no amplification" in shuffle.note and shuffle.sampling_probability == 1.0


@pytest.mark.parametrize("sampling", ["poisson", "shuffle"])
def test_epoch_ends_match_total_steps(sampling):
    ends = events.epoch_end_steps(n=1437, batch_size=64, epochs=7, sampling=sampling)
    assert len(ends) == 7 and list(ends) == sorted(ends)
    assert ends[-1] == events.dp_steps(n=1437, batch_size=64, epochs=7, sampling=sampling)
    if sampling == "poisson":
        assert ends == tuple(math.ceil(e * 1437 / 64) for e in range(1, 8))
    else:
        assert ends == tuple(e * 23 for e in range(1, 8))


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
@pytest.mark.parametrize("sampling", ["poisson", "shuffle"])
def test_per_epoch_curve_matches_separate_accountant_runs(accountant, sampling):
    query = dict(n=1437, batch_size=64, noise_multiplier=1.1, epochs=5, delta=1e-5)
    curve = accounting.epsilon_per_epoch(**query, accountant=accountant, sampling=sampling)
    assert len(curve) == 5 and list(curve) == sorted(curve)
    counts = (
        events.epoch_end_steps(n=1437, batch_size=64, epochs=5, sampling="poisson")
        if sampling == "poisson"
        else range(1, 6)
    )
    for value, count in zip(curve, counts):
        step = dp_accounting.GaussianDpEvent(1.1)
        if sampling == "poisson":
            step = dp_accounting.PoissonSampledDpEvent(64 / 1437, step)
        event = dp_accounting.SelfComposedDpEvent(step, count)
        if accountant == "rdp":
            reference = rdp_privacy_accountant.RdpAccountant().compose(event).get_epsilon(1e-5)
            assert value == pytest.approx(reference, rel=1e-9)
        else:
            reference = (
                pld_privacy_accountant.PLDAccountant(value_discretization_interval=limits.PRECISE_PLD_INTERVAL)
                .compose(event)
                .get_epsilon(1e-5)
            )
            assert value == pytest.approx(reference, rel=1e-6)


def _independent_epsilon(released, delta, accountant, interval=limits.PRECISE_PLD_INTERVAL):
    """ε of ``released`` events composed by a fresh dp_accounting accountant, with the thresholds' δ and ε terms
    of a private CSV preprocessing: δ_t = δ / 10 leaves the accountant δ − δ_t and adds log(1 / (1 − δ_t))."""
    if accountant == "rdp":
        fresh = rdp_privacy_accountant.RdpAccountant()
    else:
        fresh = pld_privacy_accountant.PLDAccountant(value_discretization_interval=interval)
    for event in released:
        fresh.compose(event)
    return fresh.get_epsilon(delta - delta / 10) - math.log1p(-delta / 10)


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
@pytest.mark.parametrize("sampling", ["poisson", "shuffle"])
def test_private_csv_preprocessing_is_composed_into_the_run_epsilon(accountant, sampling):
    config = DPConfig(
        dataset="csv",
        csv_path="data.csv",
        csv_label="y",
        csv_preprocessing_epsilon=0.5,
        batch_size=64,
        noise_multiplier=1.1,
        epochs=2,
        delta=1e-5,
        accountant=accountant,
        sampling=sampling,
    )
    assert composition.PREPROCESSING_THRESHOLD_SHARE == 0.1
    cost = preprocessing.preprocessing_cost_for_config(config)
    release = dp_accounting.GaussianDpEvent(cost.noise_multiplier)
    alone = _independent_epsilon([release], 1e-5, accountant)
    assert alone == pytest.approx(cost.epsilon, rel=1e-6) and 0.499 <= alone <= 0.5  # the share, never above
    assert cost.threshold_delta == pytest.approx(1e-6)

    # PLD on the interactive grid (1e-3) keeps the test quick; both sides use the same grid.
    rel, interval = (1e-9, None) if accountant == "rdp" else (1e-6, limits.INTERACTIVE_PLD_INTERVAL)
    curve = accounting.epsilon_curve_for_config(config, n=1437, interactive=True)
    step = dp_accounting.GaussianDpEvent(1.1)
    if sampling == "poisson":
        step = dp_accounting.PoissonSampledDpEvent(64 / 1437, step)
    counts = (
        events.epoch_end_steps(n=1437, batch_size=64, epochs=2, sampling="poisson")
        if sampling == "poisson"
        else range(1, 3)
    )
    for value, count in zip(curve, counts):
        reference = _independent_epsilon(
            [release, dp_accounting.SelfComposedDpEvent(step, count)], 1e-5, accountant, interval
        )
        assert value == pytest.approx(reference, rel=rel)
    whole = _independent_epsilon([accounting.dp_event_for_config(config, n=1437)], 1e-5, accountant, interval)
    assert accounting.epsilon_for_config(config, n=1437, interactive=True) == pytest.approx(whole, rel=rel)

    split = accounting.epsilon_split(config, n=1437, interactive=True)
    training = accounting.epsilon_for_config(config.replace(csv_preprocessing_epsilon=None), n=1437, interactive=True)
    assert (split.preprocessing, split.training) == (cost.epsilon, training)
    assert split.total == pytest.approx(curve[-1], rel=rel)
    assert split.training < split.total < split.preprocessing + split.training  # composition beats adding
    assert (split.delta, split.threshold_delta) == (1e-5, cost.threshold_delta)


def test_without_private_preprocessing_the_split_is_all_training():
    for config in (
        DPConfig(),
        DPConfig(
            dataset="csv", csv_path="a.csv", csv_label="y", csv_schema={"classes": [0, 1], "numeric": {"x": [0, 1]}}
        ),
    ):
        split = accounting.epsilon_split(config, n=1437)
        assert preprocessing.preprocessing_cost_for_config(config) is None
        assert (split.preprocessing, split.threshold_delta) == (0.0, 0.0)
        assert split.training == split.total == accounting.epsilon_for_config(config, n=1437)
    baseline = DPConfig(dataset="csv", csv_path="a.csv", csv_label="y", csv_preprocessing_epsilon=1.0, private=False)
    split = accounting.epsilon_split(baseline, n=1437)
    assert 0.99 < split.preprocessing <= 1.0 and split.training == split.total == math.inf


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_more_noise_means_less_epsilon_and_more_epochs_more(accountant):
    base = dict(n=1437, batch_size=64, delta=1e-5, accountant=accountant, interactive=True)
    by_noise = [accounting.epsilon(**base, noise_multiplier=s, epochs=5) for s in (0.6, 0.9, 1.3, 2.0, 4.0)]
    assert by_noise == sorted(by_noise, reverse=True) and len(set(by_noise)) == 5
    by_epochs = [accounting.epsilon(**base, noise_multiplier=1.1, epochs=e) for e in (1, 2, 5, 10, 30)]
    assert by_epochs == sorted(by_epochs) and len(set(by_epochs)) == 5


def test_shuffle_bound_is_never_smaller_than_poisson():
    for noise in (0.7, 1.1, 2.0):
        query = dict(n=1437, batch_size=64, noise_multiplier=noise, epochs=5, delta=1e-5)
        assert accounting.epsilon(**query, sampling="shuffle") > accounting.epsilon(**query)


def test_config_helpers_use_the_config_and_give_infinity_for_baselines():
    config = DPConfig(batch_size=250, noise_multiplier=1.2, epochs=4, delta=1e-5)
    assert accounting.epsilon_for_config(config, n=60000) == pytest.approx(VECTORS[1]["rdp_poisson"], rel=1e-6)
    curve = accounting.epsilon_curve_for_config(config, n=60000)
    assert curve[-1] == accounting.epsilon_for_config(config, n=60000)
    assert accounting.epsilon_for_config(config.as_baseline(), n=60000) == math.inf
    assert accounting.epsilon_curve_for_config(config.as_baseline(), n=60000) == (math.inf,) * 4


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(n=0), "n"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=5000), "batch_size"),
        (dict(epochs=0), "epochs"),
        (dict(epochs=2.5), "epochs"),
        (dict(noise_multiplier=0.0), "noise_multiplier"),
        (dict(noise_multiplier=math.nan), "noise_multiplier"),
        (dict(noise_multiplier=-1.0), "noise_multiplier"),
        (dict(delta=0.0), "delta"),
        (dict(delta=1.0), "delta"),
        (dict(delta=math.nan), "delta"),
        (dict(accountant="moments"), "accountant"),
        (dict(sampling="uniform"), "sampling"),
    ],
)
def test_bad_queries_raise_errors_naming_the_parameter(kwargs, field):
    query = dict(n=1437, batch_size=64, noise_multiplier=1.1, epochs=5, delta=1e-5)
    query.update(kwargs)
    with pytest.raises(limits.AccountingError) as info:
        accounting.epsilon(**query)
    assert info.value.field == field


@pytest.mark.parametrize("target", [0.0, -1.0, math.inf, math.nan, "1"])
def test_calibration_rejects_bad_targets(target):
    with pytest.raises(limits.AccountingError, match="target_epsilon"):
        calibration.calibrate_noise(target_epsilon=target, n=1437, batch_size=64, epochs=5, delta=1e-5)


def test_calibration_reports_an_unreachable_target():
    with pytest.raises(limits.AccountingError, match="cannot be reached"):
        calibration.calibrate_noise(target_epsilon=1e-5, n=100, batch_size=100, epochs=1000, delta=1e-5)


def test_calibrated_noise_is_tight():
    result = calibration.calibrate_noise(target_epsilon=1.0, n=60000, batch_size=256, epochs=60, delta=1e-5)
    assert result.epsilon <= 1.0
    slightly_less = accounting.epsilon(
        n=60000, batch_size=256, epochs=60, delta=1e-5, noise_multiplier=result.noise_multiplier / 1.002
    )
    assert slightly_less > 1.0


@settings(max_examples=25, deadline=None)
@given(
    target=st.floats(min_value=0.2, max_value=30.0),
    n=st.integers(min_value=100, max_value=100_000),
    batch_fraction=st.floats(min_value=0.001, max_value=0.5),
    epochs=st.integers(min_value=1, max_value=50),
    accountant=st.sampled_from(["rdp", "pld"]),
    sampling=st.sampled_from(["poisson", "shuffle"]),
)
def test_calibration_never_overshoots_the_target(target, n, batch_fraction, epochs, accountant, sampling):
    batch_size = max(1, int(n * batch_fraction))
    common = dict(
        n=n,
        batch_size=batch_size,
        epochs=epochs,
        delta=1e-6,
        accountant=accountant,
        sampling=sampling,
        interactive=True,
    )
    try:
        result = calibration.calibrate_noise(target_epsilon=target, **common)
    except limits.AccountingError as exc:
        assert "cannot be reached" in str(exc)
        return
    achieved = accounting.epsilon(noise_multiplier=result.noise_multiplier, **common)
    assert achieved == result.epsilon
    assert achieved <= target
