"""Training throughput: non-private Keras fit vs stock TF Privacy vs dpcore, on the same data.

Trains the TensorFlow Privacy tutorial CNN and the DP-Adam MLP (batch 250) on Fashion-MNIST with
  keras  - non-private ``model.fit`` (the reference speed),
  tfp    - stock ``DPKerasSGDOptimizer`` with one microbatch per example (on a small slice: it is slow),
  dpcore - ``dpcore.training.train``: DP-SGD, Poisson sampling, per-example clipping and noise,
and prints examples/s, peak memory and the ratios.

Each method runs in its own worker process (so its peak resident memory is its own), warmed up
first so that graph tracing is not timed. The workers then take turns, one timed window each per
round, and each method's best window counts: on a shared machine, load from elsewhere then hits all
three alike instead of whichever happened to run during a busy minute. The ratio of each round's
windows is printed too (its lowest is what a busy minute does to it), with the load average.

First-run latency: for the default config (digits MLP) and each model's dpcore config, a fresh
process runs ``training.train`` twice and reports each run's wall time and its preparing phase
(start to first step: loading, building, tracing); the second run reuses the traced step.

    python bench/training_throughput.py [--examples 60000] [--stock-examples N] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Callable

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_SIZE = 250
LEARNING_RATE = 0.25
L2_NORM_CLIP = 1.5
NOISE_MULTIPLIER = 1.2
METHODS = ("keras", "tfp", "dpcore")
MODELS = ("cnn", "mlp")
# Stock TF Privacy is slow, so it trains on a slice: enough batches for a window of a few seconds.
STOCK_EXAMPLES = {"cnn": 500, "mlp": 5000}


def _config(model: str, examples: int):
    from dpcore.config import DPConfig

    return DPConfig(
        dataset="fashion_mnist",
        model=model,
        optimizer="sgd",
        learning_rate=LEARNING_RATE,
        l2_norm_clip=L2_NORM_CLIP,
        noise_multiplier=NOISE_MULTIPLIER,
        batch_size=BATCH_SIZE,
        epochs=1,
        delta=1e-5,
        sampling="poisson",
        max_train_examples=examples,
    )


# -- worker side -------------------------------------------------------------------------------------


def _keras_window(model_name: str, examples: int, private: bool) -> Callable[[], float]:
    """A function that trains one pass over ``examples`` with Keras fit and returns examples/s."""
    import tensorflow as tf

    from dpcore.data import datasets
    from dpcore.dpsgd import models

    config = _config(model_name, examples)
    dataset = datasets.load(config)
    model = models.build(config, input_shape=dataset.info.input_shape, num_classes=dataset.info.num_classes)
    if private:
        from tensorflow_privacy.privacy.optimizers.dp_optimizer_keras import DPKerasSGDOptimizer

        optimizer = DPKerasSGDOptimizer(
            l2_norm_clip=L2_NORM_CLIP,
            noise_multiplier=NOISE_MULTIPLIER,
            num_microbatches=BATCH_SIZE,
            learning_rate=LEARNING_RATE,
        )
        loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.NONE)
    else:
        optimizer = tf.keras.optimizers.legacy.SGD(learning_rate=LEARNING_RATE)
        loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss)
    # Full batches only (TF Privacy needs the batch to split into microbatches); the input pipeline is
    # built once, in memory, so that a window times training, not converting arrays.
    count = len(dataset.y_train) // BATCH_SIZE * BATCH_SIZE
    batches = tf.data.Dataset.from_tensor_slices((dataset.x_train[:count], dataset.y_train[:count]))
    batches = batches.batch(BATCH_SIZE).cache().prefetch(tf.data.AUTOTUNE)
    model.fit(batches.take(1), epochs=1, verbose=0)  # traces the training step
    model.fit(batches, epochs=1, verbose=0)  # fills the cache

    def window() -> float:
        started = time.perf_counter()
        model.fit(batches, epochs=1, verbose=0)
        return count / (time.perf_counter() - started)

    return window


def _dpcore_window(model_name: str, examples: int) -> Callable[[], float]:
    """A function that runs dpcore.training.train for one epoch and returns its examples/s."""
    from dpcore.dpsgd import training

    config = _config(model_name, examples)

    def window() -> float:
        # train() leaves its first step, which traces the graph, out of examples_per_second.
        result = training.train(config)
        if result.status != "completed":
            raise SystemExit(f"dpcore run {result.status}: {result.error}")
        return result.examples_per_second

    return window


def _first_runs(model_name: str, examples: int) -> dict:
    """In this fresh process: two runs of the same config, each one's wall time and preparing time."""
    from dpcore.config import DPConfig
    from dpcore.dpsgd import training

    config = DPConfig() if model_name == "default" else _config(model_name, examples)
    runs = []
    for _ in range(2):
        started = time.perf_counter()
        first_step: list[float] = []

        def on_progress(progress, started=started, first_step=first_step) -> None:
            if progress.phase == "training" and not first_step:
                first_step.append(time.perf_counter() - started)

        result = training.train(config, on_progress=on_progress)
        if result.status != "completed":
            raise SystemExit(f"dpcore run {result.status}: {result.error}")
        runs.append(
            {
                "seconds": time.perf_counter() - started,
                "preparing_seconds": first_step[0],
                "examples_per_second": result.examples_per_second,
            }
        )
    return {"first": runs[0], "second": runs[1]}


def _worker(method: str, model_name: str, examples: int, stock_examples: int) -> int:
    """Serve timed windows: each line "go" on stdin gets one examples/s figure on stdout."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, REPO_ROOT)
    if method == "first":
        print(json.dumps(_first_runs(model_name, examples)), flush=True)
        return 0
    if method == "keras":
        window = _keras_window(model_name, examples, private=False)
    elif method == "tfp":
        window = _keras_window(model_name, stock_examples, private=True)
    else:
        window = _dpcore_window(model_name, examples)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        print(json.dumps({"examples_per_second": window()}), flush=True)
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
    return 0


# -- driver side -------------------------------------------------------------------------------------


class _Worker:
    """A worker process for one method, driven one window at a time."""

    def __init__(self, method: str, model_name: str, args: argparse.Namespace) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                method,
                model_name,
                "--examples",
                str(args.examples),
                "--stock-examples",
                str(args.stock_examples or STOCK_EXAMPLES[model_name]),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._read()  # ready

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"benchmark worker exited with status {self.process.wait()}")
        return json.loads(line)

    def window(self) -> float:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return self._read()["examples_per_second"]

    def finish(self) -> float:
        self.process.stdin.write("done\n")
        self.process.stdin.flush()
        peak = self._read()["peak_rss_mib"]
        self.process.wait()
        return peak


def _measure_first_runs(model_name: str, args: argparse.Namespace) -> dict:
    """Two runs in a fresh process (see ``_first_runs``), with the load average before them."""
    load = os.getloadavg()[0]
    output = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", "first", model_name, "--examples", str(args.examples)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    return {**json.loads(output.strip().splitlines()[-1]), "load_average": load}


def _measure_model(model_name: str, args: argparse.Namespace) -> dict:
    workers = {method: _Worker(method, model_name, args) for method in METHODS}
    rates: dict[str, list[float]] = {method: [] for method in METHODS}
    loads = []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for method, worker in workers.items():
            rates[method].append(worker.window())
    rows: dict = {"load_average": loads}
    for method, worker in workers.items():
        rows[method] = {
            "examples_per_second": max(rates[method]),
            "windows": rates[method],
            "peak_rss_mib": worker.finish(),
        }
    best = {method: rows[method]["examples_per_second"] for method in METHODS}
    rows["ratios"] = {
        "dpcore_over_keras": best["dpcore"] / best["keras"],
        "dpcore_over_tfp": best["dpcore"] / best["tfp"],
        "keras_over_tfp": best["keras"] / best["tfp"],
        "dpcore_over_keras_per_round": [d / k for d, k in zip(rates["dpcore"], rates["keras"])],
    }
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=60000, help="training examples for keras and dpcore")
    parser.add_argument(
        "--stock-examples",
        type=int,
        default=None,
        help="training examples for stock TF Privacy (default: 500 for cnn, 5000 for mlp)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed windows per method; the best counts")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args.worker[0], args.worker[1], args.examples, args.stock_examples)

    figures = {}
    first_runs = {}
    for model_name in ["default", *args.models.split(",")]:
        first_runs[model_name] = _measure_first_runs(model_name, args)
    for model_name in args.models.split(","):
        figures[model_name] = _measure_model(model_name, args)
        print(f"  measured {model_name}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({**figures, "first_runs": first_runs}, indent=2))
        return 0
    print("first runs in a fresh process (wall s; preparing = start to first step):")
    for model_name, runs in first_runs.items():
        first, second = runs["first"], runs["second"]
        print(
            f"  {model_name:8} first {first['seconds']:6.2f} s (preparing {first['preparing_seconds']:5.2f} s), "
            f"second {second['seconds']:6.2f} s (preparing {second['preparing_seconds']:5.2f} s), "
            f"load average {runs['load_average']:.1f}"
        )
    stock = args.stock_examples or ", ".join(f"{STOCK_EXAMPLES[m]} ({m})" for m in figures)
    print(
        f"batch {BATCH_SIZE}, Fashion-MNIST; keras and dpcore on {args.examples} examples, stock TF Privacy "
        f"on {stock}; best of {args.rounds} interleaved windows"
    )
    print(f"{'model':6} {'method':8} {'examples/s':>12} {'peak RSS MiB':>13}")
    for model_name, rows in figures.items():
        for method in METHODS:
            row = rows[method]
            print(f"{model_name:6} {method:8} {row['examples_per_second']:12,.0f} {row['peak_rss_mib']:13,.0f}")
        r = rows["ratios"]
        print(
            f"{model_name:6} dpcore/keras = {r['dpcore_over_keras']:.2f}, dpcore/tfp = {r['dpcore_over_tfp']:.0f}x, "
            f"keras/tfp = {r['keras_over_tfp']:.0f}x"
        )
        per_round = ", ".join(f"{ratio:.2f}" for ratio in r["dpcore_over_keras_per_round"])
        loads = ", ".join(f"{load:.1f}" for load in rows["load_average"])
        print(f"{model_name:6} dpcore/keras per round: {per_round} (load average {loads})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
