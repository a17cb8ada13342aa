"""``epsilon`` and ``calibrate``: the accountant from the command line."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Callable

from dpcore.cli import CliError, positive_int, print_json
from dpcore.config import ACCOUNTANT_TITLES, ACCOUNTANTS, SAMPLINGS
from dpcore.privacy import accounting, calibration, events, limits
from dpcore.privacy.explain import format_epsilon
from dpcore.safe_io import quote


def register(subparsers: Any) -> None:
    eps = subparsers.add_parser("epsilon", help="ε of a DP-SGD run")
    _add_shared(eps)
    eps.add_argument(
        "--noise-multiplier",
        required=True,
        type=_positive_float("--noise-multiplier"),
        help="noise std / clip norm (> 0)",
    )
    eps.set_defaults(handler=_epsilon)

    cal = subparsers.add_parser("calibrate", help="smallest noise multiplier meeting a target ε")
    _add_shared(cal)
    cal.add_argument(
        "--target-epsilon", required=True, type=_positive_float("--target-epsilon"), help="the ε not to exceed (> 0)"
    )
    cal.set_defaults(handler=_calibrate)


def _add_shared(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", required=True, type=positive_int("--n"), help="training set size")
    parser.add_argument(
        "--batch-size",
        required=True,
        type=positive_int("--batch-size"),
        help="expected batch size (Poisson) or fixed batch size (shuffle)",
    )
    parser.add_argument("--epochs", required=True, type=positive_int("--epochs"), help="passes over the data")
    parser.add_argument("--delta", required=True, type=_probability("--delta"), help="δ, in (0, 1)")
    parser.add_argument("--accountant", default="rdp", choices=ACCOUNTANTS)
    parser.add_argument("--sampling", default="poisson", choices=SAMPLINGS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _epsilon(args: argparse.Namespace) -> int:
    _check_batch(args)
    _warn_large_delta(args)
    report = _as_flags(accounting.epsilon_report)(
        n=args.n,
        batch_size=args.batch_size,
        noise_multiplier=args.noise_multiplier,
        epochs=args.epochs,
        delta=args.delta,
        accountant=args.accountant,
        sampling=args.sampling,
    )
    if args.json:
        print_json(
            {
                "epsilon": report.epsilon,
                "delta": report.delta,
                "accountant": report.accountant,
                "sampling": report.sampling,
                "steps": report.steps,
                "sampling_probability": report.sampling_probability,
                "noise_multiplier": args.noise_multiplier,
                "n": args.n,
                "batch_size": args.batch_size,
                "epochs": args.epochs,
                "note": report.note,
                "approximate": report.approximate,
                "discretization": report.discretization or None,
            }
        )
    else:
        print(
            f"ε = {format_epsilon(report.epsilon, digits=6)} at δ = {report.delta:g} "
            f"({ACCOUNTANT_TITLES[report.accountant]}, {report.steps} steps, q = {report.sampling_probability:.4g})"
        )
        print(report.note)
        if report.rounded_up:
            print(ROUNDED_UP_NOTE)
        elif report.approximate:
            print(_approximate_note(report.discretization))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    _check_batch(args)
    _warn_large_delta(args)
    result = _as_flags(calibration.calibrate_noise)(
        target_epsilon=args.target_epsilon,
        n=args.n,
        batch_size=args.batch_size,
        epochs=args.epochs,
        delta=args.delta,
        accountant=args.accountant,
        sampling=args.sampling,
    )
    steps = events.dp_steps(n=args.n, batch_size=args.batch_size, epochs=args.epochs, sampling=args.sampling)
    if args.json:
        print_json(
            {
                "noise_multiplier": result.noise_multiplier,
                "epsilon": result.epsilon,
                "target_epsilon": result.target_epsilon,
                "delta": args.delta,
                "accountant": args.accountant,
                "sampling": args.sampling,
                "steps": steps,
                "approximate": result.approximate,
            }
        )
    else:
        print(
            f"noise multiplier {result.noise_multiplier:.4f} gives ε = {format_epsilon(result.epsilon, digits=6)} "
            f"<= {result.target_epsilon:g} at δ = {args.delta:g} ({ACCOUNTANT_TITLES[args.accountant]}, {args.sampling})"
        )
        if result.approximate:
            print(_approximate_note(None))
    return 0


def _warn_large_delta(args: argparse.Namespace) -> None:
    """δ of 1/n or more is legal for the accountant but meaningless as a guarantee: say so on stderr."""
    if args.delta >= 1.0 / args.n:
        print(
            f"warning: --delta {args.delta:g} is not below 1/n = {1.0 / args.n:.3g}; such a δ allows "
            "publishing one person's record outright",
            file=sys.stderr,
        )


ROUNDED_UP_NOTE = (
    "approximate: one step's Rényi divergence is below what dp_accounting resolves in double precision, "
    "so a rounding allowance was added; the ε is still an upper bound, slightly loose"
)


def _approximate_note(discretization: Any) -> str:
    grid = f" ({discretization:g})" if discretization else ""
    return (
        f"approximate: the precise PLD grid would exceed the accountant's memory or time bounds, so a "
        f"coarser grid{grid} was used; the ε is still an upper bound, slightly loose"
    )


def _as_flags(query: Callable[..., Any]) -> Callable[..., Any]:
    """Report the accountant's complaints under the flag's name rather than the parameter's."""

    def call(**kwargs: Any) -> Any:
        try:
            return query(**kwargs)
        except limits.AccountingError as exc:
            flag = "--" + exc.field.replace("_", "-")
            raise CliError(str(exc).replace(f"{exc.field}:", f"{flag}:", 1)) from None

    return call


def _check_batch(args: argparse.Namespace) -> None:
    if args.batch_size > args.n:
        raise CliError(f"--batch-size: {args.batch_size} is larger than --n {args.n} (allowed: 1 to {args.n})")


def _positive_float(flag: str) -> Callable[[str], float]:
    return _bounded_float(flag, lambda value: value > 0, "a number > 0")


def _probability(flag: str) -> Callable[[str], float]:
    return _bounded_float(flag, lambda value: 0 < value < 1, "a number in (0, 1)")


def _bounded_float(flag: str, accept: Callable[[float], bool], allowed: str) -> Callable[[str], float]:
    """An argparse type: a finite number that ``accept`` allows, else a one-line error naming ``flag``."""

    def parse(text: str) -> float:
        value = _float(flag, text, allowed)
        if not accept(value):
            raise CliError(f"{flag}: {value:g} is out of range (allowed: {allowed})")
        return value

    return parse


def _float(flag: str, text: str, allowed: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"{flag}: {quote(text)} is not a number (allowed: {allowed})") from None
    if not math.isfinite(value):
        raise CliError(f"{flag}: {quote(text)} is not a finite number (allowed: {allowed})")
    return value
