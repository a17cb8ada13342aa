"""Command-line interface: ``python -m dpcore <command>``; each command lives in its own module.

May import every room of dpcore (lazily, so that ``epsilon`` never loads TensorFlow); nothing imports it
but ``dpcore.__main__``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

from dpcore.errors import UserInputError
from dpcore.results import TRAIN_ACCURACY_KEY, TRAIN_LOSS_KEY, EpochMetrics
from dpcore.safe_io import quote

EXIT_USAGE = 2
MAX_ARGPARSE_MESSAGE = 300


class CliError(Exception):
    """A user mistake on the command line: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line naming the flag, without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse repeats a bad value in full (e.g. an invalid choice); keep the line short.
        raise CliError(message if len(message) <= MAX_ARGPARSE_MESSAGE else message[: MAX_ARGPARSE_MESSAGE - 1] + "…")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m dpcore", description="DP Explorer's library from the command line.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    # Each command module's ``register(subparsers)`` adds its commands and sets ``handler`` (taking
    # the parsed args, returning an exit status) as a parser default. Imported here, not at the top,
    # because the modules import CliError and print_json from this one.
    from dpcore.cli import accounting_commands, audit_command, export_command, runs_commands, train_command

    for module in (accounting_commands, export_command, audit_command, runs_commands, train_command):
        module.register(subparsers)
    return parser


def positive_int(flag: str) -> Callable[[str], int]:
    """An argparse ``type`` for a flag that takes a whole number >= 1; a bad value names the flag."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise CliError(f"{flag}: {quote(text)} is not a whole number (allowed: whole numbers >= 1)") from None
        if value < 1:
            raise CliError(f"{flag}: {value} is too small (allowed: whole numbers >= 1)")
        return value

    return parse


def print_json(obj: Any) -> None:
    """One JSON object on one line; JSON has no infinity, so ∞ (a baseline's ε) and NaN are written as null."""
    print(json.dumps(_json_safe(obj), allow_nan=False, default=str), flush=True)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(value) for value in obj]
    return obj


def epoch_json(metrics: EpochMetrics) -> dict[str, Any]:
    """One epoch for ``print_json``; the training figures' names say ε does not cover them."""
    return {
        "epoch": metrics.epoch,
        "test_loss": metrics.test_loss,
        "test_accuracy": metrics.test_accuracy,
        "epsilon": metrics.epsilon,
        TRAIN_LOSS_KEY: metrics.train_loss,
        TRAIN_ACCURACY_KEY: metrics.train_accuracy,
        "seconds": metrics.seconds,
        "examples": metrics.examples,
        "validation_loss": metrics.validation_loss,
        "validation_accuracy": metrics.validation_accuracy,
        "noise_multipliers": list(metrics.noise_multipliers),
        "clip_norms": list(metrics.clip_norms),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    with sigterm_as_interrupt():
        try:
            args = build_parser().parse_args(argv)
            return int(args.handler(args) or 0)
        except (CliError, UserInputError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (kill, a service manager, a closed session) stops a command as Ctrl-C does, so runs
    end cancelled with their finished epochs kept instead of being killed mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
