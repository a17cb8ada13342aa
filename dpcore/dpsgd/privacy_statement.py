"""TensorFlow Privacy's own plain-text privacy statement for a DP-SGD run, for the privacy report beside dpcore's ε.

``compute_dp_sgd_privacy_statement`` imports TensorFlow with TensorFlow Privacy, so it lives here, the one
room that may. It states ε for the same n, batch size, epochs, σ and δ under two assumptions (each example
once per epoch, and Poisson sampling); the report says which of the two the run's trainer really did.
"""

from __future__ import annotations

import math

from tensorflow_privacy import compute_dp_sgd_privacy_statement
from tensorflow_privacy.privacy.analysis.compute_dp_sgd_privacy_lib import AccountantType

_ACCOUNTANT_TYPES = {"rdp": AccountantType.RDP, "pld": AccountantType.PLD}


def tf_privacy_statement(
    *, n: int, batch_size: int, epochs: int, noise_multiplier: float, delta: float, accountant: str
) -> str:
    """TensorFlow Privacy's statement, verbatim, for ``epochs`` epochs over ``n`` examples.

    Every example's gradient is clipped on its own (no microbatches), so ``used_microbatching`` is
    False; no bound on examples per person is claimed, so it states no person-level ε.
    """
    return compute_dp_sgd_privacy_statement(
        number_of_examples=int(n),
        batch_size=int(batch_size),
        num_epochs=int(epochs),
        noise_multiplier=float(noise_multiplier),
        delta=float(delta),
        used_microbatching=False,
        max_examples_per_user=None,
        accountant_type=_ACCOUNTANT_TYPES[accountant],
    )


def tf_privacy_poisson_steps(*, n: int, batch_size: int, epochs: int) -> int:
    """The Poisson steps TensorFlow Privacy's statement composes: ceil(epochs / q) with q = batch_size / n in
    floating point, which can exceed the trainer's ceil(epochs · n / batch_size) by one when that is whole."""
    return int(math.ceil(float(epochs) / (int(batch_size) / int(n))))
