"""calibration's offered σ: rounded up to the shown decimals, and shown with one formatter."""

from __future__ import annotations

from dpcore.privacy import accounting
from dpcore.privacy.calibration import NOISE_DECIMALS, calibrate_noise, noise_text, offered_noise


def test_offered_noise_rounds_up_never_down() -> None:
    assert offered_noise(5.03903) == 5.0391
    assert offered_noise(5.0391) == 5.0391
    assert offered_noise(0.50001) == 0.5001
    assert noise_text(offered_noise(5.03903)) == "5.0391"


def test_the_offered_noise_meets_the_target_and_its_text_is_its_value() -> None:
    found = calibrate_noise(target_epsilon=1.0, n=1437, batch_size=128, epochs=20, delta=1e-5)
    offered = offered_noise(found.noise_multiplier)
    assert found.noise_multiplier <= offered < found.noise_multiplier + 10**-NOISE_DECIMALS
    assert float(noise_text(offered)) == offered
    spent = accounting.epsilon(
        noise_multiplier=offered, n=1437, batch_size=128, epochs=20, delta=1e-5, accountant="rdp", sampling="poisson"
    )
    assert spent <= found.epsilon <= 1.0
