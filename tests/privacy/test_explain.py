"""Plain-language ε readings and risk warnings."""

from __future__ import annotations

import math

import pytest

from dpcore.config import DPConfig
from dpcore.privacy import explain


@pytest.mark.parametrize(
    "eps, label",
    [(0.5, "strong"), (1.0, "strong"), (2.0, "moderate"), (8.0, "weak"), (12.0, "very weak"), (math.inf, "none")],
)
def test_strength(eps: float, label: str) -> None:
    assert explain.strength(eps) == label


def test_attacker_confidence_is_logistic_in_epsilon() -> None:
    assert explain.attacker_confidence(0.0) == pytest.approx(0.5)
    assert explain.attacker_confidence(1.0) == pytest.approx(math.e / (1 + math.e))
    assert explain.attacker_confidence(math.inf) == 1.0


def test_reading_mentions_factor_delta_and_confidence() -> None:
    text = explain.epsilon_reading(1.0, 1e-5)
    assert "×2.72" in text and "1.0e-05" in text and "73%" in text and text.startswith("Strong")


def test_reading_names_the_outcome() -> None:
    assert "any released count" in explain.epsilon_reading(2.0, 1e-5, outcome="released count")


def test_reading_for_infinity_says_no_guarantee() -> None:
    assert "no privacy guarantee" in explain.epsilon_reading(math.inf, 1e-5)


def test_accounting_note_is_explicit_about_sampling() -> None:
    assert "only valid when every batch is really drawn by Poisson" in explain.accounting_note("rdp", "poisson")
    assert "no amplification" in explain.accounting_note("pld", "shuffle")
    assert "PLD" in explain.accounting_note("pld", "shuffle")


def _fields(config: DPConfig, n: int, eps: float) -> set[tuple[str, str]]:
    return {(w.field, w.level) for w in explain.risk_warnings(config, n=n, epsilon=eps)}


def test_safe_settings_have_no_warnings() -> None:
    assert _fields(DPConfig(batch_size=64, delta=1e-5), 1437, 2.0) == set()


def test_each_risk_is_flagged() -> None:
    assert ("delta", "error") in _fields(DPConfig(delta=1e-3), 1437, 1.0)
    assert ("batch_size", "error") in _fields(DPConfig(batch_size=2000), 1437, 1.0)
    assert ("batch_size", "warning") in _fields(DPConfig(batch_size=4), 1437, 1.0)
    assert ("noise_multiplier", "warning") in _fields(DPConfig(), 1437, 25.0)


def test_baseline_is_labelled_non_private() -> None:
    warnings = explain.risk_warnings(DPConfig(private=False), n=1437, epsilon=math.inf)
    assert len(warnings) == 1 and "ε = ∞" in warnings[0].message


def test_progress_lines() -> None:
    assert (
        explain.progress_text(
            state="queued", epoch=0, epochs_total=5, fraction=0.0, eta_seconds=None, finished_epochs=0
        )
        == "Queued: waiting for a free worker"
    )
    assert (
        explain.progress_text(
            state="running", epoch=2, epochs_total=5, fraction=0.42, eta_seconds=125.4, finished_epochs=1
        )
        == "Epoch 2/5 · 42% of the run · about 2m 05s left"
    )
    # In the first epoch: the step within it, not a bare share of the whole run.
    assert (
        explain.progress_text(
            state="running",
            epoch=1,
            epochs_total=10,
            fraction=0.01,
            eta_seconds=None,
            finished_epochs=0,
            epoch_step=3,
            epoch_steps=30,
        )
        == "Epoch 1/10, step 3 of 30 · 1% of the run · estimating the time left…"
    )
    assert (
        explain.progress_text(
            state="failed", epoch=1, epochs_total=5, fraction=0.3, eta_seconds=None, finished_epochs=1
        )
        == "Failed · 1/5 epochs"
    )
    assert explain.duration_text(None) == "estimating…" and explain.duration_text(42.4) == "42s"


def test_format_epsilon() -> None:
    assert explain.format_epsilon(None) == "—"
    assert explain.format_epsilon(math.inf) == "∞"
    assert explain.format_epsilon(0.70374) == "0.704"
    assert explain.format_epsilon(1234.6) == "1235"
    assert explain.format_epsilon(123456.0) == "1.235e+05"
    assert explain.format_epsilon(0.70374, digits=4) == "0.7037"
    assert explain.format_epsilon(0.1 + 0.2, digits=None) == "0.30000000000000004"
    assert explain.format_epsilon(math.inf, infinity="inf") == "inf"
    assert explain.format_epsilon(None, unknown="") == ""


def test_randomness_note_warns_about_known_seeds_and_names_secure_mode() -> None:
    reproducible = explain.randomness_note(DPConfig(seed=7))
    assert "seed 7" in reproducible and "secure mode" in reproducible
    assert "secret" in explain.randomness_note(DPConfig(secure_mode=True))
    assert "no noise" in explain.randomness_note(DPConfig(private=False))
    assert "more privacy" in explain.SELECTION_NOTE


@pytest.mark.parametrize(
    "eps, text",
    [
        (1.0, "×2.72"),
        (9.35, "×11,500"),
        (12.0, "×163,000"),
        (14.0, "×1.2 million"),
        (20.0, "×490 million"),
        (25.0, "×72 billion"),
        (30.0, "an astronomically large factor"),
        (800.0, "an astronomically large factor"),
    ],
)
def test_factor_is_written_as_people_read_numbers(eps: float, text: str) -> None:
    assert explain.factor_text(eps) == text
    assert "e+" not in explain.epsilon_reading(eps, 1e-5)


def test_a_huge_epsilon_reads_as_effectively_no_protection() -> None:
    huge = explain.epsilon_reading(9.35 + 10, 1e-5)
    assert "effectively no protection" in huge and huge.startswith("Very weak")
    assert "effectively no protection" not in explain.epsilon_reading(explain.HIGH_EPSILON, 1e-5)
