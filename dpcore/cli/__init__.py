"""Command-line interface: ``python -m dpcore <command>``; each command lives in its own module."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import signal
import sys
import threading
from typing import Any, Iterator, Optional, Sequence

from dpcore.errors import UserInputError

# Each module defines ``register(subparsers)``, which adds its commands and sets ``handler``
# (a function taking the parsed args and returning an exit status) as a parser default.
COMMAND_MODULES = (
    "dpcore.cli.accounting_commands",
    "dpcore.cli.runs_commands",
    "dpcore.cli.train_command",
)

EXIT_USAGE = 2
MAX_ARGPARSE_MESSAGE = 300


class CliError(Exception):
    """A user mistake on the command line: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line naming the flag, without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse repeats a bad value in full (e.g. an invalid choice); keep the line short.
        raise CliError(message if len(message) <= MAX_ARGPARSE_MESSAGE
                       else message[:MAX_ARGPARSE_MESSAGE - 1] + "…")


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
