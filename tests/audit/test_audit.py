"""dpcore.audit.attacks: metrics on hand-made scores, the one-run canary bound, attacks on real (tiny) models, the CLI."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest
from scipy.stats import binom

from dpcore.audit import attacks, bounds, model_audit
from dpcore.audit.report import (
    ATTACKS,
    AUDIT_NOTE,
    CANARY_NOTE,
    LOSS_ATTACK,
    MODEL_RETRAINED,
    MODEL_STORED,
    AuditError,
    AuditReport,
    coverage_note,
    verdict,
)
from dpcore.cli import main
from dpcore.config import DPConfig
from dpcore.privacy import accounting, calibration
from dpcore.runs import audits
from dpcore.runs.store import RunStore, UnknownRunError
from tests.audit_samples import hand_made_report

# A tiny training set, many epochs, no noise: the model memorises its 60 rows.
OVERFIT = DPConfig(
    dataset="digits",
    model="mlp",
    private=False,
    optimizer="adam",
    learning_rate=0.02,
    batch_size=10,
    epochs=60,
    max_train_examples=60,
)
TINY = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=2, max_train_examples=128)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


# -- metrics on hand-made scores ----------------------------------------------------------------


def test_roc_auc_advantage_and_tpr_at_low_fpr_on_hand_made_scores():
    labels = [1, 1, 0, 0]
    scores = [0.9, 0.4, 0.6, 0.1]  # one member above every non-member, one below one of them
    curve = bounds.roc(labels, scores)
    assert bounds.roc_auc(labels, scores) == 0.75
    assert bounds.best_advantage(curve) == 0.5
    assert bounds.tpr_at_fpr(curve, 0.01) == 0.5
    assert bounds.tpr_at_fpr(curve, 0.5) == 1.0
    assert curve.fpr[0] == 0.0 and curve.tpr[-1] == 1.0 and curve.fpr[-1] == 1.0

    separated = bounds.roc([1, 1, 1, 0, 0, 0], [3, 2, 1, 0, -1, -2])
    assert bounds.best_advantage(separated) == 1.0 and bounds.tpr_at_fpr(separated, 0.001) == 1.0
    assert bounds.roc_auc([1, 1, 1, 0, 0, 0], [3, 2, 1, 0, -1, -2]) == 1.0
    assert bounds.roc_auc([1, 1, 1, 0, 0, 0], [-3, -2, -1, 0, 1, 2]) == 0.0


def test_clopper_pearson_matches_its_closed_forms():
    n, half_alpha = 20, 0.025
    low, high = bounds.clopper_pearson(0, n, confidence=0.95)
    assert low == 0.0 and high == pytest.approx(1 - half_alpha ** (1 / n), rel=1e-12)
    low, high = bounds.clopper_pearson(n, n, confidence=0.95)
    assert low == pytest.approx(half_alpha ** (1 / n), rel=1e-12) and high == 1.0
    # 5 of 10: the textbook exact interval, and its ends are where the binomial tails equal α/2.
    low, high = bounds.clopper_pearson(5, 10, confidence=0.95)
    assert (float(low), float(high)) == pytest.approx((0.187086, 0.812914), abs=1e-6)
    assert binom.sf(4, 10, low) == pytest.approx(half_alpha) and binom.cdf(5, 10, high) == pytest.approx(half_alpha)


def test_epsilon_from_rates_uses_both_inequalities_and_delta():
    assert bounds.epsilon_from_rates(tpr=0.5, fpr=0.05, delta=0.0) == pytest.approx(math.log(10))
    assert bounds.epsilon_from_rates(tpr=0.95, fpr=0.5, delta=0.0) == pytest.approx(math.log(10))  # the mirror
    assert bounds.epsilon_from_rates(tpr=0.5, fpr=0.05, delta=0.05) == pytest.approx(math.log(9))
    assert bounds.epsilon_from_rates(tpr=0.3, fpr=0.3, delta=1e-5) == 0.0  # guessing proves nothing
    assert bounds.epsilon_from_rates(tpr=1.0, fpr=0.0, delta=1e-5) == math.inf


def test_max_tpr_is_the_boundary_epsilon_from_rates_inverts():
    fprs = np.array([0.001, 0.01, 0.1, 0.3, 0.6, 0.9])
    for epsilon in (0.5, 1.0, 3.0):
        tprs = bounds.max_tpr(fprs, epsilon=epsilon, delta=1e-5)
        inside = tprs < 1.0
        for tpr, fpr in zip(tprs[inside], fprs[inside]):
            assert bounds.epsilon_from_rates(tpr=tpr, fpr=fpr, delta=1e-5) == pytest.approx(epsilon, abs=1e-9)
    assert bounds.max_tpr(0.0, epsilon=1.0, delta=0.01) == pytest.approx(0.01)
    assert list(bounds.max_tpr([0.0, 0.5], epsilon=math.inf, delta=1e-5)) == [1.0, 1.0]


def test_bound_on_a_perfect_split_is_the_clopper_pearson_closed_form():
    n = 50
    labels = np.array([1] * n + [0] * n)
    scores = np.concatenate([np.linspace(2, 3, n), np.linspace(0, 1, n)])
    bound = bounds.epsilon_lower_bound(
        select_labels=labels, select_scores=scores, eval_labels=labels, eval_scores=scores, delta=1e-5, confidence=0.95
    )
    edge = 0.025 ** (1 / n)  # TPR from below and FPR from above with no error in n tries
    assert bound.epsilon == pytest.approx(math.log((edge - 1e-5) / (1 - edge)), rel=1e-9)
    assert (bound.tpr, bound.fpr) == (1.0, 0.0)


def test_a_threshold_chosen_on_one_half_cannot_overclaim_on_the_other():
    rng = np.random.default_rng(0)
    n = 200
    labels = np.array([1] * n + [0] * n)
    perfect = np.concatenate([rng.uniform(2, 3, n), rng.uniform(0, 1, n)])
    chance = rng.uniform(0, 3, 2 * n)  # on the evaluation half the scores say nothing
    bound = bounds.epsilon_lower_bound(
        select_labels=labels, select_scores=perfect, eval_labels=labels, eval_scores=chance, delta=1e-5
    )
    assert bound.epsilon == 0.0
    # The same threshold judged on scores that do separate proves a lot.
    strong = bounds.epsilon_lower_bound(
        select_labels=labels, select_scores=perfect, eval_labels=labels, eval_scores=perfect, delta=1e-5
    )
    assert strong.epsilon > 3.0


def test_example_features_of_hand_made_logits():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    features = attacks.example_features(logits, np.array([0, 1]))
    z = 1 + 2 * math.exp(-2)
    assert features[0] == pytest.approx([math.log(math.log(z)), 1 / z, math.log(z) + 4 * math.exp(-2) / z, 2.0])
    p = np.exp([0.0, 1.0, 3.0]) / np.exp([0.0, 1.0, 3.0]).sum()
    assert features[1] == pytest.approx([math.log(-math.log(p[1])), p[1], -(p * np.log(p)).sum(), -2.0])
    assert attacks.example_losses(logits, np.array([0, 1])) == pytest.approx([math.log(z), -math.log(p[1])])


def test_membership_attacks_tell_separated_logits_apart_and_balance_the_sides():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 400)
    members = rng.normal(size=(400, 10))
    members[np.arange(400), labels] += 8.0  # confident on members
    others = rng.normal(size=(300, 10))
    reports = attacks.membership_attacks(
        member_logits=members, member_labels=labels, nonmember_logits=others, nonmember_labels=labels[:300], delta=1e-5
    )
    assert [r.attack for r in reports] == list(ATTACKS)
    for report in reports:
        assert report.eval_members == report.eval_nonmembers == 150
        assert report.auc == 1.0 and report.advantage == 1.0 and report.tpr_at_01pct_fpr == 1.0
        assert report.bound.confidence == 0.975  # two attacks share the 5% error
        edge = 0.0125 ** (1 / 150)
        assert report.epsilon_lower_bound == pytest.approx(math.log((edge - 1e-5) / (1 - edge)))
    with pytest.raises(AuditError, match="too few"):
        attacks.membership_attacks(
            member_logits=members[:3],
            member_labels=labels[:3],
            nonmember_logits=others,
            nonmember_labels=labels[:300],
            delta=1e-5,
        )


# -- the one-run canary bound -------------------------------------------------------------------


def test_canary_bound_with_every_guess_right_grows_with_the_number_of_guesses():
    # δ = 0 and v = r: the p-value is q^r with q = e^ε/(1 + e^ε), so the bound is logit(0.05^(1/r)).
    found = [bounds.canary_epsilon_bound(m=1000, r=r, v=r, delta=0.0) for r in (10, 100, 1000)]
    assert found == pytest.approx([_logit(0.05 ** (1 / r)) for r in (10, 100, 1000)], abs=1e-7)
    assert found == pytest.approx([1.0519, 3.4930, 5.8091], abs=1e-4) and found == sorted(found)


def test_canary_bound_of_random_guesses_is_zero():
    assert bounds.canary_p_value(m=1000, r=100, v=50, epsilon=0.0, delta=0.0) > 0.5
    assert bounds.canary_epsilon_bound(m=1000, r=100, v=50, delta=1e-5) == 0.0
    rng = np.random.default_rng(3)
    scores, included = rng.normal(size=1000), rng.random(1000) < 0.5
    r, v, bound = bounds.best_canary_bound(scores, included, delta=1e-5)
    assert bound == 0.0 and r in bounds.canary_guess_counts(1000)


def test_canary_bound_is_nearly_tight_for_randomized_response():
    # ε-DP randomized response answers each canary correctly with probability e^ε/(1 + e^ε); with many
    # canaries the paper's bound approaches ε from below.
    rng = np.random.default_rng(7)
    m, epsilon = 100_000, 2.0
    correct = int((rng.random(m) < 1 / (1 + math.exp(-epsilon))).sum())
    assert 1.9 < bounds.canary_epsilon_bound(m=m, r=m, v=correct, delta=0.0) <= epsilon
    assert bounds.canary_epsilon_bound(m=m, r=m, v=correct, delta=1e-6) <= bounds.canary_epsilon_bound(
        m=m, r=m, v=correct, delta=0.0
    )


def test_canary_p_value_delta_term_follows_the_papers_sum():
    m, r, v, epsilon, delta = 500, 200, 150, 1.0, 1e-4
    q = math.exp(epsilon) / (1 + math.exp(epsilon))
    # Appendix D: α = max over i of (Σ_{j=1..i} P[Binomial(r, q) = v − j]) / i.
    total, alpha = 0.0, 0.0
    for i in range(1, v + 1):
        total += binom.pmf(v - i, r, q)
        alpha = max(alpha, total / i)
    expected = binom.sf(v - 1, r, q) + alpha * delta * 2 * m
    assert bounds.canary_p_value(m=m, r=r, v=v, epsilon=epsilon, delta=delta) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError):
        bounds.canary_p_value(m=10, r=20, v=5, epsilon=1.0, delta=0.0)


def test_canary_guesses_count_top_in_and_bottom_out():
    scores = np.array([9.0, 8.0, 7.0, 1.0, 0.0, -1.0])
    included = np.array([True, True, False, True, False, False])
    assert bounds.canary_guesses(scores, included, guesses=2) == 2  # 9 in (right), -1 out (right)
    assert bounds.canary_guesses(scores, included, guesses=4) == 4
    assert bounds.canary_guesses(scores, included, guesses=6) == 4  # 7 guessed in, 1 guessed out: both wrong
    assert bounds.canary_guess_counts(100) == (10, 20, 50, 100)
    assert bounds.canary_guess_counts(11) == (2, 6, 10)


# -- reports ------------------------------------------------------------------------------------


def _report(epsilon: float) -> AuditReport:
    return hand_made_report(epsilon)


@pytest.mark.parametrize("epsilon", [2.5, math.inf])
def test_report_json_round_trip_keeps_infinite_epsilon(epsilon):
    report = _report(epsilon)
    text = report.to_json()
    assert "Infinity" not in text and "NaN" not in text
    back = AuditReport.from_json(text)
    assert back.epsilon == epsilon and back.canary.epsilon == epsilon and math.isnan(back.canary.test_accuracy)
    assert back.attacks == report.attacks and back.notes == report.notes
    assert back.epsilon_lower_bound == 0.4 and back.auc == 0.6 and back.attack(LOSS_ATTACK) == report.attacks[0]
    with pytest.raises(AuditError):
        AuditReport.from_dict({**report.to_dict(), "format": 99})


def test_verdict_sets_the_bound_against_the_accounted_epsilon():
    assert "within the accounted ε = 2.50" in verdict(_report(2.5))
    assert "wrong" in verdict(_report(0.1))
    assert verdict(_report(math.inf)).startswith("Non-private run: the attacks prove ε ≥ 0.40")


# -- real models --------------------------------------------------------------------------------


def _trained(config: DPConfig):
    from dpcore.dpsgd import training

    kept = []
    result = training.train(config, on_weights=kept.append)
    assert result.status == "completed", result.error
    return result, kept[0]


@pytest.mark.timeout(300)
def test_an_overfit_non_private_model_is_caught():
    _, weights = _trained(OVERFIT)
    report = model_audit.audit_model(OVERFIT, weights=weights, canaries=60)
    assert report.members == report.nonmembers == 60 and math.isinf(report.epsilon)
    assert report.auc > 0.6
    assert report.epsilon_lower_bound > 0.0
    # The memorised mislabelled canaries give themselves away.
    assert report.canary.canaries == 60 and report.canary.epsilon_lower_bound > 0.5
    assert report.canary.n_train == 60 + report.canary.included


@pytest.mark.timeout(300)
def test_a_private_model_at_small_epsilon_resists_and_never_beats_its_epsilon():
    n = 1437
    sigma = calibration.calibrate_noise(target_epsilon=1.0, n=n, batch_size=64, epochs=3, delta=1e-5).noise_multiplier
    config = DPConfig(dataset="digits", model="mlp", batch_size=64, epochs=3, noise_multiplier=sigma)
    result, weights = _trained(config)
    assert result.epsilon <= 1.0
    report = model_audit.audit_model(config, weights=weights, canaries=200)
    assert report.epsilon == pytest.approx(result.epsilon)
    assert report.members == 360
    for attack in report.attacks:
        assert abs(attack.auc - 0.5) < 0.1, attack
        assert attack.epsilon_lower_bound <= report.epsilon
    canary = report.canary
    assert canary.epsilon == pytest.approx(accounting.epsilon_for_config(config, n=n + canary.included))
    assert canary.epsilon_lower_bound <= canary.epsilon


# -- stored runs and the CLI --------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory):
    """A store with a completed run (weights kept), a secure-mode one and a queued one."""
    from dpcore.runs.jobs import JobRunner

    store = RunStore(tmp_path_factory.mktemp("audit") / "runs.sqlite3")
    runner = JobRunner(store=store)
    try:
        ids = [runner.submit(TINY), runner.submit(TINY.replace(secure_mode=True))]
        assert runner.wait(timeout=200)
    finally:
        runner.shutdown(wait=True)
    queued = store.create_run(TINY)
    return store, ids[0], ids[1], queued


@pytest.mark.timeout(300)
def test_audit_run_keeps_its_report_and_retrains_when_weights_are_missing(trained_store, tmp_path):
    store, run_id, secure_id, queued_id = trained_store
    report = audits.audit_run(store, run_id)
    assert report.model_source == MODEL_STORED and report.run_id == run_id
    assert report.epsilon == store.get_run(run_id).epsilon and report.members == 128
    assert audits.stored_audit(RunStore(store.path), run_id) == report  # survives reopening the store

    # A copy of the store without the weights: the same seed retrains the same model.
    copy = RunStore(tmp_path / "copy.sqlite3")
    with sqlite3.connect(store.path) as source, sqlite3.connect(copy.path) as target:
        source.backup(target)
        target.execute("DELETE FROM run_weights")
    again = audits.audit_run(copy, run_id, save=False)
    assert again.model_source == MODEL_RETRAINED
    assert [a.auc for a in again.attacks] == [a.auc for a in report.attacks]
    assert again.notes == () and audits.stored_audit(copy, run_id) == report  # save=False kept the old one

    with sqlite3.connect(copy.path) as conn:
        conn.execute("DELETE FROM run_weights")
    with pytest.raises(AuditError, match="secure mode"):
        audits.audit_run(copy, secure_id)
    assert audits.audit_run(store, secure_id, save=False).model_source == MODEL_STORED
    with pytest.raises(AuditError, match="is queued"):
        audits.audit_run(store, queued_id)
    with pytest.raises(UnknownRunError):
        audits.audit_run(store, 999)


@pytest.mark.timeout(300)
def test_cli_audit_prints_json_and_exits_2_on_what_it_cannot_audit(trained_store, capsys):
    store, run_id, secure_id, queued_id = trained_store
    assert main(["audit", "--run", str(run_id), "--store", str(store.path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run_id"] == run_id and printed["model_source"] == MODEL_STORED
    assert [a["attack"] for a in printed["attacks"]] == list(ATTACKS)
    assert printed["epsilon_lower_bound_not_covered_by_epsilon"] <= printed["epsilon"] and "verdict" in printed
    assert printed["auc_not_covered_by_epsilon"] == max(a["auc"] for a in printed["attacks"])
    assert printed["not_covered_by_epsilon"] == AUDIT_NOTE  # no canaries: the audit figures only
    assert not {"epsilon_lower_bound", "auc", "advantage"} & set(printed)

    assert main(["audit", "--run", str(run_id), "--store", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "loss threshold" in out and "within the accounted ε" in out
    assert f"note: {AUDIT_NOTE}" in out.splitlines()

    for argv, expected in [
        (["--run", "999"], "error: run: there is no run with id 999"),
        (["--run", str(queued_id)], f"error: run: run {queued_id} is queued"),
        (["--run", str(run_id), "--canaries", "5"], "error: canaries: 5 is out of range"),
        (["--run", "zero"], "error: --run: 'zero' is not a whole number"),
    ]:
        assert main(["audit", "--store", str(store.path), *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith(expected) and err.count("\n") == 1, err


def test_the_coverage_note_says_the_audit_and_any_canary_training_are_not_covered_by_epsilon():
    from tests.audit_samples import hand_made_report

    assert coverage_note(hand_made_report(1.0, canary=False)) == AUDIT_NOTE
    with_canaries = coverage_note(hand_made_report(1.0))
    assert with_canaries == f"{AUDIT_NOTE} {CANARY_NOTE}"
    assert "not covered by ε" in AUDIT_NOTE and "not added" in CANARY_NOTE


def test_small_runs_are_audited_by_default_and_large_ones_are_not() -> None:
    from dpcore.audit.report import AUDIT_BY_DEFAULT_MAX_TRAIN_EXAMPLES, audit_by_default

    assert audit_by_default(DPConfig())  # digits
    assert not audit_by_default(DPConfig(dataset="fashion_mnist", model="mlp"))
    assert audit_by_default(DPConfig(dataset="fashion_mnist", model="mlp", max_train_examples=500))  # the attack demo
    over = DPConfig(dataset="fashion_mnist", model="mlp", max_train_examples=AUDIT_BY_DEFAULT_MAX_TRAIN_EXAMPLES + 1)
    assert not audit_by_default(over)
