"""``train``: run one DP-SGD training from a JSON or YAML config file, printing each epoch."""
from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import threading
from typing import Any, Optional

from dpcore.cli import print_json
from dpcore.config import load_config_file

EXIT_FAILED = 1
EXIT_CANCELLED = 130


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("train", help="train one DP-SGD run from a config file")
    parser.add_argument("--config", required=True, metavar="FILE", help="a .json, .yaml or .yml DPConfig file")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per epoch and a final summary object")
    parser.set_defaults(handler=_train)


def _finite(value: float) -> Optional[float]:
    """JSON has no infinity: an infinite ε (a non-private baseline) or a NaN is written as null."""
    return float(value) if math.isfinite(value) else None


def _epsilon_text(value: float) -> str:
    return "∞ (non-private)" if math.isinf(value) else f"{value:.4g}"


def _train(args: argparse.Namespace) -> int:
    from dpcore import data
    from dpcore.dpsgd import models, training

    config = load_config_file(args.config)
    # Mistakes in the config or the data are usage errors (exit 2), reported before training starts.
    dataset = data.load(config)
    config.check_dataset_size(int(dataset.x_train.shape[0]))
    models.check_pair(config.model, dataset.info.input_shape)

    def on_epoch(m: "training.EpochMetrics") -> None:
        if args.json:
            row = {k: (_finite(v) if isinstance(v, float) else v) for k, v in dataclasses.asdict(m).items()}
            print_json({"event": "epoch", **row})
        else:
            validation = ("" if math.isnan(m.validation_accuracy) else
                          f"validation loss {m.validation_loss:.4f}, validation accuracy {m.validation_accuracy:.4f}, ")
            clip = (f"clip norm {m.clip_norms[-1]:.4g}, " if config.private and config.adaptive_clipping
                    and m.clip_norms else "")
            print(f"epoch {m.epoch}/{config.epochs}: train loss {m.train_loss:.4f}, train accuracy "
                  f"{m.train_accuracy:.4f}, test loss {m.test_loss:.4f}, test accuracy {m.test_accuracy:.4f}, "
                  f"{validation}{clip}ε {_epsilon_text(m.epsilon)}, {m.seconds:.1f} s", flush=True)

    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum: int, frame: Any) -> None:
        stop.set()
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C interrupts at once

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        result = training.train(config, on_epoch=on_epoch, stop_event=stop)
    finally:
        signal.signal(signal.SIGINT, previous)

    if args.json:
        print_json({
            "event": "summary", "status": result.status, "error": result.error,
            "test_accuracy": _finite(result.test_accuracy), "epsilon": _finite(result.epsilon),
            "delta": config.delta if config.private else None, "private": config.private,
            "examples_per_second": result.examples_per_second, "seconds": result.seconds,
            "n_train": result.n_train, "epochs_completed": len(result.epochs),
            "epsilon_budget": config.epsilon_budget if config.private else None, "note": result.note,
        })
    else:
        line = f"{result.status}: test accuracy {result.test_accuracy:.4f}, ε {_epsilon_text(result.epsilon)}"
        if config.private:
            line += f" at δ = {config.delta:g}"
        print(f"{line}; {result.examples_per_second:,.0f} examples/s, {result.seconds:.1f} s", flush=True)
        if result.note:
            print(result.note, flush=True)
        if result.error:
            print(f"error: {result.error}", flush=True)
    if result.status == "failed":
        return EXIT_FAILED
    return EXIT_CANCELLED if result.status == "cancelled" else 0
