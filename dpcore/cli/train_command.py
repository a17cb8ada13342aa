"""``train``: run one DP-SGD training from a JSON or YAML config file, printing each epoch."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Optional

from dpcore.cli import epoch_json, print_json
from dpcore.config import load_config_file
from dpcore.privacy.explain import format_epsilon
from dpcore.results import TRAIN_METRICS_NOTE

if TYPE_CHECKING:
    from dpcore.config import DPConfig
    from dpcore.privacy.accounting import EpsilonSplit
    from dpcore.results import TrainResult

EXIT_FAILED = 1
EXIT_CANCELLED = 130
NON_PRIVATE_EPSILON = "∞ (non-private)"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("train", help="train one DP-SGD run from a config file")
    parser.add_argument("--config", required=True, metavar="FILE", help="a .json, .yaml or .yml DPConfig file")
    parser.add_argument(
        "--csv-schema",
        metavar="FILE",
        help="a JSON or YAML public schema for a CSV dataset (replaces the config's csv_schema)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per epoch and a final summary object"
    )
    parser.set_defaults(handler=_train)


def _epsilon_split(config: DPConfig, result: TrainResult) -> Optional[EpsilonSplit]:
    """The ε split of the epochs the run completed (None when it completed none)."""
    from dpcore.privacy import accounting

    if not result.epochs:
        return None
    return accounting.epsilon_split(config.replace(epochs=len(result.epochs)), n=result.n_train)


def _train(args: argparse.Namespace) -> int:
    from dpcore import model_specs
    from dpcore.data import datasets
    from dpcore.privacy import accounting, limits

    # Mistakes in the config or the data are usage errors (exit 2), reported before training starts
    # and before TensorFlow is imported (its start-up lines would bury the one-line message).
    config = load_config_file(args.config)
    if args.csv_schema:
        from dpcore.csv_schema import load_schema_file

        config = config.replace(csv_schema=load_schema_file(args.csv_schema))
    dataset = datasets.load(config)
    n = int(dataset.x_train.shape[0])
    config.check_dataset_size(n)
    if accounting.check_config(config, n=n) > limits.PRECISE_PLD_INTERVAL:
        print(
            "note: the precise PLD grid for this run's per-epoch ε would exceed the accountant's bounds; "
            "a coarser grid is used (still an upper bound, slightly loose)",
            file=sys.stderr,
        )

    from dpcore.dpsgd import training

    model_specs.check_pair(config.model, dataset.info.input_shape)

    def on_epoch(m: training.EpochMetrics) -> None:
        if args.json:
            print_json({"event": "epoch", **epoch_json(m)})
        else:
            validation = (
                ""
                if math.isnan(m.validation_accuracy)
                else f"validation loss {m.validation_loss:.4f}, validation accuracy {m.validation_accuracy:.4f}, "
            )
            clip = (
                f"clip norm {m.clip_norms[-1]:.4g}, "
                if config.private and config.adaptive_clipping and m.clip_norms
                else ""
            )
            print(
                f"epoch {m.epoch}/{config.epochs}: test loss {m.test_loss:.4f}, test accuracy "
                f"{m.test_accuracy:.4f}, {validation}{clip}ε {format_epsilon(m.epsilon, infinity=NON_PRIVATE_EPSILON)}; "
                f"private training batches (not covered by ε): loss "
                f"{m.train_loss:.4f}, accuracy {m.train_accuracy:.4f}; {m.seconds:.1f} s",
                flush=True,
            )

    if not args.json:
        print(TRAIN_METRICS_NOTE, flush=True)

    stop = threading.Event()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def on_interrupt(signum: int, frame: Any) -> None:
        stop.set()
        signal.signal(signum, previous[signum])  # a second Ctrl-C (or SIGTERM) interrupts at once

    for signum in previous:
        signal.signal(signum, on_interrupt)
    try:
        result = training.train(config, on_epoch=on_epoch, stop_event=stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    split = _epsilon_split(config, result)
    if args.json:
        print_json(
            {
                "event": "summary",
                "status": result.status,
                "error": result.error,
                "test_accuracy": result.test_accuracy,
                "epsilon": result.epsilon,
                "preprocessing_epsilon": split.preprocessing if split else None,
                "training_epsilon": split.training if split else None,
                "delta": config.delta if config.private else None,
                "private": config.private,
                "examples_per_second": result.examples_per_second,
                "seconds": result.seconds,
                "n_train": result.n_train,
                "epochs_completed": len(result.epochs),
                "epsilon_budget": config.epsilon_budget if config.private else None,
                "note": result.note,
            }
        )
    else:
        epsilon = format_epsilon(result.epsilon, infinity=NON_PRIVATE_EPSILON)
        line = f"{result.status}: test accuracy {result.test_accuracy:.4f}, ε {epsilon}"
        if config.private:
            line += f" at δ = {config.delta:g}"
        if split and split.preprocessing > 0:
            line += (
                f" (composed from CSV preprocessing ε {format_epsilon(split.preprocessing)} and training ε "
                f"{format_epsilon(split.training, infinity=NON_PRIVATE_EPSILON)})"
            )
        print(f"{line}; {result.examples_per_second:,.0f} examples/s, {result.seconds:.1f} s", flush=True)
        if result.note:
            print(result.note, flush=True)
        if result.error:
            print(f"error: {result.error}", flush=True)
    if result.status == "failed":
        return EXIT_FAILED
    return EXIT_CANCELLED if result.status == "cancelled" else 0
