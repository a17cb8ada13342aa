"""Command-line interface: ``python -m dpcore <command>``; each command lives in its own module.

May import every room of dpcore (lazily, so that ``epsilon`` never loads TensorFlow); nothing imports it
but ``dpcore.__main__``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

from dpcore.errors import UserInputError
from dpcore.results import TRAIN_ACCURACY_KEY, TRAIN_LOSS_KEY, EpochMetrics
from dpcore.safe_io import quote

EXIT_USAGE = 2
# A reader that left early (``runs --json | head``): the status a shell gives a program SIGPIPE ends (128 + 13).
EXIT_BROKEN_PIPE = 141
MAX_ARGPARSE_MESSAGE = 300


class CliError(Exception):
    """A user mistake on the command line: printed as one line, exit status 2."""


class OutputError(Exception):
    """Standard output could not be written (a full disk, a closed pipe); ``errno`` says which."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(exc.strerror or type(exc).__name__)
        self.errno = exc.errno


class _CheckedOutput:
    """Standard output whose failed writes raise ``OutputError``, so ``main`` can tell them from other OSErrors."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise OutputError(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise OutputError(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


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


# Run ids are SQLite integers.
MAX_RUN_ID = 2**63 - 1


def run_id(flag: str) -> Callable[[str], int]:
    """An argparse ``type`` for a run id: a whole number from 1 to ``MAX_RUN_ID``; a bad value names the flag."""

    def parse(text: str) -> int:
        allowed = f"(allowed: run ids, whole numbers from 1 to {MAX_RUN_ID:,})"
        digits = text.strip()
        if not (digits.isascii() and digits.isdigit()):
            raise CliError(f"{flag}: {quote(text)} is not a whole number {allowed}")
        if len(digits) > len(str(MAX_RUN_ID)) or not 1 <= int(digits) <= MAX_RUN_ID:
            raise CliError(f"{flag}: {quote(text)} is out of range {allowed}")
        return int(digits)

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
    """Run one command; a user's mistake is one line on stderr with status 2, never a traceback.

    Output that cannot be written is one too: a full disk says so (status 2), a reader that closed
    the pipe early ends the command quietly with ``EXIT_BROKEN_PIPE``.
    """
    output = _CheckedOutput(sys.stdout)
    with sigterm_as_interrupt():
        try:
            with contextlib.redirect_stdout(output):
                args = build_parser().parse_args(argv)
                status = int(args.handler(args) or 0)
                output.flush()
            return status
        except (CliError, UserInputError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OutputError as exc:
            _drop_unwritten_output()
            if exc.errno == errno.EPIPE:
                return EXIT_BROKEN_PIPE
            print(f"error: cannot write the output: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130


def _drop_unwritten_output() -> None:
    """Point standard output at the null device, so the text still buffered for it is dropped when
    Python exits instead of failing again (with a traceback-like "Exception ignored" line)."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return  # not a real file (a test's capture): nothing will be flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


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
