"""The accuracy–ε curve of the default config: a workshop's first sweep, mean over seeds.

For the non-private baseline and each target ε (0.5, 1, 2, 4, 8 by default) it calibrates σ with
dpcore.privacy.accounting.calibrate_noise_for_config, trains the default DPConfig (or it with --set
overrides) once per seed, and prints mean and standard deviation of test accuracy and wall time.

    python bench/default_tradeoff.py [--seeds 3] [--epsilons 0.5,1,2,4,8] [--set model=logreg ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKSHOP_EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0)


def curve(config, *, epsilons, seeds) -> list[dict]:
    """One row per point (baseline first): target ε, σ, ε reached, accuracy and seconds over seeds."""
    from utility import measure  # bench/utility.py: the same calibrate-then-train step per point

    return [
        measure(config, target_epsilon=target, seeds=seeds, report=lambda line: None) for target in (None, *epsilons)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epsilons", default=",".join(f"{e:g}" for e in WORKSHOP_EPSILONS))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one DPConfig field (repeatable), e.g. model=logreg",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    sys.path.insert(0, REPO_ROOT)
    sys.path.insert(0, os.path.join(REPO_ROOT, "bench"))
    from dpcore.config import DPConfig

    base = DPConfig().to_dict()
    for item in args.set:
        field, _, value = item.partition("=")
        base[field] = value
    config = DPConfig.from_dict(base)
    rows = curve(config, epsilons=[float(e) for e in args.epsilons.split(",")], seeds=args.seeds)
    if args.json:
        print(json.dumps({"config": config.to_dict(), "seeds": args.seeds, "rows": rows}, indent=2, allow_nan=False))
        return 0
    print(
        f"{config.model}, {config.optimizer} lr {config.learning_rate:g}, batch {config.batch_size}, "
        f"clip {config.l2_norm_clip:g}, {config.epochs} epochs, {args.seeds} seeds"
    )
    print(f"{'target ε':>9} {'σ':>7} {'ε':>7} {'accuracy':>17} {'s/run':>6}")
    for row in rows:
        target = "baseline" if row["target_epsilon"] is None else f"{row['target_epsilon']:g}"
        eps = "∞" if row["epsilon"] is None else f"{row['epsilon']:.2f}"
        print(
            f"{target:>9} {row['noise_multiplier']:7.3f} {eps:>7} "
            f"{row['accuracy_mean']:8.3f} ± {row['accuracy_std']:.3f} {row['seconds_mean']:6.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
