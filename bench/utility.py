"""Test accuracy against ε on real Fashion-MNIST: the shipped ScatterNet and CNN recipes, mean over seeds.

Each recipe is a config file in assets/configs (60,000 training and 10,000 test images, δ = 1e-5,
Poisson sampling, RDP). For each target ε the noise multiplier is recalibrated with
dpcore.privacy.accounting.calibrate_noise_for_config, everything else kept (``--accountant pld`` calibrates
and reports with privacy loss distributions instead: a valid, tighter ε for the same run); "baseline"
trains the same recipe without clipping or noise. Prints, per point, the ε reached, mean and standard
deviation of test accuracy over the seeds, and the mean wall time of one run (``train()``'s own,
loading included), with the 1-minute load average at the end of each run.

    python bench/utility.py [--recipes scatternet,cnn] [--epsilons 1,2,3,8] [--baseline]
        [--baseline-learning-rate LR] [--accountant rdp|pld] [--seeds 3] [--first-seed 0] [--json]

A recipe's learning rate is tuned for gradients clipped to a small norm (0.1); the unclipped gradients
of a baseline are far larger, so ``--baseline-learning-rate`` gives the baseline its own.

ScatterNet features are computed once and cached (set DPEXPLORER_CACHE to keep them between runs).
One ScatterNet run takes 1 to 3 minutes of training on this 2-core machine once the features are cached,
one CNN run 3.5 to 12, depending on the load (docs/performance.md): the full table takes hours, so pick.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE_FILES = {
    "scatternet": "assets/configs/fashion-mnist-eps3-scatternet.yaml",
    "cnn": "assets/configs/fashion-mnist-eps3-cnn.yaml",
}


def measure(config, *, target_epsilon, seeds: range, report, baseline_learning_rate=None) -> dict:
    """Train ``config`` (σ calibrated for ``target_epsilon``; None = non-private, with
    ``baseline_learning_rate`` if given) once per seed."""
    from dpcore.data import datasets
    from dpcore.dpsgd.training import train
    from dpcore.privacy import calibration

    if target_epsilon is None:
        config = config.as_baseline()
        if baseline_learning_rate is not None:
            config = config.replace(learning_rate=baseline_learning_rate)
    else:
        sigma = calibration.calibrate_noise_for_config(
            config, target_epsilon=target_epsilon, n=datasets.train_size(config)
        ).noise_multiplier
        config = config.replace(noise_multiplier=sigma)
    runs = []
    for seed in seeds:
        result = train(config.replace(seed=seed))
        if result.status != "completed":
            raise SystemExit(f"seed {seed} failed: {result.error}")
        epsilon = result.epsilon if config.private else None  # None: non-private, ε = ∞
        load = os.getloadavg()[0]  # the machine is shared: the wall time depends on it
        runs.append(
            {
                "seed": seed,
                "accuracy": result.test_accuracy,
                "seconds": result.seconds,
                "epsilon": epsilon,
                "load_average": load,
            }
        )
        report(
            f"  seed {seed}: accuracy {result.test_accuracy:.4f}, ε {_shown(epsilon)}, "
            f"{result.seconds:.0f} s, load average {load:.1f}"
        )
    accuracies = [run["accuracy"] for run in runs]
    return {
        "target_epsilon": target_epsilon,
        "accountant": config.accountant,
        "learning_rate": config.learning_rate,
        "noise_multiplier": config.noise_multiplier if config.private else 0.0,
        "epsilon": runs[0]["epsilon"],
        "accuracy_mean": statistics.fmean(accuracies),
        "accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "seconds_mean": statistics.fmean(run["seconds"] for run in runs),
        "runs": runs,
    }


def _shown(epsilon) -> str:
    return "∞" if epsilon is None else f"{epsilon:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(RECIPE_FILES), help="comma-separated: scatternet, cnn")
    parser.add_argument("--epsilons", default="1,2,3,8", help="comma-separated target ε values ('' for none)")
    parser.add_argument("--baseline", action="store_true", help="also train each recipe without DP")
    parser.add_argument(
        "--baseline-learning-rate",
        type=float,
        default=None,
        help="the baseline's learning rate (default: the recipe's)",
    )
    parser.add_argument(
        "--accountant", default=None, help="rdp or pld: calibrate σ and report ε with it (default: the recipe's)"
    )
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed, first-seed + 1, ...")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args()
    sys.path.insert(0, REPO_ROOT)
    from dpcore.config import ACCOUNTANTS, load_config_file

    recipes = [r.strip() for r in args.recipes.split(",")]
    unknown = [r for r in recipes if r not in RECIPE_FILES]
    if unknown:
        parser.error(f"--recipes: unknown {', '.join(unknown)}; allowed: {', '.join(RECIPE_FILES)}")
    if args.accountant is not None and args.accountant not in ACCOUNTANTS:
        parser.error(f"--accountant: {args.accountant!r} is not one of {', '.join(ACCOUNTANTS)}")
    try:
        targets = [float(e) for e in args.epsilons.split(",") if e.strip()]
    except ValueError:
        parser.error(f"--epsilons: {args.epsilons!r} is not a comma-separated list of numbers")
    if any(not 0 < t < float("inf") for t in targets):
        parser.error(f"--epsilons: each target ε must be a positive finite number, got {args.epsilons!r}")
    if args.baseline:
        targets.append(None)
    progress = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print
    table = {}
    for name in recipes:
        config = load_config_file(os.path.join(REPO_ROOT, RECIPE_FILES[name]))
        if args.accountant is not None:
            config = config.replace(accountant=args.accountant)
        progress(
            f"{name}: {config.model}, {config.optimizer} lr {config.learning_rate:g}, "
            f"batch {config.batch_size}, clip {config.l2_norm_clip:g}, {config.epochs} epochs, "
            f"{config.accountant.upper()} accounting"
        )
        table[name] = []
        for target in targets:
            progress(f" target ε {'∞ (baseline)' if target is None else f'{target:g}'}")
            row = measure(
                config,
                target_epsilon=target,
                seeds=range(args.first_seed, args.first_seed + args.seeds),
                report=progress,
                baseline_learning_rate=args.baseline_learning_rate,
            )
            table[name].append(row)
            progress(
                f" -> lr {row['learning_rate']:g}, σ {row['noise_multiplier']:.3f}, ε {_shown(row['epsilon'])}, "
                f"accuracy "
                f"{100 * row['accuracy_mean']:.2f}% ± {100 * row['accuracy_std']:.2f}, "
                f"{row['seconds_mean']:.0f} s per run"
            )
    if args.json:
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        print(json.dumps({"seeds": seeds, "recipes": table}, indent=2, allow_nan=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
