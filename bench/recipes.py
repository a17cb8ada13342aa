"""The three recipe presets trained in full on real Fashion-MNIST: accuracy, ε and time of each.

For docs/performance.md ("Recipes"). Trains one preset at a time through ``dpcore.dpsgd.training``,
exactly as the app and the CLI would, and prints test accuracy, validation accuracy (where the
preset holds rows out), ε at δ, the final clip norm (adaptive clipping) and the wall time. A preset
whose first epoch projects a run longer than ``--max-minutes`` is stopped there and reported as
skipped, with the projection, rather than left to hold the machine.

    python bench/recipes.py [--only tutorial_cnn,dp_adam_mlp,lenet5] [--max-minutes 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# What each recipe reports for itself (on MNIST), printed beside our Fashion-MNIST figures.
RECIPE_CLAIMS = {
    "tutorial_cnn": "tutorial: 91% test accuracy, ε 0.966 (MNIST)",
    "dp_adam_mlp": "exercise: target above 90% validation accuracy (MNIST)",
    "lenet5": "MindArmour: 97.67% test accuracy (MNIST)",
}


def train_preset(key: str, *, max_minutes: float) -> dict:
    """Train preset ``key`` to the end (or stop after epoch 1 if it would take too long)."""
    from dpcore.data import datasets
    from dpcore.dpsgd import training
    from dpcore.views import presets

    preset = presets.get_preset(key)
    config = preset.config
    stop = threading.Event()
    projection = {}
    started = time.perf_counter()

    def on_epoch(metrics) -> None:
        print(
            f"  {key} epoch {metrics.epoch}/{config.epochs}: test accuracy {metrics.test_accuracy:.4f}, "
            f"ε {metrics.epsilon:.4f}, {metrics.seconds:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        if metrics.epoch == 1:
            projected = (time.perf_counter() - started) + metrics.seconds * (config.epochs - 1)
            projection["minutes"] = projected / 60
            if projected > max_minutes * 60:
                stop.set()

    result = training.train(config, on_epoch=on_epoch, stop_event=stop)
    row = {
        "preset": key,
        "status": result.status,
        "error": result.error,
        "n_train": datasets.train_size(config),
        "epochs": len(result.epochs),
        "seconds": round(result.seconds, 1),
        "examples_per_second": round(result.examples_per_second),
        "test_accuracy": result.test_accuracy,
        "epsilon": result.epsilon,
        "delta": config.delta,
        "accountant": config.accountant,
        "claim": RECIPE_CLAIMS[key],
    }
    if result.epochs and not math.isnan(result.epochs[-1].validation_accuracy):
        row["validation_accuracy"] = result.epochs[-1].validation_accuracy
    if config.adaptive_clipping and result.clip_norms:
        row["final_clip_norm"] = result.clip_norms[-1]
    if result.status == "cancelled":
        row["status"] = "skipped"
        row["projected_minutes"] = round(projection.get("minutes", math.nan), 1)
    return row


def main() -> int:
    from dpcore.views import presets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default=",".join(presets.preset_keys()), help="comma-separated preset keys (default: all)"
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=10.0,
        help="skip a preset whose first epoch projects a longer run (default 10)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per preset")
    args = parser.parse_args()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f}, "
        f"Python {platform.python_version()}",
        file=sys.stderr,
    )
    for key in [k.strip() for k in args.only.split(",") if k.strip()]:
        row = train_preset(key, max_minutes=args.max_minutes)
        if args.json:
            print(json.dumps(row), flush=True)
            continue
        if row["status"] == "skipped":
            print(f"{key}: skipped, projected {row['projected_minutes']} min > {args.max_minutes:g} min", flush=True)
            continue
        validation = f", validation accuracy {row['validation_accuracy']:.4f}" if "validation_accuracy" in row else ""
        clip = f", final clip norm {row['final_clip_norm']:.3f}" if "final_clip_norm" in row else ""
        print(
            f"{key}: {row['status']}, test accuracy {row['test_accuracy']:.4f}{validation}, "
            f"ε {row['epsilon']:.4f} at δ {row['delta']:g} ({row['accountant'].upper()}, n {row['n_train']}), "
            f"{row['epochs']} epochs in {row['seconds']:.0f} s ({row['examples_per_second']:,} examples/s)"
            f"{clip}; {row['claim']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
