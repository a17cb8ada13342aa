"""``audit``: the empirical privacy audit of a stored run (membership inference, optional canaries)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from dpcore.cli import positive_int, print_json
from dpcore.runs.store import RunStore


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="attack a stored run's model and bound its ε from below",
        description="Run membership-inference attacks on a completed run's model (its stored weights, "
        "or the same config retrained from its seed) and report AUC, advantage, TPR at low FPR and the "
        "empirical ε lower bound; --canaries adds the one-run canary audit (one more training). The "
        "report is kept with the run.",
    )
    parser.add_argument("--run", required=True, metavar="ID", type=positive_int("--run"), help="the run's id")
    parser.add_argument(
        "--store", metavar="PATH", help="run store file (default: $DPEXPLORER_STORE or the user data folder)"
    )
    parser.add_argument(
        "--canaries",
        metavar="N",
        type=positive_int("--canaries"),
        help="also train once with N mislabelled canaries, each included with probability 1/2",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(handler=_audit)


def _audit(args: argparse.Namespace) -> int:
    from dpcore.audit.report import verdict
    from dpcore.runs import audits

    report = audits.audit_run(RunStore(args.store), args.run, canaries=args.canaries or 0)
    if args.json:
        print_json(
            {
                **report.to_dict(),
                "epsilon_lower_bound": report.epsilon_lower_bound,
                "auc": report.auc,
                "advantage": report.advantage,
                "verdict": verdict(report),
            }
        )
        return 0
    epsilon = "∞ (non-private)" if math.isinf(report.epsilon) else f"{report.epsilon:.3f} at δ = {report.delta:g}"
    print(
        f"run {args.run}: ε = {epsilon}; audited its model ({report.model_source}) on {report.members} "
        f"members and {report.nonmembers} non-members in {report.seconds:.1f} s"
    )
    header = ["attack", "AUC", "advantage", "TPR@1%FPR", "TPR@0.1%FPR", "ε lower bound"]
    rows = [
        [
            a.attack,
            f"{a.auc:.3f}",
            f"{a.advantage:.3f}",
            f"{a.tpr_at_1pct_fpr:.3f}",
            f"{a.tpr_at_01pct_fpr:.3f}",
            f"{a.epsilon_lower_bound:.3f}",
        ]
        for a in report.attacks
    ]
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    for line in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    print(verdict(report))
    if report.canary is not None:
        c = report.canary
        theory = "∞" if math.isinf(c.epsilon) else f"{c.epsilon:.3f}"
        print(
            f"canaries: {c.canaries} {c.kind}, {c.included} included; {c.correct} of {c.guesses} guesses "
            f"correct: ε ≥ {c.epsilon_lower_bound:.3f} ({c.confidence:.0%} confidence) for the canary "
            f"training, whose accounted ε is {theory}"
        )
    for note in report.notes:
        print(f"note: {note}")
    return 0
