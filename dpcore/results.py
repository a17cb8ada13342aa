"""The values a training run produces: per-epoch metrics, progress and the final result.

Kept apart from dpcore.dpsgd.training so the store, the CLI and the pages can read runs without
importing TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from dpcore.config import DPConfig


# A run's states, for the store, the job runner and the pages alike. "budget_reached": the run
# stopped before the first epoch that would have taken ε past its ``epsilon_budget``.
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("completed", "budget_reached", "cancelled", "failed", "interrupted")
STATUSES = ACTIVE_STATUSES + FINAL_STATUSES
# Final states of a run that trained every epoch it was allowed to (its budget may have ended it early).
FINISHED_STATUSES = ("completed", "budget_reached")

# Training loss and accuracy are exact means over the private training batches, without noise, so
# ε does not cover them (test loss and accuracy are computed on the held-out split). Wherever they
# leave the library (CLI text, JSON, CSV) they carry this label and these names.
TRAIN_METRICS_NOTE = (
    "Training loss and accuracy are computed on the private training batches without noise "
    "and are not covered by ε; test loss and accuracy on the held-out split."
)
# The pages' tag and titles for the same figures (metrics, chart traces, table columns).
TRAIN_METRICS_LABEL = "computed on the private training data, not covered by ε"
TRAIN_LOSS_TITLE = "training loss (not covered by ε)"
TRAIN_ACCURACY_TITLE = "training accuracy (not covered by ε)"
TEST_METRICS_LABEL = "computed on the held-out test split"
TRAIN_LOSS_KEY = "train_loss_not_covered_by_epsilon"
TRAIN_ACCURACY_KEY = "train_accuracy_not_covered_by_epsilon"


@dataclass(frozen=True)
class EpochMetrics:
    """Metrics after one epoch; train loss/accuracy are running means over that epoch's private batches.

    The training figures are computed without noise and are not covered by ε (``TRAIN_METRICS_NOTE``);
    the test figures are computed on the held-out split.

    Validation loss/accuracy are NaN when the run holds out no validation rows. ``noise_multipliers``
    and ``clip_norms`` hold each step of the epoch's σ_t (the stated, accounted noise multiplier)
    and clip norm, in order (adaptive clipping moves the clip norm); both empty for a baseline.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    epsilon: float
    seconds: float
    examples: int
    validation_loss: float = math.nan
    validation_accuracy: float = math.nan
    noise_multipliers: tuple[float, ...] = ()
    clip_norms: tuple[float, ...] = ()


# A run's phases as progress reports them: "preparing" until its first step (loading the data,
# building the model, tracing its training step), then "training".
PROGRESS_PHASES = ("preparing", "training")


@dataclass(frozen=True)
class Progress:
    """Where a run is within its steps, for progress bars between epochs (``phase``: one of PROGRESS_PHASES)."""

    step: int
    total_steps: int
    epoch: int
    fraction: float
    phase: str = "training"
    # Steps taken in the current epoch, and that epoch's step count (epochs differ by one with Poisson sampling).
    epoch_step: int = 0
    epoch_steps: int = 0


RUN_STATUSES = ("completed", "budget_reached", "cancelled", "failed")


@dataclass(frozen=True)
class TrainResult:
    """The outcome of one run: status (one of RUN_STATUSES), error message if failed, per-epoch metrics.

    "budget_reached": the run stopped before the first epoch whose ε would exceed ``epsilon_budget``;
    ``note`` says where and why. Its last epoch is within the budget.

    ``examples_per_second`` is training throughput: examples over the time spent in training steps,
    leaving out the first step (which may trace the graph) and the per-epoch evaluation; ``seconds`` is
    the wall time of the whole run, loading and evaluation included.
    """

    status: str
    error: Optional[str]
    config: DPConfig
    epochs: tuple[EpochMetrics, ...]
    examples_per_second: float
    seconds: float
    n_train: int
    note: Optional[str] = None

    @classmethod
    def from_reported_epochs(
        cls,
        config: DPConfig,
        epochs: tuple[EpochMetrics, ...],
        *,
        status: str,
        error: Optional[str],
        seconds: float,
        n_train: Optional[int],
    ) -> TrainResult:
        """A run that ended without the trainer's own result (its worker was lost): what it reported is what it did.

        ``n_train`` is the config's training rows (None, stored as 0, when its data cannot be read now).
        """
        examples = sum(e.examples for e in epochs)
        return cls(
            status=status,
            error=error,
            config=config,
            epochs=tuple(epochs),
            examples_per_second=examples / seconds if examples and seconds > 0 else math.nan,
            seconds=seconds,
            n_train=n_train or 0,
        )

    @property
    def test_accuracy(self) -> float:
        return self.epochs[-1].test_accuracy if self.epochs else math.nan

    @property
    def epsilon(self) -> float:
        if not self.config.private:
            return math.inf
        return self.epochs[-1].epsilon if self.epochs else 0.0

    @property
    def noise_multipliers(self) -> tuple[float, ...]:
        """σ_t of every step taken, in order."""
        return tuple(value for m in self.epochs for value in m.noise_multipliers)

    @property
    def clip_norms(self) -> tuple[float, ...]:
        """The clip norm of every step taken, in order."""
        return tuple(value for m in self.epochs for value in m.clip_norms)
