"""Command-line interface: ``python -m dpcore <command>``; each command lives in its own module."""
from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from typing import Any, Optional, Sequence

from dpcore.errors import UserInputError
from dpcore.results import TRAIN_ACCURACY_KEY, TRAIN_LOSS_KEY, EpochMetrics

# Each module defines ``register(subparsers)``, which adds its commands and sets ``handler``
# (a function taking the parsed args and returning an exit status) as a parser default.
COMMAND_MODULES = (
    "dpcore.cli.accounting_commands",
    "dpcore.cli.export_command",
    "dpcore.cli.audit_command",
    "dpcore.cli.runs_commands",
    "dpcore.cli.train_command",
)

EXIT_USAGE = 2


class CliError(Exception):
    """A user mistake on the command line: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line naming the flag, without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m dpcore", description="DP Explorer's library from the command line.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def print_json(obj: Any) -> None:
    """One JSON object on one line (infinite ε is written as null)."""
    print(json.dumps(obj, allow_nan=False, default=str), flush=True)


def epoch_json(metrics: EpochMetrics) -> dict[str, Any]:
    """One epoch as JSON-safe data (NaN and ∞ as null); the training figures' names say ε does not cover them."""
    def number(value: float) -> Optional[float]:
        return float(value) if math.isfinite(value) else None

    return {
        "epoch": metrics.epoch, "test_loss": number(metrics.test_loss),
        "test_accuracy": number(metrics.test_accuracy), "epsilon": number(metrics.epsilon),
        TRAIN_LOSS_KEY: number(metrics.train_loss), TRAIN_ACCURACY_KEY: number(metrics.train_accuracy),
        "seconds": number(metrics.seconds), "examples": metrics.examples,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except (CliError, UserInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
