"""Where a worker thread's run trains: the backend protocol the job runner calls, and training in this process.

The other backends (``process_backend``: child processes; ``ray_backend``: a Ray cluster) keep the same
contract: ``train`` never raises for a failed run, it returns the run's result.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Protocol

from dpcore.config import DPConfig
from dpcore.room.server_settings import ENV_WORKERS, RunLimits, ServerSettings  # noqa: F401 (ENV_WORKERS re-exported)

if TYPE_CHECKING:
    from dpcore.results import EpochMetrics, Progress, TrainResult


class TrainingBackend(Protocol):
    """Where a worker thread's run trains: ``train`` has ``training.train``'s contract (never raises for a failed run)."""

    name: str

    def prepare(self) -> None:
        """Get ready to train (import TensorFlow, connect to a cluster) in the submitting thread."""

    def train(
        self,
        config: DPConfig,
        *,
        on_epoch: Callable[[EpochMetrics], None],
        on_progress: Callable[[Progress], None],
        stop_event: threading.Event,
        on_weights: Callable[[list], None],
    ) -> TrainResult:
        """Train ``config``, reporting each finished epoch and progress, stopping when ``stop_event`` is set."""


class LocalBackend:
    """The embedded default: each run trains in the worker thread itself, in this process."""

    name = "local"

    def prepare(self) -> None:
        from dpcore.dpsgd import training  # noqa: F401

    def warm_up(self, config: DPConfig) -> None:
        """Trace ``config``'s training step now (``training.warm_up``), so that its first run need not."""
        from dpcore.dpsgd import training

        training.warm_up(config)

    def train(self, config: DPConfig, **callbacks: Any) -> TrainResult:
        from dpcore.dpsgd import training

        return training.train(config, **callbacks)
