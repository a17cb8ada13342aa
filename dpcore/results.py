"""The values a training run produces: per-epoch metrics, progress and the final result.

Kept apart from dpcore.training so the store, the CLI and the pages can read runs without
importing TensorFlow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from dpcore.config import DPConfig


# Training loss and accuracy are exact means over the private training batches, without noise, so
# ε does not cover them (test loss and accuracy are computed on the held-out split). Wherever they
# leave the library (CLI text, JSON, CSV) they carry this label and these names.
TRAIN_METRICS_NOTE = ("Training loss and accuracy are computed on the private training batches without noise "
                      "and are not covered by ε; test loss and accuracy on the held-out split.")
TRAIN_LOSS_KEY = "train_loss_not_covered_by_epsilon"
TRAIN_ACCURACY_KEY = "train_accuracy_not_covered_by_epsilon"


@dataclass(frozen=True)
class EpochMetrics:
    """Metrics after one epoch; train loss/accuracy are running means over that epoch's private batches.

    The training figures are computed without noise and are not covered by ε (``TRAIN_METRICS_NOTE``);
    the test figures are computed on the held-out split.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    epsilon: float
    seconds: float
    examples: int


@dataclass(frozen=True)
class Progress:
    """Where a run is within its steps, for progress bars between epochs."""

    step: int
    total_steps: int
    epoch: int
    fraction: float


@dataclass(frozen=True)
class TrainResult:
    """The outcome of one run: status, error message if failed, and per-epoch metrics.

    ``examples_per_second`` is training throughput: examples over the time spent in training steps,
    leaving out the first step (which traces the graph) and the per-epoch evaluation; ``seconds`` is
    the wall time of the whole run, loading and evaluation included.
    """

    status: str
    error: Optional[str]
    config: "DPConfig"
    epochs: tuple[EpochMetrics, ...]
    examples_per_second: float
    seconds: float
    n_train: int

    @property
    def test_accuracy(self) -> float:
        return self.epochs[-1].test_accuracy if self.epochs else math.nan

    @property
    def epsilon(self) -> float:
        if not self.config.private:
            return math.inf
        return self.epochs[-1].epsilon if self.epochs else 0.0
