"""The cost of Gaussian noise with full tails: the DP step with today's noise vs the earlier float32 noise.

``privatize.gaussian_noise`` takes the radius uniform of its Box-Muller transform from 64 random
bits where it is small (largest |z| 9.49). The reference is the transform it replaced, kept here:
one float32 uniform per radius, floored at 1e-7 (largest |z| 5.68). For the app's MLP and CNN on
Fashion-MNIST-shaped batches of 250, the bench times the compiled DP step (clipped sum, noise,
update) with each noise, and the noise alone next to tf.random.stateless_normal. Variants take
turns, one window each per round, so load from elsewhere hits them alike; the ratio is given for
the best windows and as the median over rounds of the two windows taken side by side.
Target: the DP step at most 10% slower with the new noise.

    python bench/noise_speed.py [--rounds 30] [--steps 40] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dpcore.config import DPConfig  # noqa: E402
from dpcore.dpsgd import models, privatize  # noqa: E402

BATCH_SIZE = 250
SHAPE = (28, 28, 1)
MODELS = ("mlp", "cnn")
TARGET = 1.10


def float32_floored_normal(count: int, *, seed: tf.Tensor, stddev: float = 1.0) -> tf.Tensor:
    """The earlier noise: Box-Muller on float32 uniforms, the radius uniform floored at 1e-7, then scaled."""
    pairs = (count + 1) // 2
    uniform = tf.random.stateless_uniform([2, pairs], seed=seed, dtype=tf.float32)
    radius = tf.sqrt(-2.0 * tf.math.log(tf.maximum(uniform[0], 1.0e-7)))
    angle = (2.0 * math.pi) * uniform[1]
    return tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=0)[:count] * stddev


def stateless_normal(count: int, *, seed: tf.Tensor, stddev: float = 1.0) -> tf.Tensor:
    return tf.random.stateless_normal([count], seed=seed) * stddev


NOISES: dict[str, Callable[..., tf.Tensor]] = {
    "new": privatize.gaussian_noise,
    "old": float32_floored_normal,
}


@contextlib.contextmanager
def _noise(sampler: Callable[..., tf.Tensor]) -> Iterator[None]:
    """Trace privatize.dp_gradient with ``sampler`` in place of gaussian_noise (for the reference only)."""
    original = privatize.gaussian_noise
    privatize.gaussian_noise = sampler
    try:
        yield
    finally:
        privatize.gaussian_noise = original


def _dp_step(model_name: str, sampler: Callable[..., tf.Tensor]) -> Callable[[int], Optional[tf.Tensor]]:
    """A compiled DP step as the trainer runs it (gather, privatised gradient, SGD update)."""
    config = DPConfig(model=model_name, batch_size=BATCH_SIZE)
    model = models.build(config, input_shape=SHAPE, num_classes=10)
    variables = model.trainable_variables
    optimizer = tf.keras.optimizers.legacy.SGD(learning_rate=0.1)
    rng = np.random.default_rng(0)
    x_all = tf.constant(rng.random((4 * BATCH_SIZE, *SHAPE), dtype=np.float32))
    y_all = tf.constant(rng.integers(0, 10, 4 * BATCH_SIZE), tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int64)])
    def step(number: tf.Tensor) -> None:
        start = tf.cast(number % 4, tf.int32) * BATCH_SIZE
        x, y = x_all[start : start + BATCH_SIZE], y_all[start : start + BATCH_SIZE]
        result = privatize.dp_gradient(
            model,
            privatize.per_example_loss,
            x,
            y,
            l2_norm_clip=1.5,
            noise_multiplier=1.2,
            normalizer=float(BATCH_SIZE),
            seed=tf.stack([tf.constant(7, tf.int64), number]),
        )
        optimizer.apply_gradients(zip(result.gradients, variables))

    with _noise(sampler):
        step(tf.constant(0, tf.int64))  # traces with this sampler
    return lambda number: step(tf.constant(number, tf.int64))


def _noise_only(count: int, sampler: Callable[..., tf.Tensor]) -> Callable[[int], Optional[tf.Tensor]]:
    @tf.function
    def draw(seed: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(sampler(count, seed=seed, stddev=1.8))

    draw(tf.constant([0, 0], tf.int64))
    return lambda number: draw(tf.constant([7, number], tf.int64))


def _window(run: Callable[[int], Optional[tf.Tensor]], steps: int, offset: int) -> tuple[float, float]:
    """Mean wall and process CPU seconds per call over ``steps`` calls (calls return when done)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for number in range(offset, offset + steps):
        run(number)
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def _interleaved(
    runs: dict[str, Callable[[int], Optional[tf.Tensor]]], *, rounds: int, steps: int
) -> dict[str, dict[str, list[float]]]:
    """Every variant's wall and CPU seconds per call in each of ``rounds`` windows, taken in turn."""
    times = {name: {"wall": [], "cpu": []} for name in runs}
    for round_number in range(rounds):
        for name, run in runs.items():
            wall, cpu = _window(run, steps, offset=1 + round_number * steps)
            times[name]["wall"].append(wall)
            times[name]["cpu"].append(cpu)
    return times


def _best_ms(times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {name: {clock: min(values) * 1e3 for clock, values in clocks.items()} for name, clocks in times.items()}


def _ratios(times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """new/old: of the best windows, and the median over rounds of the two windows taken side by side."""
    new, old = times["new"], times["old"]
    return {
        clock: {
            "best": min(new[clock]) / min(old[clock]),
            "median_paired": statistics.median(a / b for a, b in zip(new[clock], old[clock])),
        }
        for clock in ("wall", "cpu")
    }


def measure(model_name: str, *, rounds: int, steps: int) -> dict:
    count = models.build(DPConfig(model=model_name), input_shape=SHAPE, num_classes=10).count_params()
    step = _interleaved(
        {name: _dp_step(model_name, sampler) for name, sampler in NOISES.items()}, rounds=rounds, steps=steps
    )
    noise = _interleaved(
        {
            name: _noise_only(count, sampler)
            for name, sampler in {**NOISES, "tf.random.stateless_normal": stateless_normal}.items()
        },
        rounds=rounds,
        steps=steps,
    )
    return {
        "parameters": count,
        "step_ms": _best_ms(step),
        "noise_ms": _best_ms(noise),
        "step_ratio_new_over_old": _ratios(step),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed windows per variant; the best counts")
    parser.add_argument("--steps", type=int, default=40, help="calls per window")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="TensorFlow threads per op pool (default: TensorFlow's choice); 1 makes CPU time a "
        "measure of work on a busy machine",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    figures = {name: measure(name, rounds=args.rounds, steps=args.steps) for name in args.models.split(",")}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    threads = args.threads or "TensorFlow's default"
    print(
        f"batch {BATCH_SIZE}, inputs {'x'.join(map(str, SHAPE))}; best of {args.rounds} interleaved windows "
        f"of {args.steps} calls; threads per op pool: {threads}"
    )
    print("wall: elapsed time per call; cpu: this process's CPU time per call (less sensitive to other load)")
    for name, row in figures.items():
        step, noise, ratio = row["step_ms"], row["noise_ms"], row["step_ratio_new_over_old"]
        for clock in ("wall", "cpu"):
            print(
                f"{name:4} {row['parameters']:7,} parameters, {clock:4}: DP step with new noise "
                f"{step['new'][clock]:.2f} ms, with old noise {step['old'][clock]:.2f} ms; new/old "
                f"{ratio[clock]['best']:.3f} (best windows), {ratio[clock]['median_paired']:.3f} (median of "
                f"side-by-side windows), target <= {TARGET:.2f}; noise alone: new {noise['new'][clock]:.3f} ms, "
                f"old {noise['old'][clock]:.3f} ms, tf.random.stateless_normal "
                f"{noise['tf.random.stateless_normal'][clock]:.3f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
