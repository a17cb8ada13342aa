"""A finished run's trained model to take away: a zip of ``model.keras``, the run's config, its privacy report
and a README saying what the model takes and gives.

The model is rebuilt by the trainer's own builder (``dpcore.dpsgd.models``, imported when an archive is
made, since it loads TensorFlow) with the weights the run kept (the moving average when it averaged
weights) and saved as a ``.keras`` file that plain ``tf.keras.models.load_model`` reads. A run whose
weights were not kept has no model to export and says so. The config names a CSV file by its own name.
"""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING, Optional

import numpy as np

from dpcore.config import DATASET_TITLES, DPConfig
from dpcore.data import datasets, scatter
from dpcore.errors import UserInputError
from dpcore.export.files import ExportFile, file_name_only
from dpcore.export.report import run_report
from dpcore.export.report_text import render_markdown
from dpcore.model_specs import CNN_PIXEL_OFFSET, CNN_PIXEL_SCALE, LENET_SIDE, model_description
from dpcore.privacy import explain
from dpcore.results import FINISHED_STATUSES
from dpcore.room.participants import check_may_manage

if TYPE_CHECKING:
    from dpcore.room.participants import Caller
    from dpcore.runs.records import RunRecord
    from dpcore.runs.store import RunStore

MODEL_MIME = "application/zip"
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
REPORT_FILE = "privacy-report.md"
README_FILE = "README.md"


def model_archive(store: RunStore, run_id: int, *, caller: Optional[Caller]) -> ExportFile:
    """The zip of run ``run_id``'s model for ``caller`` (None: the store's owner).

    Refused with a UserInputError naming ``run`` for another participant's run, a run that did not
    finish, and a run whose weights were not kept.
    """
    record = store.get_run(run_id)
    check_may_manage(caller, run_id=run_id, run_owner=record.owner, action="export")
    if record.status not in FINISHED_STATUSES:
        raise UserInputError(
            "run",
            f"run {run_id} is {record.status}; only a finished run has a trained model",
            allowed="a completed run, or one stopped by its ε budget",
        )
    weights = store.load_weights(run_id)
    if weights is None:
        raise UserInputError(
            "run",
            f"the weights of run {run_id} were not kept, so it has no model to export",
            allowed="a finished run whose weights are stored (runs keep them since the store's schema version 2; "
            "train this config again for a model)",
        )
    config = record.config
    input_shape, num_classes, class_names = _model_io(config, weights)
    from dpcore.dpsgd import models  # imports TensorFlow

    keras_bytes = models.keras_file(config, weights=weights, input_shape=input_shape, num_classes=num_classes)
    report = render_markdown(run_report(store, run_id, caller=caller))
    folder = f"dp-run-{run_id}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{folder}/{MODEL_FILE}", keras_bytes)
        archive.writestr(f"{folder}/{CONFIG_FILE}", file_name_only(config).to_json())
        archive.writestr(f"{folder}/{REPORT_FILE}", report)
        archive.writestr(f"{folder}/{README_FILE}", readme(record, input_shape=input_shape, class_names=class_names))
    return ExportFile(file_name=f"{folder}-model.zip", mime=MODEL_MIME, data=buffer.getvalue())


def _model_io(config: DPConfig, weights: list[np.ndarray]) -> tuple[tuple[int, ...], int, tuple[str, ...]]:
    """(input shape, number of classes, class names) of the run's model.

    A built-in dataset says them without loading. A CSV run's model flattens its input, so its stored
    weights fix them (the first kernel's rows, the last bias's length) without reading the file again,
    which for a privately derived schema would derive it anew.
    """
    if config.dataset != "csv":
        info = datasets.dataset_info(config.dataset)
        return tuple(info.input_shape), info.num_classes, info.class_names
    features, classes = int(np.shape(weights[0])[0]), int(np.shape(weights[-1])[0])
    names = config.csv_schema.classes if config.csv_schema is not None else ()
    return (features,), classes, tuple(names)


def _inputs_text(config: DPConfig, input_shape: tuple[int, ...]) -> list[str]:
    """What the model takes, and what the person must do to their data first."""
    if config.dataset == "csv":
        schema = config.csv_schema
        if schema is None:
            return [
                f"A float32 array of shape (n, {input_shape[0]}): one row of features per example, under the "
                "schema DP Explorer derived privately from the training rows when the run trained (its price "
                "is in the privacy report). That schema is not kept with the run, so this archive cannot say "
                "the features' layout; declare a schema (csv_schema) to export a model whose inputs are "
                "documented."
            ]
        scale = "[-1, 1]" if schema.scale == "symmetric" else "[0, 1]"
        return [
            f"A float32 array of shape (n, {input_shape[0]}): one row of features per example, made from your "
            f"CSV columns by the schema in {CONFIG_FILE} (csv_schema), nothing fitted on rows:",
            "",
            f"* first each numeric column in the schema's order, clipped to its [low, high] and scaled to {scale} "
            "(a missing value is the middle of the range);",
            "* then each categorical column, one-hot over its listed categories plus one slot for any other "
            "value (a missing value is all zeros).",
            "",
            "The exported script of this config (Export page) does exactly this in its load_data().",
        ]
    side = "8x8" if config.dataset == "digits" else "28x28"
    source = (
        "scikit-learn's load_digits().images divided by 16"
        if config.dataset == "digits"
        else "8-bit pixels divided by 255"
    )
    lines = [
        f"Images as a float32 array of shape (n, {side.replace('x', ', ')}, 1): {source}, so pixels lie in "
        "[0, 1], with a channel axis."
    ]
    if config.model == "cnn":
        lines.append(
            f"The model maps them to [-1, 1] itself (its first layer, Rescaling({CNN_PIXEL_SCALE:g}, "
            f"offset={CNN_PIXEL_OFFSET:g}))."
        )
    if config.model == "lenet5":
        lines.append(f"The model resizes them to {LENET_SIDE}x{LENET_SIDE} itself (its first layer, Resizing).")
    if config.model in scatter.SCATTERNET_MODELS:
        shape = scatter.feature_shape(input_shape)
        lines = [
            f"This is the model's head only: it takes ScatterNet features of shape (n, {', '.join(map(str, shape))}), "
            "not images. Compute them from the [0, 1] images "
            f"({source}, shape (n, {side.replace('x', ', ')}, 1)) as DP Explorer does "
            "(dpcore.data.scatter.compute_features): kymatio's Scattering2D with J = 2 and L = 8, then each "
            f"example standardised in {scatter.NORM_GROUPS} groups of channels with its own mean and variance "
            f"(GroupNorm without affine parameters, epsilon {scatter.NORM_EPSILON:g}). The transform has no "
            "learned parameters, so it is not part of this file."
        ]
    return lines


def readme(record: RunRecord, *, input_shape: tuple[int, ...], class_names: tuple[str, ...]) -> str:
    """The archive's README: what is in it, how to load the model, what it takes and gives, its privacy."""
    config = record.config
    epsilon = record.epsilon
    privacy = (
        f"ε = {explain.format_epsilon(epsilon)} at δ = {config.delta:g} ({config.accountant.upper()} accountant, "
        f"{config.sampling} sampling), the ε of the steps this run took. The model is those steps' output, so ε "
        f"covers it. {explain.randomness_note(config)}"
        if config.private
        else "None: a non-private baseline (ε = ∞), trained without clipping or noise."
    )
    classes = ", ".join(f"{i}: {name}" for i, name in enumerate(class_names)) if class_names else "class indices"
    accuracy = "—" if record.test_accuracy is None else f"{record.test_accuracy:.4f}"
    dataset = (
        DATASET_TITLES[config.dataset] if config.dataset != "csv" else f"CSV file {file_name_only(config).csv_path}"
    )
    lines = [
        f"# Run {record.id}: {model_description(config.model)} trained with DP-SGD on {dataset}",
        "",
        f"* `{MODEL_FILE}`: the trained model (Keras 2, TensorFlow 2.15), the weights the run released "
        + (
            "(a moving average over its steps)."
            if config.weight_averaging_decay is not None
            else "after its last step."
        ),
        f"* `{CONFIG_FILE}`: the run's DP Explorer config.",
        f"* `{REPORT_FILE}`: its privacy report: what ε covers, and what it does not.",
        "",
        "## Privacy",
        "",
        privacy,
        "",
        "## Loading and predicting",
        "",
        "```python",
        "import numpy as np",
        "import tensorflow as tf  # 2.15, whose tf.keras is Keras 2",
        "",
        f'model = tf.keras.models.load_model("{MODEL_FILE}")',
        "logits = model.predict(x)  # x as below; one logit per class",
        "predicted = np.argmax(logits, axis=1)",
        "```",
        "",
        "## Inputs",
        "",
        *_inputs_text(config, input_shape),
        "",
        "## Outputs",
        "",
        f"One logit per class (no softmax): {classes}.",
        "",
        f"The run's test accuracy, on the dataset's test split: {accuracy}.",
    ]
    return "\n".join(lines) + "\n"
