"""Membership inference on a model's logits: a loss threshold and a learned attack, judged on held-out halves.

Members and non-members are each split into two halves: the learned attack is fitted on the first
half and the threshold behind the ε bound is chosen there, so the second half judges one fixed
attack. The ε lower bound treats the run's fixed train/test split as if each example's membership
were an independent fair coin, which the split only approximates.
"""

from __future__ import annotations

import numpy as np

from dpcore.audit.bounds import best_advantage, epsilon_lower_bound, roc, roc_auc, tpr_at_fpr
from dpcore.audit.report import AUDIT_SEED, CONFIDENCE, LEARNED_ATTACK, LOSS_ATTACK, AttackReport, AuditError

# -- per-example features -----------------------------------------------------------------------

# Each side needs two examples per half at the very least.
MIN_EXAMPLES_PER_SIDE = 4


def example_features(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Columns ``FEATURES`` for each example: log of the cross-entropy loss, the probability of the true
    label, the entropy of the prediction, and the true label's logit minus the largest other logit."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(y))
    shifted = z - z.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    probs = np.exp(log_probs)
    loss = -log_probs[rows, y]
    entropy = -(probs * log_probs).sum(axis=1)
    others = z.copy()
    others[rows, y] = -np.inf
    margin = z[rows, y] - others.max(axis=1)
    return np.column_stack([np.log(np.maximum(loss, 1e-300)), probs[rows, y], entropy, margin])


def example_losses(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each example's cross-entropy loss."""
    return np.exp(example_features(logits, labels)[:, 0])


# -- membership inference -----------------------------------------------------------------------


def membership_attacks(
    *,
    member_logits: np.ndarray,
    member_labels: np.ndarray,
    nonmember_logits: np.ndarray,
    nonmember_labels: np.ndarray,
    delta: float,
    seed: int = AUDIT_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[AttackReport, ...]:
    """Run the loss-threshold and the learned attack on equally many members and non-members.

    The larger side is subsampled to the smaller; each side is split into a selection half and an
    evaluation half. Each attack's bound is at confidence 1 − (1 − confidence)/2, so that the larger
    of the two bounds holds at ``confidence``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    k = min(len(member_labels), len(nonmember_labels))
    if k < MIN_EXAMPLES_PER_SIDE:
        raise AuditError(
            f"{k} member or non-member example(s) is too few for an audit",
            field="dataset",
            allowed=f"at least {MIN_EXAMPLES_PER_SIDE} of each",
        )
    members = rng.permutation(len(member_labels))[:k]
    others = rng.permutation(len(nonmember_labels))[:k]
    features = np.concatenate(
        [
            example_features(member_logits[members], member_labels[members]),
            example_features(nonmember_logits[others], nonmember_labels[others]),
        ]
    )
    labels = np.concatenate([np.ones(k, np.int64), np.zeros(k, np.int64)])
    half = k // 2
    select = np.concatenate([np.arange(half), k + np.arange(half)])
    evaluate = np.concatenate([np.arange(half, k), k + np.arange(half, k)])

    learned = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    learned.fit(features[select], labels[select])
    scores = {
        LOSS_ATTACK: -features[:, 0],  # a low loss says "member"
        LEARNED_ATTACK: learned.decision_function(features),
    }
    per_attack = 1.0 - (1.0 - confidence) / len(scores)
    reports = []
    for name, score in scores.items():
        curve = roc(labels[evaluate], score[evaluate])
        reports.append(
            AttackReport(
                attack=name,
                auc=roc_auc(labels[evaluate], score[evaluate]),
                advantage=best_advantage(curve),
                tpr_at_1pct_fpr=tpr_at_fpr(curve, 0.01),
                tpr_at_01pct_fpr=tpr_at_fpr(curve, 0.001),
                bound=epsilon_lower_bound(
                    select_labels=labels[select],
                    select_scores=score[select],
                    eval_labels=labels[evaluate],
                    eval_scores=score[evaluate],
                    delta=delta,
                    confidence=per_attack,
                ),
                roc=curve,
                eval_members=k - half,
                eval_nonmembers=k - half,
            )
        )
    return tuple(reports)
