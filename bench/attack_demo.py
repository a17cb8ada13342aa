"""The attack demo's figures: the overfitting preset and its private twin, each trained and audited
for several seeds, one Markdown table row per run.

Each row: the run's accounted ε, test accuracy (with its test-set size), each attack's AUC, the
best advantage and the membership-inference ε lower bound (``dpcore.audit.model_audit.audit_model``),
and the training time. The seed changes the initial weights, batches and noise; the rows and the
audit's halves stay the same.

    python bench/attack_demo.py [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PRESET_KEYS = ("overfit_no_noise", "overfit_private_twin")


def _row(key: str, seed: int) -> dict:
    from dpcore.audit import model_audit
    from dpcore.audit.report import LEARNED_ATTACK, LOSS_ATTACK
    from dpcore.data import datasets
    from dpcore.dpsgd import training
    from dpcore.views import presets

    config = presets.get_preset(key).config.replace(seed=seed)
    kept: list = []
    started = time.perf_counter()
    result = training.train(config, on_weights=kept.append)
    train_seconds = time.perf_counter() - started
    if result.status != "completed":
        raise SystemExit(f"{key} seed {seed}: training {result.status}: {result.error}")
    report = model_audit.audit_model(config, weights=kept[0], epsilon=result.epsilon)
    return {
        "preset": key,
        "seed": seed,
        "n_train": result.n_train,
        "n_test": datasets.config_dataset_info(config).n_test,
        "epsilon": result.epsilon,
        "test_accuracy": result.test_accuracy,
        "members": report.members,
        "auc_loss": report.attack(LOSS_ATTACK).auc,
        "auc_learned": report.attack(LEARNED_ATTACK).auc,
        "advantage": report.advantage,
        "epsilon_lower_bound": report.epsilon_lower_bound,
        "train_seconds": train_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    rows = [_row(key, seed) for key in PRESET_KEYS for seed in seeds]
    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}, total {time.perf_counter() - started:.0f} s"
    )
    print("| preset | seed | ε | test acc. (n test) | AUC (loss / learned) | advantage | MIA ε ≥ | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        eps = "∞" if math.isinf(r["epsilon"]) else f"{r['epsilon']:.2f}"
        print(
            f"| {r['preset']} (n = {r['n_train']}) | {r['seed']} | {eps} | {r['test_accuracy']:.3f} ({r['n_test']:,}) "
            f"| {r['auc_loss']:.3f} / {r['auc_learned']:.3f} | {r['advantage']:.3f} "
            f"| {r['epsilon_lower_bound']:.2f} | {r['train_seconds']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
