"""Training throughput: non-private Keras fit vs stock TF Privacy vs dpcore, on the same data.

Trains the TensorFlow Privacy tutorial CNN and the DP-Adam MLP (batch 250) on Fashion-MNIST with
  keras  - non-private ``model.fit`` (the reference speed),
  tfp    - stock ``DPKerasSGDOptimizer`` with one microbatch per example (on a small slice: it is slow),
  dpcore - ``dpcore.training.train`` with DP-SGD and Poisson sampling,
and prints examples/s, peak memory and the ratios. Each measurement runs in its own process so that
its peak resident memory is its own. The first epoch (or step) of each, which traces the graph, is
not timed, and each reports the best of a few timed windows, since the machine may be shared.

    python bench/training_throughput.py [--examples 60000] [--stock-examples 1000] [--repeats 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_SIZE = 250
LEARNING_RATE = 0.25
L2_NORM_CLIP = 1.5
NOISE_MULTIPLIER = 1.2
METHODS = ("keras", "tfp", "dpcore")
MODELS = ("cnn", "mlp")


def _config(model: str, examples: int, epochs: int):
    from dpcore.config import DPConfig

    return DPConfig(dataset="fashion_mnist", model=model, optimizer="sgd", learning_rate=LEARNING_RATE,
                    l2_norm_clip=L2_NORM_CLIP, noise_multiplier=NOISE_MULTIPLIER, batch_size=BATCH_SIZE,
                    epochs=epochs, delta=1e-5, sampling="poisson", max_train_examples=examples)


class _Timer:
    """Keras callback recording the wall time of every epoch and every training batch."""

    def __init__(self) -> None:
        import tensorflow as tf

        outer = self

        class Callback(tf.keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                outer.epoch_started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                outer.epochs.append(time.perf_counter() - outer.epoch_started)

            def on_train_batch_begin(self, batch, logs=None):
                outer.batch_started = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                outer.batches.append(time.perf_counter() - outer.batch_started)

        self.callback = Callback()
        self.epochs: list[float] = []
        self.batches: list[float] = []
        self.epoch_started = self.batch_started = 0.0


def _keras_fit(model_name: str, examples: int, epochs: int, private: bool) -> _Timer:
    import tensorflow as tf

    from dpcore import data, models

    config = _config(model_name, examples, epochs)
    dataset = data.load(config)
    model = models.build(config, input_shape=dataset.info.input_shape, num_classes=dataset.info.num_classes)
    if private:
        from tensorflow_privacy.privacy.optimizers.dp_optimizer_keras import DPKerasSGDOptimizer

        optimizer = DPKerasSGDOptimizer(l2_norm_clip=L2_NORM_CLIP, noise_multiplier=NOISE_MULTIPLIER,
                                        num_microbatches=BATCH_SIZE, learning_rate=LEARNING_RATE)
        model.compile(optimizer=optimizer, loss=tf.keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.NONE))
    else:
        model.compile(optimizer=tf.keras.optimizers.legacy.SGD(learning_rate=LEARNING_RATE),
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    timer = _Timer()
    model.fit(dataset.x_train, dataset.y_train, batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, verbose=0,
              callbacks=[timer.callback])
    return timer


def _measure(method: str, model_name: str, examples: int, stock_examples: int, repeats: int) -> dict:
    """One measurement in this process: the best of ``repeats`` timed windows (the machine is shared)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, REPO_ROOT)
    if method == "keras":
        # The first epoch traces the graph; each later epoch is one window.
        timer = _keras_fit(model_name, examples, 1 + repeats, private=False)
        rate = max(examples / seconds for seconds in timer.epochs[1:])
        row = {"examples": examples, "windows": len(timer.epochs) - 1}
    elif method == "tfp":
        # Too slow for whole epochs: every batch after the first (which traces) is one window.
        timer = _keras_fit(model_name, stock_examples, 1, private=True)
        rate = max(BATCH_SIZE / seconds for seconds in timer.batches[1:])
        row = {"examples": stock_examples, "windows": len(timer.batches) - 1}
    else:
        from dpcore import training

        # Each run is one window; train() leaves its first (tracing) step out of examples_per_second.
        rates = []
        for _ in range(repeats):
            result = training.train(_config(model_name, examples, 1))
            if result.status != "completed":
                raise SystemExit(f"dpcore run {result.status}: {result.error}")
            rates.append(result.examples_per_second)
        rate = max(rates)
        row = {"examples": examples, "windows": repeats, "test_accuracy": result.test_accuracy,
               "epsilon": result.epsilon}
    row["examples_per_second"] = rate
    row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=60000, help="training examples for keras and dpcore")
    parser.add_argument("--stock-examples", type=int, default=1000, help="training examples for stock TF Privacy")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows per measurement; the best counts")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--measure", nargs=2, metavar=("METHOD", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(_measure(args.measure[0], args.measure[1], args.examples, args.stock_examples,
                                  args.repeats)))
        return 0

    figures: dict[str, dict[str, dict]] = {}
    for model_name in args.models.split(","):
        figures[model_name] = {}
        for method in METHODS:
            output = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--measure", method, model_name,
                 "--examples", str(args.examples), "--stock-examples", str(args.stock_examples),
                 "--repeats", str(args.repeats)],
                check=True, capture_output=True, text=True,
            ).stdout
            figures[model_name][method] = json.loads(output.strip().splitlines()[-1])
            print(f"  measured {model_name}/{method}", file=sys.stderr, flush=True)
        rows = figures[model_name]
        rows["ratios"] = {
            "dpcore_over_keras": rows["dpcore"]["examples_per_second"] / rows["keras"]["examples_per_second"],
            "dpcore_over_tfp": rows["dpcore"]["examples_per_second"] / rows["tfp"]["examples_per_second"],
            "keras_over_tfp": rows["keras"]["examples_per_second"] / rows["tfp"]["examples_per_second"],
        }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"batch {BATCH_SIZE}, Fashion-MNIST; keras/dpcore on {args.examples} examples, "
          f"stock TF Privacy on {args.stock_examples}")
    print(f"{'model':6} {'method':8} {'examples/s':>12} {'peak RSS MiB':>13}")
    for model_name, rows in figures.items():
        for method in METHODS:
            row = rows[method]
            print(f"{model_name:6} {method:8} {row['examples_per_second']:12,.0f} {row['peak_rss_mib']:13,.0f}")
        r = rows["ratios"]
        print(f"{model_name:6} dpcore/keras = {r['dpcore_over_keras']:.2f}, dpcore/tfp = {r['dpcore_over_tfp']:.0f}x, "
              f"keras/tfp = {r['keras_over_tfp']:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
