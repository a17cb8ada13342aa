"""Training on Ray: a second kind of worker behind the same ``JobRunner`` queue.

The runner's fair queue, limits and store stay where they are. Each of its worker threads, instead
of training in this process, sends the run to Ray as a task with its CPU request (``cpus_per_run``)
and waits for it. The task reports each finished epoch (and its progress, at most twice a second
or when its phase changes) to a small reporter actor that the worker thread drains, so the epochs
are written to the SQLite store on this machine as they end and Train and Compare show them live.
Cancel sets a stop flag on the reporter that the task polls (a task still waiting for a CPU is
cancelled with ``ray.cancel``).
A worker process that dies mid-run (killed, out of memory, its node lost) ends the run as
"interrupted" with the epochs it had reported kept; ε is that of those epochs.

Ray is optional (requirements-dev.txt): only this module imports it, and only when the backend is
chosen. The task imports TensorFlow in the Ray worker; the workers need this repository and the
same packages (and any CSV file at the same path) on every node.
"""

from __future__ import annotations

import math
import os
import threading
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Optional

from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.errors import UserInputError

if TYPE_CHECKING:
    from dpcore.results import EpochMetrics, Progress, TrainResult

# Not 2.60: it needs packaging >= 24.2, and tensorflow-privacy 0.9.0 pins packaging ~= 22.0, so pip cannot
# install both; 2.52.1 is the newest Ray that resolves with it (and accepts protobuf < 5).
RAY_REQUIREMENT = "ray==2.52.1"
POLL_SECONDS = 0.2
PROGRESS_EVERY_SECONDS = 0.5
STOP_POLL_SECONDS = 0.5


class RayBackendError(UserInputError):
    """Ray cannot be used as asked (not installed, no cluster at the address)."""


def import_ray() -> Any:
    """The ray module, or a RayBackendError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayBackendError(
            "backend",
            "the Ray backend needs the ray package, which is not installed",
            allowed=f"local, or install {RAY_REQUIREMENT} (see requirements-dev.txt)",
        ) from None
    return ray


class _Reporter:
    """Ray actor between one task and the worker thread waiting for it: epochs, progress, the stop flag, the pid."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.stopping = False
        self.pid: Optional[int] = None

    def started(self, pid: int) -> None:
        self.pid = pid

    def worker_pid(self) -> Optional[int]:
        return self.pid

    def report(self, kind: str, payload: Any) -> None:
        self.events.append((kind, payload))

    def drain(self) -> list[tuple[str, Any]]:
        events, self.events = self.events, []
        return events

    def stop(self) -> None:
        self.stopping = True

    def should_stop(self) -> bool:
        return self.stopping


def _train_in_worker(config_json: str, reporter: Any) -> tuple[TrainResult, Optional[list]]:
    """The Ray task: train one config, reporting epochs and progress, stopping when the reporter says so."""
    import ray

    from dpcore.dpsgd import training

    config = DPConfig.from_json(config_json)
    stop = threading.Event()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(STOP_POLL_SECONDS):
            try:
                if ray.get(reporter.should_stop.remote()):
                    stop.set()
            except Exception:  # noqa: BLE001 - the reporter is gone: nobody waits for this run any more
                stop.set()

    ray.get(reporter.started.remote(os.getpid()))
    threading.Thread(target=watch, daemon=True).start()
    last_progress = [0.0]
    last_phase = [""]

    def on_progress(progress: Progress) -> None:
        now = time.monotonic()
        # A change of phase always goes through, so the preparing phase ends with the first step.
        if now - last_progress[0] >= PROGRESS_EVERY_SECONDS or progress.phase != last_phase[0]:
            last_progress[0], last_phase[0] = now, progress.phase
            reporter.report.remote("progress", progress)

    weights: list[list] = []
    try:
        result = training.train(
            config,
            on_epoch=lambda m: ray.get(reporter.report.remote("epoch", m)),
            on_progress=on_progress,
            stop_event=stop,
            on_weights=weights.append,
        )
    finally:
        done.set()
    return result, (weights[-1] if weights else None)


@lru_cache(maxsize=1)
def _remote_parts() -> tuple[Any, Any]:
    ray = import_ray()
    return ray.remote(num_cpus=0)(_Reporter), ray.remote(max_retries=0)(_train_in_worker)


class RayBackend:
    """Each run a Ray task requesting ``cpus_per_run`` CPUs, on the cluster at ``address``.

    ``address`` None starts a local Ray instance on first use with ``local_cpus`` CPUs (None: all
    of this machine's) and ``close`` stops it; with an address (e.g. "ray://head:10001" or "auto")
    it connects to that cluster and ``close`` only disconnects.
    """

    name = "ray"

    def __init__(
        self, *, address: Optional[str] = None, cpus_per_run: float = 1.0, local_cpus: Optional[int] = None
    ) -> None:
        if (
            isinstance(cpus_per_run, bool)
            or not isinstance(cpus_per_run, (int, float))
            or not math.isfinite(cpus_per_run)
            or not 0 < cpus_per_run <= 256
        ):
            raise RayBackendError("cpus_per_run", f"{cpus_per_run!r} is out of range", allowed="a number in (0, 256]")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise RayBackendError("ray_address", "empty", allowed="a Ray address such as ray://head:10001 or auto")
        self.address = address.strip() if address else None
        self.cpus_per_run = float(cpus_per_run)
        self.local_cpus = local_cpus
        self._lock = threading.Lock()
        self._connected = False
        self._reporters: dict[int, Any] = {}

    def __repr__(self) -> str:
        return f"RayBackend(address={self.address!r}, cpus_per_run={self.cpus_per_run:g})"

    def prepare(self) -> None:
        """Connect to the cluster (or start the local instance) once, in the submitting thread."""
        ray = import_ray()
        with self._lock:
            if self._connected and ray.is_initialized():
                return
            if not ray.is_initialized():
                try:
                    if self.address is None:
                        ray.init(num_cpus=self.local_cpus, include_dashboard=False, log_to_driver=False)
                    else:
                        ray.init(address=self.address, log_to_driver=False)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise RayBackendError(
                        "ray_address",
                        f"cannot connect to Ray at {self.address!r}: {str(exc).splitlines()[0][:200]}",
                        allowed="the address of a running Ray cluster (ray start --head)",
                    ) from None
            self._connected = True

    def close(self) -> None:
        """Disconnect from Ray (stopping the local instance this backend started)."""
        ray = import_ray()
        with self._lock:
            if self._connected and ray.is_initialized():
                ray.shutdown()
            self._connected = False

    def worker_pids(self) -> list[int]:
        """The process ids of the Ray workers training runs now (as each task reported its own)."""
        ray = import_ray()
        with self._lock:
            reporters = list(self._reporters.values())
        pids = []
        for reporter in reporters:
            try:
                pid = ray.get(reporter.worker_pid.remote(), timeout=10)
            except Exception:  # noqa: BLE001 - a reporter that ended meanwhile has no worker
                continue
            if pid is not None:
                pids.append(pid)
        return pids

    def train(
        self,
        config: DPConfig,
        *,
        on_epoch: Callable[[EpochMetrics], None],
        on_progress: Callable[[Progress], None],
        stop_event: threading.Event,
        on_weights: Callable[[list], None],
    ) -> TrainResult:
        """Run ``config`` as a Ray task and relay what it reports; ``training.train``'s contract."""
        ray = import_ray()
        self.prepare()
        reporter_class, task = _remote_parts()
        reporter = reporter_class.remote()
        key = id(reporter)
        with self._lock:
            self._reporters[key] = reporter
        ref = task.options(num_cpus=self.cpus_per_run).remote(config.to_json(), reporter)
        epochs: list[EpochMetrics] = []
        started = time.monotonic()
        finished = False
        try:
            stop_sent = False
            while True:
                ready, _ = ray.wait([ref], timeout=POLL_SECONDS)
                try:
                    self._relay(ray.get(reporter.drain.remote()), epochs, on_epoch, on_progress)
                except ray.exceptions.RayError as exc:
                    return self._lost(config, epochs, started, exc)
                if stop_event.is_set() and not stop_sent:
                    stop_sent = True
                    reporter.stop.remote()
                    if ray.get(reporter.worker_pid.remote()) is None:
                        ray.cancel(ref)  # still waiting for a CPU: it never starts
                if ready:
                    break
            try:
                result, weights = ray.get(ref)
            except ray.exceptions.TaskCancelledError:
                return self._ended(config, epochs, started, "cancelled", None)
            except ray.exceptions.RayError as exc:
                self._relay_left(ray, reporter, epochs, on_epoch, on_progress)
                return self._lost(config, epochs, started, exc)
            self._relay_left(ray, reporter, epochs, on_epoch, on_progress)
            if weights is not None:
                on_weights(weights)
            finished = True
            return result
        finally:
            if not finished and not ray.wait([ref], timeout=0)[0]:
                ray.cancel(ref, force=True)  # e.g. the store failed: the task must not train on unseen
            with self._lock:
                self._reporters.pop(key, None)
            ray.kill(reporter)

    @staticmethod
    def _relay(
        events: list[tuple[str, Any]],
        epochs: list[EpochMetrics],
        on_epoch: Callable[[EpochMetrics], None],
        on_progress: Callable[[Progress], None],
    ) -> None:
        for kind, payload in events:
            if kind == "epoch":
                epochs.append(payload)
                on_epoch(payload)
            else:
                on_progress(payload)

    def _relay_left(
        self,
        ray: Any,
        reporter: Any,
        epochs: list[EpochMetrics],
        on_epoch: Callable[[EpochMetrics], None],
        on_progress: Callable[[Progress], None],
    ) -> None:
        """Epochs reported after the last poll (the reporter outlives the task)."""
        try:
            self._relay(ray.get(reporter.drain.remote()), epochs, on_epoch, on_progress)
        except ray.exceptions.RayError:
            pass

    def _lost(self, config: DPConfig, epochs: list[EpochMetrics], started: float, exc: Exception) -> TrainResult:
        reason = type(exc).__name__
        return self._ended(
            config,
            epochs,
            started,
            "interrupted",
            (
                f"the Ray worker training it was lost ({reason}); its {len(epochs)} finished epochs are kept "
                "and ε is that of those epochs"
            ),
        )

    @staticmethod
    def _ended(
        config: DPConfig, epochs: list[EpochMetrics], started: float, status: str, error: Optional[str]
    ) -> TrainResult:
        """A run that ended without the task's own result: what was reported is what it did."""
        from dpcore.results import TrainResult

        return TrainResult.from_reported_epochs(
            config,
            tuple(epochs),
            status=status,
            error=error,
            seconds=time.monotonic() - started,
            n_train=datasets.train_size_or_none(config),
        )
