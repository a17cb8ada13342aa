"""Audit figures: what membership inference and canaries show for a non-private baseline and for
runs at ε ≈ 1, 3 and 8, on digits and (at reduced size) Fashion-MNIST.

For each dataset it trains the baseline and three private runs whose noise is calibrated to the
target ε (the same config otherwise), audits each trained model (``dpcore.audit.attacks.audit_model``:
both attacks, and a canary audit that trains once more) and prints one Markdown table row per run:
accounted ε, test accuracy, best attack AUC and advantage, the membership-inference ε lower bound,
the canary ε lower bound (against the canary training's own ε), and the times, with the attack
and canary times as ratios to the run's training time. The attack time leaves out training; the
canary time includes its training run.

    python bench/audit_figures.py [--datasets digits,fashion_mnist] [--fashion-examples 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TARGET_EPSILONS = (1.0, 3.0, 8.0)
DELTA = 1e-5
# Per dataset: the run's settings (the DP-Adam MLP of the recipes) and the canary count.
SETTINGS = {
    "digits": dict(model="mlp", optimizer="adam", learning_rate=0.005, batch_size=64, epochs=40),
    "fashion_mnist": dict(model="mlp", optimizer="adam", learning_rate=0.002, batch_size=128, epochs=15),
}
CANARIES = {"digits": 200, "fashion_mnist": 1000}


def _configs(dataset: str, max_train_examples: int | None) -> list[tuple[str, object]]:
    from dpcore.config import DPConfig
    from dpcore.data.datasets import train_size
    from dpcore.privacy import calibration

    base = DPConfig(dataset=dataset, delta=DELTA, max_train_examples=max_train_examples, **SETTINGS[dataset])
    n = train_size(base)
    runs = [("non-private", base.as_baseline())]
    for target in TARGET_EPSILONS:
        sigma = calibration.calibrate_noise(
            target_epsilon=target, n=n, batch_size=base.batch_size, epochs=base.epochs, delta=DELTA
        ).noise_multiplier
        runs.append((f"ε ≈ {target:g}", base.replace(noise_multiplier=sigma)))
    return runs


def _row(dataset: str, label: str, config, canaries: int) -> dict:
    from dpcore.audit import model_audit
    from dpcore.audit.report import LEARNED_ATTACK, LOSS_ATTACK
    from dpcore.dpsgd import training

    kept: list = []
    started = time.perf_counter()
    result = training.train(config, on_weights=kept.append)
    train_seconds = time.perf_counter() - started
    if result.status != "completed":
        raise SystemExit(f"{dataset} {label}: training {result.status}: {result.error}")
    report = model_audit.audit_model(config, weights=kept[0], epsilon=result.epsilon, canaries=canaries)
    canary = report.canary
    return {
        "dataset": dataset,
        "run": label,
        "n_train": result.n_train,
        "noise_multiplier": config.noise_multiplier if config.private else None,
        "epsilon": result.epsilon,
        "test_accuracy": result.test_accuracy,
        "members": report.members,
        "auc": report.auc,
        "advantage": report.advantage,
        "auc_loss": report.attack(LOSS_ATTACK).auc,
        "auc_learned": report.attack(LEARNED_ATTACK).auc,
        "tpr_at_1pct_fpr": max(a.tpr_at_1pct_fpr for a in report.attacks),
        "epsilon_lower_bound": report.epsilon_lower_bound,
        "canaries": canary.canaries,
        "canary_correct": canary.correct,
        "canary_guesses": canary.guesses,
        "canary_epsilon_lower_bound": canary.epsilon_lower_bound,
        "canary_epsilon": canary.epsilon,
        "train_seconds": train_seconds,
        "attack_seconds": report.seconds - canary.seconds,
        "canary_seconds": canary.seconds,
    }


def _eps(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f}"


def _print_table(rows: list[dict]) -> None:
    print(
        "| dataset | run | ε | test acc. | AUC (loss / learned) | advantage | TPR at 1% FPR | MIA ε ≥ "
        "| canaries: right / guesses | canary ε ≥ (its ε) | train s | attack s | canary s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['dataset']} (n = {r['n_train']:,}) | {r['run']} | {_eps(r['epsilon'])} | {r['test_accuracy']:.3f} "
            f"| {r['auc_loss']:.3f} / {r['auc_learned']:.3f} | {r['advantage']:.3f} | {r['tpr_at_1pct_fpr']:.3f} "
            f"| {r['epsilon_lower_bound']:.2f} | {r['canary_correct']} / {r['canary_guesses']} of {r['canaries']} "
            f"| {r['canary_epsilon_lower_bound']:.2f} ({_eps(r['canary_epsilon'])}) | {r['train_seconds']:.1f} "
            f"| {r['attack_seconds']:.1f} | {r['canary_seconds']:.1f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,fashion_mnist")
    parser.add_argument(
        "--fashion-examples",
        type=int,
        default=5000,
        help="training rows of Fashion-MNIST (members; the 10,000 test rows are the non-members)",
    )
    parser.add_argument("--json", action="store_true", help="also print the rows as one JSON array")
    args = parser.parse_args()

    import numpy as np

    from dpcore.config import DPConfig
    from dpcore.dpsgd import models

    # Warm up TensorFlow (import, first model) so that the first row's times are like the others'.
    models.predict_logits(
        DPConfig(),
        weights=models.build(DPConfig(), input_shape=(8, 8, 1), num_classes=10).get_weights(),
        x=np.zeros((4, 8, 8, 1), np.float32),
        num_classes=10,
    )
    rows = []
    started = time.perf_counter()
    for dataset in args.datasets.split(","):
        limit = args.fashion_examples if dataset == "fashion_mnist" else None
        for label, config in _configs(dataset, limit):
            rows.append(_row(dataset, label, config, CANARIES[dataset]))
            print(f"# {dataset} {label}: done at {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}, total {time.perf_counter() - started:.0f} s"
    )
    _print_table(rows)
    # Ratios against the training time measured in the same run, which the machine's load hits alike.
    for part in ("attack", "canary"):
        ratios = [r[f"{part}_seconds"] / r["train_seconds"] for r in rows]
        print(f"# {part} time / training time of the run: {min(ratios):.2f} to {max(ratios):.2f}")
    if args.json:
        print(json.dumps(rows, default=lambda v: None if isinstance(v, float) and not math.isfinite(v) else v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
