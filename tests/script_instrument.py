"""Run an exported script with TensorFlow Privacy's GaussianSumQuery and the Keras optimizer watched from outside.

    python tests/script_instrument.py RECORD.json SCRIPT.py [SCRIPT.py ...]

Each script runs in turn as ``__main__`` (TensorFlow is imported once), its output after a line
``### SCRIPT.py``. For every noisy step (one ``GaussianSumQuery.get_noised_result`` call) RECORD.json
gets, under the script's path: how many
records (example gradients) the query clipped into the sum, the largest clipped norm, and the
normaliser the script really used: the noisy sum divided by the gradient the optimizer then applied.
The patches record through ``tf.py_function``, so they see every step of a compiled ``tf.function``.
"""

from __future__ import annotations

import json
import runpy
import sys

import numpy as np
import tensorflow as tf
from tensorflow_privacy.privacy.dp_query import gaussian_query

steps: list[dict] = []
_pending: dict = {"norms": [], "noisy_sum": None}


def _flat(tensors) -> np.ndarray:
    return np.concatenate([np.asarray(t).ravel() for t in tensors]).astype(np.float64)


def _on_clipped(*clipped) -> np.int32:
    _pending["norms"].append(float(np.linalg.norm(_flat(clipped))))
    return np.int32(0)


def _on_noised(*noisy_sum) -> np.int32:
    if _pending["noisy_sum"] is not None:
        raise AssertionError("a noisy sum was made but never applied")
    _pending["noisy_sum"] = _flat(noisy_sum)
    return np.int32(0)


def _on_applied(*gradients) -> np.int32:
    noisy_sum, applied = _pending["noisy_sum"], _flat(gradients)
    if noisy_sum is None:
        raise AssertionError("the optimizer applied a gradient that no GaussianSumQuery noised")
    used = np.abs(applied) > 1e-12
    ratios = noisy_sum[used] / applied[used]
    normalizer = float(np.median(ratios))
    steps.append(
        {
            "records": len(_pending["norms"]),
            "max_clipped_norm": max(_pending["norms"], default=0.0),
            "normalizer": normalizer,
            "normalizer_spread": float(np.max(np.abs(ratios - normalizer)) / abs(normalizer)),
        }
    )
    _pending.update(norms=[], noisy_sum=None)
    return np.int32(0)


def _after(record_fn, structure):
    """``structure`` passed on only once ``record_fn`` has seen it (recording runs in step order)."""
    flat = tf.nest.flatten(structure)
    done = tf.py_function(record_fn, flat, tf.int32)
    with tf.control_dependencies([done]):
        return tf.nest.pack_sequence_as(structure, [tf.identity(t) for t in flat])


_preprocess_record = gaussian_query.GaussianSumQuery.preprocess_record
_get_noised_result = gaussian_query.GaussianSumQuery.get_noised_result
_apply_gradients = tf.keras.optimizers.legacy.Optimizer.apply_gradients


def preprocess_record(self, params, record):
    return _after(_on_clipped, _preprocess_record(self, params, record))


def get_noised_result(self, sample_state, global_state):
    noisy_sum, new_state, event = _get_noised_result(self, sample_state, global_state)
    return _after(_on_noised, noisy_sum), new_state, event


def apply_gradients(self, grads_and_vars, *args, **kwargs):
    pairs = list(grads_and_vars)
    gradients = _after(_on_applied, [g for g, _ in pairs])
    return _apply_gradients(self, list(zip(gradients, [v for _, v in pairs])), *args, **kwargs)


gaussian_query.GaussianSumQuery.preprocess_record = preprocess_record
gaussian_query.GaussianSumQuery.get_noised_result = get_noised_result
tf.keras.optimizers.legacy.Optimizer.apply_gradients = apply_gradients

if __name__ == "__main__":
    record_path, script_paths = sys.argv[1], sys.argv[2:]
    recorded: dict[str, list[dict]] = {}
    try:
        for script_path in script_paths:
            print(f"### {script_path}", flush=True)
            runpy.run_path(script_path, run_name="__main__")
            recorded[script_path] = steps[:]
            steps.clear()
    finally:
        with open(record_path, "w", encoding="utf-8") as handle:
            json.dump(recorded, handle)
