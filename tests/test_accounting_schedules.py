"""dpcore.privacy.accounting with noise schedules and ε budgets: the ε is that of the hand-composed dp_accounting event."""

from __future__ import annotations

import itertools
import math

import dp_accounting
import pytest
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

from dpcore.config import DPConfig
from dpcore.privacy import accounting, calibration, composition, events, limits
from dpcore.privacy.noise import NoiseSchedule, schedule_of

N = 1000
# Few distinct noise levels (about 10), so that the reference accountants answer quickly.
SCHEDULED = DPConfig(
    batch_size=50,
    epochs=3,
    noise_multiplier=1.2,
    noise_schedule="time",
    noise_decay_rate=0.02,
    noise_floor=1.0,
    delta=1e-4,
)


def hand_composed(config: DPConfig, *, n: int) -> dp_accounting.DpEvent:
    """The run's event built directly from the per-step noise: one self-composition per run of equal σ."""
    values = accounting.noise_schedule_values(config, n=n)
    if config.sampling == "shuffle":  # one Gaussian per epoch, at the least noise of its steps
        per_epoch = len(values) // config.epochs
        levels = [min(values[e * per_epoch : (e + 1) * per_epoch]) for e in range(config.epochs)]
        step_event = dp_accounting.GaussianDpEvent
    else:
        levels = values
        step_event = lambda sigma: dp_accounting.PoissonSampledDpEvent(  # noqa: E731
            config.batch_size / n, dp_accounting.GaussianDpEvent(sigma)
        )
    return dp_accounting.ComposedDpEvent(
        [
            dp_accounting.SelfComposedDpEvent(step_event(sigma), len(list(run)))
            for sigma, run in itertools.groupby(levels)
        ]
    )


@pytest.fixture(scope="module")
def reference_epsilon() -> float:
    return rdp_epsilon(hand_composed(SCHEDULED, n=N), SCHEDULED.delta)


def rdp_epsilon(event: dp_accounting.DpEvent, delta: float) -> float:
    return rdp_privacy_accountant.RdpAccountant(orders=events.RDP_ORDERS).compose(event).get_epsilon(delta)


def test_the_schedule_is_the_steps_noise_and_decays():
    values = accounting.noise_schedule_values(SCHEDULED, n=N)
    assert len(values) == events.dp_steps(n=N, batch_size=50, epochs=3, sampling="poisson") == 60
    assert values[0] == 1.2 and values[-1] == 1.0 and 5 < len(set(values)) < 15
    assert values == schedule_of(SCHEDULED).values(1.2, 60)
    assert accounting.noise_schedule_values(SCHEDULED.as_baseline(), n=N) == ()
    assert accounting.noise_schedule_values(DPConfig(noise_multiplier=0.9), n=N) == (0.9,) * 157  # ceil(10 · 1000 / 64)


def test_rdp_epsilon_of_a_schedule_equals_the_hand_composed_event(reference_epsilon):
    expected = reference_epsilon
    assert accounting.epsilon_for_config(SCHEDULED, n=N) == pytest.approx(expected, rel=1e-12)
    assert accounting.epsilon_curve_for_config(SCHEDULED, n=N)[-1] == accounting.epsilon_for_config(SCHEDULED, n=N)
    # Less noise in later steps costs privacy: more than a constant σ0, less than a constant floor.
    constant = accounting.epsilon_for_config(SCHEDULED.replace(noise_schedule="constant"), n=N)
    floor = accounting.epsilon_for_config(SCHEDULED.replace(noise_schedule="constant", noise_multiplier=1.0), n=N)
    assert constant < expected < floor


def test_the_event_of_a_scheduled_run_is_the_hand_composed_one(reference_epsilon):
    event = accounting.dp_event_for_config(SCHEDULED, n=N)
    assert event == hand_composed(SCHEDULED, n=N)
    assert events.epsilon_from_rdp(events.event_rdp(event), delta=SCHEDULED.delta) == pytest.approx(
        reference_epsilon, rel=1e-12
    )


def test_pld_epsilon_of_a_schedule_equals_dp_accountings_pld_accountant():
    config = SCHEDULED.replace(accountant="pld", epochs=1, noise_floor=1.1)
    # The interactive grid keeps this quick; the composition is the same on every grid.
    reference = pld_privacy_accountant.PLDAccountant(value_discretization_interval=limits.INTERACTIVE_PLD_INTERVAL)
    expected = reference.compose(hand_composed(config, n=N)).get_epsilon(config.delta)
    assert accounting.epsilon_for_config(config, n=N, interactive=True) == pytest.approx(expected, rel=1e-9)


def test_shuffle_counts_each_epoch_at_its_smallest_noise():
    config = SCHEDULED.replace(sampling="shuffle", noise_decay_rate=0.005)
    event = accounting.dp_event_for_config(config, n=N)
    values = accounting.noise_schedule_values(config, n=N)
    assert event == hand_composed(config, n=N)
    assert [(e.event.noise_multiplier, e.count) for e in event.events] == [(values[19], 1), (values[39], 1), (1.0, 1)]
    assert values[19] > values[39] > 1.0
    assert accounting.epsilon_for_config(config, n=N) == pytest.approx(
        rdp_epsilon(hand_composed(config, n=N), config.delta), rel=1e-12
    )


def test_per_epoch_curve_of_a_schedule_composes_each_epochs_steps():
    curve = accounting.epsilon_curve_for_config(SCHEDULED, n=N)
    for epochs in (1, 2):
        prefix = SCHEDULED.replace(epochs=epochs)
        assert (
            accounting.noise_schedule_values(prefix, n=N)
            == accounting.noise_schedule_values(SCHEDULED, n=N)[: epochs * 20]
        )
        assert curve[epochs - 1] == pytest.approx(rdp_epsilon(hand_composed(prefix, n=N), 1e-4), rel=1e-12)
    assert curve[0] < curve[1] < curve[2]


def test_calibration_finds_the_initial_noise_of_a_schedule(reference_epsilon):
    target = 0.9 * reference_epsilon  # needs a σ0 above the config's 1.2
    found = calibration.calibrate_noise_for_config(SCHEDULED, n=N, target_epsilon=target)
    assert found.epsilon <= target
    assert (
        accounting.epsilon_for_config(SCHEDULED.replace(noise_multiplier=found.noise_multiplier), n=N) == found.epsilon
    )
    slightly_less = found.noise_multiplier / 1.002
    assert (
        accounting.epsilon(
            n=N, batch_size=50, noise_multiplier=slightly_less, epochs=3, delta=1e-4, schedule=schedule_of(SCHEDULED)
        )
        > target
    )
    # A loose target is met at the floor itself: σ0 is never searched below it.
    loose = calibration.calibrate_noise_for_config(SCHEDULED, n=N, target_epsilon=1000.0)
    assert loose.noise_multiplier == SCHEDULED.noise_floor


def test_bad_schedules_are_named():
    with pytest.raises(limits.AccountingError, match="noise_floor"):
        accounting.epsilon(
            n=N,
            batch_size=50,
            noise_multiplier=1.0,
            epochs=1,
            delta=1e-5,
            schedule=NoiseSchedule(kind="time", decay_rate=0.1, floor=2.0),
        )
    with pytest.raises(limits.AccountingError, match="noise_decay_rate"):
        accounting.epsilon(
            n=N,
            batch_size=50,
            noise_multiplier=1.0,
            epochs=1,
            delta=1e-5,
            schedule=NoiseSchedule(kind="step", decay_rate=1.0, floor=0.5),
        )
    with pytest.raises(limits.AccountingError, match="noise_schedule"):
        accounting.epsilon(
            n=N,
            batch_size=50,
            noise_multiplier=1.0,
            epochs=1,
            delta=1e-5,
            schedule=NoiseSchedule(kind="exp", decay_rate=0.1, floor=0.5),
        )


# -- budget ------------------------------------------------------------------------------------


def test_a_budget_keeps_the_epochs_whose_epsilon_fits():
    curve = accounting.epsilon_curve_for_config(SCHEDULED, n=N)
    between = SCHEDULED.replace(epsilon_budget=(curve[1] + curve[2]) / 2)
    assert accounting.epochs_within_budget(between, n=N) == 2
    assert [accounting.budget_allows(between, n=N, epochs=e) for e in (1, 2, 3)] == [True, True, False]
    assert accounting.epsilon_for_config(between, n=N) == pytest.approx(curve[1], rel=1e-12)
    assert accounting.dp_event_for_config(between, n=N) == hand_composed(SCHEDULED.replace(epochs=2), n=N)
    report = accounting.epsilon_report_for_config(between, n=N)
    assert report.epochs == 2 and report.steps == 40
    exactly = SCHEDULED.replace(epsilon_budget=curve[2])
    assert accounting.epochs_within_budget(exactly, n=N) == 3


def test_a_budget_below_the_first_epoch_allows_nothing_and_a_baseline_ignores_it():
    tight = SCHEDULED.replace(epsilon_budget=1e-3)
    assert accounting.epochs_within_budget(tight, n=N) == 0
    assert accounting.epsilon_for_config(tight, n=N) == 0.0
    assert accounting.dp_event_for_config(tight, n=N) == dp_accounting.NoOpDpEvent()
    baseline = tight.as_baseline()
    assert accounting.epochs_within_budget(baseline, n=N) == 3
    assert math.isinf(accounting.epsilon_for_config(baseline, n=N))


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_a_csv_run_with_a_schedule_pays_its_preprocessing_and_every_step(accountant):
    from tests.conftest import REPO_ROOT

    config = DPConfig(
        dataset="csv",
        csv_path=str(REPO_ROOT / "assets" / "sample.csv"),
        csv_label="decision",
        model="logreg",
        batch_size=16,
        epochs=3,
        delta=1e-3,
        accountant=accountant,
        csv_preprocessing_epsilon=1.0,
        noise_schedule="time",
        noise_decay_rate=0.01,
        noise_floor=0.8,
    )
    total = accounting.epsilon_for_config(config, n=192)
    schedule_alone = accounting.epsilon_for_config(config.replace(csv_preprocessing_epsilon=None), n=192)
    split = accounting.epsilon_split(config, n=192)
    assert split.total == total and split.training == schedule_alone
    assert max(split.preprocessing, schedule_alone) < total < split.preprocessing + schedule_alone
    assert accounting.epsilon_curve_for_config(config, n=192)[-1] == pytest.approx(total, rel=1e-9)
    assert accounting.check_config(config, n=192) == (limits.PRECISE_PLD_INTERVAL if accountant == "pld" else 0.0)
    if accountant == "rdp":  # the run's event, composed by dp_accounting itself, gives the same ε
        event = accounting.dp_event_for_config(config, n=192)
        threshold_delta = composition.PREPROCESSING_THRESHOLD_SHARE * 1e-3
        reference = rdp_privacy_accountant.RdpAccountant().compose(event).get_epsilon(1e-3 - threshold_delta)
        assert total == pytest.approx(reference - math.log1p(-threshold_delta), rel=1e-9)


def test_a_decaying_schedule_over_too_many_steps_is_refused_naming_the_schedule():
    with pytest.raises(limits.AccountingError) as info:
        accounting.epsilon(
            n=10**6,
            batch_size=1,
            noise_multiplier=1.0,
            epochs=3,
            delta=1e-5,
            schedule=NoiseSchedule(kind="time", decay_rate=0.01, floor=0.5),
        )
    assert info.value.field == "noise_schedule" and "3,000,000 steps" in str(info.value)
    # A constant schedule over as many steps is counted without listing them.
    assert accounting.epsilon(n=10**6, batch_size=1, noise_multiplier=1.0, epochs=3, delta=1e-5) > 0
