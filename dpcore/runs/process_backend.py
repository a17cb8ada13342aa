"""Training in long-lived child processes: the served app's backend, so training never holds the page runs' GIL.

A served DP Explorer answers every slider move of every participant in one Python process. Runs
trained in that process's worker threads competed with those page runs for its GIL and its cores.
``ProcessBackend`` keeps one child process per worker slot instead, a fresh interpreter
(``child_process.ChildProcess``: no copy of the server's threads, and not multiprocessing's "spawn",
which would import Streamlit's app.py again) at a lower scheduling priority (``os.nice``), that
imports TensorFlow once (``_warm_up``) and then trains run after run. The runner's worker thread
sends a child the config, relays the epochs, progress and final weights the child sends back, and
passes on a cancel (the runner's cancel and wall-time paths set ``stop_event``). A child that dies
mid-run (killed, out of memory, a crash in native code) ends that run as failed with its finished
epochs kept (ε is that of those epochs), and a fresh child takes its slot.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from dpcore.child_process import ChildProcess
from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.errors import UserInputError, describe_exception
from dpcore.runs import audits
from dpcore.runs.store import RunStore

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from dpcore.audit.report import AuditReport
    from dpcore.results import EpochMetrics, Progress, TrainResult

# How much lower than the server the children run (os.nice increment, 0 to 19): page runs first.
TRAINING_NICE = 10
POLL_SECONDS = 0.2
# Progress is reported once per step; a child forwards it at most this often.
PROGRESS_EVERY_SECONDS = 0.25


# -- the child side ----------------------------------------------------------------------


def _warm_up() -> None:
    """What a child does once, before its first run: import the trainer (TensorFlow) and trace the
    default config's step, which later runs of that shape in this process reuse.

    The one place to add more start-up work that later runs in this process reuse.
    """
    from dpcore.dpsgd import training

    try:
        training.warm_up()  # its default: the config a workshop starts from
    except Exception:  # noqa: BLE001 - a failed warm-up only means the first run traces its own step
        pass


def serve_training(conn: Connection) -> None:
    """A child's life (``child_process`` calls it): warm up, then train each config it is sent until the pipe closes."""
    runs: queue.Queue[Optional[tuple[str, Any, threading.Event]]] = queue.Queue()
    current = [threading.Event()]

    def read() -> None:
        """The one reader of the pipe: a run to train, a stop for the run in progress, or the end."""
        while True:
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                current[0].set()
                runs.put(None)
                return
            if kind in ("train", "audit"):
                current[0] = threading.Event()
                runs.put((kind, payload, current[0]))
            elif kind == "stop":
                current[0].set()

    threading.Thread(target=read, name="dpcore-child-reader", daemon=True).start()
    _warm_up()
    from dpcore.dpsgd import training

    while (job := runs.get()) is not None:
        kind, payload, stop = job
        if kind == "audit":
            conn.send(_audit(*payload))
            continue
        config_json = payload
        last_progress = [0.0]

        last_phase = [""]

        def on_progress(progress: Progress) -> None:  # one per run, called only while that run trains
            now = time.monotonic()
            # A change of phase (preparing → training) goes at once; steps at most every PROGRESS_EVERY_SECONDS.
            if progress.phase != last_phase[0] or now - last_progress[0] >= PROGRESS_EVERY_SECONDS:  # noqa: B023
                last_progress[0], last_phase[0] = now, progress.phase  # noqa: B023
                conn.send(("progress", progress))

        result = training.train(
            DPConfig.from_json(config_json),
            on_epoch=lambda m: conn.send(("epoch", m)),
            on_progress=on_progress,
            stop_event=stop,
            on_weights=lambda weights: conn.send(("weights", weights)),
        )
        conn.send(("result", result))


def _audit(store_path: str, run_id: int) -> tuple[str, Any]:
    """Audit a stored run (``audits.audit_run``, which keeps the report with the run): ("report", it) or ("error", why)."""
    try:
        return "report", audits.audit_run(RunStore(store_path), run_id)
    except Exception as exc:  # noqa: BLE001 - the server records it as the audit's error
        return "error", describe_exception(exc)


class AuditInChildError(ValueError):
    """A post-run audit in a training process failed or its process died; the message says why."""


# -- the server side ---------------------------------------------------------------------


class _Child(ChildProcess):
    """One training process and the server's end of its pipe."""

    def __init__(self, nice: int) -> None:
        super().__init__("dpcore.runs.process_backend:serve_training", nice=nice)

    def stop(self) -> None:
        """Ask the run in progress to stop after its current step (its finished epochs are kept)."""
        try:
            self.conn.send(("stop", None))
        except (OSError, ValueError):  # already gone: the run ends as crashed
            pass


class ProcessBackend:
    """Each run trains in one of up to ``processes`` long-lived child processes (niced by ``nice``).

    Thread-safe: the runner's worker threads each take an idle child for a run and give it back
    after. ``prepare`` starts the children (their TensorFlow import overlaps the first run's
    queueing); ``close`` ends them. ``train`` has ``training.train``'s contract.
    """

    name = "process"

    def __init__(self, *, processes: int, nice: int = TRAINING_NICE) -> None:
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise UserInputError(
                "processes",
                f"{processes!r} is not a whole number of at least 1",
                allowed="a whole number, 1 or more (one per worker)",
            )
        if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= 19:
            raise UserInputError("nice", f"{nice!r} is out of range", allowed="a whole number from 0 to 19")
        self.processes = processes
        self.nice = nice
        self._lock = threading.Lock()
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"ProcessBackend(processes={self.processes}, nice={self.nice})"

    def prepare(self) -> None:
        """Start the children not yet running (cheap once they are)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this process backend has been closed")
            while len(self._idle) + len(self._busy) < self.processes:
                self._idle.append(_Child(self.nice))

    def close(self) -> None:
        """End every child (a run in progress ends as crashed); the backend takes no more runs."""
        with self._lock:
            self._closed = True
            children = [*self._idle, *self._busy]
            self._idle.clear()
        for child in children:
            child.end()

    def worker_pids(self) -> list[int]:
        """The process ids of the children training runs now."""
        with self._lock:
            return [child.pid for child in self._busy if child.pid is not None]

    def _take(self) -> _Child:
        with self._lock:
            if self._closed:
                raise RuntimeError("this process backend has been closed")
            while self._idle:
                child = self._idle.pop()
                if child.is_alive():
                    break
                child.end()
            else:
                child = _Child(self.nice)
            self._busy.add(child)
            return child

    def _give_back(self, child: _Child, *, healthy: bool) -> None:
        """Return ``child`` to the idle pool, or end it and start its replacement."""
        with self._lock:
            self._busy.discard(child)
            closed = self._closed
            if healthy and not closed:
                self._idle.append(child)
                return
        child.end()
        if not closed:
            self.prepare()

    def train(
        self,
        config: DPConfig,
        *,
        on_epoch: Callable[[EpochMetrics], None],
        on_progress: Callable[[Progress], None],
        stop_event: threading.Event,
        on_weights: Callable[[list], None],
    ) -> TrainResult:
        """Train ``config`` in a child process, relaying what it reports; ``training.train``'s contract."""
        child = self._take()
        epochs: list[EpochMetrics] = []
        started = time.monotonic()
        healthy = False
        try:
            child.conn.send(("train", config.to_json()))
            stop_sent = False
            while True:
                if stop_event.is_set() and not stop_sent:
                    stop_sent = True
                    child.stop()
                try:
                    if not child.conn.poll(POLL_SECONDS):
                        if not child.is_alive() and not child.conn.poll(0):
                            return self._crashed(config, epochs, started, child)
                        continue
                    kind, payload = child.conn.recv()
                except (EOFError, OSError):
                    child.end(timeout=5)
                    return self._crashed(config, epochs, started, child)
                if kind == "epoch":
                    epochs.append(payload)
                    on_epoch(payload)
                elif kind == "progress":
                    on_progress(payload)
                elif kind == "weights":
                    on_weights(payload)
                else:
                    healthy = True
                    return payload
        finally:
            # A run left early (the store failed in a callback) leaves its child mid-run: it is replaced.
            self._give_back(child, healthy=healthy)

    def audit_run(self, store_path: Path, run_id: int) -> AuditReport:
        """Audit a stored run in a training process (``audits.audit_run``, the report kept with the run),
        so its attacks do not run in the server; an AuditInChildError says why one failed."""
        child = self._take()
        healthy = False
        try:
            try:
                child.conn.send(("audit", (str(store_path), run_id)))
                kind, payload = child.conn.recv()
            except (EOFError, OSError):
                child.end(timeout=5)
                raise AuditInChildError(f"the process auditing it ended ({child.exitcode})") from None
            healthy = True
            if kind == "error":
                raise AuditInChildError(payload)
            return payload
        finally:
            self._give_back(child, healthy=healthy)

    @staticmethod
    def _crashed(config: DPConfig, epochs: list[EpochMetrics], started: float, child: _Child) -> TrainResult:
        """The run of a child that died: failed, with the epochs it had reported (ε is that of those epochs)."""
        from dpcore.results import TrainResult

        code = child.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return TrainResult.from_reported_epochs(
            config,
            tuple(epochs),
            status="failed",
            seconds=time.monotonic() - started,
            n_train=datasets.train_size_or_none(config),
            error=(
                f"the process training it {how} (out of memory, or killed); its {len(epochs)} finished "
                "epochs are kept and ε is that of those epochs"
            ),
        )
